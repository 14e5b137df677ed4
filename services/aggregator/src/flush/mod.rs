//! One flush job, run on the Tokio runtime while the consumer thread keeps reading: deliver
//! the batch's dead letters, then write the batch in one transaction, until it commits, is
//! fenced, or is cancelled (a rebalance gave it up, or the shutdown deadline passed).
//!
//! What a failure does depends on whose it is:
//! - **the data's** (PostgreSQL refused a row: SQLSTATE classes 22, 23, 54): retrying would
//!   fail forever, so the batch is split until the messages responsible are found; those are
//!   dead-lettered (`rejected_by_database`, the SQLSTATE in a header), the rest is stored
//!   ([`isolate`]);
//! - **anything else** (connection, timeout, privilege, a missing table, the dead-letter topic):
//!   retried with backoff, visibly: the `postgres` or `dlq` check fails, one log line per cause.
//!
//! Every attempt has a deadline; an attempt past it is dropped with its connection, which is
//! taken out of the pool rather than handed to the next flush.

mod isolate;
mod letters;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use fleet::health::Health;
use fleet::retry::{Backoff, SaidOnce};
use tokio_util::sync::CancellationToken;

use crate::batch::Batch;
use crate::db::StoreError;
use crate::metrics::Metrics;
use crate::store::{Bounded, Store, Stored, bounded};
use crate::topics::Topics;

pub use letters::DeadLetters;

/// Name of the health check fed by flush results and idle pings.
pub const POSTGRES_CHECK: &str = "postgres";
/// Name of the health check fed by dead-letter deliveries.
pub const DLQ_CHECK: &str = "dlq";

/// Why one attempt of a flush failed: `aggregator_flush_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError {
    /// The transaction failed for a reason not in the data (retried).
    Postgres,
    /// The attempt passed its deadline and was cancelled (retried on a new connection).
    Timeout,
    /// PostgreSQL refused the data (the batch is split to find the messages responsible).
    Rejected,
    /// A dead letter was not delivered (retried).
    Dlq,
    /// Another instance moved the offsets (the batch is dropped).
    Fenced,
}

impl AttemptError {
    /// Every kind, for pre-registering the label values.
    pub const ALL: [AttemptError; 5] = [
        Self::Postgres,
        Self::Timeout,
        Self::Rejected,
        Self::Dlq,
        Self::Fenced,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Timeout => "timeout",
            Self::Rejected => "rejected",
            Self::Dlq => "dlq",
            Self::Fenced => "fenced",
        }
    }
}

/// Why a flush did not commit.
#[derive(Debug, thiserror::Error)]
pub enum FlushFailure {
    #[error("fenced: the partitions' stored offsets moved")]
    Fenced,
    #[error("abandoned (a rebalance gave it up, or the shutdown deadline passed)")]
    Abandoned,
}

/// A committed flush.
#[derive(Debug)]
pub struct Flushed {
    pub stored: Stored,
    /// Time spent in the transactions that committed.
    pub took: Duration,
}

/// Whether flushes are failing: the idle ping must not call PostgreSQL healthy meanwhile.
#[derive(Debug, Clone, Default)]
pub struct Failing(Arc<AtomicBool>);

impl Failing {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, failing: bool) {
        self.0.store(failing, Ordering::Relaxed);
    }
}

/// What a flush job needs besides its batch.
#[derive(Clone)]
pub struct Flusher {
    pub store: Store,
    pub letters: DeadLetters,
    pub topics: Topics,
    pub metrics: Metrics,
    pub health: Health,
    /// Set while flushes fail.
    pub failing: Failing,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("letters", &self.letters)
            .finish_non_exhaustive()
    }
}

/// How a batch's attempts ended without committing.
enum Outcome {
    /// PostgreSQL refused the data, with this SQLSTATE.
    Refused(String),
    Failed(FlushFailure),
}

impl Flusher {
    /// Runs one batch to completion (see the module docs); `cancel` gives it up.
    pub async fn run(
        &self,
        batch: &Batch,
        cancel: &CancellationToken,
    ) -> Result<Flushed, FlushFailure> {
        let mut sent = letters::Sent::default();
        let mut took = Duration::ZERO;
        let stored = match self.commit(batch, &mut sent, &mut took, cancel).await {
            Ok(stored) => stored,
            Err(Outcome::Failed(failure)) => return Err(failure),
            Err(Outcome::Refused(sqlstate)) => {
                tracing::warn!(
                    sqlstate,
                    messages = batch.recorded(),
                    "PostgreSQL refused the batch's data: isolating the messages responsible"
                );
                isolate::isolate(self, batch, &mut sent, &mut took, cancel).await?
            }
        };
        Ok(Flushed { stored, took })
    }

    /// Delivers the batch's dead letters not sent yet, then writes it, retrying what is not
    /// the data's fault with backoff.
    async fn commit(
        &self,
        batch: &Batch,
        sent: &mut letters::Sent,
        took: &mut Duration,
        cancel: &CancellationToken,
    ) -> Result<Stored, Outcome> {
        let mut backoff = Backoff::new(Duration::from_secs(5));
        let mut said = SaidOnce::default();
        let mut deadline = self.store.deadline();
        loop {
            let delivered = tokio::select! {
                () = cancel.cancelled() => return Err(Outcome::Failed(FlushFailure::Abandoned)),
                d = self.letters.deliver(&batch.dead_letters, sent, &self.topics, &self.metrics) => d,
            };
            match delivered {
                Ok(()) => self.health.pass(DLQ_CHECK),
                Err(err) => {
                    self.count(AttemptError::Dlq);
                    self.failing.set(true);
                    let detail = err.to_string();
                    self.health.fail(DLQ_CHECK, detail.clone());
                    said.log("dead-letter delivery failed, retrying", &detail, &detail);
                }
            }
            if sent.all(&batch.dead_letters) {
                let started = Instant::now();
                match self.attempt(batch, deadline, cancel).await {
                    Ok(stored) => {
                        *took += started.elapsed();
                        self.failing.set(false);
                        self.health.pass(POSTGRES_CHECK);
                        tracing::debug!(
                            messages = batch.messages(),
                            rows = ?stored.rows().collect::<Vec<_>>(),
                            took_ms = started.elapsed().as_millis(),
                            "flushed"
                        );
                        return Ok(stored);
                    }
                    Err(Bounded::Cancelled) => {
                        return Err(Outcome::Failed(FlushFailure::Abandoned));
                    }
                    Err(Bounded::Failed(StoreError::Fenced)) => {
                        self.count(AttemptError::Fenced);
                        return Err(Outcome::Failed(FlushFailure::Fenced));
                    }
                    Err(Bounded::Failed(err)) => {
                        if let Some(sqlstate) = err.data_refusal() {
                            self.count(AttemptError::Rejected);
                            return Err(Outcome::Refused(sqlstate.to_string()));
                        }
                        let kind = match err {
                            StoreError::TimedOut(_) => {
                                deadline = longer(deadline, self.store.deadline());
                                AttemptError::Timeout
                            }
                            _ => AttemptError::Postgres,
                        };
                        self.count(kind);
                        self.failing.set(true);
                        let detail = err.to_string();
                        self.health.fail(POSTGRES_CHECK, detail.clone());
                        said.log("flush failed, retrying", &err.cause(), &detail);
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(Outcome::Failed(FlushFailure::Abandoned)),
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// One transaction within `deadline` (see [`bounded`]).
    async fn attempt(
        &self,
        batch: &Batch,
        deadline: Duration,
        cancel: &CancellationToken,
    ) -> Result<Stored, Bounded> {
        let backend = AtomicI32::new(0);
        let flush = async |client: &mut deadpool_postgres::Client| {
            self.store.flush(client, batch, deadline, &backend).await
        };
        let attempt = bounded(self.store.pool(), deadline, Some(cancel), flush).await;
        if let Err(Bounded::Cancelled | Bounded::Failed(StoreError::TimedOut(_))) = &attempt {
            // Before the next attempt, which would wait on its locks. Another try if the
            // connection it took was a silent one too (each such is then out of the pool).
            let backend = backend.load(Ordering::Relaxed);
            for _ in 0..TERMINATE_TRIES {
                if self.store.terminate(backend, TERMINATE_WAIT).await {
                    break;
                }
            }
        }
        attempt
    }

    fn count(&self, error: AttemptError) {
        (self.metrics.flush_errors)
            .with_label_values(&[error.as_str()])
            .inc();
    }
}

/// How long ending an abandoned attempt's server session may take, and how many tries it gets.
const TERMINATE_WAIT: Duration = Duration::from_secs(5);
const TERMINATE_TRIES: usize = 3;

/// How many times `AGG_FLUSH_TIMEOUT_SECS` an attempt may get after attempts that ran out of
/// time.
const MAX_DEADLINE_GROWTH: u32 = 8;

/// The deadline of the attempt after one that ran out of time: twice as long, up to
/// [`MAX_DEADLINE_GROWTH`] times the setting. A batch that is merely slow (a large backlog, a
/// loaded server, either of which may also be why statements pass `statement_timeout`)
/// completes in the end; a silent connection still costs at most that.
fn longer(deadline: Duration, setting: Duration) -> Duration {
    (deadline * 2).min(setting * MAX_DEADLINE_GROWTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_that_ran_out_doubles_up_to_eight_times_the_setting() {
        let setting = Duration::from_secs(2);
        let mut deadline = setting;
        let grown: Vec<u64> = (0..5)
            .map(|_| {
                deadline = longer(deadline, setting);
                deadline.as_secs()
            })
            .collect();
        assert_eq!(grown, [4, 8, 16, 16, 16]);
    }
}
