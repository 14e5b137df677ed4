//! The idempotent "ensure topics" step every service runs at start: read the cluster's topics
//! (retried with backoff while Kafka is unreachable), then create the missing ones.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use tokio_util::sync::CancellationToken;

use super::watch::{BrokerWatch, WatchedContext};
use crate::retry::Backoff;

/// Why the fleet's topics could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// A Kafka client could not be created (a bad `KAFKA_*` property).
    #[error("Kafka client: {0}")]
    Client(#[from] KafkaError),
    /// The broker refused to create a topic: the settings ask for what it cannot give.
    #[error(
        "Kafka refused to create topic {topic} with {partitions} partitions and replication \
         factor {replication} (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR): {code}"
    )]
    Refused {
        /// The topic.
        topic: String,
        /// Partitions asked for.
        partitions: i32,
        /// Replication factor asked for.
        replication: i32,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// The CreateTopics request itself failed.
    #[error("Kafka CreateTopics for {topics:?} failed: {error}")]
    Request {
        /// The topics asked for.
        topics: Vec<String>,
        /// What failed.
        error: KafkaError,
    },
}

/// Creates those of `topics` that do not exist with CreateTopics (existing ones are left as
/// they are, so a second start changes nothing). Reading the cluster's metadata is retried
/// with backoff while Kafka is unreachable or refuses us; `watch` hears the cause (health,
/// one log line). A refusal to create a topic is an error: the service stops with one line.
/// A broker that never answers CreateTopics (librdkafka's mock cluster behind `devbroker`)
/// gets a warning and the service relies on the topics existing. Returns `Ok(false)` if
/// `shutdown` fired first.
pub async fn ensure_topics(
    config: &ClientConfig,
    watch: &BrokerWatch,
    topics: &[&str],
    partitions: i32,
    replication: i32,
    shutdown: &CancellationToken,
) -> Result<bool, TopicsError> {
    let Some(existing) = existing_topics(config, watch, shutdown).await? else {
        return Ok(false);
    };
    let missing: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|t| !existing.iter().any(|e| e == *t))
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    if !missing.is_empty() {
        create(config, &missing).await?;
    }
    Ok(true)
}

/// The names of the cluster's topics, read again with backoff until Kafka answers; `None` if
/// `shutdown` fired first.
async fn existing_topics(
    config: &ClientConfig,
    watch: &BrokerWatch,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<String>>, TopicsError> {
    // Metadata is read through a producer that nobody sends on: polling it serves librdkafka's
    // main queue, where connection errors (a refused certificate, a wrong password) and
    // statistics reach the watch. The admin client's own queue carries only admin results.
    let context = WatchedContext {
        watch: watch.clone(),
    };
    let reader: Arc<BaseProducer<WatchedContext>> = Arc::new(config.create_with_context(context)?);
    let mut backoff = Backoff::new(Duration::from_secs(10));
    let mut waited = false;
    loop {
        let client = reader.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            let names = (client.client().fetch_metadata(None, Duration::from_secs(5)))
                .map(|m| m.topics().iter().map(|t| t.name().to_string()).collect());
            // Serves every event queued meanwhile (one poll call with no wait serves one).
            client.poll(Duration::from_millis(100));
            names
        });
        // A metadata request to an unreachable broker blocks for its 5 s timeout: a stop does
        // not wait for it (the blocking task ends on its own).
        let metadata = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            metadata = metadata => metadata,
        };
        match metadata {
            Ok(Ok(names)) => return Ok(Some(names)),
            // The cause (refused, unreachable) reaches the watch through the context; this
            // says once what the service is waiting for.
            Ok(Err(err)) if !waited => {
                tracing::warn!(%err, "waiting for Kafka metadata before creating topics");
                waited = true;
            }
            Ok(Err(err)) => tracing::debug!(%err, "Kafka metadata not readable yet"),
            Err(err) => tracing::warn!(%err, "metadata task failed, retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Creates `missing` with one CreateTopics request; a topic another instance created meanwhile
/// is fine, a refusal is an error.
async fn create(config: &ClientConfig, missing: &[NewTopic<'_>]) -> Result<(), TopicsError> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = tokio::time::timeout(
        Duration::from_secs(15),
        admin.create_topics(missing, &options),
    )
    .await;
    let names: Vec<String> = missing.iter().map(|t| t.name.to_string()).collect();
    let results = match created {
        Ok(Ok(results)) => results,
        Ok(Err(error)) => {
            return Err(TopicsError::Request {
                topics: names,
                error,
            });
        }
        Err(_) => {
            tracing::warn!(
                topics = ?names,
                "broker did not answer CreateTopics; relying on the topics existing"
            );
            return Ok(());
        }
    };
    for (result, asked) in results.into_iter().zip(missing) {
        let (partitions, replication) = (asked.num_partitions, replication_of(asked));
        match result {
            Ok(topic) => tracing::info!(%topic, partitions, replication, "topic created"),
            // Another instance created it between our metadata read and now.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TopicsError::Refused {
                    topic,
                    partitions,
                    replication,
                    code,
                });
            }
        }
    }
    Ok(())
}

fn replication_of(topic: &NewTopic<'_>) -> i32 {
    match topic.replication {
        TopicReplication::Fixed(n) => n,
        TopicReplication::Variable(_) => -1,
    }
}
