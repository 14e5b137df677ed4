//! The consumer context: what the loop and librdkafka's callbacks share, private behind its
//! methods. The rebalance and statistics callbacks run on the consumer thread, inside `poll`;
//! the log callback, on librdkafka's own threads, touches only the broker watch. The
//! rebalance callback itself is in [`super::rebalance`].

use std::collections::HashMap;
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
use super::offsets::{Tracked, resume_at};
use super::routes::Routes;
use super::topics::list;
use crate::batch::Position;
use crate::flush::FlushFailure;
use crate::metrics::Metrics;
use crate::sources::{Source, Tp};
use crate::store::Store;
use crate::topics::Topics;

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
        }
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
            .map(|p| (*p, stored.get(p).copied().unwrap_or(Position::START)));
        Ok(all.collect())
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
