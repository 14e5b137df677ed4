use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet::events::{Phases, ProbeOutcome, ProbeResult, TlsInfo};

use crate::helpers::*;

fn result(url: &str, time: DateTime<Utc>, outcome: ProbeOutcome, total: f64) -> ProbeResult {
    let answered = !matches!(
        outcome,
        ProbeOutcome::Timeout | ProbeOutcome::DnsError | ProbeOutcome::ConnectError
    );
    ProbeResult {
        schema_version: 1,
        url: url.into(),
        method: "GET".into(),
        time,
        result: outcome,
        status: answered.then_some(200),
        phases: Phases {
            dns_seconds: Some(0.001),
            connect_seconds: answered.then_some(0.002),
            tls_seconds: None,
            ttfb_seconds: answered.then_some(total / 2.0),
            transfer_seconds: answered.then_some(0.001),
            total_seconds: total,
        },
        body_bytes: 10,
        regex_match: (outcome == ProbeOutcome::RegexMismatch).then_some(false),
        redirects: 1,
        tls: Some(TlsInfo {
            version: "TLSv1.3".into(),
            cert_not_after: DateTime::from_timestamp(1_900_000_000, 0).unwrap(),
        }),
        error: (outcome != ProbeOutcome::Ok).then(|| "boom".to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_results_land_once_raw_and_per_window_and_bad_ones_go_to_the_dlq() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;

    let window = (Utc::now().timestamp() / 60 - 2) * 60;
    let at = |s: i64| DateTime::from_timestamp(window + s, 0).unwrap();
    let results = [
        result("https://a.test/", at(1), ProbeOutcome::Ok, 0.25),
        result("https://a.test/", at(11), ProbeOutcome::Ok, 0.75),
        result("https://a.test/", at(21), ProbeOutcome::Timeout, 5.0),
        result("https://a.test/", at(31), ProbeOutcome::RegexMismatch, 0.5),
        result("https://b.test/", at(1), ProbeOutcome::DnsError, 0.125),
    ];
    let encoded: Vec<Vec<u8>> = results
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    let bad: [&[u8]; 2] = [b"{]", br#"{"schema_version":1,"url":"x"}"#];
    let mut messages: Vec<(Option<&[u8]>, Option<&[u8]>)> = encoded
        .iter()
        .map(|p| (Some(b"k".as_slice()), Some(p.as_slice())))
        .collect();
    for b in bad {
        messages.push((Some(b"k"), Some(b)));
    }
    produce_raw(&bootstrap, &names.probes, &messages);
    db.wait_for_offsets(&names.group, messages.len() as i64, Duration::from_secs(60))
        .await;

    let rows = db
        .client
        .query(
            "SELECT url, result, status, response_time_seconds, ttfb_seconds, regex_match, \
             tls_version, extract(epoch FROM cert_not_after)::bigint, error \
             FROM probe_results ORDER BY url, time",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    let timeout = &rows[2];
    assert_eq!(timeout.get::<_, String>(1), "timeout");
    assert_eq!(
        timeout.get::<_, Option<i32>>(2),
        None,
        "no response: no status"
    );
    assert_eq!(timeout.get::<_, Option<f64>>(4), None, "nor a ttfb");
    assert_eq!(rows[3].get::<_, Option<bool>>(5), Some(false));
    assert_eq!(
        rows[0].get::<_, Option<String>>(6).as_deref(),
        Some("TLSv1.3")
    );
    assert_eq!(rows[0].get::<_, Option<i64>>(7), Some(1_900_000_000));
    assert_eq!(rows[0].get::<_, Option<String>>(8), None);

    let a = db
        .client
        .query_one(
            "SELECT checks, ok, timeouts, regex_mismatches, dns_errors, latency_sum_seconds, \
             latency_min_seconds, latency_max_seconds FROM probe_stats_1m WHERE url = 'https://a.test/'",
            &[],
        )
        .await
        .unwrap();
    let got: (i64, i64, i64, i64, i64, f64, f64, f64) = (
        a.get(0),
        a.get(1),
        a.get(2),
        a.get(3),
        a.get(4),
        a.get(5),
        a.get(6),
        a.get(7),
    );
    assert_eq!(got, (4, 2, 1, 1, 0, 6.5, 0.25, 5.0));
    let b: i64 = db
        .client
        .query_one(
            "SELECT dns_errors FROM probe_stats_1m WHERE url = 'https://b.test/'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(b, 1);
    assert_rollups_match(&db, "probe_stats", PROBE_HOURS).await;

    let letters = read_topic(&bootstrap, &names.dlq, 2);
    let mut reasons: Vec<String> = letters
        .iter()
        .map(|(h, _)| {
            assert_eq!(h["fleet.dlq.source.topic"], names.probes);
            h["fleet.dlq.reason"].clone()
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["missing_field", "not_json"]);
    app.wait_metric(
        "aggregator_probe_results_total",
        5.0,
        Duration::from_secs(5),
    )
    .await;
    app.stop().await;
}
