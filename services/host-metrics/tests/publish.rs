//! host-metrics against a real Apache Kafka broker: what it publishes, checked against the
//! kernel's own files, and what happens during an outage (a broker of the test's own, killed
//! and restarted).

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clap::Parser as _;
use fleet::events::{HOST_SCHEMA_VERSION, HostSample, Unit};
use host_metrics::Application;
use host_metrics::config::Config;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

fn config(bootstrap: &str, topic: &str, host: &str, extra: &[&str]) -> Config {
    let mut args = vec![
        "host-metrics",
        "--kafka-bootstrap-servers",
        bootstrap,
        "--host-metrics-topic",
        topic,
        "--host-id",
        host,
        "--metrics-addr",
        "127.0.0.1:0",
        "--sample-interval-secs",
        "0.1",
    ];
    args.extend_from_slice(extra);
    Config::try_parse_from(args).unwrap()
}

/// Reads exactly `n` messages from the start of `topic` (and checks nothing more arrives
/// shortly after): `(key, sample)`.
fn read_samples(bootstrap: &str, topic: &str, n: usize) -> Vec<(String, HostSample)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    loop {
        if out.len() >= n {
            let until = *quiet_until.get_or_insert(Instant::now() + Duration::from_millis(500));
            if Instant::now() > until {
                break;
            }
        }
        assert!(Instant::now() < deadline, "read {} of {n}", out.len());
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let sample: HostSample = serde_json::from_slice(message.payload().unwrap()).unwrap();
            out.push((key, sample));
        }
    }
    assert_eq!(out.len(), n, "exactly {n} samples");
    out
}

fn value(sample: &HostSample, metric: &str, device: &str) -> Option<(f64, Unit)> {
    sample.value(metric, device).map(|v| (v.value, v.unit))
}

/// A field of `/proc/meminfo`, in bytes.
fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_published_keyed_by_host_with_values_the_kernel_agrees_with() {
    let bootstrap = testkit::kafka::bootstrap();
    let topic = testkit::kafka::unique("hosts");
    testkit::kafka::create_topics(&bootstrap, &[(&topic, 2)]);
    let app = Application::build(config(
        &bootstrap,
        &topic,
        "test-host",
        &["--sample-max-count", "5"],
    ))
    .await
    .unwrap();
    let summary = tokio::time::timeout(
        Duration::from_secs(30),
        app.run_until_stopped(CancellationToken::new()),
    )
    .await
    .expect("exits on its own after SAMPLE_MAX_COUNT")
    .unwrap();
    assert_eq!(
        (summary.taken, summary.delivered, summary.dropped),
        (5, 5, 0)
    );

    let mut samples = read_samples(&bootstrap, &topic, 5);
    samples.sort_by_key(|(_, s)| s.time);
    let cores = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    for (i, (key, s)) in samples.iter().enumerate() {
        assert_eq!(key, "test-host");
        assert_eq!(s.host, "test-host");
        assert_eq!(s.schema_version, HOST_SCHEMA_VERSION);
        if i > 0 {
            let gap = (s.time - samples[i - 1].1.time).num_milliseconds();
            assert!((50..=1_000).contains(&gap), "samples {gap} ms apart");
        }
        assert_eq!(
            value(s, "memory_total", ""),
            Some((meminfo("MemTotal:") as f64, Unit::Bytes))
        );
        assert_eq!(value(s, "cpu_cores", ""), Some((cores as f64, Unit::Count)));
        let (cpu, unit) = value(s, "cpu_usage", "").unwrap();
        assert!(
            (0.0..=100.0).contains(&cpu) && unit == Unit::Percent,
            "{cpu}"
        );
        for core in 0..cores {
            assert!(value(s, "cpu_core_usage", &format!("cpu{core}")).is_some());
        }
        let (available, _) = value(s, "memory_available", "").unwrap();
        let now = meminfo("MemAvailable:") as f64;
        assert!((available - now).abs() / now < 0.2, "{available} vs {now}");
        let (uptime, _) = value(s, "uptime", "").unwrap();
        let proc_uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (proc_uptime - uptime).abs() < 60.0,
            "{uptime} vs {proc_uptime}"
        );
        assert!(
            value(s, "filesystem_size", "/").is_some(),
            "the root filesystem"
        );
        assert!(
            s.metrics.iter().all(|v| v.device != "lo"),
            "loopback is excluded by default"
        );
        assert!(s.metrics.iter().all(|v| v.value.is_finite()));
    }
    // Rates need two readings: from the second sample on.
    assert!(value(&samples[0].1, "network_receive_rate", "").is_none());
    assert!(value(&samples[4].1, "network_receive_rate", "").is_some());
}

/// The value of the series `name` selects on `/metrics`; NaN when absent.
async fn metric(port: u16, name: &str) -> f64 {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = testkit::prom::parse(&body).unwrap();
    scrape.value(name).unwrap_or(f64::NAN)
}

async fn wait_for(port: u16, what: &str, mut ok: impl FnMut(f64) -> bool, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = metric(port, name).await;
        if ok(v) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {name} = {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fills_the_bounded_buffer_and_the_backlog_arrives_when_the_broker_returns() {
    // A broker of this test's own: it is killed, then restarted on the same data.
    let kafka = testkit::broker::Broker::start(Default::default());
    let bootstrap = kafka.bootstrap();
    let topic = testkit::kafka::unique("hosts");
    testkit::kafka::create_topics(&bootstrap, &[(&topic, 1)]);
    let app = Application::build(config(
        &bootstrap,
        &topic,
        "h",
        &["--buffer-max-samples", "30"],
    ))
    .await
    .unwrap();
    let port = app.port();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    wait_for(
        port,
        "delivering",
        |v| v >= 3.0,
        "host_metrics_samples_published_total",
    )
    .await;
    wait_for(port, "healthy", |v| v == 1.0, "health_status").await;
    kafka.kill();
    // Sampling goes on into the buffer; after three intervals without a delivery (at least
    // 3 s) the service says it is not doing its job; the full buffer drops the oldest.
    wait_for(port, "unhealthy", |v| v == 0.0, "health_status").await;
    wait_for(
        port,
        "buffer full",
        |v| v == 30.0,
        "host_metrics_buffered_samples",
    )
    .await;
    wait_for(
        port,
        "dropping",
        |v| v > 0.0,
        "host_metrics_samples_dropped_total",
    )
    .await;
    kafka.restart();
    wait_for(
        port,
        "backlog delivered",
        |v| v < 5.0,
        "host_metrics_buffered_samples",
    )
    .await;
    wait_for(port, "healthy again", |v| v == 1.0, "health_status").await;

    shutdown.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops within 10 s")
        .unwrap()
        .unwrap();
    // Every sample taken is in the topic once, except those the full buffer dropped.
    assert!(summary.dropped > 0, "{summary:?}");
    assert_eq!(
        summary.delivered,
        summary.taken - summary.dropped,
        "{summary:?}"
    );
    let samples = read_samples(&bootstrap, &topic, summary.delivered as usize);
    let times: HashSet<_> = samples.iter().map(|(_, s)| s.time).collect();
    assert_eq!(times.len(), samples.len(), "no sample twice");
}

/// Stopped while the broker never answered (topics not ensured yet): no sample is taken or
/// queued, and the stop is immediate, not a flush timeout for samples no one can deliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_before_kafka_answered_takes_nothing_and_ends_at_once() {
    let nowhere = format!("127.0.0.1:{}", testkit::broker::free_port());
    let topic = testkit::kafka::unique("host-metrics");
    let app = Application::build(config(&nowhere, &topic, "never-connected", &[]))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = Instant::now();
    shutdown.cancel();
    let summary = run.await.unwrap().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(summary.taken, 0);
    assert_eq!(summary.delivered, 0);
}
