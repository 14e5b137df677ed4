//! The consumer context: the rebalance callback, the statistics and error callbacks, and the
//! state they share with the loop. librdkafka runs the rebalance and statistics callbacks on
//! the consumer thread, inside `poll`, so the state behind these locks is not contended; the
//! locks make the sharing with `&self` callbacks sound (the log callback, on librdkafka's own
//! threads, touches only the broker watch).
//!
//! On an assignment the callback reads the new partitions' stored offsets from PostgreSQL,
//! once and bounded by [`OFFSETS_READ_WAIT`], and seeds the assignment with them (or the
//! beginning).
//! When PostgreSQL does not answer in time the partitions are assigned paused and *pending*
//! ([`super::offsets`]); the loop reads their offsets with backoff and seeks there, so the
//! callback never waits on PostgreSQL without a bound. On a revocation it first lets the
//! in-flight flush land (bounded by [`REVOKE_WAIT`]; the fence protects a flush that lands
//! later) so that the next owner reads offsets that include it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleet::kafka::BrokerWatch;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::fetch::FetchQueue;
use super::offsets::Positions;
use crate::batch::Batch;
use crate::flush::{FlushFailure, Flushed};
use crate::metrics::Metrics;
use crate::sources::{Source, Tp};
use crate::store::Store;
use crate::topics::Topics;

/// How long one read of stored offsets may take (an assignment's, then the loop's retries)
/// before the partitions go, or stay, pending.
pub const OFFSETS_READ_WAIT: Duration = Duration::from_secs(5);
/// How long a revocation waits for the in-flight flush to settle.
const REVOKE_WAIT: Duration = Duration::from_secs(10);

/// A flush handed to the runtime, and what to do when it lands.
#[derive(Debug)]
pub struct InFlight {
    pub result: Receiver<Result<Flushed, FlushFailure>>,
    pub batch: Arc<Batch>,
}

/// The consumer context (see the module docs).
#[derive(Debug)]
pub struct AggregatorContext {
    watch: BrokerWatch,
    pub(super) metrics: Metrics,
    pub(super) store: Store,
    pub(super) runtime: Handle,
    pub(super) topics: Topics,
    /// A read of stored offsets gives up when the service stops.
    shutdown: CancellationToken,
    /// Where each assigned partition stands.
    positions: Mutex<Positions>,
    /// Whether any partition is pending: spares the ingest a lock per message.
    any_pending: AtomicBool,
    /// Set by the rebalance callback: the loop must drop its batch.
    pub(super) reassigned: AtomicBool,
    pub(super) in_flight: Mutex<Option<InFlight>>,
    /// Where assigned partitions' messages are read from in batches (`None`: from the consumer
    /// queue, one `poll` each), and the partitions routed to it.
    pub(super) fetch: Mutex<Option<Arc<FetchQueue>>>,
    pub(super) routed: Mutex<HashSet<Tp>>,
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
            positions: Mutex::default(),
            any_pending: AtomicBool::new(false),
            reassigned: AtomicBool::new(false),
            in_flight: Mutex::default(),
            fetch: Mutex::default(),
            routed: Mutex::default(),
        }
    }

    /// Changes the positions (the only way to, so that `any_pending` follows).
    pub(super) fn update<R>(&self, change: impl FnOnce(&mut Positions) -> R) -> R {
        let mut positions = lock(&self.positions);
        let result = change(&mut positions);
        let pending = positions.pending().len();
        self.any_pending.store(pending > 0, Ordering::Release);
        self.metrics.assigned_partitions.set(positions.len() as i64);
        self.metrics.partitions_pending.set(pending as i64);
        result
    }

    /// Reads the positions.
    pub(super) fn read<R>(&self, look: impl FnOnce(&Positions) -> R) -> R {
        look(&lock(&self.positions))
    }

    /// Whether any assigned partition is pending (without taking the lock).
    pub(super) fn any_pending(&self) -> bool {
        self.any_pending.load(Ordering::Acquire)
    }

    /// Whether the messages of `tp` are dropped until its stored offset is read.
    pub(super) fn is_pending(&self, tp: Tp) -> bool {
        self.any_pending() && lock(&self.positions).pending().contains(&tp)
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

    /// Re-asserts the routes of the routed partitions (see [`super::fetch`]).
    pub(super) fn reroute(&self) {
        let Some(fetch) = lock(&self.fetch).clone() else {
            return;
        };
        for (source, partition) in lock(&self.routed).iter() {
            fetch.route(self.topics.name(*source), *partition);
        }
    }

    /// One read of the stored offsets of `partitions` (absent ones: -1), bounded by `within`
    /// and by the stop.
    pub(super) fn stored_offsets(
        &self,
        partitions: &[Tp],
        within: Duration,
    ) -> Result<HashMap<Tp, i64>, String> {
        let read = async {
            tokio::select! {
                () = self.shutdown.cancelled() => Err("stopping".to_string()),
                read = tokio::time::timeout(within, self.store.load_offsets(partitions)) => match read {
                    Ok(read) => read.map_err(|err| err.to_string()),
                    Err(_) => Err(format!("no answer within {within:?}")),
                },
            }
        };
        let stored = self.runtime.block_on(read)?;
        let all = partitions
            .iter()
            .map(|p| (*p, stored.get(p).copied().unwrap_or(-1)));
        Ok(all.collect())
    }

    /// The partitions of `tpl` that belong to topics we consume.
    fn partitions_of(&self, tpl: &TopicPartitionList) -> Vec<Tp> {
        tpl.elements()
            .iter()
            .filter_map(|e| Some((self.topics.source_of(e.topic())?, e.partition())))
            .collect()
    }

    /// A list of `partitions`, each at its offset.
    pub(super) fn list(
        &self,
        partitions: impl IntoIterator<Item = (Tp, Offset)>,
    ) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for ((source, partition), offset) in partitions {
            let topic = self.topics.name(source);
            if let Err(err) = tpl.add_partition_offset(topic, partition, offset) {
                tracing::error!(%err, partition, "cannot build a partition list");
            }
        }
        tpl
    }

    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        if cooperative {
            // The loop drops its batch on every reassignment, kept partitions included: settle
            // the in-flight flush and rewind them, as a revocation does.
            self.settle_in_flight(consumer);
            self.rewind_kept(consumer);
        }
        let partitions = self.partitions_of(tpl);
        let stored = self.stored_offsets(&partitions, OFFSETS_READ_WAIT);
        // Pending partitions start at the end, paused: the little fetched before the pause is
        // dropped, and the seek to the stored offset discards it anyway.
        let seeded = match &stored {
            Ok(stored) => self.list(stored.iter().map(|(tp, next)| (*tp, resume_at(*next)))),
            Err(_) => self.list(partitions.iter().map(|tp| (*tp, Offset::End))),
        };
        // Routed before the fetchers start, so that no message of theirs goes elsewhere.
        self.route(partitions.iter().copied());
        let assigned = if cooperative {
            consumer.incremental_assign(&seeded)
        } else {
            consumer.assign(&seeded)
        };
        if let Err(err) = assigned {
            tracing::error!(%err, "assign failed");
        }
        match stored {
            Ok(stored) => {
                tracing::info!(?stored, "partitions assigned, resuming from stored offsets");
                self.update(|p| p.assign(&stored));
            }
            Err(err) => {
                tracing::warn!(%err, ?partitions,
                    "partitions assigned, stored offsets not readable yet: paused until they are");
                if let Err(err) = consumer.pause(&seeded) {
                    tracing::warn!(%err, "pause failed (their messages are dropped meanwhile)");
                }
                self.update(|p| p.assign_pending(partitions));
            }
        }
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
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(err) = result {
            tracing::error!(%err, "unassign failed");
        }
        lock(&self.routed).retain(|p| !revoked.contains(p));
        self.update(|p| p.revoke(&revoked));
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

    /// Seeks every partition still assigned (and not pending) back to its stored offset: the
    /// loop is about to drop the data it read past it. One that cannot be sought goes pending.
    fn rewind_kept(&self, consumer: &BaseConsumer<Self>) {
        let known: Vec<(Tp, i64)> = self.read(|p| p.known().collect());
        let failed: Vec<Tp> = known
            .into_iter()
            .filter(|(tp, next)| !self.seek(consumer, *tp, *next))
            .map(|(tp, _)| tp)
            .collect();
        if !failed.is_empty() {
            let list = self.list(failed.iter().map(|tp| (*tp, Offset::Invalid)));
            if let Err(err) = consumer.pause(&list) {
                tracing::warn!(%err, "pause failed (their messages are dropped meanwhile)");
            }
            self.update(|p| p.assign_pending(failed));
        }
    }

    /// Seeks a partition to where its stored next offset `next` says; false if that failed.
    pub(super) fn seek(&self, consumer: &BaseConsumer<Self>, tp: Tp, next: i64) -> bool {
        let ((source, partition), offset) = (tp, resume_at(next));
        let topic = self.topics.name(source);
        match consumer.seek(topic, partition, offset, Duration::from_secs(5)) {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(%err, partition, "seek failed");
                false
            }
        }
    }

    /// Applies a finished flush: metrics, stored offsets, then the Kafka commit.
    pub(super) fn settle(
        &self,
        consumer: &BaseConsumer<Self>,
        batch: &Batch,
        result: Result<Flushed, FlushFailure>,
    ) -> Result<(), FlushFailure> {
        let flushed = result?;
        let m = &self.metrics;
        m.flush_duration.observe(flushed.took.as_secs_f64());
        for (table, rows) in flushed.stored.rows() {
            m.rows_written.with_label_values(&[table]).inc_by(rows);
        }
        for part in flushed.stored.parts {
            (part.committed)(m);
        }
        let stored = self.update(|p| p.commit(&batch.progress));
        let commit = self.list(stored.into_iter().map(|(tp, n)| (tp, Offset::Offset(n))));
        // Best effort, for lag tools only: PostgreSQL holds the offsets we resume from.
        if commit.count() > 0
            && let Err(err) = consumer.commit(&commit, CommitMode::Async)
        {
            tracing::debug!(%err, "Kafka offset commit failed (informational only)");
        }
        Ok(())
    }
}

impl ClientContext for AggregatorContext {
    fn stats(&self, statistics: Statistics) {
        self.watch.on_stats(&statistics);
        // Our lag, not librdkafka's: its `consumer_lag` counts from the Kafka-committed offset,
        // which a new group lacks and which only follows our flushes; the backlog is what lies
        // past the offset stored in PostgreSQL with the data.
        let positions = lock(&self.positions).clone();
        for (source, name) in Source::ALL.iter().map(|s| (*s, self.topics.name(*s))) {
            let Some(topic) = statistics.topics.get(name) else {
                continue;
            };
            for (partition, p) in &topic.partitions {
                let stored = positions.stored((source, *partition));
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

/// Messages of an assigned partition not yet stored: from the stored next offset (or, with
/// none stored yet, the log's start) to the partition's end. `None` for a partition not
/// assigned here or not known yet (`stored` is `None`) or whose watermarks librdkafka has not
/// learned yet (-1).
fn backlog(stored: Option<i64>, lo_offset: i64, hi_offset: i64) -> Option<i64> {
    let from = match stored? {
        next if next >= 0 => next,
        _ if lo_offset >= 0 => lo_offset,
        _ => return None,
    };
    (hi_offset >= 0).then(|| (hi_offset - from).max(0))
}

/// Where to resume a partition whose stored next offset is `next` (-1: nothing stored yet).
fn resume_at(next: i64) -> Offset {
    if next >= 0 {
        Offset::Offset(next)
    } else {
        Offset::Beginning
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // State behind these locks stays consistent at every await-free step; keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
