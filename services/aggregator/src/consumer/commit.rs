//! The commit step: the one flush in flight, and settling it when it lands. A flush runs on
//! the Tokio runtime with its own `Arc` of the batch and reports over a channel; one is in
//! flight at a time, so batches commit in order. Settling a committed flush counts what it
//! stored, moves the stored offsets ([`super::offsets`]) and commits them to Kafka (for lag
//! tools only: PostgreSQL holds the offsets the aggregator resumes from). The loop settles a
//! landed flush, or the rebalance callback does when a rebalance comes first.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::Offset;
use tokio_util::sync::CancellationToken;

use super::offsets::{Tracked, lock};
use super::topics::list;
use crate::batch::Batch;
use crate::flush::{FlushFailure, Flushed};
use crate::metrics::Metrics;
use crate::topics::Topics;

/// A flush handed to the runtime: where its result arrives, its batch, and what stops it.
#[derive(Debug)]
struct InFlight {
    result: Receiver<Result<Flushed, FlushFailure>>,
    batch: Arc<Batch>,
    cancel: CancellationToken,
}

/// The slot of the one flush in flight.
#[derive(Debug, Default)]
pub struct Commit {
    slot: Mutex<Option<InFlight>>,
}

/// A flush that finished, committed or not.
#[derive(Debug)]
pub struct Landed {
    pub batch: Arc<Batch>,
    pub result: Result<Flushed, FlushFailure>,
}

/// What settling a landed flush changes.
pub struct Settle<'a, C: ConsumerContext> {
    pub consumer: &'a BaseConsumer<C>,
    pub positions: &'a Tracked,
    pub metrics: &'a Metrics,
    pub topics: &'a Topics,
}

impl Commit {
    /// Notes the flush of `batch`, whose result arrives on `result` and which `cancel` stops.
    pub fn start(
        &self,
        batch: Arc<Batch>,
        result: Receiver<Result<Flushed, FlushFailure>>,
        cancel: CancellationToken,
    ) {
        *lock(&self.slot) = Some(InFlight {
            result,
            batch,
            cancel,
        });
    }

    /// Whether a flush is in flight.
    pub fn in_flight(&self) -> bool {
        lock(&self.slot).is_some()
    }

    /// The in-flight flush if it landed within `wait` (zero: without waiting); the slot is then
    /// free. A flush task that ended without a word was abandoned.
    pub fn landed(&self, wait: Duration) -> Option<Landed> {
        let mut slot = lock(&self.slot);
        let result = match slot.as_ref()?.result.recv_timeout(wait) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => return None,
            Err(RecvTimeoutError::Disconnected) => Err(FlushFailure::Abandoned),
        };
        let batch = slot.take()?.batch;
        Some(Landed { batch, result })
    }

    /// Gives the in-flight flush up: it is cancelled (its task ends at its next step, its
    /// connection discarded) and not waited for; its fence protects a commit already under
    /// way. True if there was one. So at most one flush task runs, however many rebalances
    /// give one up.
    pub fn forget(&self) -> bool {
        let Some(in_flight) = lock(&self.slot).take() else {
            return false;
        };
        in_flight.cancel.cancel();
        true
    }
}

impl Landed {
    /// Applies the flush: metrics, stored offsets, then the Kafka commit. The failure, if it
    /// did not commit (the caller rewinds).
    pub fn settle<C: ConsumerContext>(self, to: &Settle<'_, C>) -> Result<(), FlushFailure> {
        let flushed = self.result?;
        let m = to.metrics;
        m.flush_duration.observe(flushed.took.as_secs_f64());
        for (table, rows) in flushed.stored.rows() {
            m.rows_written.with_label_values(&[table]).inc_by(rows);
        }
        for part in flushed.stored.parts {
            (part.committed)(m);
        }
        let stored = to.positions.update(|p| p.commit(&self.batch.progress));
        let commit = list(
            to.topics,
            stored.into_iter().map(|(tp, n)| (tp, Offset::Offset(n))),
        );
        // Best effort, for lag tools only: PostgreSQL holds the offsets we resume from.
        if commit.count() > 0
            && let Err(err) = to.consumer.commit(&commit, CommitMode::Async)
        {
            tracing::debug!(%err, "Kafka offset commit failed (informational only)");
        }
        Ok(())
    }
}
