//! The consumer context: what the loop and librdkafka's callbacks share, private behind its
//! methods. The rebalance and statistics callbacks run on the consumer thread, inside `poll`;
//! the log callback, on librdkafka's own threads, touches only the broker watch. The
//! rebalance callback itself is in [`super::rebalance`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fleet::kafka::BrokerWatch;
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::commit::{Commit, Landed, Settle};
use super::offsets::{Tracked, lock, resume_at};
use super::routes::Routes;
use super::topic_ids;
use super::topics::list;
use crate::batch::Position;
use crate::db::StoreError;
use crate::flush::FlushFailure;
use crate::metrics::Metrics;
use crate::sources::{Source, Tp};
use crate::store::Store;
use crate::topics::Topics;

/// How long reading the topics' ids may take.
const TOPIC_IDS_WAIT: Duration = Duration::from_secs(5);

/// The consumer context (see the module docs).
#[derive(Debug)]
pub struct AggregatorContext {
    watch: BrokerWatch,
    metrics: Metrics,
    store: Store,
    runtime: Handle,
    topics: Topics,
    /// A read of stored offsets gives up when the service stops.
    shutdown: CancellationToken,
    /// Where each assigned partition stands.
    positions: Tracked,
    /// Set by the rebalance callback: the loop must drop its batch.
    reassigned: AtomicBool,
    /// The flush in flight.
    commit: Commit,
    /// The partitions read from the fetch queue.
    routes: Routes,
    /// Each topic's current Kafka topic id (see [`super::topic_ids`]), as last described.
    topic_ids: Mutex<HashMap<Source, i64>>,
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
            positions: Tracked::new(metrics.clone()),
            metrics,
            store,
            runtime,
            topics,
            shutdown,
            reassigned: AtomicBool::new(false),
            commit: Commit::default(),
            routes: Routes::default(),
            topic_ids: Mutex::default(),
        }
    }

    /// Reads the topics' current ids again (bounded); on failure the last ones stay.
    pub(super) fn describe_topics(&self, consumer: &BaseConsumer<Self>) {
        let names = self.topics.names();
        match topic_ids::describe(consumer, &names, TOPIC_IDS_WAIT) {
            Ok(ids) => {
                let mut known = lock(&self.topic_ids);
                for source in Source::ALL {
                    if let Some(id) = ids.get(self.topics.name(source)) {
                        known.insert(source, *id);
                    }
                }
            }
            Err(err) => tracing::warn!(%err, "cannot read the topics' ids (kept the last ones)"),
        }
    }

    /// Whether every topic's id is known.
    pub(super) fn topic_ids_known(&self) -> bool {
        lock(&self.topic_ids).len() == Source::ALL.len()
    }

    /// Whether `source`'s topic now has another id than `topic_id` (both known).
    pub(super) fn is_recreated(&self, source: Source, topic_id: i64) -> bool {
        let current = self.topic_id(source);
        topic_id != topic_ids::UNKNOWN && current != topic_ids::UNKNOWN && current != topic_id
    }

    /// The consumer group (in PostgreSQL's offsets).
    pub(super) fn group(&self) -> &str {
        self.store.group()
    }

    fn topic_id(&self, source: Source) -> i64 {
        lock(&self.topic_ids)
            .get(&source)
            .copied()
            .unwrap_or(topic_ids::UNKNOWN)
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(super) fn topics(&self) -> &Topics {
        &self.topics
    }

    pub(super) fn runtime(&self) -> &Handle {
        &self.runtime
    }

    pub(super) fn positions(&self) -> &Tracked {
        &self.positions
    }

    pub(super) fn commit(&self) -> &Commit {
        &self.commit
    }

    pub(super) fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The rebalance callback changed the assignment: the loop's batch is stale.
    pub(super) fn mark_reassigned(&self) {
        self.reassigned.store(true, Ordering::Release);
    }

    /// Whether the assignment changed since the last call.
    pub(super) fn take_reassigned(&self) -> bool {
        self.reassigned.swap(false, Ordering::AcqRel)
    }

    /// A list of `partitions`, each at its offset.
    pub(super) fn list(
        &self,
        partitions: impl IntoIterator<Item = (Tp, Offset)>,
    ) -> TopicPartitionList {
        list(&self.topics, partitions)
    }

    /// Applies a landed flush (see [`Landed::settle`]).
    pub(super) fn settle(
        &self,
        consumer: &BaseConsumer<Self>,
        landed: Landed,
    ) -> Result<(), FlushFailure> {
        landed.settle(&Settle {
            consumer,
            positions: &self.positions,
            metrics: &self.metrics,
            topics: &self.topics,
        })
    }

    /// One read of the stored offsets of `partitions` (absent ones: -1), bounded by `within`
    /// and by the stop.
    pub(super) fn stored_offsets(
        &self,
        partitions: &[Tp],
        within: Duration,
    ) -> Result<HashMap<Tp, Position>, String> {
        let read = async {
            let stored = self.store.load_offsets(partitions).await?;
            let mut all = HashMap::with_capacity(partitions.len());
            for tp in partitions {
                let at = stored.get(tp).copied().unwrap_or(Position::START);
                all.insert(*tp, self.recognize(*tp, at).await?);
            }
            Ok::<_, StoreError>(all)
        };
        let read = async {
            tokio::select! {
                () = self.shutdown.cancelled() => Err("stopping".to_string()),
                read = tokio::time::timeout(within, read) => match read {
                    Ok(read) => read.map_err(|err| err.to_string()),
                    Err(_) => Err(format!("no answer within {within:?}")),
                },
            }
        };
        self.runtime.block_on(read)
    }

    /// A stored position as of the topic's current id: one with no id yet takes it; one of a
    /// topic since deleted and created again (another id) moves, in PostgreSQL and fenced like a
    /// flush, to the start of the new topic with no watermark, so that it is read from its
    /// start rather than from an offset of the old one.
    async fn recognize(&self, tp: Tp, at: Position) -> Result<Position, StoreError> {
        let current = self.topic_id(tp.0);
        if at.topic_id == topic_ids::UNKNOWN || current == topic_ids::UNKNOWN {
            let topic_id = if at.topic_id == topic_ids::UNKNOWN {
                current
            } else {
                at.topic_id
            };
            return Ok(Position { topic_id, ..at });
        }
        if at.topic_id == current {
            return Ok(at);
        }
        let start = Position {
            offset: 0,
            watermark_ms: i64::MIN,
            topic_id: current,
        };
        self.store.restart_partition(tp, at, start).await?;
        tracing::warn!(
            topic = self.topics.name(tp.0),
            partition = tp.1,
            stored_offset = at.offset,
            "the topic was deleted and created again: reading the new one from its start"
        );
        self.metrics.topic_recreations.inc();
        Ok(start)
    }

    /// Assigns a partition again at its stored next offset `next` (seeking is refused for a
    /// partition librdkafka stopped on an offset error); false if that failed.
    pub(super) fn reassign(&self, consumer: &BaseConsumer<Self>, tp: Tp, next: i64) -> bool {
        use rdkafka::consumer::Consumer as _;
        let reassigned = consumer
            .incremental_unassign(&self.list([(tp, Offset::Invalid)]))
            .and_then(|()| consumer.incremental_assign(&self.list([(tp, resume_at(next))])));
        match reassigned {
            Ok(()) => {
                self.routes.route(&self.topics, [tp]);
                true
            }
            Err(err) => {
                tracing::warn!(%err, partition = tp.1, "assigning again failed");
                false
            }
        }
    }

    /// Seeks a partition to where its stored next offset `next` says; false if that failed.
    pub(super) fn seek(&self, consumer: &BaseConsumer<Self>, tp: Tp, next: i64) -> bool {
        use rdkafka::consumer::Consumer as _;
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
}

impl ClientContext for AggregatorContext {
    fn stats(&self, statistics: Statistics) {
        self.watch.on_stats(&statistics);
        // Our lag, not librdkafka's: its `consumer_lag` counts from the Kafka-committed offset,
        // which a new group lacks and which only follows our flushes; the backlog is what lies
        // past the offset stored in PostgreSQL with the data.
        let positions = self.positions.read(Clone::clone);
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
