use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_stored_once_in_windows_long_calls_totals_and_metrics() {
    let Spawned(names, bootstrap, db, app) = spawn_app().partitions(6).await;

    let expected = produce_calls(&bootstrap, &names.calls, 5_000, 1);
    db.wait_for_offsets(&names.group, 5_000, Duration::from_secs(60))
        .await;
    assert_stored_exactly(&db, expected).await;

    app.wait_metric("aggregator_calls_total", 5_000.0, Duration::from_secs(5))
        .await;
    assert_eq!(app.metric("aggregator_stored_calls").await, 5_000.0);
    let seconds = app.metric("aggregator_call_duration_seconds_total").await;
    assert!(
        (seconds - expected.duration_ms as f64 / 1000.0).abs() < 1e-6,
        "{seconds}"
    );
    assert_eq!(
        app.metric("aggregator_long_calls_total").await,
        expected.long_calls as f64
    );
    // The broker check passes with the first statistics (every second), which a fast broker
    // may not have sent yet.
    app.wait_metric("health_status", 1.0, Duration::from_secs(5))
        .await;
    assert_eq!(app.get("/readyz").await, (200, "ready\n".to_string()));
    app.stop().await;
}

/// A child aggregator, SIGKILLed when dropped (also when the test fails).
struct ChildAggregator(Child);

impl ChildAggregator {
    fn kill(&mut self) {
        self.0.kill().unwrap(); // SIGKILL
        self.0.wait().unwrap();
    }
}

impl Drop for ChildAggregator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(args: &[String]) -> ChildAggregator {
    spawn_child_with(args, &[])
}

fn spawn_child_with(args: &[String], env: &[(&str, &str)]) -> ChildAggregator {
    let child = Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(&args[1..])
        .envs(env.iter().copied())
        // A killed member holds its partitions until its session expires: the broker's
        // shortest (group.min.session.timeout.ms) bounds the pause after each kill.
        .env("KAFKA_SESSION_TIMEOUT_MS", "6000")
        .env(
            "RUST_LOG",
            std::env::var("CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    ChildAggregator(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_neither_loses_nor_double_counts() {
    const ROUNDS: usize = 5;
    const PER_ROUND: usize = 10_000;
    const SAMPLES_PER_ROUND: usize = 300;
    let Setup(names, bootstrap, db) = setup(6).await;
    let args = args(&bootstrap, &db.url, &names);
    let mut expected = Expected::default();
    let mut hosts = HostExpected::default();
    let mut rng = rand::rng();

    for round in 0..ROUNDS {
        // Feed part of the known streams, then kill the aggregator while it consumes them.
        let e = produce_calls(&bootstrap, &names.calls, PER_ROUND, 100 + round as u64);
        expected.calls += e.calls;
        expected.duration_ms += e.duration_ms;
        expected.long_calls += e.long_calls;
        let h = produce_host_samples(&bootstrap, &names.hosts, SAMPLES_PER_ROUND, round as u64);
        hosts.samples += h.samples;
        hosts.values += h.values;
        hosts.value_sum += h.value_sum;
        let before = db.stored_offsets(&names.group).await;
        let mut child = spawn_child(&args);
        let deadline = Instant::now() + Duration::from_secs(60);
        while db.stored_offsets(&names.group).await == before {
            assert!(Instant::now() < deadline, "round {round}: no progress");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        child.kill();
        let after = db.stored_offsets(&names.group).await;
        eprintln!(
            "round {round}: killed with {after} of {} messages flushed",
            expected.calls + hosts.samples
        );
    }
    let messages = expected.calls + hosts.samples;
    let stored = db.stored_offsets(&names.group).await;
    assert!(
        stored < messages,
        "the last kill must land before the end ({stored})"
    );

    let mut child = spawn_child(&args);
    db.wait_for_offsets(&names.group, messages, Duration::from_secs(120))
        .await;
    child.kill();
    assert_stored_exactly(&db, expected).await;
    assert_hosts_stored_exactly(&db, hosts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_aggregators_in_one_group_share_the_partitions_and_totals_are_exact() {
    let Spawned(names, bootstrap, db, a) = spawn_app().partitions(6).await;
    let b = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;
    // Wait until the group has settled with both members.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (pa, pb) = (
            a.metric("aggregator_assigned_partitions").await,
            b.metric("aggregator_assigned_partitions").await,
        );
        if pa > 0.0 && pb > 0.0 && pa + pb == consumed_partitions(6) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group did not settle: {pa} + {pb}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let expected = produce_calls(&bootstrap, &names.calls, 20_000, 2);
    db.wait_for_offsets(&names.group, 20_000, Duration::from_secs(60))
        .await;
    assert_stored_exactly(&db, expected).await;
    // Each call was counted by exactly one of them.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (ca, cb) = (
            a.metric("aggregator_calls_total").await,
            b.metric("aggregator_calls_total").await,
        );
        if ca + cb == 20_000.0 {
            assert!(ca > 0.0 && cb > 0.0, "both consumed: {ca} / {cb}");
            break;
        }
        assert!(Instant::now() < deadline, "{ca} + {cb} != 20000");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_rebalance_under_load_neither_loses_nor_double_counts() {
    // Incremental (cooperative) rebalancing: when a member leaves, the other is assigned its
    // partitions on top of those it keeps, and must re-read what it had consumed but not yet
    // flushed on the kept ones (its batch is dropped on every reassignment).
    let Setup(names, bootstrap, db) = setup(6).await;
    let mut args = args(&bootstrap, &db.url, &names);
    // Slow flushes, so that the remaining member holds unflushed data at the reassignment.
    let at = args
        .iter()
        .position(|a| a == "--agg-flush-interval-ms")
        .unwrap();
    args[at + 1] = "1500".into();
    let cooperative = [("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "cooperative-sticky")];
    let mut a = spawn_child_with(&args, &cooperative);
    let mut b = spawn_child_with(&args, &cooperative);
    let mut expected = produce_calls(&bootstrap, &names.calls, 6_000, 31);
    db.wait_for_offsets(&names.group, expected.calls, Duration::from_secs(60))
        .await;
    let mut add = |e: Expected| {
        expected.calls += e.calls;
        expected.duration_ms += e.duration_ms;
        expected.long_calls += e.long_calls;
    };
    // B leaves (killed: its partitions move after the session timeout) while A keeps reading.
    b.kill();
    for seed in 32..40 {
        add(produce_calls(&bootstrap, &names.calls, 1_000, seed));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    db.wait_for_offsets(&names.group, expected.calls, Duration::from_secs(120))
        .await;
    a.kill();
    assert_stored_exactly(&db, expected).await;
}

/// A commit the server lost (with `synchronous_commit = off`, a crash may lose the last ones):
/// here a partition's first, so its offsets row is gone while the aggregator has moved on. The
/// next flush expects an offset and finds no row: it must be fenced, and the partition re-read
/// from its start, not stored from where the aggregator stood (which would skip the lost range).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_first_commit_fences_the_next_flush_and_the_range_is_read_again() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;
    let first = produce_calls(&bootstrap, &names.calls, 1_000, 11);
    db.wait_for_offsets(&names.group, first.calls, Duration::from_secs(60))
        .await;
    // What the server crash takes: the commits' data and offsets rows alike.
    db.client
        .batch_execute(
            "BEGIN; DELETE FROM consumer_offsets; DELETE FROM call_stats_1m; DELETE FROM call_stats_1h; \
             DELETE FROM long_calls; UPDATE call_totals SET calls = 0, duration_ms = 0, \
             long_calls = 0; COMMIT",
        )
        .await
        .unwrap();
    let fenced_before = app
        .metric(r#"aggregator_flush_errors_total{kind="fenced"}"#)
        .await;
    let second = produce_calls(&bootstrap, &names.calls, 1_000, 12);
    db.wait_for_offsets(
        &names.group,
        first.calls + second.calls,
        Duration::from_secs(60),
    )
    .await;
    assert_stored_exactly(&db, first.and(second)).await;
    assert!(
        app.metric(r#"aggregator_flush_errors_total{kind="fenced"}"#)
            .await
            > fenced_before,
        "the flush after the loss was fenced"
    );
    app.stop().await;
}
