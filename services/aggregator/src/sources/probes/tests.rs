use chrono::DateTime;
use fleet::events::{ProbeOutcome, ProbeResult};

use super::*;

const RULES: Rules = Rules {
    window_secs: 60,
    long_call_threshold_ms: 60_000,
};

fn probe(url: &str, time_ms: i64, outcome: ProbeOutcome, seconds: f64) -> ProbeResult {
    ProbeResult {
        schema_version: 1,
        url: url.into(),
        method: "GET".into(),
        time: DateTime::from_timestamp_millis(time_ms).unwrap(),
        result: outcome,
        status: None,
        phases: fleet::events::Phases {
            total_seconds: seconds,
            ..Default::default()
        },
        body_bytes: 0,
        regex_match: None,
        redirects: 0,
        tls: None,
        error: None,
    }
}

#[test]
fn probe_results_count_per_url_window_and_result() {
    let mut batch = Probes::default();
    batch.record_result(&RULES, probe("a", 61_000, ProbeOutcome::Ok, 0.2));
    batch.record_result(&RULES, probe("a", 62_000, ProbeOutcome::Timeout, 5.0));
    batch.record_result(&RULES, probe("a", 63_000, ProbeOutcome::Ok, 0.1));
    batch.record_result(&RULES, probe("a", 121_000, ProbeOutcome::DnsError, 0.01));
    batch.record_result(&RULES, probe("b", 61_000, ProbeOutcome::RegexMismatch, 0.3));
    assert_eq!(batch.messages(), 5);
    let w = batch.sorted_windows();
    let keys: Vec<_> = w.iter().map(|(k, _)| (k.0.as_str(), k.1)).collect();
    assert_eq!(keys, [("a", 60), ("a", 120), ("b", 60)]);
    let a = w[0].1;
    assert_eq!(
        (
            a.checks,
            a.count(ProbeOutcome::Ok),
            a.count(ProbeOutcome::Timeout)
        ),
        (3, 2, 1)
    );
    assert!((a.latency_sum - 5.3).abs() < 1e-9);
    assert_eq!((a.latency_min, a.latency_max), (0.1, 5.0));
    assert_eq!(w[2].1.count(ProbeOutcome::RegexMismatch), 1);
}
