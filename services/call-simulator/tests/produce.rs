//! The simulator against a real Apache Kafka broker (the run's): every call
//! is published once, keyed by its caller, in the current schema, and the run ends by itself.

use std::time::{Duration, Instant};

use call_simulator::Application;
use call_simulator::config::Config;
use clap::Parser as _;
use fleet::events::{CALL_SCHEMA_VERSION, CallEvent};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_flood_publishes_every_call_once_keyed_by_caller_then_exits() {
    let bootstrap = testkit::kafka::bootstrap();
    let topic = testkit::kafka::unique("calls");
    testkit::kafka::create_topics(&bootstrap, &[(&topic, 3)]);
    let config = Config::try_parse_from([
        "call-simulator",
        "--kafka-bootstrap-servers",
        &bootstrap,
        "--calls-topic",
        &topic,
        "--metrics-addr",
        "127.0.0.1:0",
        "--sim-mode",
        "flood",
        "--sim-max-calls",
        "2000",
        "--sim-seed",
        "11",
        "--calls-per-second",
        "100",
    ])
    .expect("config");
    let app = Application::build(config).await.expect("build");
    let sent = tokio::time::timeout(
        Duration::from_secs(30),
        app.run_until_stopped(CancellationToken::new(), false),
    )
    .await
    .expect("exits on its own after SIM_MAX_CALLS")
    .expect("runs");
    assert_eq!(sent, 2000);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while events.len() < 2000 {
        assert!(Instant::now() < deadline, "read {} of 2000", events.len());
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("message");
        let event: CallEvent =
            serde_json::from_slice(message.payload().expect("payload")).expect("schema");
        assert_eq!(
            message.key(),
            Some(event.caller.as_bytes()),
            "keyed by caller"
        );
        events.push(event);
    }
    assert!(
        consumer.poll(Duration::from_millis(500)).is_none(),
        "nothing beyond the 2000"
    );
    assert!(
        events
            .iter()
            .all(|e| e.schema_version == CALL_SCHEMA_VERSION && e.duration_secs > 0.0)
    );
    let mut ids: Vec<_> = events.iter().map(|e| e.call_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2000, "no duplicates");
    // A bounded flood is a backfill that ends about now.
    let last = events.iter().map(|e| e.start_time).max().expect("events");
    assert!(
        (chrono::Utc::now() - last).num_seconds().abs() < 60,
        "{last}"
    );
}

#[test]
fn a_topic_the_broker_refuses_to_create_stops_the_service_with_one_line_naming_it() {
    let bootstrap = testkit::kafka::bootstrap();
    let topic = testkit::kafka::unique("calls");
    let service = testkit::service::Service::start(
        "call-simulator",
        [
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
            ("CALLS_TOPIC", topic.as_str()),
            // One broker: it cannot place three replicas.
            ("KAFKA_TOPIC_REPLICATION_FACTOR", "3"),
        ],
    );
    let status = service.wait_exit(Duration::from_secs(30));
    assert!(!status.success(), "{status:?}");
    let log = service.log_text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused to create topic"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(&topic) && errors[0].contains("replication factor 3"),
        "{}",
        errors[0]
    );
}

/// A stop that cannot finish (the broker gone, calls queued, the final flush waiting up to 8 s)
/// ends at once on a second SIGTERM, with status 143 as the default action would give.
#[test]
fn a_second_sigterm_forces_the_exit_of_a_stop_that_hangs() {
    let broker = testkit::broker::Broker::start(testkit::broker::Options::default());
    let bootstrap = broker.bootstrap();
    let topic = testkit::kafka::unique("calls");
    testkit::kafka::create_topics(&bootstrap, &[(&topic, 1)]);
    let service = testkit::service::Service::start(
        "call-simulator",
        [
            ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
            ("CALLS_TOPIC", topic.as_str()),
            ("CALLS_PER_SECOND", "500"),
        ],
    );
    service.wait_metric(
        "call_simulator_calls_produced_total",
        Duration::from_secs(30),
        |v| v > 0.0,
    );
    broker.kill();
    // Calls keep being queued for the dead broker.
    std::thread::sleep(Duration::from_millis(500));
    service.signal("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        service.running(),
        "the first SIGTERM's stop waits for the flush"
    );
    service.signal("TERM");
    let status = service.wait_exit(Duration::from_secs(2));
    assert_eq!(status.code(), Some(143), "{}", service.log_text());
    assert!(service.log_text().contains("second shutdown signal"));
}
