use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_samples_land_once_in_both_tables_beside_calls_and_bad_ones_go_to_the_dlq() {
    let Spawned(names, bootstrap, db, app) = spawn_app().partitions(2).await;

    let hosts = produce_host_samples(&bootstrap, &names.hosts, 600, 7);
    let calls = produce_calls(&bootstrap, &names.calls, 1_000, 7);
    // A window whose statistics are known exactly: three samples, out of order.
    let window = (chrono::Utc::now().timestamp() / 60 - 2) * 60;
    let at = |secs: i64, value: f64| {
        let time = chrono::DateTime::from_timestamp(window + secs, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        format!(
            r#"{{"schema_version":1,"host":"exact","time":"{time}","metrics":[{{"metric":"load_1","value":{value},"unit":"tasks"}}]}}"#
        )
    };
    let exact = [at(30, 2.0), at(50, 4.0), at(10, 9.0)];
    let bad: [(&[u8], &str); 4] = [
        (b"not json", "not_json"),
        (
            br#"{"schema_version":1,"host":"","time":"2026-01-01T00:00:00Z","metrics":[]}"#,
            "invalid_value",
        ),
        (br#"{"schema_version":9}"#, "unsupported_version"),
        (
            br#"{"schema_version":1,"host":"h","time":"1999-01-01T00:00:00Z","metrics":[{"metric":"m","value":1,"unit":"count"}]}"#,
            "out_of_range",
        ),
    ];
    let mut messages: Vec<(Option<&[u8]>, Option<&[u8]>)> = Vec::new();
    for m in &exact {
        messages.push((Some(b"exact"), Some(m.as_bytes())));
    }
    for (payload, _) in &bad {
        messages.push((Some(b"bad"), Some(payload)));
    }
    produce_raw(&bootstrap, &names.hosts, &messages);

    let total = 600 + 1_000 + messages.len() as i64;
    db.wait_for_offsets(&names.group, total, Duration::from_secs(60))
        .await;
    assert_stored_exactly(&db, calls).await;
    let with_exact = HostExpected {
        samples: hosts.samples + 3,
        values: hosts.values + 3,
        value_sum: hosts.value_sum + 15.0,
    };
    assert_hosts_stored_exactly(&db, with_exact).await;

    let row = db
        .client
        .query_one(
            "SELECT samples, sum, min, max, last, unit, extract(epoch FROM last_time)::bigint \
             FROM host_metrics_1m WHERE host = 'exact' AND metric = 'load_1' AND device = ''",
            &[],
        )
        .await
        .unwrap();
    let got: (i64, f64, f64, f64, f64, String, i64) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
    );
    assert_eq!(got, (3, 15.0, 2.0, 9.0, 4.0, "tasks".into(), window + 50));

    let letters = read_topic(&bootstrap, &names.dlq, bad.len());
    let mut reasons: Vec<String> = letters
        .iter()
        .map(|(headers, _)| {
            assert_eq!(headers["fleet.dlq.source.topic"], names.hosts);
            headers["fleet.dlq.reason"].clone()
        })
        .collect();
    reasons.sort();
    let mut want: Vec<String> = bad.iter().map(|(_, r)| (*r).to_string()).collect();
    want.sort();
    assert_eq!(reasons, want);
    for (_, reason) in &bad {
        let name = format!(
            r#"aggregator_invalid_events_total{{reason="{reason}",topic="{}"}}"#,
            names.hosts
        );
        assert_eq!(app.metric(&name).await, 1.0, "{name}");
    }
    app.wait_metric(
        "aggregator_host_samples_total",
        603.0,
        Duration::from_secs(5),
    )
    .await;
    let consumed = format!(
        r#"aggregator_events_consumed_total{{topic="{}"}}"#,
        names.hosts
    );
    assert_eq!(app.metric(&consumed).await, 607.0);
    app.stop().await;
}

/// host-metrics re-sends a sample whose delivery timed out; when Kafka had written it after
/// all, the same sample arrives as two messages. It is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_sample_carried_by_several_messages_is_stored_once() {
    let Spawned(names, bootstrap, db, app) = spawn_app().partitions(2).await;

    let window = (chrono::Utc::now().timestamp() / 60 - 2) * 60;
    let sample = |host: &str, millis: i64, value: f64| {
        let time = chrono::DateTime::from_timestamp_millis(window * 1000 + millis)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        format!(
            r#"{{"schema_version":1,"host":"{host}","time":"{time}","metrics":[{{"metric":"load_1","value":{value},"unit":"tasks"}},{{"metric":"cpu_usage","value":50,"unit":"percent"}}]}}"#
        )
    };
    let first = sample("dup", 10_250, 1.5);
    let same_time_other_host = sample("other", 10_250, 7.0);
    let later = sample("dup", 20_250, 2.5);

    // Twice in one flush, and a third time in a later one.
    let batch: Vec<(Option<&[u8]>, Option<&[u8]>)> = [&first, &first, &same_time_other_host]
        .iter()
        .map(|m| (Some(&b"dup"[..]), Some(m.as_bytes())))
        .collect();
    produce_raw(&bootstrap, &names.hosts, &batch);
    db.wait_for_offsets(&names.group, 3, Duration::from_secs(30))
        .await;
    let again: Vec<(Option<&[u8]>, Option<&[u8]>)> = [&first, &later]
        .iter()
        .map(|m| (Some(&b"dup"[..]), Some(m.as_bytes())))
        .collect();
    produce_raw(&bootstrap, &names.hosts, &again);
    db.wait_for_offsets(&names.group, 5, Duration::from_secs(30))
        .await;

    let rows = |sql: &'static str| {
        let client = &db.client;
        async move { client.query_one(sql, &[]).await.unwrap() }
    };
    let raw = rows(
        "SELECT count(*), sum(value) FROM system_metrics WHERE host = 'dup' AND metric = 'load_1'",
    )
    .await;
    assert_eq!((raw.get::<_, i64>(0), raw.get::<_, f64>(1)), (2, 4.0));
    let other = rows("SELECT count(*) FROM system_metrics WHERE host = 'other'").await;
    assert_eq!(
        other.get::<_, i64>(0),
        2,
        "same time, other host: its own sample"
    );
    let windowed =
        rows("SELECT samples, sum FROM host_metrics_1m WHERE host = 'dup' AND metric = 'load_1'")
            .await;
    assert_eq!(
        (windowed.get::<_, i64>(0), windowed.get::<_, f64>(1)),
        (2, 4.0)
    );
    app.wait_metric(
        "aggregator_duplicate_host_samples_total",
        2.0,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(app.metric("aggregator_host_samples_total").await, 3.0);
    app.stop().await;
}

/// The hosts source's own maintenance hook, as the core calls it every 10 minutes: it forgets
/// the stored sample keys a re-sent copy could no longer match (older than the stream's
/// watermark by the lateness limit and an hour), and keeps the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_forgets_only_the_sample_keys_too_old_to_match() {
    use aggregator::part::Maintenance;
    use aggregator::sources::Source;

    let db = TestDb::create().await;
    let pool =
        aggregator::store::connect_pool(&db.url, 1, aggregator::store::Timeouts::DEFAULT).unwrap();
    aggregator::store::migrate(&pool).await.unwrap();
    // The stream's watermark is two days behind the clock (a backlog being replayed): keys
    // are judged against it, not the clock.
    let watermark = chrono::Utc::now() - chrono::Duration::days(2);
    let lateness = Duration::from_secs(86_400);
    // 1 day + 1 hour + a minute behind the watermark: forgotten; 1 day + 59 minutes: kept.
    for (host, age_secs) in [("old", 86_400 + 3_660), ("recent", 86_400 + 3_540)] {
        let time = watermark - chrono::Duration::seconds(age_secs);
        db.client
            .execute(
                "INSERT INTO host_samples_seen (host, time) VALUES ($1, $2)",
                &[&host, &time],
            )
            .await
            .unwrap();
    }
    let hosts = |watermark| Maintenance {
        pool: &pool,
        watermark,
        max_lateness: lateness,
    };
    let kept = async || -> Vec<String> {
        (db.client)
            .query("SELECT host FROM host_samples_seen ORDER BY host", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    // A partition without a watermark accepts any time: nothing may go.
    for source in Source::ALL {
        source.part().maintain(&hosts(None)).await.unwrap();
    }
    assert_eq!(kept().await, ["old", "recent"]);
    for source in Source::ALL {
        source
            .part()
            .maintain(&hosts(Some(watermark)))
            .await
            .unwrap();
    }
    let kept = kept().await;
    assert_eq!(kept, ["recent"]);
}
