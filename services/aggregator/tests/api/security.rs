//! The managed-Kafka path: every service reaches a broker over TLS or SASL_SSL with
//! SCRAM-SHA-512 through the `KAFKA_*` passthrough, and a client the broker refuses (a CA that
//! does not trust it, a wrong password) stays up, unready, saying why once.

use std::time::{Duration, Instant};

use testkit::TempDir;
use testkit::broker::{Broker, Options, free_port};
use testkit::service::{Service, http_post};
use testkit::tls::Ca;

use crate::fleet::{Fleet, Produced, stored};
use crate::helpers::{Names, Setup, TestDb, create_topics, setup_on};

const USER: &str = "fleet";
const PASSWORD: &str = "fleet-secret";

/// A broker with a plaintext listener (the test's own reads), an SSL one and a SASL_SSL one
/// with user `USER`, its certificate signed by a CA of the test's.
struct SecureBroker {
    broker: Broker,
    ssl: u16,
    sasl: u16,
    ca_file: String,
    /// A CA that did not sign the broker's certificate.
    other_ca_file: String,
    /// The certificates and the keystore.
    _dir: TempDir,
}

fn secure_broker() -> SecureBroker {
    let dir = TempDir::new("tls");
    let ca = Ca::new("fleet test CA");
    let keystore =
        ca.issue_server("kafka")
            .write_pkcs12(&ca, dir.path(), "broker.p12", "keystore-secret");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let other_ca_file = Ca::new("someone else's CA").write_pem(dir.path(), "other-ca.pem");
    let (ssl, sasl) = (free_port(), free_port());
    let properties = format!(
        "ssl.keystore.type=PKCS12\n\
         ssl.keystore.location={}\n\
         ssl.keystore.password=keystore-secret\n\
         ssl.key.password=keystore-secret\n\
         sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
         org.apache.kafka.common.security.scram.ScramLoginModule required;\n",
        keystore.display()
    );
    let broker = Broker::start(Options {
        properties,
        scram_users: vec![(USER.into(), PASSWORD.into())],
        listeners: vec![("SSL".into(), ssl), ("SASL_SSL".into(), sasl)],
    });
    SecureBroker {
        broker,
        ssl,
        sasl,
        ca_file: ca_file.display().to_string(),
        other_ca_file: other_ca_file.display().to_string(),
        _dir: dir,
    }
}

impl SecureBroker {
    fn ssl_env(&self, ca_file: &str) -> Vec<(&'static str, String)> {
        vec![
            ("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{}", self.ssl)),
            ("KAFKA_SECURITY_PROTOCOL", "ssl".into()),
            ("KAFKA_SSL_CA_LOCATION", ca_file.into()),
        ]
    }

    fn sasl_env(&self, password: &str) -> Vec<(&'static str, String)> {
        vec![
            (
                "KAFKA_BOOTSTRAP_SERVERS",
                format!("127.0.0.1:{}", self.sasl),
            ),
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl".into()),
            ("KAFKA_SSL_CA_LOCATION", self.ca_file.clone()),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".into()),
            ("KAFKA_SASL_USERNAME", USER.into()),
            ("KAFKA_SASL_PASSWORD", password.into()),
        ]
    }
}

/// Runs the fleet over `kafka` until the simulator's 3,000 calls, some host samples and some
/// check results are stored, stops the producers, and checks PostgreSQL holds exactly what
/// the topics hold.
async fn pipeline_is_exact(broker: &SecureBroker, kafka: &[(&str, String)]) {
    let plain = broker.broker.bootstrap();
    let Setup(names, _, db) = setup_on(&plain, 3).await;
    let fleet = Fleet::start(&names, &db, kafka, Some(3_000));
    let exit = fleet.simulator.wait_exit(Duration::from_secs(60));
    assert!(exit.success(), "{}", fleet.simulator.log_text());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = stored(&db).await;
        if now.calls == 3_000 && now.samples >= 3 && now.checks >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "stored so far: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.stop_producers();
    let produced = Produced::read(&plain, &names);
    db.wait_for_offsets(&names.group, produced.messages(), Duration::from_secs(60))
        .await;
    assert_eq!(produced.calls, 3_000);
    assert_eq!(stored(&db).await, produced);
    let ready = fleet.aggregator.get("/readyz");
    assert_eq!(
        ready,
        Some((200, "ready\n".to_string())),
        "{}",
        fleet.aggregator.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_reaches_kafka_over_tls_and_totals_are_exact() {
    let broker = secure_broker();
    let kafka = broker.ssl_env(&broker.ca_file);
    pipeline_is_exact(&broker, &kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_reaches_kafka_over_sasl_ssl_with_scram_and_totals_are_exact() {
    let broker = secure_broker();
    let kafka = broker.sasl_env(PASSWORD);
    pipeline_is_exact(&broker, &kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_stays_up_unready_and_says_why_once() {
    let broker = secure_broker();
    let cases = [
        (
            "untrusted CA",
            broker.ssl_env(&broker.other_ca_file),
            "certificate verify failed",
        ),
        (
            "wrong password",
            broker.sasl_env("not-the-password"),
            "Authentication failed",
        ),
    ];
    let mut fleets = Vec::new();
    for (case, kafka, cause) in &cases {
        let Setup(names, _, db) = setup_on(&broker.broker.bootstrap(), 1).await;
        fleets.push((case, Fleet::start(&names, &db, kafka, None), cause, db));
    }
    // librdkafka retries a refused connection with a backoff that grows to 10 s: 20 s hold
    // several attempts, each of which would be a log line without the deduplication.
    tokio::time::sleep(Duration::from_secs(20)).await;
    // Every service is checked before failing, so that one run shows every defect.
    let mut defects = Vec::new();
    for (case, fleet, cause, _) in &fleets {
        for (name, service) in fleet.all() {
            let what = format!("{case}, {name}");
            let log = service.log_text();
            if !service.running() {
                defects.push(format!("{what}: exited\n{log}"));
                continue;
            }
            let health = service.metric("health_status");
            let (status, body) = service.get("/readyz").unwrap();
            let naming = log.lines().filter(|l| l.contains(**cause)).count();
            let noisy = service.log_records("WARN").len() + service.log_records("ERROR").len();
            if health != Some(0.0) || status != 503 || !body.contains(**cause) {
                defects.push(format!(
                    "{what}: health {health:?}, /readyz {status} {body:?}"
                ));
            }
            if naming != 1 || noisy > 3 {
                defects.push(format!(
                    "{what}: {naming} lines name the cause, {noisy} warnings and errors:\n{log}"
                ));
            }
        }
    }
    assert!(defects.is_empty(), "{}", defects.join("\n\n"));
}

/// Every secret a service is given stays out of its logs (at debug level), its `/metrics` and
/// its error lines: through a normal run, a broker outage, refused webhook calls, a refused
/// password and a start-up that fails on a bad setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_a_metric_or_an_error_line() {
    const PG_PASSWORD: &str = "pg-secret-5d1c9e";
    const TOKEN: &str = "webhook-secret-7f3a2b81c4";
    const WRONG_PASSWORD: &str = "wrong-secret-b61e0a";
    let broker = secure_broker();
    let Setup(names, _, db) = setup_on(&broker.broker.bootstrap(), 3).await;
    // The test server trusts 127.0.0.1: the password is carried, not checked, which is all a
    // leak needs.
    let db = TestDb {
        url: db
            .url
            .replacen("postgres@", &format!("postgres:{PG_PASSWORD}@"), 1),
        client: db.client,
    };
    let with_secrets = |password: &str| {
        let mut env = broker.sasl_env(password);
        env.push(("ALERTS_TOKEN", TOKEN.into()));
        env.push(("RUST_LOG", "debug".into()));
        env
    };
    let fleet = Fleet::start(&names, &db, &with_secrets(PASSWORD), None);
    // Ready: the migrations ran and the tables exist.
    fleet
        .aggregator
        .wait_metric("health_status", Duration::from_secs(60), |v| v == 1.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&db).await.calls == 0 {
        assert!(Instant::now() < deadline, "nothing stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A broker outage: every client logs its connection errors.
    broker.broker.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.broker.restart();
    // Webhook calls with a wrong token and with the right one.
    let notification = r#"{"version":"4","receiver":"oncall","status":"firing","alerts":[
        {"status":"firing","labels":{"alertname":"SecretsTest"},"startsAt":"2026-01-01T00:00:00Z"}]}"#;
    for (token, want) in [("not-the-token-0123456789", 401), (TOKEN, 200)] {
        let bearer = format!("Bearer {token}");
        let status = http_post(fleet.aggregator.port(), "/alerts", &bearer, notification);
        assert_eq!(status, Some(want));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = stored(&db).await.calls;
    while stored(&db).await.calls == before {
        assert!(Instant::now() < deadline, "nothing stored after the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A password the broker refuses, and a start-up refused on a bad setting (the URL with the
    // password has no valid port).
    let refused_names = Names::new();
    create_topics(&broker.broker.bootstrap(), &refused_names, 1);
    let refused = Fleet::start(&refused_names, &db, &with_secrets(WRONG_PASSWORD), None);
    let bad_url = format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:notaport/db");
    let mut bad_setting = crate::fleet::env(&names, &db, &with_secrets(PASSWORD), &[]);
    bad_setting.push(("DATABASE_URL".into(), bad_url));
    let failed = Service::start("aggregator", bad_setting);
    assert_eq!(failed.wait_exit(Duration::from_secs(10)).code(), Some(2));
    tokio::time::sleep(Duration::from_secs(10)).await;

    let secrets = [PG_PASSWORD, PASSWORD, TOKEN, WRONG_PASSWORD];
    let mut leaks = Vec::new();
    let mut outputs: Vec<(String, String)> = vec![("failed start".into(), failed.log_text())];
    for (run, services) in [("run", fleet.all()), ("refused", refused.all())] {
        for (name, service) in services {
            outputs.push((format!("{run} {name} log"), service.log_text()));
            let metrics = service
                .get("/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default();
            assert!(!metrics.is_empty(), "{run} {name}: no /metrics");
            outputs.push((format!("{run} {name} /metrics"), metrics));
        }
    }
    for (what, text) in &outputs {
        for secret in secrets {
            for line in text.lines().filter(|l| l.contains(secret)) {
                leaks.push(format!("{what}: {line}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets in output:\n{}", leaks.join("\n"));
    // The outputs did say something: the failed start named its setting.
    assert!(outputs[0].1.contains("DATABASE_URL"), "{}", outputs[0].1);
}
