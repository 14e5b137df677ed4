//! The consume loop, on a dedicated thread, split along its concepts:
//!
//! - [`context`]: what the loop and librdkafka's callbacks share (private behind methods), and
//!   the statistics and error callbacks;
//! - [`rebalance`]: the rebalance callback, which librdkafka runs on this thread inside `poll`;
//! - [`offsets`]: where each assigned partition stands, one owner for the callbacks and the loop;
//! - [`commit`]: the flush in flight, and settling it when it lands;
//! - [`ingest`]: message → its source's decoder → the batch being built;
//! - [`pending`]: partitions whose stored offset is not known: rewinding to it, reading it again;
//! - [`fetch`] and [`routes`]: the queue assigned partitions' messages are read from in
//!   batches, and which partitions are routed to it; [`topics`]: librdkafka's partition lists;
//! - this module: the loop that reads, and schedules flushes: every flush interval under light
//!   traffic, back to back under a backlog, pausing consumption when unflushed data reaches
//!   its memory budget.
//!
//! **Who owns what.** The consumer thread (a `spawn_blocking` task) owns the consumer, the
//! batch being built and the positions, and runs every callback. A flush runs on the Tokio
//! runtime (see [`commit`]); the loop settles a landed flush, or the rebalance callback does
//! when a rebalance comes first (a revocation, or a cooperative assignment).
//!
//! Offsets live in PostgreSQL, written by the flush with the data they cover: see
//! [`rebalance`] for how assignments seek to them and revocations hand over, and
//! [`crate::store`] for the fence. Kafka's own committed offsets are written after each flush
//! only so that lag tools see progress.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fleet::health::{Health, StallDetector};
use fleet::retry::Backoff;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::Offset;
use tokio_util::sync::CancellationToken;

use crate::flush::Flusher;
use crate::part::Ingest;
use crate::sources::Tp;

mod commit;
mod context;
mod fetch;
mod ingest;
mod offsets;
mod pending;
mod rebalance;
mod routes;
mod topic_ids;
mod topics;

pub use context::AggregatorContext;
use fetch::FetchQueue;
use ingest::Ingestor;
use offsets::Positions;

/// Messages taken per poll burst before the loop looks at flushes and health again.
const BURST: usize = 4096;
/// A batch this large is flushed as soon as no flush is in flight, without waiting for the
/// flush interval: under load flushes run back to back, each taking what arrived during the
/// previous one, so PostgreSQL never idles while a backlog waits. The interval only bounds the
/// latency of light traffic.
const EAGER_FLUSH_MESSAGES: u64 = 10_000;
/// Name of the health check that fails when flushes stall.
const PROGRESS_CHECK: &str = "progress";
/// Name of the health check that fails while a partition is stopped out of range.
const OFFSETS_CHECK: &str = "offsets";
/// How long the loop waits for the first message of a burst.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// The same, while the last part of a backlog waits for the in-flight flush to land.
const TAIL_WAIT: Duration = Duration::from_millis(5);
/// How often the routes of the assigned partitions to the fetch queue are re-asserted (see
/// [`fetch`]): the longest a partition can sit unread after a rebalance race.
const REROUTE_EVERY: Duration = Duration::from_millis(250);
/// Longest wait between two reads of pending partitions' stored offsets.
const PENDING_RETRY_MAX: Duration = Duration::from_secs(5);

/// Loop settings.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// The rules and limits messages are judged by (its time is set per read).
    pub ingest: Ingest,
    pub flush_interval: Duration,
    pub max_pending_bytes: usize,
    pub trace: bool,
    /// How long the final flush may take at shutdown.
    pub final_flush_timeout: Duration,
}

/// The consume loop. Owns the consumer and the batch being built.
pub struct ConsumeLoop {
    consumer: BaseConsumer<AggregatorContext>,
    flusher: Flusher,
    settings: LoopSettings,
    health: Health,
    shutdown: CancellationToken,
    ingest: Ingestor,
    last_flush: Instant,
    stall: StallDetector,
    paused: bool,
    /// The last flush was started by the batch's size: a backlog is being worked through, and
    /// its last part is flushed as soon as it is read, not at the next interval.
    draining: bool,
    /// When pending partitions' offsets are read next, and the backoff between reads.
    pending_retry: (Instant, Backoff),
    /// Cancelled at the shutdown deadline: every flush's token is a child of it.
    abandon: CancellationToken,
    /// Partitions whose offset librdkafka found outside their log (see [`pending`]): stopped
    /// at a stored offset (until it moves), or `None`: of a recreated topic, to read again.
    stopped: HashMap<Tp, Option<i64>>,
}

impl std::fmt::Debug for ConsumeLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeLoop")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Drop for ConsumeLoop {
    fn drop(&mut self) {
        // The fetch queue belongs to the consumer's client and must go first (fields are
        // dropped after this).
        self.context().routes().release();
    }
}

impl ConsumeLoop {
    /// A loop over `consumer` (already subscribed).
    pub fn new(
        consumer: BaseConsumer<AggregatorContext>,
        flusher: Flusher,
        settings: LoopSettings,
        health: Health,
        shutdown: CancellationToken,
    ) -> Self {
        health.register(PROGRESS_CHECK, false);
        health.pass(PROGRESS_CHECK);
        // Not a readiness gate: the other partitions are served; restarting would not help.
        health.register(OFFSETS_CHECK, false);
        health.pass(OFFSETS_CHECK);
        // Before the first assignment, which compares the stored positions with them.
        consumer.context().describe_topics(&consumer);
        let stall = StallDetector::new(settings.flush_interval * 3);
        // Before the first `poll`, which is where partitions get assigned (and routed).
        #[expect(
            unsafe_code,
            reason = "the fetch queue keeps the consumer's raw client handle"
        )]
        // SAFETY: every handle to the queue is dropped before the consumer: this one at the end
        // of `run` (`drop(fetch)`), the context's in `ConsumeLoop`'s `Drop`, which runs before
        // its fields (the consumer among them) are dropped.
        let fetch = unsafe { FetchQueue::new(&consumer) }.map(Arc::new);
        if fetch.is_none() {
            tracing::warn!("no fetch queue: reading messages one `poll` at a time");
        }
        consumer.context().routes().install(fetch);
        let context = consumer.context();
        let ingest = Ingestor::new(
            settings.clone(),
            context.metrics().clone(),
            context.topics().clone(),
        );
        Self {
            consumer,
            flusher,
            settings,
            health,
            shutdown,
            ingest,
            last_flush: Instant::now(),
            stall,
            paused: false,
            draining: false,
            pending_retry: (Instant::now(), Backoff::new(PENDING_RETRY_MAX)),
            abandon: CancellationToken::new(),
            stopped: HashMap::new(),
        }
    }

    fn context(&self) -> &AggregatorContext {
        self.consumer.context()
    }

    /// Runs until shutdown, then makes a final flush.
    pub fn run(mut self) {
        let fetch = self.context().routes().queue();
        let mut last_reroute = Instant::now();
        while !self.shutdown.is_cancelled() {
            self.settle_landed(Duration::ZERO);
            self.resolve_pending();
            self.ingest.start_read();
            // Wait on the fetch queue while partitions are routed to it, else on the consumer
            // queue (where the first assignment arrives). Briefly while the last part of a
            // backlog waits for the in-flight flush.
            let routed = fetch.is_some() && self.context().routes().any();
            let wait = if self.draining && !self.ingest.batch.is_empty() {
                TAIL_WAIT
            } else {
                POLL_WAIT
            };
            let read = self.read_consumer_queue(if routed { Duration::ZERO } else { wait });
            // Caught up only when neither queue filled its burst: a full consumer queue means
            // more is waiting there, whatever the fetch queue holds.
            let mut caught_up = read < BURST;
            // The fetch queue: a batch, full or after the wait. No rebalance runs while it is
            // read (they run inside `poll`).
            if let Some(fetch) = &fetch {
                if last_reroute.elapsed() >= REROUTE_EVERY {
                    self.context().routes().reroute(self.context().topics());
                    last_reroute = Instant::now();
                }
                let fetched = fetch.consume(if routed { wait } else { Duration::ZERO }, BURST);
                caught_up &= fetched.len() < BURST;
                self.ingest.take_fetched(self.consumer.context(), &fetched);
            }
            if !self.ingest.out_of_range.is_empty() {
                self.stop_out_of_range();
            }
            self.maybe_flush(caught_up);
        }
        drop(fetch); // the last handle is the context's, released before the consumer (`Drop`)
        self.finish();
    }

    /// Reads up to a burst from the consumer queue: rebalances, statistics and errors, and the
    /// messages of any partition not routed to the fetch queue. Returns how many it read.
    fn read_consumer_queue(&mut self, first_wait: Duration) -> usize {
        let (mut read, mut reassigned) = (0, false);
        for i in 0..BURST {
            let timeout = if i == 0 { first_wait } else { Duration::ZERO };
            let Some(polled) = self.consumer.poll(timeout) else {
                break;
            };
            read += 1;
            // The rebalance callback runs inside `poll`: the message belongs to the new
            // assignment, the batch to the old one.
            reassigned |= take_reassignment(self.consumer.context(), &mut self.ingest);
            match polled {
                Ok(message) => self.ingest.take_polled(self.consumer.context(), &message),
                Err(err) => {
                    tracing::warn!(%err, "consume error");
                    break;
                }
            }
        }
        // A rebalance in a `poll` that returned no message.
        reassigned |= take_reassignment(self.consumer.context(), &mut self.ingest);
        if reassigned {
            // New assignments start unpaused, and kept partitions (cooperative protocol) may
            // still be paused. A failed resume leaves them marked paused (and the gauge at 1):
            // the next budget check tries again.
            self.set_paused(false);
        }
        read
    }

    /// Starts a flush when one is due; `caught_up`: the last read found no more messages waiting.
    fn maybe_flush(&mut self, caught_up: bool) {
        let now = Instant::now();
        let in_flight = self.context().commit().in_flight();
        let over_budget = self.ingest.batch.approx_bytes() >= self.settings.max_pending_bytes;
        self.context()
            .metrics()
            .pending_bytes
            .set(self.ingest.batch.approx_bytes() as i64);
        // Pending partitions are work not done either: left pending, they fail `progress`.
        let pending = self.context().positions().any_pending();
        if self.ingest.batch.is_empty() && !in_flight && !pending {
            self.stall.idle();
        } else {
            self.stall.pending(now);
        }
        let trigger = flush_trigger(
            now.duration_since(self.last_flush),
            self.settings.flush_interval,
            self.ingest.batch.messages(),
            over_budget,
            self.draining && caught_up,
        );
        if let Some(trigger) = trigger
            && !self.ingest.batch.is_empty()
            && !in_flight
        {
            self.start_flush();
            self.last_flush = now;
            self.draining = trigger == FlushTrigger::Size;
        }
        // Unflushed data is bounded: stop fetching until the flusher catches up.
        let still_over = self.ingest.batch.approx_bytes() >= self.settings.max_pending_bytes;
        self.set_paused(still_over);
        if self.stall.is_stalled(now) {
            self.health
                .fail(PROGRESS_CHECK, "no successful flush for 3 flush intervals");
        } else {
            self.health.pass(PROGRESS_CHECK);
        }
    }

    fn set_paused(&mut self, pause: bool) {
        if pause == self.paused {
            return;
        }
        // Pending partitions stay paused until their stored offsets are read.
        let assignment = if pause {
            match self.consumer.assignment() {
                Ok(a) => a,
                Err(err) => return tracing::warn!(%err, "cannot read assignment"),
            }
        } else {
            let known: Vec<Tp> =
                (self.context().positions()).read(|p| p.known().map(|(tp, _)| tp).collect());
            self.context()
                .list(known.into_iter().map(|tp| (tp, Offset::Invalid)))
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        match result {
            Ok(()) => {
                self.paused = pause;
                self.context()
                    .metrics()
                    .partitions_paused
                    .set(i64::from(pause));
                tracing::info!(
                    paused = pause,
                    "unflushed data budget: consumption {}",
                    if pause { "paused" } else { "resumed" }
                );
            }
            Err(err) => {
                // Still marked as before: the next budget check tries again.
                if !pause {
                    self.context().metrics().resume_errors.inc();
                }
                tracing::warn!(%err, "pause/resume failed");
            }
        }
    }

    fn start_flush(&mut self) {
        let batch = Arc::new(std::mem::take(&mut self.ingest.batch));
        (self.context().positions()).update(|p| p.hand_off(&batch.progress));
        let span = match self.ingest.aggregate_span.take() {
            Some((parent, _)) => {
                tracing::info_span!(parent: &parent, "flush", messages = batch.messages())
            }
            None => tracing::Span::none(),
        };
        let (tx, rx) = mpsc::channel();
        let flusher = self.flusher.clone();
        let job = Arc::clone(&batch);
        let cancel = self.abandon.child_token();
        let stop = cancel.clone();
        self.context()
            .runtime()
            .spawn(tracing::Instrument::instrument(
                async move {
                    let _ = tx.send(flusher.run(&job, &stop).await);
                },
                span,
            ));
        self.context().commit().start(batch, rx, cancel);
    }

    /// Settles the in-flight flush if it lands within `wait` (zero: if it landed already).
    fn settle_landed(&mut self, wait: Duration) {
        let Some(landed) = self.context().commit().landed(wait) else {
            return;
        };
        match self.context().settle(&self.consumer, landed) {
            Ok(()) => self.stall.success(Instant::now()),
            Err(failure) => {
                tracing::warn!(%failure, "flush not committed: rewinding to the stored offsets");
                self.rewind();
            }
        }
    }

    /// Final flush at shutdown: wait for the in-flight one, flush the rest, commit, leave.
    fn finish(mut self) {
        let deadline = Instant::now() + self.settings.final_flush_timeout;
        let abandon = self.abandon.clone();
        let timer = self.context().runtime().spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            abandon.cancel();
        });
        self.settle_landed(deadline.saturating_duration_since(Instant::now()));
        if !self.ingest.batch.is_empty() && !self.context().commit().in_flight() {
            self.start_flush();
            // The flush gives up at the deadline (`abandon`); the margin lets it say so.
            let limit = deadline + Duration::from_secs(1);
            self.settle_landed(limit.saturating_duration_since(Instant::now()));
        }
        timer.abort();
        let partitions = self.context().positions().read(Positions::len);
        tracing::info!(partitions, "consumer stopping");
        self.consumer.unsubscribe();
    }
}

/// After a rebalance the batch refers to partitions we may no longer own: drops it (the kept
/// partitions were rewound to their stored offsets). The one place the loop takes the
/// callback's word; true if there was a rebalance since the last call.
fn take_reassignment(context: &AggregatorContext, ingest: &mut Ingestor) -> bool {
    if !context.take_reassigned() {
        return false;
    }
    ingest.drop_batch();
    context.positions().update(Positions::restart_from_stored);
    true
}

/// Why a flush starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlushTrigger {
    /// The flush interval passed (light traffic).
    Interval,
    /// The batch is large or over its memory budget (a backlog).
    Size,
    /// A backlog's last part was read.
    CaughtUp,
}

/// Whether a batch of `messages` is flushed now (when no flush is in flight), and why.
/// `backlog_read`: the previous flush was by size and the last read found nothing more.
fn flush_trigger(
    since_last: Duration,
    interval: Duration,
    messages: u64,
    over_budget: bool,
    backlog_read: bool,
) -> Option<FlushTrigger> {
    if messages >= EAGER_FLUSH_MESSAGES || over_budget {
        Some(FlushTrigger::Size)
    } else if backlog_read {
        Some(FlushTrigger::CaughtUp)
    } else if since_last >= interval {
        Some(FlushTrigger::Interval)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(1);
    const SOON: Duration = Duration::from_millis(10);

    #[test]
    fn light_traffic_waits_for_the_interval() {
        assert_eq!(flush_trigger(SOON, INTERVAL, 5, false, false), None);
        assert_eq!(
            flush_trigger(INTERVAL, INTERVAL, 5, false, false),
            Some(FlushTrigger::Interval)
        );
    }

    #[test]
    fn a_large_or_over_budget_batch_goes_at_once() {
        let large = EAGER_FLUSH_MESSAGES;
        assert_eq!(
            flush_trigger(SOON, INTERVAL, large, false, false),
            Some(FlushTrigger::Size)
        );
        assert_eq!(
            flush_trigger(SOON, INTERVAL, 1, true, false),
            Some(FlushTrigger::Size)
        );
    }

    #[test]
    fn the_last_part_of_a_backlog_goes_as_soon_as_it_is_read() {
        assert_eq!(
            flush_trigger(SOON, INTERVAL, 3, false, true),
            Some(FlushTrigger::CaughtUp)
        );
    }
}
