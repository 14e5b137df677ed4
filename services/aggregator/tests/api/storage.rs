//! Storage that runs for years: partitions made ahead and by the flush when missing,
//! retention by whole partitions at a clock the test sets, several maintainers at once, the
//! retention bound on event times, and the in-place upgrade of a database of the previous
//! schema.

use std::time::{Duration, Instant};

use aggregator::store::{self, AHEAD, Partitions, Retention, Timeouts};
use chrono::{DateTime, Utc};
use prometheus::IntCounter;

use crate::helpers::*;

const DAY: u64 = 86_400;

fn days(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n * DAY))
}

async fn migrated(db: &TestDb, last: i32) -> deadpool_postgres::Pool {
    let pool = store::connect_pool(&db.url, 4, Timeouts::DEFAULT).unwrap();
    store::migrate_to(&pool, last).await.unwrap();
    pool
}

fn partitions() -> Partitions {
    Partitions::new(IntCounter::new("made", "made").unwrap())
}

/// The partitions of `parent`, by name.
async fn partitions_of(db: &TestDb, parent: &str) -> Vec<String> {
    let sql =
        format!("SELECT partition FROM fleet_partitions WHERE parent = '{parent}' ORDER BY lower");
    db.column(&sql).await
}

async fn rows_since(db: &TestDb, since: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM system_metrics WHERE time >= '{since}'");
    db.client.query_one(&sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn maintenance_makes_partitions_ahead_and_retention_drops_only_whole_partitions_older_than_it()
 {
    let db = TestDb::create().await;
    let pool = migrated(&db, i32::MAX).await;
    let now: DateTime<Utc> = "2026-03-15T12:00:00Z".parse().unwrap();
    let lock = Duration::from_secs(5);
    let mut client = pool.get().await.unwrap();
    let report = store::maintain(&mut client, &partitions(), Retention::FOREVER, now, lock)
        .await
        .unwrap();
    let mut tables: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    let mut partitioned = store::PARTITIONED.to_vec();
    tables.sort_unstable();
    partitioned.sort_unstable();
    assert_eq!(tables, partitioned);
    for table in &report.tables {
        let end = table.end.expect("a partition");
        assert!(end >= now + AHEAD, "{} ends at {end}", table.table);
    }

    // Ten days of samples, one every hour, in partitions made for them.
    db.client
        .batch_execute(
            "SELECT fleet_create_partitions('2026-03-05T00:00:00Z', '2026-03-15T12:00:00Z');
             INSERT INTO system_metrics (time, host, metric, value, unit)
             SELECT t, 'h', 'cpu', 1, 'ratio' FROM generate_series(
                 timestamptz '2026-03-05T12:00:00Z', '2026-03-15T11:00:00Z', '1 hour') AS t;",
        )
        .await
        .unwrap();
    let within = rows_since(&db, "2026-03-08T12:00:00Z").await;

    // Two maintainers at once, seven days of raw rows: the partitions wholly before
    // 2026-03-08T12:00 go (the 5th, 6th, 7th), once; every row since is kept.
    let retention = Retention {
        raw: days(7),
        minutes: days(35),
        hours: days(400),
    };
    let mut other = pool.get().await.unwrap();
    let (first, second) = (partitions(), partitions());
    let (a, b) = tokio::join!(
        store::maintain(&mut client, &first, retention, now, lock),
        store::maintain(&mut other, &second, retention, now, lock),
    );
    let dropped: Vec<String> = [a.unwrap(), b.unwrap()]
        .iter()
        .flat_map(|r| r.dropped.iter())
        .filter(|(tier, _)| tier.as_str() == "raw")
        .flat_map(|(_, names)| names.iter().cloned())
        .filter(|name| name.starts_with("system_metrics"))
        .collect();
    let mut dropped = dropped;
    dropped.sort();
    assert_eq!(
        dropped,
        [
            "system_metrics_p20260305",
            "system_metrics_p20260306",
            "system_metrics_p20260307"
        ]
    );
    assert_eq!(rows_since(&db, "2026-03-08T12:00:00Z").await, within);
    let oldest: DateTime<Utc> = db
        .client
        .query_one("SELECT min(time) FROM system_metrics", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        oldest,
        "2026-03-08T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    let left = partitions_of(&db, "system_metrics").await;
    assert_eq!(
        left.first().map(String::as_str),
        Some("system_metrics_p20260308")
    );
    // The coarser tiers keep theirs.
    assert!(!partitions_of(&db, "call_stats_1h").await.is_empty());
}

#[tokio::test]
async fn a_flush_makes_the_partitions_maintenance_did_not_and_stores_everything() {
    let Spawned(names, bootstrap, db, app) = spawn_app()
        .args(["--agg-maintenance-interval-secs", "86400"])
        .await;
    let within = Duration::from_secs(30);
    app.wait_metric("aggregator_maintenance_runs_total", 1.0, within)
        .await;
    app.wait_metric_where(
        "aggregator_maintenance_last_success_timestamp_seconds",
        within,
        |v| v > 0.0,
    )
    .await;
    let made = app.metric("aggregator_partitions_created_total").await;
    // Maintenance stopped days ago, as far as the tables can tell: not a partition is left
    // for any time, and the flush knows of some that no longer exist.
    db.client
        .batch_execute(
            "DO $$ DECLARE p text; BEGIN
                 FOR p IN SELECT partition FROM fleet_partitions LOOP
                     EXECUTE format('DROP TABLE %I', p);
                 END LOOP;
             END $$;",
        )
        .await
        .unwrap();
    let calls = produce_calls(&bootstrap, &names.calls, 2_000, 7);
    let hosts = produce_host_samples(&bootstrap, &names.hosts, 50, 7);
    let messages = 2_000 + 50;
    db.wait_for_offsets(&names.group, messages, within).await;
    assert_stored_exactly(&db, calls).await;
    assert_hosts_stored_exactly(&db, hosts).await;
    let invalid = app
        .metric(&format!(
            r#"aggregator_invalid_events_total{{reason="rejected_by_database",topic="{}"}}"#,
            names.calls
        ))
        .await;
    assert_eq!(
        invalid, 0.0,
        "nothing dead-lettered for a missing partition"
    );
    assert!(app.metric("aggregator_partitions_created_total").await > made);
    app.stop().await;
}

/// A legacy-format call of `duration` seconds starting at `start` (seconds).
fn call(start: i64, duration: i64) -> String {
    format!(
        r#"{{"called_phone_number":"0041000000{}","start_call_epoch_time":{start},"call_duration":{duration}}}"#,
        duration % 10
    )
}

#[tokio::test]
async fn a_late_event_lands_in_its_old_partition_and_one_past_retention_is_dead_lettered() {
    let Spawned(names, bootstrap, db, app) = spawn_app()
        .args([
            "--agg-retention-raw-days",
            "3",
            "--agg-max-lateness-secs",
            "259200",
        ])
        .await;
    let now = Utc::now().timestamp();
    // First on its partition, so no lateness bound applies yet: only the retention refuses
    // it. Then one now, then one 2.5 days late: within both bounds.
    let calls = [
        call(now - 4 * DAY as i64, 301),
        call(now, 302),
        call(now - 5 * DAY as i64 / 2, 303),
    ];
    let key = Some(b"00411111111".as_slice());
    let messages: Vec<_> = calls.iter().map(|c| (key, Some(c.as_bytes()))).collect();
    produce_raw(&bootstrap, &names.calls, &messages);
    db.wait_for_offsets(&names.group, 3, Duration::from_secs(30))
        .await;
    let stored: Vec<i64> =
        (db.column("SELECT duration_ms FROM long_calls ORDER BY start_time")).await;
    assert_eq!(stored, [303_000, 302_000]);
    let out_of_range = format!(
        r#"aggregator_invalid_events_total{{reason="out_of_range",topic="{}"}}"#,
        names.calls
    );
    assert_eq!(app.metric(&out_of_range).await, 1.0);
    let letters = read_topic(&bootstrap, &names.dlq, 1);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].1.as_deref(), Some(calls[0].as_bytes()));
    // The late call's day has its partition, made by the flush.
    let day = chrono::DateTime::from_timestamp(now - 5 * DAY as i64 / 2, 0).unwrap();
    let name = format!("long_calls_p{}", day.format("%Y%m%d"));
    assert!(
        partitions_of(&db, "long_calls").await.contains(&name),
        "{name}"
    );
    app.stop().await;
}

/// Rows per table and a sum of one column, as the test reads them.
async fn tally(db: &TestDb, table: &str, column: &str, since: &str) -> (i64, f64) {
    let key = match table {
        "long_calls" => "start_time",
        "system_metrics" | "probe_results" => "time",
        "alerts" => "received_at",
        _ => "window_start",
    };
    let sql = format!(
        "SELECT count(*), coalesce(sum({column}::numeric), 0)::float8 FROM {table} \
         WHERE {key} >= now() - interval '{since}'"
    );
    let row = db.client.query_one(&sql, &[]).await.unwrap();
    (row.get(0), row.get(1))
}

/// The previous schema's tables, what the test compares, and since when it is kept.
const TALLIED: [(&str, &str, &str); 7] = [
    ("long_calls", "duration_ms", "7 days"),
    ("system_metrics", "value", "7 days"),
    ("probe_results", "response_time_seconds", "7 days"),
    ("alerts", "id", "400 days"),
    ("call_stats_1m", "calls", "35 days"),
    ("host_metrics_1m", "samples", "35 days"),
    ("probe_stats_1m", "checks", "35 days"),
];

/// Fills the previous schema (migrations up to 8) with `rows` raw rows over the last two
/// days, windows over the last 40 days, and raw rows 20 days old (past the raw retention).
async fn fill_previous_schema(db: &TestDb, rows: i64) {
    // Window rows over the last 30 days and 38 to 40 days ago: none near the 35 days of the
    // minutes' retention, which the comparison would race with.
    let sql = format!(
        "CREATE FUNCTION pg_temp.windows(step int) RETURNS SETOF int LANGUAGE sql AS
             'SELECT generate_series(0, 30 * 1440, step)
              UNION ALL SELECT generate_series(38 * 1440, 40 * 1440, step)';
         INSERT INTO long_calls (topic, partition, kafka_offset, caller, callee, start_time,
                                 duration_ms)
         SELECT 'calls', (g % 3)::int, g, 'a' || g % 97, 'b', now() - (g % 172800) * interval '1 s',
                60000 + g % 1000
         FROM generate_series(1, {half}) g;
         INSERT INTO system_metrics (time, host, metric, device, value, unit)
         SELECT now() - (g % 172800) * interval '1 s', 'h' || g % 7, 'cpu', '', g % 100, 'ratio'
         FROM generate_series(1, {quarter}) g;
         INSERT INTO probe_results (time, url, method, result, status, response_time_seconds,
                                    body_bytes, redirects)
         SELECT now() - (g % 172800) * interval '1 s', 'https://x' || g % 5 || '.test/', 'GET',
                'ok', 200, (g % 100) / 100.0, 10, 0
         FROM generate_series(1, {quarter}) g;
         INSERT INTO system_metrics (time, host, metric, device, value, unit)
         SELECT now() - interval '20 days' - g * interval '1 s', 'old', 'cpu', '', 1, 'ratio'
         FROM generate_series(1, 100) g;
         INSERT INTO alerts (receiver, status, alertname, fingerprint, labels, annotations,
                             starts_at, generator_url, received_at)
         SELECT 'r', 'firing', 'A', 'f', '{{}}', '{{}}', now(), 'u', now() - g * interval '1 day'
         FROM generate_series(0, 20) g;
         INSERT INTO call_stats_1m
             (window_start, window_secs, calls, duration_sum_ms, duration_min_ms,
              duration_max_ms, long_calls)
         SELECT to_timestamp(floor(extract(epoch FROM now()) / 60) * 60 - g * 60), 60,
                1 + g % 5, 1000 * (1 + g % 5), 1000, 1000, g % 2
         FROM pg_temp.windows(7) g;
         INSERT INTO host_metrics_1m
             (host, metric, device, window_start, window_secs, unit, samples, sum, min, max,
              last_time, last)
         SELECT 'h', 'cpu', '', to_timestamp(floor(extract(epoch FROM now()) / 60) * 60 - g * 60),
                60, 'ratio', 2, 2 * (g % 10), g % 10, g % 10,
                to_timestamp(floor(extract(epoch FROM now()) / 60) * 60 - g * 60 + 30), g % 10
         FROM pg_temp.windows(11) g;
         INSERT INTO probe_stats_1m
             (url, window_start, window_secs, checks, ok, timeouts, dns_errors, connect_errors,
              tls_errors, http_status_errors, regex_mismatches, body_errors,
              latency_sum_seconds, latency_min_seconds, latency_max_seconds)
         SELECT 'https://x.test/', to_timestamp(floor(extract(epoch FROM now()) / 60) * 60 - g * 60),
                60, 4, 3, 1, 0, 0, 0, 0, 0, 0, 1.0, 0.25, 0.25
         FROM pg_temp.windows(13) g;",
        half = rows / 2,
        quarter = rows / 4,
    );
    db.client.batch_execute(&sql).await.unwrap();
}

/// `FLEET_UPGRADE_ROWS` raw rows (default 40,000; docs/benchmarks.md runs 10,000,000): the
/// time taken is printed.
#[tokio::test]
async fn a_database_of_the_previous_schema_is_upgraded_in_place_without_losing_a_row() {
    let rows: i64 = std::env::var("FLEET_UPGRADE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let Setup(names, bootstrap, db) = setup(1).await;
    let _pool = migrated(&db, 8).await;
    let filled = Instant::now();
    fill_previous_schema(&db, rows).await;
    println!("filled {rows} raw rows in {:?}", filled.elapsed());
    let mut before = Vec::new();
    for (table, column, since) in TALLIED {
        before.push(tally(&db, table, column, since).await);
    }
    let hours_before = tally(&db, "call_stats_1m", "calls", "400 days").await;

    let started = Instant::now();
    let app = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;
    // New calls flushed while the rows move: windows of the same minutes merge.
    let calls = produce_calls(&bootstrap, &names.calls, 3_000, 11);
    let within = Duration::from_secs(60 + (rows / 20_000) as u64);
    app.wait_metric_where("aggregator_maintenance_runs_total", within, |v| v >= 1.0)
        .await;
    loop {
        let legacy: i64 = db
            .client
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_legacy' AND relkind = 'r'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if legacy == 0 {
            break;
        }
        assert!(
            started.elapsed() < within,
            "{legacy} legacy tables left after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved = started.elapsed();
    db.wait_for_offsets(&names.group, 3_000, within).await;
    println!(
        "upgraded in place: {rows} raw rows moved in {moved:?} ({} rows/s), while flushing",
        (rows as f64 / moved.as_secs_f64()) as i64
    );
    app.stop().await;

    for ((table, column, since), was) in TALLIED.iter().zip(before) {
        let (count, sum) = tally(&db, table, column, since).await;
        match *table {
            "long_calls" => assert_eq!(count, was.0 + calls.long_calls, "{table}: rows"),
            "call_stats_1m" => assert_eq!(sum, was.1 + calls.calls as f64, "{table}: calls"),
            _ => assert_eq!((count, sum), was, "{table}: (rows, sum of {column})"),
        }
    }
    // Past the raw retention: not moved.
    let old = db
        .client
        .query_one(
            "SELECT count(*) FROM system_metrics WHERE host = 'old'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(old, 0);
    // The hours hold every minute within their retention, the moved and the flushed.
    let hours = tally(&db, "call_stats_1h", "calls", "401 days").await;
    assert_eq!(
        hours.1,
        hours_before.1 + calls.calls as f64,
        "call_stats_1h"
    );
    let alerts_id: i64 = db
        .client
        .query_one("SELECT nextval('alerts_id_seq')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(alerts_id > 21, "the alerts' ids continue");
}
