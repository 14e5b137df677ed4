//! `aggregator_consumer_lag` is the real backlog: what lies past the offsets stored in
//! PostgreSQL with the data, read against the broker's partition ends.

use std::time::{Duration, Instant};

use crate::helpers::*;

/// The sum of the lag gauges of the calls topic's `partitions` partitions.
async fn calls_lag(app: &TestApp, topic: &str, partitions: i32) -> f64 {
    let mut sum = 0.0;
    for p in 0..partitions {
        let sample = format!(r#"aggregator_consumer_lag{{partition="{p}",topic="{topic}"}}"#);
        sum += app.metric(&sample).await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_produced_while_no_aggregator_runs_read_as_lag_on_start_then_drain_to_zero() {
    const N: usize = 4_000;
    let Spawned(names, bootstrap, db, first) = spawn_app().partitions(3).await;
    // A first run creates the schema, stores nothing (there is nothing yet), and stops.
    first.stop().await;

    let expected = produce_calls(&bootstrap, &names.calls, N, 61);
    // Hold every flush at the offset fence, so the backlog stays put while it is measured.
    let (locker, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE consumer_offsets IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let app = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lag = calls_lag(&app, &names.calls, 3).await;
        if lag == N as f64 {
            break;
        }
        assert!(lag <= N as f64, "lag {lag} above the backlog {N}");
        assert!(Instant::now() < deadline, "lag {lag}, backlog {N}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Read but not stored is still backlog: once all is read, the gauges (refreshed by every
    // second's statistics) keep saying N.
    let consumed = format!(
        r#"aggregator_events_consumed_total{{topic="{}"}}"#,
        names.calls
    );
    app.wait_metric(&consumed, N as f64, Duration::from_secs(30))
        .await;
    let until = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < until {
        assert_eq!(calls_lag(&app, &names.calls, 3).await, N as f64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    locker.batch_execute("ROLLBACK").await.unwrap();
    db.wait_for_offsets(&names.group, N as i64, Duration::from_secs(30))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls_lag(&app, &names.calls, 3).await != 0.0 {
        assert!(Instant::now() < deadline, "lag did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_stored_exactly(&db, expected).await;
    app.stop().await;
}
