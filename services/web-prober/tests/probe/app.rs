//! The whole service: a targets file with fast, failing and hanging targets, edited while it
//! runs; results on Kafka, per-target gauges on /metrics.

use std::time::{Duration, Instant};

use clap::Parser as _;
use fleet::events::{ProbeOutcome, ProbeResult};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use testkit::prom::Scrape;
use tokio_util::sync::CancellationToken;
use web_prober::config::Config;
use web_prober::{Application, NoReloadSignal};

use crate::servers::{Reply, Server};

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `/metrics`, parsed.
async fn scrape(port: u16) -> Scrape {
    testkit::prom::parse(&metrics(port).await).unwrap()
}

async fn wait_for(port: u16, what: &str, ok: impl Fn(&Scrape) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = metrics(port).await;
        if ok(&testkit::prom::parse(&body).unwrap()) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_never_delays_the_others_and_edits_apply_while_running() {
    let server = Server::start(
        vec![
            ("/fast", Reply::ok("fine")),
            ("/hang", Reply::hang()),
            ("/gone", Reply::status(404)),
            ("/new", Reply::ok("new")),
        ],
        None,
    )
    .await;
    let (fast, hang, gone, new) = (
        server.url("http", "/fast"),
        server.url("http", "/hang"),
        server.url("http", "/gone"),
        server.url("http", "/new"),
    );
    let dir = testkit::TempDir::new("prober");
    let file = dir.path().join("targets.yaml");
    let write = |targets: &[&str]| {
        let mut yaml =
            String::from("defaults:\n  interval_secs: 0.2\n  timeout_secs: 0.5\ntargets:\n");
        for t in targets {
            yaml.push_str(&format!("  - url: {t}\n"));
        }
        std::fs::write(&file, yaml).unwrap();
    };
    write(&[&fast, &hang, &gone]);

    let bootstrap = testkit::kafka::bootstrap();
    let topic = testkit::kafka::unique("probes");
    testkit::kafka::create_topics(&bootstrap, &[(&topic, 2)]);
    let config = Config::try_parse_from([
        "web-prober",
        "--kafka-bootstrap-servers",
        &bootstrap,
        "--probes-topic",
        &topic,
        "--metrics-addr",
        "127.0.0.1:0",
        "--probe-targets-file",
        file.to_str().unwrap(),
        "--probe-reload-secs",
        "0.1",
        "--probe-concurrency",
        "2",
    ])
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let port = app.port();
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(app.run_until_stopped(shutdown.clone(), NoReloadSignal));

    let success = |t: &str| format!(r#"web_prober_target_success{{target="{t}"}}"#);
    wait_for(port, "first checks", |s| {
        s.value(&success(&fast)) == Some(1.0) && s.value(&success(&gone)) == Some(0.0)
    })
    .await;
    // With two permits and one taken by the hanging target half of the time, the fast target
    // still gets checked about every 0.2 s.
    let ok = r#"web_prober_checks_total{result="ok"}"#;
    let ok_before = scrape(port).await.value(ok).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = scrape(port).await;
    let ok_after = after.value(ok).unwrap();
    assert!(ok_after - ok_before >= 7.0, "{ok_before} -> {ok_after}");
    assert!(
        after
            .value(r#"web_prober_checks_total{result="timeout"}"#)
            .unwrap()
            >= 2.0
    );
    assert_eq!(
        after.value(&format!(
            r#"web_prober_target_status_code{{target="{gone}"}}"#
        )),
        Some(404.0)
    );
    assert_eq!(after.value("web_prober_targets"), Some(3.0));

    // Edited while running: one target leaves, one arrives.
    write(&[&fast, &hang, &new]);
    wait_for(port, "reloaded", |s| {
        s.value(&success(&new)) == Some(1.0) && s.value(&success(&gone)).is_none()
    })
    .await;
    // A broken file keeps the running targets and says so.
    std::fs::write(&file, "targets:\n  - url: not a url\n").unwrap();
    wait_for(port, "rejected", |s| {
        s.value("web_prober_config_last_reload_successful") == Some(0.0)
            && s.value("health_status") == Some(0.0)
    })
    .await;
    let before = scrape(port).await.value(ok).unwrap();
    wait_for(port, "still checking", |s| {
        s.value(ok).unwrap() > before + 2.0
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("stops within 10 s")
        .unwrap()
        .unwrap();

    // Every result is on the topic, keyed by its URL.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    // Assigned, not subscribed: no group join to wait for.
    let mut partitions = TopicPartitionList::new();
    for p in 0..2 {
        partitions
            .add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let mut results: Vec<ProbeResult> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(2) {
        assert!(Instant::now() < deadline);
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let r: ProbeResult = serde_json::from_slice(m.payload().unwrap()).unwrap();
            assert_eq!(m.key().unwrap(), r.url.as_bytes());
            results.push(r);
            idle_since = Instant::now();
        }
    }
    let count = |url: &str, outcome: ProbeOutcome| {
        results
            .iter()
            .filter(|r| r.url == url && r.result == outcome)
            .count()
    };
    assert!(count(&fast, ProbeOutcome::Ok) >= 10, "{}", results.len());
    assert!(count(&hang, ProbeOutcome::Timeout) >= 2);
    assert!(count(&gone, ProbeOutcome::HttpStatus) >= 1);
    assert!(count(&new, ProbeOutcome::Ok) >= 1);
}
