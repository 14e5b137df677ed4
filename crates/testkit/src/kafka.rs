//! The run's Kafka broker and topics of a test's own on it.
//!
//! Tests run in parallel against one broker, each with its own topics and consumer group, so
//! nothing one test produces or commits is seen by another.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// The variable `scripts/test.sh` sets to the broker it started for the run.
pub const BOOTSTRAP_VAR: &str = "TEST_KAFKA_BOOTSTRAP_SERVERS";

/// The run's broker. Panics with what to do when no broker was given: integration tests need a
/// real one (`scripts/test.sh` starts it; by hand:
/// `export TEST_KAFKA_BOOTSTRAP_SERVERS=$(scripts/kafka.sh start .test-kafka --port 19092)`).
pub fn bootstrap() -> String {
    std::env::var(BOOTSTRAP_VAR).unwrap_or_else(|_| {
        panic!(
            "{BOOTSTRAP_VAR} is not set: these tests need a real Kafka broker \
             (scripts/test.sh starts one; by hand: \
             export {BOOTSTRAP_VAR}=$(scripts/kafka.sh start .test-kafka --port 19092))"
        )
    })
}

/// A name no other test uses: `prefix-<uuid>`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates `topics` (name, partitions) with CreateTopics and waits until the broker's metadata
/// shows every partition with a leader, so that producing right after cannot fail.
pub fn create_topics(bootstrap: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = plain(bootstrap).create().unwrap();
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    // rdkafka's admin futures are completed by its own thread: no runtime needed.
    let results = futures::executor::block_on(admin.create_topics(&new, &options)).unwrap();
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("cannot create topic {topic}: {code}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (name, partitions) in topics {
        loop {
            let led = admin
                .inner()
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics().first().map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == *partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                })
                .unwrap_or(false);
            if led {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} has no leaders after 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A client configuration for `bootstrap` over plaintext.
pub fn plain(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// The high watermarks of `topic`'s partitions summed: how many messages it holds.
pub fn topic_messages(bootstrap: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = plain(bootstrap).create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap()
                .1
        })
        .sum()
}
