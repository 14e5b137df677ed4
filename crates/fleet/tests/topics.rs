//! `ensure_topics` against the run's Apache Kafka broker: CreateTopics with the configured
//! partitions, nothing changed on a second start, and a refusal reported as an error.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use fleet::health::Health;
use fleet::kafka::{BrokerWatch, TopicsError, ensure_topics};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

fn watch() -> BrokerWatch {
    BrokerWatch::new(Health::new(&prometheus::Registry::new()).unwrap())
}

/// Partitions of `topic` as the broker's metadata has them.
fn partitions(bootstrap: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = testkit::kafka::plain(bootstrap).create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let topic = &metadata.topics()[0];
    assert!(topic.error().is_none(), "{:?}", topic.error());
    topic.partitions().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topics_are_created_with_the_configured_partitions_and_a_second_start_changes_nothing()
 {
    let bootstrap = testkit::kafka::bootstrap();
    let (a, b, existing) = (
        testkit::kafka::unique("a"),
        testkit::kafka::unique("b"),
        testkit::kafka::unique("existing"),
    );
    testkit::kafka::create_topics(&bootstrap, &[(&existing, 1)]);
    let config = testkit::kafka::plain(&bootstrap);
    let topics = [a.as_str(), b.as_str(), existing.as_str()];
    let shutdown = CancellationToken::new();

    let ready = ensure_topics(&config, &watch(), &topics, 4, 1, &shutdown).await;
    assert!(ready.unwrap());
    assert_eq!(partitions(&bootstrap, &a), 4);
    assert_eq!(partitions(&bootstrap, &b), 4);
    assert_eq!(
        partitions(&bootstrap, &existing),
        1,
        "an existing topic is left alone"
    );

    // A second start, even with other settings, creates nothing and alters nothing.
    let again = ensure_topics(&config, &watch(), &topics, 8, 1, &shutdown).await;
    assert!(again.unwrap());
    for (topic, want) in [(&a, 4), (&b, 4), (&existing, 1)] {
        assert_eq!(partitions(&bootstrap, topic), want, "{topic}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_factor_above_the_broker_count_is_refused_with_the_topic_and_settings() {
    let bootstrap = testkit::kafka::bootstrap();
    let topic = testkit::kafka::unique("refused");
    let config = testkit::kafka::plain(&bootstrap);
    let shutdown = CancellationToken::new();
    let err = ensure_topics(&config, &watch(), &[&topic], 2, 3, &shutdown)
        .await
        .unwrap_err();
    match &err {
        TopicsError::Refused {
            topic: refused,
            code,
            ..
        } => {
            assert_eq!(refused, &topic);
            assert_eq!(*code, RDKafkaErrorCode::InvalidReplicationFactor);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let line = err.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    for part in [
        topic.as_str(),
        "replication factor 3",
        "KAFKA_TOPIC_REPLICATION_FACTOR",
    ] {
        assert!(line.contains(part), "{line:?} lacks {part:?}");
    }
}
