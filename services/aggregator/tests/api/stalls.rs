//! What cannot be stored right now stalls visibly and resumes by itself, never loops silently:
//! a dead letter too large for the producer is cut to fit; a dead-letter topic that refuses
//! every write, or a table an operator locked, fail the right check until they are fixed, then
//! everything lands once.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::helpers::*;

/// A legacy 95 s call, now.
fn call() -> String {
    let t = chrono::Utc::now().timestamp();
    format!(
        r#"{{"called_phone_number":"00412222222","start_call_epoch_time":{t},"call_duration":95}}"#
    )
}

fn check(name: &str) -> String {
    format!(r#"health_check_status{{check="{name}"}}"#)
}

/// Sets the topic's `max.message.bytes`.
async fn topic_max_bytes(bootstrap: &str, topic: &str, bytes: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let config = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("max.message.bytes", bytes);
    let altered = admin
        .alter_configs([&config], &AdminOptions::new())
        .await
        .unwrap();
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_larger_than_the_producer_may_send_is_cut_to_fit() {
    let Spawned(names, bootstrap, db, app) =
        spawn_app().args(["--dlq-max-message-bytes", "16384"]).await;
    let (good, oversize) = (call(), vec![b'x'; 70 * 1024]);
    let key = Some(b"00411111111".as_slice());
    let messages = [
        (key, Some(good.as_bytes())),
        (key, Some(oversize.as_slice())),
        (key, Some(good.as_bytes())),
    ];
    produce_raw(&bootstrap, &names.calls, &messages);
    db.wait_for_offsets(&names.group, 3, Duration::from_secs(60))
        .await;
    assert_eq!(db.window_totals().await.0, 2);
    let letters = read_topic(&bootstrap, &names.dlq, 1);
    let (headers, payload) = &letters[0];
    assert_eq!(headers["fleet.dlq.reason"], "oversize");
    assert_eq!(headers["fleet.dlq.truncated"], "true");
    assert_eq!(headers["fleet.dlq.original.payload.bytes"], "71680");
    assert_eq!(headers["fleet.dlq.original.key.bytes"], "11");
    let payload = payload.as_deref().unwrap();
    assert_eq!(
        payload.len(),
        16384 - 1024 - 11,
        "the room left by the key and headers"
    );
    assert!(oversize.starts_with(payload));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_topic_that_refuses_writes_stalls_visibly_and_sends_each_letter_once() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;
    // The dead-letter topic takes no record above 1,000 bytes (a misconfiguration, as a
    // missing write permission would be): every attempt to deliver this letter fails.
    topic_max_bytes(&bootstrap, &names.dlq, "1000").await;
    let (good, bad) = (call(), "x".repeat(2_000));
    let key = Some(b"00411111111".as_slice());
    let messages = [
        (key, Some(good.as_bytes())),
        (key, Some(bad.as_bytes())),
        (key, Some(good.as_bytes())),
    ];
    produce_raw(&bootstrap, &names.calls, &messages);
    app.wait_metric(&check("dlq"), 0.0, Duration::from_secs(30))
        .await;
    app.wait_metric("health_status", 0.0, Duration::from_secs(5))
        .await;
    app.wait_metric_where(
        r#"aggregator_flush_errors_total{kind="dlq"}"#,
        Duration::from_secs(30),
        |failed| failed >= 3.0,
    )
    .await;
    // Letters first: the batch that moves past it is not stored before it is delivered.
    assert_eq!(db.stored_offsets(&names.group).await, 0);

    topic_max_bytes(&bootstrap, &names.dlq, "1048588").await;
    db.wait_for_offsets(&names.group, 3, Duration::from_secs(60))
        .await;
    assert_eq!(db.window_totals().await.0, 2);
    app.wait_metric(&check("dlq"), 1.0, Duration::from_secs(10))
        .await;
    // However many attempts failed, the letter was written once.
    assert_eq!(topic_end(&bootstrap, &names.dlq), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_an_operator_locked_fails_flushes_visibly_until_it_is_released() {
    let Spawned(names, bootstrap, db, app) =
        spawn_app().args(["--db-lock-timeout-ms", "200"]).await;
    let first = produce_calls(&bootstrap, &names.calls, 200, 61);
    db.wait_for_offsets(&names.group, first.calls, Duration::from_secs(60))
        .await;

    let (locker, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    (locker.batch_execute("BEGIN; LOCK TABLE call_totals IN ACCESS EXCLUSIVE MODE"))
        .await
        .unwrap();
    let second = produce_calls(&bootstrap, &names.calls, 100, 62);
    app.wait_metric(&check("postgres"), 0.0, Duration::from_secs(10))
        .await;
    // The idle ping (every 5 s) still gets through; it must not call PostgreSQL healthy while
    // the flushes fail.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(7) {
        assert_eq!(
            app.metric(&check("postgres")).await,
            0.0,
            "healthy while locked"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        app.metric(r#"aggregator_flush_errors_total{kind="postgres"}"#)
            .await
            >= 2.0
    );
    assert_eq!(db.stored_offsets(&names.group).await, first.calls);

    locker.batch_execute("ROLLBACK").await.unwrap();
    db.wait_for_offsets(
        &names.group,
        first.calls + second.calls,
        Duration::from_secs(30),
    )
    .await;
    app.wait_metric(&check("postgres"), 1.0, Duration::from_secs(10))
        .await;
    assert_stored_exactly(&db, first.and(second)).await;
    app.stop().await;
}
