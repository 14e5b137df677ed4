//! The whole fleet as processes, configured as an operator would (environment variables, the
//! `KAFKA_*` passthrough), around one test's topics and database: for the tests that change
//! how services reach Kafka (TLS, SASL) or take the broker away.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use testkit::TempDir;
use testkit::service::Service;

use crate::helpers::{Names, TestDb};

/// An HTTP server on a free port that answers every request with `200 ok`: web-prober's target.
pub fn site() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    port
}

/// A folder with `targets.yaml`: one target, checked every 0.5 s.
pub fn targets_file(port: u16) -> (TempDir, PathBuf) {
    let dir = TempDir::new("targets");
    let path = dir.path().join("targets.yaml");
    let yaml = format!(
        "defaults:\n  interval_secs: 0.5\n  timeout_secs: 2\ntargets:\n  - url: http://127.0.0.1:{port}/\n"
    );
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

/// Settings of a service: the test's topics, database and group, then `kafka` (bootstrap and
/// passthrough), then `own`.
pub fn env(
    names: &Names,
    db: &TestDb,
    kafka: &[(&str, String)],
    own: &[(&str, String)],
) -> Vec<(String, String)> {
    let topics = names
        .topics()
        .map(|(setting, name)| (setting, name.to_string()));
    let common = [
        ("DLQ_TOPIC", names.dlq.clone()),
        ("CONSUMER_GROUP", names.group.clone()),
        ("DATABASE_URL", db.url.clone()),
        ("AGG_FLUSH_INTERVAL_MS", "100".into()),
    ];
    (topics.iter())
        .chain(&common)
        .chain(kafka)
        .chain(own)
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// The four services, each reaching Kafka with `kafka`. The simulator sends `calls` calls (a
/// bounded flood, then exits) or, with `None`, 200 calls a second until stopped; host-metrics
/// samples every 0.2 s until stopped; web-prober checks `site` every 0.5 s.
pub struct Fleet {
    pub aggregator: Service,
    pub simulator: Service,
    pub host_metrics: Service,
    pub prober: Service,
    /// web-prober's targets file.
    _targets: TempDir,
}

impl Fleet {
    pub fn start(names: &Names, db: &TestDb, kafka: &[(&str, String)], calls: Option<u64>) -> Self {
        let simulator = match calls {
            Some(n) => vec![
                ("SIM_MODE", "flood".to_string()),
                ("SIM_MAX_CALLS", n.to_string()),
                ("CALLS_PER_SECOND", "1000".into()),
            ],
            None => vec![("CALLS_PER_SECOND", "200".to_string())],
        };
        let (targets_dir, targets) = targets_file(site());
        Self {
            aggregator: Service::start("aggregator", env(names, db, kafka, &[])),
            simulator: Service::start("call-simulator", env(names, db, kafka, &simulator)),
            host_metrics: Service::start(
                "host-metrics",
                env(
                    names,
                    db,
                    kafka,
                    &[
                        ("SAMPLE_INTERVAL_SECS", "0.2".into()),
                        ("HOST_ID", "fleet-test".into()),
                    ],
                ),
            ),
            prober: Service::start(
                "web-prober",
                env(
                    names,
                    db,
                    kafka,
                    &[("PROBE_TARGETS_FILE", targets.display().to_string())],
                ),
            ),
            _targets: targets_dir,
        }
    }

    /// Every service, named.
    pub fn all(&self) -> [(&'static str, &Service); 4] {
        [
            ("aggregator", &self.aggregator),
            ("call-simulator", &self.simulator),
            ("host-metrics", &self.host_metrics),
            ("web-prober", &self.prober),
        ]
    }

    /// Stops the producers in order (SIGTERM: each flushes what it holds) and checks they
    /// exited cleanly.
    pub fn stop_producers(&self) {
        for (name, service) in [
            ("call-simulator", &self.simulator),
            ("host-metrics", &self.host_metrics),
            ("web-prober", &self.prober),
        ] {
            if service.running() {
                let status = service.terminate(Duration::from_secs(60));
                assert!(
                    status.success(),
                    "{name}: {status:?}\n{}",
                    service.log_text()
                );
            }
        }
    }
}

/// What the topics hold, read through `bootstrap` (the broker's plaintext listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub calls: i64,
    pub samples: i64,
    pub checks: i64,
}

impl Produced {
    pub fn read(bootstrap: &str, names: &Names) -> Self {
        Self {
            calls: testkit::kafka::topic_messages(bootstrap, &names.calls),
            samples: testkit::kafka::topic_messages(bootstrap, &names.hosts),
            checks: testkit::kafka::topic_messages(bootstrap, &names.probes),
        }
    }

    pub fn messages(&self) -> i64 {
        self.calls + self.samples + self.checks
    }
}

/// What PostgreSQL holds: calls in `call_totals`, distinct host samples, check results.
pub async fn stored(db: &TestDb) -> Produced {
    let one = |sql: &'static str| async move {
        let row = db.client.query_one(sql, &[]).await.unwrap();
        row.get::<_, i64>(0)
    };
    Produced {
        calls: one("SELECT coalesce(sum(calls), 0)::bigint FROM call_totals").await,
        samples: one("SELECT count(DISTINCT (host, time)) FROM system_metrics").await,
        checks: one("SELECT count(*) FROM probe_results").await,
    }
}

/// A field of the last log record with `message`, as JSON: what a service reported at its
/// stop (`delivered` of the simulator, `summary` of host-metrics).
pub fn logged_field(service: &Service, message: &str, field: &str) -> serde_json::Value {
    service
        .log_text()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        // The services log flattened JSON: the message and fields at the top level.
        .find(|r| r["message"] == message)
        .map(|r| r[field].clone())
        .unwrap_or_else(|| panic!("no {message:?} record:\n{}", service.log_text()))
}
