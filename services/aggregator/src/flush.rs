//! One flush job, run on the Tokio runtime while the consumer thread keeps reading: deliver
//! the batch's dead letters, then write the batch in one transaction, retrying outages with
//! backoff until it succeeds, is fenced, or the shutdown deadline passes.

use std::time::{Duration, Instant};

use fleet::health::Health;
use fleet::kafka::{AsyncProducer, Outgoing};
use fleet::retry::Backoff;
use futures::future::try_join_all;
use rdkafka::message::{Header, OwnedHeaders};
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, DeadLetter};
use crate::db::StoreError;
use crate::metrics::Metrics;
use crate::store::{Store, Stored};
use crate::topics::Topics;

/// Name of the health check fed by flush results and idle pings.
pub const POSTGRES_CHECK: &str = "postgres";

/// Why one attempt of a flush failed: `aggregator_flush_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError {
    /// The transaction failed (retried).
    Postgres,
    /// A dead letter was not delivered (retried).
    Dlq,
    /// Another instance moved the offsets (the batch is dropped).
    Fenced,
}

impl AttemptError {
    /// Every kind, for pre-registering the label values.
    pub const ALL: [AttemptError; 3] = [Self::Postgres, Self::Dlq, Self::Fenced];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
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
    #[error("abandoned at shutdown after retrying")]
    Abandoned,
}

/// A committed flush.
#[derive(Debug)]
pub struct Flushed {
    pub stored: Stored,
    pub took: Duration,
}

/// What a flush job needs besides its batch.
#[derive(Clone)]
pub struct Flusher {
    pub store: Store,
    pub dlq: AsyncProducer,
    pub dlq_topic: String,
    pub topics: Topics,
    pub metrics: Metrics,
    pub health: Health,
    /// Cancelled when retries must stop (the shutdown deadline).
    pub abandon: CancellationToken,
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("dlq_topic", &self.dlq_topic)
            .finish_non_exhaustive()
    }
}

impl Flusher {
    /// Runs one batch to completion (see the module docs).
    pub async fn run(&self, batch: &Batch) -> Result<Flushed, FlushFailure> {
        let mut backoff = Backoff::new(Duration::from_secs(5));
        let mut letters_delivered = batch.dead_letters.is_empty();
        loop {
            if !letters_delivered {
                match self.deliver(&batch.dead_letters).await {
                    Ok(()) => letters_delivered = true,
                    Err(err) => {
                        self.count(AttemptError::Dlq);
                        tracing::warn!(%err, "dead-letter delivery failed, retrying");
                    }
                }
            }
            if letters_delivered {
                let started = Instant::now();
                // A stop must not wait on a database that stopped answering: the fence makes
                // abandoning a half-done transaction safe.
                let attempt = tokio::select! {
                    r = self.store.flush(batch) => r,
                    () = self.abandon.cancelled() => return Err(FlushFailure::Abandoned),
                };
                match attempt {
                    Ok(stored) => {
                        self.health.pass(POSTGRES_CHECK);
                        let took = started.elapsed();
                        tracing::debug!(
                            messages = batch.messages(),
                            rows = ?stored.rows().collect::<Vec<_>>(),
                            took_ms = took.as_millis(),
                            "flushed"
                        );
                        return Ok(Flushed { stored, took });
                    }
                    Err(StoreError::Fenced) => {
                        self.count(AttemptError::Fenced);
                        return Err(FlushFailure::Fenced);
                    }
                    Err(err) => {
                        self.count(AttemptError::Postgres);
                        self.health.fail(POSTGRES_CHECK, err.to_string());
                        tracing::warn!(%err, "flush failed, retrying");
                    }
                }
            }
            tokio::select! {
                () = self.abandon.cancelled() => return Err(FlushFailure::Abandoned),
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    fn count(&self, error: AttemptError) {
        (self.metrics.flush_errors)
            .with_label_values(&[error.as_str()])
            .inc();
    }

    /// Produces every dead letter and waits for all acknowledgements.
    async fn deliver(&self, letters: &[DeadLetter]) -> Result<(), rdkafka::error::KafkaError> {
        let sends = letters.iter().map(|letter| {
            let source_topic = self.topics.name(letter.source);
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(header("fleet.dlq.source.topic", source_topic))
                .insert(header("fleet.dlq.source.partition", &partition))
                .insert(header("fleet.dlq.source.offset", &offset))
                .insert(header("fleet.dlq.reason", letter.reason.as_str()));
            self.dlq.send(Outgoing {
                topic: &self.dlq_topic,
                key: letter.key.as_deref(),
                payload: letter.payload.as_deref(),
                headers: Some(headers),
            })
        });
        try_join_all(sends).await?;
        for letter in letters {
            self.metrics
                .dead_letters
                .with_label_values(&[self.topics.name(letter.source)])
                .inc();
        }
        Ok(())
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a [u8]> {
    Header {
        key,
        value: Some(value.as_bytes()),
    }
}
