//! The consume loop, on a dedicated thread: read messages in batches from a queue the assigned
//! partitions are routed to ([`fetch`]; rebalances and other events still come through
//! `BaseConsumer::poll`), decode and aggregate into the current [`Batch`], and hand the batch
//! to a [`Flusher`] on the Tokio runtime while reading on: every flush interval under light
//! traffic, back to back under a backlog. One flush is in flight at a time, so batches commit
//! in order.
//!
//! Offsets live in PostgreSQL, written by the flush with the data they cover. On every
//! assignment the rebalance callback seeks the new partitions to their stored offsets (or the
//! beginning), and on a revocation it first waits for the in-flight flush and drops the
//! unflushed batch: the next owner re-reads it from the stored offsets. Kafka's own committed
//! offsets are written after each flush only so that lag tools see progress.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fleet::health::{Health, StallDetector};
use fleet::kafka::BrokerWatch;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::batch::{Batch, DeadLetter, Rules};
use crate::decode::host::decode_host;
use crate::decode::probe::decode_probe;
use crate::decode::{Invalid, check_time, decode_call};
use crate::flush::{FlushFailure, Flushed, Flusher};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::topics::{Source, Topics, Tp};

mod fetch;
use fetch::{FetchQueue, Fetched};

/// Messages taken per poll burst before the loop looks at flushes and health again.
const BURST: usize = 4096;
/// A batch this large is flushed as soon as no flush is in flight, without waiting for the
/// flush interval: under load flushes run back to back, each taking what arrived during the
/// previous one, so PostgreSQL never idles while a backlog waits. The interval only bounds the
/// latency of light traffic.
const EAGER_FLUSH_MESSAGES: u64 = 10_000;
/// How long a revocation waits for the in-flight flush to settle.
const REVOKE_WAIT: Duration = Duration::from_secs(10);
/// Name of the health check that fails when flushes stall.
const PROGRESS_CHECK: &str = "progress";
/// Most span links attached to one aggregate span.
const MAX_TRACE_LINKS: usize = 16;
/// How long the loop waits for the first message of a burst.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// The same, while the last part of a backlog waits for the in-flight flush to land.
const TAIL_WAIT: Duration = Duration::from_millis(5);
/// How often the routes of the assigned partitions to the fetch queue are re-asserted (see
/// [`fetch`]): the longest a partition can sit unread after a rebalance race.
const REROUTE_EVERY: Duration = Duration::from_millis(250);
/// The trace context header, as librdkafka looks it up.
const TRACEPARENT: &std::ffi::CStr = c"traceparent";

/// A flush handed to the runtime, and what to do when it lands.
#[derive(Debug)]
struct InFlight {
    result: Receiver<Result<Flushed, FlushFailure>>,
    batch: Arc<Batch>,
}

/// The consumer context: rebalance and statistics callbacks, and the state they share with the
/// loop (both run on the consumer thread, inside `poll`).
#[derive(Debug)]
pub struct AggregatorContext {
    watch: BrokerWatch,
    metrics: Metrics,
    store: Store,
    runtime: Handle,
    topics: Topics,
    shutdown: CancellationToken,
    /// Stored next offset per assigned partition (-1: none stored yet).
    assigned: Mutex<HashMap<Tp, i64>>,
    /// Set by the rebalance callback: the loop must drop its batch and re-read `assigned`.
    reassigned: AtomicBool,
    in_flight: Mutex<Option<InFlight>>,
    /// Where assigned partitions' messages are read from in batches (`None`: from the consumer
    /// queue, one `poll` each), and the partitions routed to it.
    fetch: Mutex<Option<Arc<FetchQueue>>>,
    routed: Mutex<HashSet<Tp>>,
}

impl AggregatorContext {
    /// A context for consuming `topics`.
    pub fn new(
        watch: BrokerWatch,
        metrics: Metrics,
        store: Store,
        runtime: Handle,
        topics: Topics,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            watch,
            metrics,
            store,
            runtime,
            topics,
            shutdown,
            assigned: Mutex::default(),
            reassigned: AtomicBool::new(false),
            in_flight: Mutex::default(),
            fetch: Mutex::default(),
            routed: Mutex::default(),
        }
    }

    /// Forwards `partitions` to the fetch queue, if there is one, and remembers them.
    fn route(&self, partitions: impl IntoIterator<Item = Tp>) {
        let Some(fetch) = lock(&self.fetch).clone() else {
            return;
        };
        let mut routed = lock(&self.routed);
        for (source, partition) in partitions {
            if fetch.route(self.topics.name(source), partition) {
                routed.insert((source, partition));
            } else {
                // Its messages stay on the consumer queue, where the loop reads them too.
                tracing::warn!(partition, "partition not routed to the fetch queue");
            }
        }
    }

    /// Re-asserts the routes of the routed partitions (see [`fetch`]).
    fn reroute(&self) {
        let Some(fetch) = lock(&self.fetch).clone() else {
            return;
        };
        for (source, partition) in lock(&self.routed).iter() {
            fetch.route(self.topics.name(*source), *partition);
        }
    }

    /// Reads the stored offsets of `partitions`, retrying while PostgreSQL is unreachable.
    /// `None` if shutdown came first.
    fn stored_offsets(&self, partitions: &[Tp]) -> Option<HashMap<Tp, i64>> {
        let mut backoff = fleet::kafka::Backoff::new(Duration::from_secs(5));
        loop {
            match self.runtime.block_on(self.store.load_offsets(partitions)) {
                Ok(stored) => {
                    let all = partitions
                        .iter()
                        .map(|p| (*p, stored.get(p).copied().unwrap_or(-1)));
                    return Some(all.collect());
                }
                Err(err) => tracing::warn!(%err, "cannot read stored offsets, retrying"),
            }
            if self.shutdown.is_cancelled() {
                return None;
            }
            std::thread::sleep(backoff.next_delay());
        }
    }

    /// The partitions of `tpl` that belong to topics we consume.
    fn partitions_of(&self, tpl: &TopicPartitionList) -> Vec<Tp> {
        tpl.elements()
            .iter()
            .filter_map(|e| Some((self.topics.source_of(e.topic())?, e.partition())))
            .collect()
    }

    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        if cooperative {
            // The loop drops its batch on every reassignment, kept partitions included: settle
            // the in-flight flush and rewind them, as a revocation does.
            self.settle_in_flight(consumer);
            self.rewind_kept(consumer);
        }
        let partitions = self.partitions_of(tpl);
        let stored = self.stored_offsets(&partitions).unwrap_or_default();
        let mut seeded = TopicPartitionList::new();
        for ((source, partition), next) in &stored {
            let offset = resume_at(*next);
            let topic = self.topics.name(*source);
            if let Err(err) = seeded.add_partition_offset(topic, *partition, offset) {
                tracing::error!(%err, partition, "cannot build assignment");
            }
        }
        // Routed before the fetchers start, so that no message of theirs goes elsewhere.
        self.route(stored.keys().copied());
        let assigned = if cooperative {
            consumer.incremental_assign(&seeded)
        } else {
            consumer.assign(&seeded)
        };
        if let Err(err) = assigned {
            tracing::error!(%err, "assign failed");
        }
        tracing::info!(?stored, "partitions assigned, resuming from stored offsets");
        let mut assigned = lock(&self.assigned);
        assigned.extend(stored);
        self.metrics.assigned_partitions.set(assigned.len() as i64);
        drop(assigned);
        self.reassigned.store(true, Ordering::Release);
    }

    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        // Let the in-flight flush land first, so the next owner reads offsets that include it.
        self.settle_in_flight(consumer);
        let revoked = self.partitions_of(tpl);
        tracing::info!(
            ?revoked,
            "partitions revoked, unflushed data dropped (it will be re-read)"
        );
        let result = match consumer.rebalance_protocol() {
            rdkafka::consumer::RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(err) = result {
            tracing::error!(%err, "unassign failed");
        }
        lock(&self.routed).retain(|p| !revoked.contains(p));
        let mut assigned = lock(&self.assigned);
        assigned.retain(|p, _| !revoked.contains(p));
        self.metrics.assigned_partitions.set(assigned.len() as i64);
        drop(assigned);
        // Partitions we keep (cooperative protocol) must also drop their unflushed data.
        self.rewind_kept(consumer);
        self.metrics.consumer_lag.reset();
        self.reassigned.store(true, Ordering::Release);
    }

    /// Waits (bounded) for the in-flight flush and applies its result.
    fn settle_in_flight(&self, consumer: &BaseConsumer<Self>) {
        let in_flight = lock(&self.in_flight).take();
        if let Some(in_flight) = in_flight {
            match in_flight.result.recv_timeout(REVOKE_WAIT) {
                Ok(result) => {
                    if let Err(failure) = self.settle(consumer, &in_flight.batch, result) {
                        tracing::warn!(%failure, "in-flight flush did not commit");
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    tracing::warn!(
                        "in-flight flush did not settle before the rebalance; its fence protects it"
                    );
                }
            }
        }
    }

    /// Seeks every partition still assigned back to its stored offset: the loop is about to
    /// drop the data it read past it.
    fn rewind_kept(&self, consumer: &BaseConsumer<Self>) {
        let assigned = lock(&self.assigned);
        for ((source, partition), next) in assigned.iter() {
            let offset = resume_at(*next);
            let topic = self.topics.name(*source);
            if let Err(err) = consumer.seek(topic, *partition, offset, Duration::from_secs(5)) {
                tracing::warn!(%err, partition, "rewind failed");
            }
        }
    }

    /// Applies a finished flush: metrics, stored offsets, then the Kafka commit.
    fn settle(
        &self,
        consumer: &BaseConsumer<Self>,
        batch: &Batch,
        result: Result<Flushed, FlushFailure>,
    ) -> Result<Flushed, FlushFailure> {
        let flushed = result?;
        let m = &self.metrics;
        m.calls.inc_by(batch.calls);
        m.call_duration_seconds_total
            .inc_by(batch.duration_ms as f64 / 1000.0);
        m.long_calls.inc_by(batch.long_calls.len() as u64);
        let duplicates = flushed.written.duplicate_host_samples;
        m.host_samples
            .inc_by(batch.host_samples.len() as u64 - duplicates);
        m.duplicate_host_samples.inc_by(duplicates);
        m.probe_results.inc_by(batch.probe_results.len() as u64);
        m.flush_duration.observe(flushed.took.as_secs_f64());
        for (table, rows) in flushed.written.by_table() {
            m.rows_written.with_label_values(&[table]).inc_by(rows);
        }
        if let Some(totals) = flushed.totals {
            m.stored_calls.set(totals.calls);
            m.stored_call_duration_seconds
                .set(totals.duration_ms as f64 / 1000.0);
            m.stored_long_calls.set(totals.long_calls);
        }
        let mut commit = TopicPartitionList::new();
        {
            let mut assigned = lock(&self.assigned);
            for p in &batch.progress {
                if let Some(stored) = assigned.get_mut(&(p.source, p.partition)) {
                    *stored = p.next;
                    let _ = commit.add_partition_offset(
                        self.topics.name(p.source),
                        p.partition,
                        Offset::Offset(p.next),
                    );
                }
            }
        }
        // Best effort, for lag tools only: PostgreSQL holds the offsets we resume from.
        if commit.count() > 0
            && let Err(err) = consumer.commit(&commit, CommitMode::Async)
        {
            tracing::debug!(%err, "Kafka offset commit failed (informational only)");
        }
        Ok(flushed)
    }
}

impl ClientContext for AggregatorContext {
    fn stats(&self, statistics: Statistics) {
        self.watch.on_stats(&statistics);
        // Our lag, not librdkafka's: its `consumer_lag` counts from the Kafka-committed offset,
        // which a new group lacks and which only follows our flushes; the backlog is what lies
        // past the offset stored in PostgreSQL with the data.
        let assigned = lock(&self.assigned).clone();
        for (source, name) in Source::ALL.iter().map(|s| (*s, self.topics.name(*s))) {
            let Some(topic) = statistics.topics.get(name) else {
                continue;
            };
            for (partition, p) in &topic.partitions {
                let stored = assigned.get(&(source, *partition)).copied();
                if let Some(lag) = backlog(stored, p.lo_offset, p.hi_offset) {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[name, &partition.to_string()])
                        .set(lag);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.on_error(&error, reason);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.watch.on_log(level, fac, log_message);
    }
}

/// Messages of an assigned partition not yet stored: from the stored next offset (or, with
/// none stored yet, the log's start) to the partition's end. `None` for a partition not
/// assigned here (`stored` is `None`) or whose watermarks librdkafka has not learned yet (-1).
fn backlog(stored: Option<i64>, lo_offset: i64, hi_offset: i64) -> Option<i64> {
    let from = match stored? {
        next if next >= 0 => next,
        _ if lo_offset >= 0 => lo_offset,
        _ => return None,
    };
    (hi_offset >= 0).then(|| (hi_offset - from).max(0))
}

impl ConsumerContext for AggregatorContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.metrics.rebalances.inc();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.on_assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.on_revoke(consumer, tpl),
            other => {
                tracing::error!(?other, "rebalance error; dropping the assignment");
                self.on_revoke(consumer, tpl);
            }
        }
    }
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

/// Where to resume a partition whose stored next offset is `next` (-1: nothing stored yet).
fn resume_at(next: i64) -> Offset {
    if next >= 0 {
        Offset::Offset(next)
    } else {
        Offset::Beginning
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // State behind these locks stays consistent at every await-free step; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Loop settings.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub rules: Rules,
    pub flush_interval: Duration,
    pub max_pending_bytes: usize,
    pub max_message_bytes: usize,
    pub max_lateness_ms: i64,
    pub trace: bool,
    /// How long the final flush may take at shutdown.
    pub final_flush_timeout: Duration,
}

/// The consume loop. Owns the batch being built.
pub struct ConsumeLoop {
    consumer: BaseConsumer<AggregatorContext>,
    flusher: Flusher,
    settings: LoopSettings,
    health: Health,
    shutdown: CancellationToken,
    batch: Batch,
    /// Fence per partition for the next batch: the `next` of the last batch handed off.
    expected: HashMap<Tp, i64>,
    last_flush: Instant,
    stall: StallDetector,
    paused: bool,
    /// The last flush was started by the batch's size: a backlog is being worked through, and
    /// its last part is flushed as soon as it is read, not at the next interval.
    draining: bool,
    /// The batch's `aggregate` span and how many links it carries.
    aggregate_span: Option<(tracing::Span, usize)>,
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
        lock(&self.context().routed).clear();
        drop(lock(&self.context().fetch).take());
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
        *lock(&consumer.context().fetch) = fetch;
        Self {
            consumer,
            flusher,
            settings,
            health,
            shutdown,
            batch: Batch::default(),
            expected: HashMap::new(),
            last_flush: Instant::now(),
            stall,
            paused: false,
            draining: false,
            aggregate_span: None,
        }
    }

    fn context(&self) -> &AggregatorContext {
        self.consumer.context()
    }

    /// Runs until shutdown, then makes a final flush.
    pub fn run(mut self) {
        let metrics = self.context().metrics.clone();
        let topics = self.context().topics.clone();
        let consumed =
            Source::ALL.map(|s| metrics.events_consumed.with_label_values(&[topics.name(s)]));
        let durations = metrics.call_duration.local();
        let fetch = lock(&self.context().fetch).clone();
        let mut last_reroute = Instant::now();
        while !self.shutdown.is_cancelled() {
            self.poll_settled_flush();
            let now_ms = chrono::Utc::now().timestamp_millis();
            // The loop's state, borrowed field by field: a polled message borrows the consumer.
            macro_rules! sink {
                () => {
                    Sink {
                        batch: &mut self.batch,
                        expected: &mut self.expected,
                        aggregate_span: &mut self.aggregate_span,
                        settings: &self.settings,
                        metrics: &metrics,
                        consumed: &consumed,
                        durations: &durations,
                        topics: &topics,
                        now_ms,
                    }
                };
            }
            // Wait on the fetch queue while partitions are routed to it, else on the consumer
            // queue (where the first assignment arrives). Briefly while the last part of a
            // backlog waits for the in-flight flush.
            let routed = fetch.is_some() && !lock(&self.context().routed).is_empty();
            let wait = if self.draining && !self.batch.is_empty() {
                TAIL_WAIT
            } else {
                POLL_WAIT
            };
            // The consumer queue: rebalances, statistics and errors, and the messages of any
            // partition not routed to the fetch queue.
            let mut reassigned_in_burst = false;
            let mut read = 0;
            for i in 0..BURST {
                let timeout = if i == 0 && !routed {
                    wait
                } else {
                    Duration::ZERO
                };
                let Some(polled) = self.consumer.poll(timeout) else {
                    break;
                };
                read += 1;
                // The rebalance callback runs inside `poll`: the message belongs to the new
                // assignment, the batch to the old one.
                if self
                    .consumer
                    .context()
                    .reassigned
                    .swap(false, Ordering::AcqRel)
                {
                    self.batch = Batch::default();
                    self.aggregate_span = None;
                    self.expected = lock(&self.consumer.context().assigned).clone();
                    reassigned_in_burst = true;
                }
                match polled {
                    Ok(message) => {
                        let Some(source) = topics.source_of(message.topic()) else {
                            continue; // not subscribed; cannot happen
                        };
                        let traceparent = if self.settings.trace {
                            borrowed_traceparent(&message)
                        } else {
                            None
                        };
                        let incoming = Incoming {
                            source,
                            partition: message.partition(),
                            offset: message.offset(),
                            key: message.key(),
                            payload: message.payload(),
                        };
                        sink!().take(&incoming, traceparent);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "consume error");
                        break;
                    }
                }
            }
            self.take_reassignment(reassigned_in_burst);
            // Caught up only when neither queue filled its burst: a full consumer queue means
            // more is waiting there, whatever the fetch queue holds.
            let mut caught_up = read < BURST;
            // The fetch queue: a batch, full or after the wait. No rebalance runs while it is
            // read (they run inside `poll` above).
            if let Some(fetch) = &fetch {
                if last_reroute.elapsed() >= REROUTE_EVERY {
                    self.context().reroute();
                    last_reroute = Instant::now();
                }
                let fetched = fetch.consume(if routed { wait } else { Duration::ZERO }, BURST);
                caught_up &= fetched.len() < BURST;
                sink!().take_fetched(&fetched);
            }
            durations.flush();
            self.maybe_flush(caught_up);
        }
        drop(fetch); // the last handle is the context's, released before the consumer (`Drop`)
        self.finish();
    }

    /// After a rebalance the batch refers to partitions we may no longer own: drop it. New
    /// assignments start unpaused.
    fn take_reassignment(&mut self, already_taken: bool) {
        if already_taken || self.context().reassigned.swap(false, Ordering::AcqRel) {
            self.batch = Batch::default();
            self.aggregate_span = None;
            let assigned = lock(&self.context().assigned).clone();
            self.expected = assigned;
            // Kept partitions (cooperative protocol) may still be paused. A failed resume leaves
            // them marked paused (and the gauge at 1): the next budget check tries again.
            self.set_paused(false);
        }
    }

    /// Starts a flush when one is due; `caught_up`: the last read found no more messages waiting.
    fn maybe_flush(&mut self, caught_up: bool) {
        let now = Instant::now();
        let in_flight = lock(&self.context().in_flight).is_some();
        let over_budget = self.batch.approx_bytes() >= self.settings.max_pending_bytes;
        self.context()
            .metrics
            .pending_bytes
            .set(self.batch.approx_bytes() as i64);
        if self.batch.is_empty() && !in_flight {
            self.stall.idle();
        } else {
            self.stall.pending(now);
        }
        let trigger = flush_trigger(
            now.duration_since(self.last_flush),
            self.settings.flush_interval,
            self.batch.messages(),
            over_budget,
            self.draining && caught_up,
        );
        if let Some(trigger) = trigger
            && !self.batch.is_empty()
            && !in_flight
        {
            self.start_flush();
            self.last_flush = now;
            self.draining = trigger == FlushTrigger::Size;
        }
        // Unflushed data is bounded: stop fetching until the flusher catches up.
        let still_over = self.batch.approx_bytes() >= self.settings.max_pending_bytes;
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
        let assignment = match self.consumer.assignment() {
            Ok(a) => a,
            Err(err) => return tracing::warn!(%err, "cannot read assignment"),
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
                    .metrics
                    .partitions_paused
                    .set(i64::from(pause));
                tracing::info!(
                    paused = pause,
                    "unflushed data budget: consumption {}",
                    if pause { "paused" } else { "resumed" }
                );
            }
            Err(err) => tracing::warn!(%err, "pause/resume failed"),
        }
    }

    fn start_flush(&mut self) {
        let batch = Arc::new(std::mem::take(&mut self.batch));
        for p in &batch.progress {
            self.expected.insert((p.source, p.partition), p.next);
        }
        let span = match self.aggregate_span.take() {
            Some((parent, _)) => tracing::info_span!(parent: &parent, "flush",
                calls = batch.calls, host_samples = batch.host_samples.len()),
            None => tracing::Span::none(),
        };
        let (tx, rx) = mpsc::channel();
        let flusher = self.flusher.clone();
        let job = Arc::clone(&batch);
        self.context()
            .runtime
            .spawn(tracing::Instrument::instrument(
                async move {
                    let _ = tx.send(flusher.run(&job).await);
                },
                span,
            ));
        *lock(&self.context().in_flight) = Some(InFlight { result: rx, batch });
    }

    fn poll_settled_flush(&mut self) {
        let mut guard = lock(&self.context().in_flight);
        let Some(in_flight) = guard.as_ref() else {
            return;
        };
        let result = match in_flight.result.try_recv() {
            Ok(result) => result,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => Err(FlushFailure::Abandoned),
        };
        let Some(in_flight) = guard.take() else {
            return;
        };
        drop(guard);
        match self
            .context()
            .settle(&self.consumer, &in_flight.batch, result)
        {
            Ok(_) => self.stall.success(Instant::now()),
            Err(failure) => {
                tracing::warn!(%failure, "flush not committed: rewinding to the stored offsets");
                self.rewind();
            }
        }
    }

    /// Drops unflushed data and seeks every assigned partition back to its stored offset.
    fn rewind(&mut self) {
        let partitions: Vec<Tp> = lock(&self.context().assigned).keys().copied().collect();
        let Some(stored) = self.context().stored_offsets(&partitions) else {
            return;
        };
        for ((source, partition), next) in &stored {
            let offset = resume_at(*next);
            let topic = self.context().topics.name(*source);
            if let Err(err) = self
                .consumer
                .seek(topic, *partition, offset, Duration::from_secs(5))
            {
                tracing::warn!(%err, partition, "seek failed");
            }
        }
        lock(&self.context().assigned).extend(stored.iter().map(|(p, o)| (*p, *o)));
        self.batch = Batch::default();
        self.expected = stored;
    }

    /// Final flush at shutdown: wait for the in-flight one, flush the rest, commit, leave.
    fn finish(mut self) {
        let deadline = Instant::now() + self.settings.final_flush_timeout;
        let abandon = self.flusher.abandon.clone();
        let timer = self.context().runtime.spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            abandon.cancel();
        });
        while lock(&self.context().in_flight).is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            self.poll_settled_flush();
        }
        if !self.batch.is_empty() && lock(&self.context().in_flight).is_none() {
            self.start_flush();
            // The flush gives up at the deadline (`abandon`); the margin lets it say so.
            let limit = deadline + Duration::from_secs(1);
            while lock(&self.context().in_flight).is_some() && Instant::now() < limit {
                std::thread::sleep(Duration::from_millis(5));
                self.poll_settled_flush();
            }
        }
        timer.abort();
        let partitions: usize = lock(&self.context().assigned).len();
        tracing::info!(partitions, "consumer stopping");
        self.consumer.unsubscribe();
    }
}

/// One message, from either queue.
#[derive(Debug, Clone, Copy)]
struct Incoming<'a> {
    source: Source,
    partition: i32,
    offset: i64,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
}

/// What messages are decoded into: the loop's state, borrowed apart from its consumer (which a
/// polled message borrows).
struct Sink<'a> {
    batch: &'a mut Batch,
    expected: &'a mut HashMap<Tp, i64>,
    aggregate_span: &'a mut Option<(tracing::Span, usize)>,
    settings: &'a LoopSettings,
    metrics: &'a Metrics,
    consumed: &'a [prometheus::IntCounter; 3],
    durations: &'a prometheus::local::LocalHistogram,
    topics: &'a Topics,
    now_ms: i64,
}

impl Sink<'_> {
    /// Counts, decodes and aggregates one message; continues its trace when tracing is on.
    fn take(&mut self, message: &Incoming<'_>, traceparent: Option<&[u8]>) {
        self.consumed[message.source as usize].inc();
        let topic = self.topics.name(message.source);
        let duration = process(
            self.batch,
            self.expected,
            self.settings,
            message,
            self.now_ms,
            self.metrics,
            topic,
        );
        if let Some(secs) = duration {
            self.durations.observe(secs);
        }
        if let Some(value) = traceparent {
            trace_message(self.aggregate_span, value);
        }
    }

    /// Takes a batch from the fetch queue, in order.
    fn take_fetched(&mut self, fetched: &Fetched) {
        // Topic handle → source, for this batch only (a handle is only known to stay the same
        // topic while a message of it is alive).
        let mut sources: Vec<(*const std::ffi::c_void, Option<Source>)> = Vec::with_capacity(3);
        for record in fetched.iter() {
            if let Some(err) = record.error() {
                tracing::warn!(%err, partition = record.partition(), "consume error");
                continue;
            }
            let handle = record.topic_handle();
            let source = match sources.iter().find(|(h, _)| *h == handle) {
                Some((_, source)) => *source,
                None => {
                    let source = record.topic().and_then(|t| self.topics.source_of(t));
                    sources.push((handle, source));
                    source
                }
            };
            let Some(source) = source else {
                continue; // not subscribed; cannot happen
            };
            let traceparent = if self.settings.trace {
                record.header(TRACEPARENT)
            } else {
                None
            };
            let incoming = Incoming {
                source,
                partition: record.partition(),
                offset: record.offset(),
                key: record.key(),
                payload: record.payload(),
            };
            self.take(&incoming, traceparent);
        }
    }
}

/// The `traceparent` header of a message polled from the consumer queue.
fn borrowed_traceparent<'a>(message: &'a BorrowedMessage<'_>) -> Option<&'a [u8]> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == fleet::telemetry::TRACEPARENT)
        .and_then(|h| h.value)
}

/// Decodes one message of `source` into the batch; returns a call's duration in seconds when
/// the message is a valid call.
fn process(
    batch: &mut Batch,
    expected: &mut HashMap<Tp, i64>,
    settings: &LoopSettings,
    message: &Incoming<'_>,
    now_ms: i64,
    metrics: &Metrics,
    topic: &str,
) -> Option<f64> {
    let (source, partition, offset) = (message.source, message.partition, message.offset);
    batch.advance(source, partition, offset, || {
        expected.get(&(source, partition)).copied().unwrap_or(-1)
    });
    let result: Result<Option<f64>, Invalid> = match source {
        Source::Calls => decode_call(message.key, message.payload, settings.max_message_bytes)
            .and_then(|call| {
                check_time(call.start_ms, now_ms, settings.max_lateness_ms).map(|()| call)
            })
            .map(|call| {
                batch.record_call(&settings.rules, &call, partition, offset);
                if call.duration_ms > settings.rules.long_call_threshold_ms {
                    tracing::debug!(caller = %call.caller, callee = %call.callee,
                            duration_ms = call.duration_ms, "long call");
                }
                Some(call.duration_ms as f64 / 1000.0)
            }),
        Source::Hosts => decode_host(message.payload, settings.max_message_bytes)
            .and_then(|sample| {
                let time_ms = sample.time.timestamp_millis();
                check_time(time_ms, now_ms, settings.max_lateness_ms).map(|()| sample)
            })
            .map(|sample| {
                batch.record_host_sample(&settings.rules, sample);
                None
            }),
        Source::Probes => decode_probe(message.payload, settings.max_message_bytes)
            .and_then(|r| {
                check_time(r.time.timestamp_millis(), now_ms, settings.max_lateness_ms).map(|()| r)
            })
            .map(|r| {
                batch.record_probe(&settings.rules, r);
                None
            }),
    };
    match result {
        Ok(duration) => duration,
        Err(reason) => {
            metrics
                .invalid_events
                .with_label_values(&[topic, reason.as_str()])
                .inc();
            tracing::debug!(
                partition,
                offset,
                reason = reason.as_str(),
                "invalid message"
            );
            batch.record_dead_letter(DeadLetter {
                source,
                partition,
                offset,
                reason,
                key: message.key.map(<[u8]>::to_vec),
                payload: message.payload.map(<[u8]>::to_vec),
            });
            None
        }
    }
}

/// Continues the producer's trace: the first traced message of a batch parents the batch's
/// `aggregate` span, later ones are linked to it.
fn trace_message(aggregate: &mut Option<(tracing::Span, usize)>, traceparent: &[u8]) {
    use opentelemetry::trace::TraceContextExt as _;
    let Ok(value) = std::str::from_utf8(traceparent) else {
        return;
    };
    let Some(cx) = fleet::telemetry::context_from_traceparent(value) else {
        return;
    };
    match aggregate {
        None => {
            let span = tracing::info_span!("aggregate");
            let _ = span.set_parent(cx);
            *aggregate = Some((span, 0));
        }
        Some((span, links)) if *links < MAX_TRACE_LINKS => {
            span.add_link(cx.span().span_context().clone());
            *links += 1;
        }
        Some(_) => {}
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

    #[test]
    fn the_backlog_counts_from_the_stored_offset_or_the_log_start() {
        assert_eq!(backlog(Some(40), 0, 100), Some(60));
        // Nothing stored yet: everything from the log's start is backlog.
        assert_eq!(backlog(Some(-1), 10, 100), Some(90));
        assert_eq!(backlog(Some(-1), -1, 100), None, "start not learned yet");
        assert_eq!(backlog(Some(40), 0, -1), None, "end not learned yet");
        assert_eq!(backlog(None, 0, 100), None, "not assigned here");
        assert_eq!(backlog(Some(100), 0, 100), Some(0));
    }

    #[test]
    fn the_trace_header_name_is_the_producers() {
        assert_eq!(TRACEPARENT.to_str(), Ok(fleet::telemetry::TRACEPARENT));
    }
}
