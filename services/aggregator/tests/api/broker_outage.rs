//! The broker process killed for more than 30 s under load, then restarted on the same data:
//! every service reports the outage and its end, and PostgreSQL ends up with exactly what the
//! producers had delivered (idempotent producers: nothing twice; offsets with the data:
//! nothing lost).

use std::time::{Duration, Instant};

use testkit::broker::Broker;

use crate::fleet::{Fleet, Produced, logged_field, stored};
use crate::helpers::{Setup, setup_on};

/// The broker stays away this long.
const OUTAGE: Duration = Duration::from_secs(32);

/// Waits (bounded) until every service of `fleet` reports `health_status` `want`.
fn wait_health(fleet: &Fleet, want: f64, what: &str, within: Duration) {
    for (name, service) in fleet.all() {
        let got = service.wait_metric("health_status", within, |v| v == want);
        assert_eq!(got, want, "{what}: {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_under_load_and_restarted_loses_nothing_and_stores_nothing_twice() {
    let kafka = Broker::start(Default::default());
    let bootstrap = kafka.bootstrap();
    let Setup(names, _, db) = setup_on(&bootstrap, 3).await;
    let plain = [("KAFKA_BOOTSTRAP_SERVERS", bootstrap.clone())];
    let fleet = Fleet::start(&names, &db, &plain, None);

    wait_health(&fleet, 1.0, "before", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&db).await.calls < 500 {
        assert!(
            Instant::now() < deadline,
            "nothing stored before the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    kafka.kill();
    let killed = Instant::now();
    // Each service notices within its own delivery or connection check.
    wait_health(&fleet, 0.0, "during", OUTAGE);
    let remaining = OUTAGE.saturating_sub(killed.elapsed());
    // The outage itself is the condition under test: it must last, whatever is polled meanwhile.
    tokio::time::sleep(remaining).await;
    for (name, service) in fleet.all() {
        assert!(service.running(), "{name} exited during the outage");
        assert_eq!(
            service.metric("health_status"),
            Some(0.0),
            "{name} at the end"
        );
    }
    kafka.restart();
    wait_health(&fleet, 1.0, "after", Duration::from_secs(90));
    // Production goes on after the return, then the producers stop and flush.
    let after = stored(&db).await.calls;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&db).await.calls < after + 500 {
        assert!(Instant::now() < deadline, "storing did not resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.stop_producers();

    let produced = Produced::read(&bootstrap, &names);
    let delivered_calls = logged_field(&fleet.simulator, "stopped", "delivered");
    assert_eq!(
        delivered_calls.as_i64(),
        Some(produced.calls),
        "the calls topic holds each delivered call once"
    );
    let summary = logged_field(&fleet.host_metrics, "stopped", "summary");
    let delivered_samples = summary
        .as_str()
        .and_then(|s| s.split("delivered: ").nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no delivered count in {summary}"));
    db.wait_for_offsets(&names.group, produced.messages(), Duration::from_secs(120))
        .await;
    let db_now = stored(&db).await;
    assert_eq!(db_now.calls, produced.calls, "calls stored");
    // A sample whose delivery timed out is sent again (host-metrics' own retry); the
    // aggregator stores each (host, time) once.
    assert_eq!(db_now.samples, delivered_samples, "host samples stored");
    assert_eq!(db_now.checks, produced.checks, "check results stored");
    eprintln!(
        "outage {:?}: {} calls, {delivered_samples} samples, {} checks stored",
        OUTAGE, db_now.calls, db_now.checks
    );
}
