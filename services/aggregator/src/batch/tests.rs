use std::borrow::Cow;

use chrono::DateTime;
use fleet::events::{HostValue, ProbeOutcome, ProbeResult};

use super::*;

const RULES: Rules = Rules {
    window_secs: 60,
    long_call_threshold_ms: 60_000,
};

fn call(start_ms: i64, duration_ms: i64) -> Call<'static> {
    Call {
        call_id: None,
        caller: Cow::Borrowed("00411111111"),
        callee: Cow::Borrowed("00412222222"),
        start_ms,
        duration_ms,
    }
}

#[test]
fn windows_are_tumbling_and_floor_negative_times() {
    assert_eq!(RULES.window_of(0), 0);
    assert_eq!(RULES.window_of(59_999), 0);
    assert_eq!(RULES.window_of(60_000), 60);
    assert_eq!(RULES.window_of(-1), -60);
    let five = Rules {
        window_secs: 300,
        ..RULES
    };
    assert_eq!(five.window_of(1_700_000_123_456), 1_700_000_100);
}

#[test]
fn calls_add_into_their_own_window_including_late_ones() {
    let mut batch = Batch::default();
    batch.record_call(&RULES, &call(120_500, 10_000), 0, 0);
    batch.record_call(&RULES, &call(150_000, 70_000), 0, 1);
    batch.record_call(&RULES, &call(5_000, 1_000), 0, 2); // late: an earlier window
    assert_eq!(
        batch.sorted_windows(),
        vec![
            (
                0,
                WindowDelta {
                    calls: 1,
                    duration_sum_ms: 1_000,
                    duration_min_ms: 1_000,
                    duration_max_ms: 1_000,
                    long_calls: 0
                }
            ),
            (
                120,
                WindowDelta {
                    calls: 2,
                    duration_sum_ms: 80_000,
                    duration_min_ms: 10_000,
                    duration_max_ms: 70_000,
                    long_calls: 1
                }
            ),
        ]
    );
    assert_eq!((batch.calls, batch.duration_ms), (3, 81_000));
}

#[test]
fn long_means_strictly_longer_than_the_threshold() {
    let mut batch = Batch::default();
    batch.record_call(&RULES, &call(0, 60_000), 3, 10);
    batch.record_call(&RULES, &call(0, 60_001), 3, 11);
    assert_eq!(batch.long_calls.len(), 1);
    assert_eq!(
        (batch.long_calls[0].partition, batch.long_calls[0].offset),
        (3, 11)
    );
}

#[test]
fn merging_deltas_is_order_independent() {
    let a = WindowDelta::single(5, false);
    let b = WindowDelta::single(90_000, true);
    let c = WindowDelta::single(7, false);
    let mut left = a;
    left.merge(&b);
    left.merge(&c);
    let mut right = c;
    right.merge(&a);
    right.merge(&b);
    assert_eq!(left, right);
    assert_eq!(
        left,
        WindowDelta {
            calls: 3,
            duration_sum_ms: 90_012,
            duration_min_ms: 5,
            duration_max_ms: 90_000,
            long_calls: 1
        }
    );
}

#[test]
fn progress_keeps_the_first_fence_and_the_highest_next_offset() {
    let mut batch = Batch::default();
    assert!(batch.is_empty());
    batch.advance(Source::Calls, 2, 40, || 40);
    batch.advance(Source::Calls, 2, 41, || {
        unreachable!("asked only once per partition")
    });
    batch.advance(Source::Calls, 5, 0, || -1);
    // Same partition number, another topic: its own fence.
    batch.advance(Source::Hosts, 2, 7, || 7);
    assert_eq!(
        batch.progress,
        vec![
            Progress {
                source: Source::Calls,
                partition: 2,
                expected: 40,
                next: 42
            },
            Progress {
                source: Source::Calls,
                partition: 5,
                expected: -1,
                next: 1
            },
            Progress {
                source: Source::Hosts,
                partition: 2,
                expected: 7,
                next: 8
            },
        ]
    );
    assert!(!batch.is_empty());
}

#[test]
fn dead_letters_and_long_calls_count_towards_the_memory_budget() {
    let mut batch = Batch::default();
    let before = batch.approx_bytes();
    batch.record_dead_letter(DeadLetter {
        source: Source::Calls,
        partition: 0,
        offset: 0,
        reason: Invalid::NotJson,
        key: None,
        payload: Some(vec![0; 1000]),
    });
    assert!(batch.approx_bytes() >= before + 1000);
    let mid = batch.approx_bytes();
    batch.record_call(&RULES, &call(0, 100_000), 0, 1);
    assert!(batch.approx_bytes() > mid);
}

fn sample(host: &str, time_ms: i64, values: &[(&str, &str, f64)]) -> HostSample {
    HostSample {
        schema_version: 1,
        host: host.into(),
        time: DateTime::from_timestamp_millis(time_ms).unwrap(),
        metrics: values
            .iter()
            .map(|(metric, device, value)| HostValue {
                metric: (*metric).into(),
                device: (*device).into(),
                value: *value,
                unit: Unit::Percent,
            })
            .collect(),
    }
}

#[test]
fn host_values_fold_per_series_and_window_with_the_latest_value_last() {
    let mut batch = Batch::default();
    // Out of order within the window: the later time wins `last`, whatever the arrival order.
    batch.record_host_sample(&RULES, sample("h", 70_000, &[("cpu", "", 30.0)]));
    batch.record_host_sample(&RULES, sample("h", 61_000, &[("cpu", "", 10.0)]));
    batch.record_host_sample(
        &RULES,
        sample("h", 65_000, &[("cpu", "", 20.0), ("cpu", "c0", 5.0)]),
    );
    batch.record_host_sample(&RULES, sample("h", 125_000, &[("cpu", "", 50.0)]));
    batch.record_host_sample(&RULES, sample("other", 61_000, &[("cpu", "", 1.0)]));
    assert_eq!(batch.host_samples.len(), 5);
    assert_eq!(batch.host_values, 6);
    assert_eq!(batch.messages(), 5);
    let windows = batch.sorted_host_windows();
    let keys: Vec<_> = windows
        .iter()
        .map(|(k, _)| (k.host.as_str(), k.device.as_str(), k.window))
        .collect();
    assert_eq!(
        keys,
        [
            ("h", "", 60),
            ("h", "", 120),
            ("h", "c0", 60),
            ("other", "", 60)
        ]
    );
    assert_eq!(
        *windows[0].1,
        HostWindow {
            unit: Unit::Percent,
            samples: 3,
            sum: 60.0,
            min: 10.0,
            max: 30.0,
            last_ms: 70_000,
            last: 30.0,
        }
    );
    assert_eq!(windows[1].1.samples, 1);
}

#[test]
fn the_windows_of_the_samples_a_flush_keeps_are_those_a_batch_of_them_would_hold() {
    let samples = [
        sample("h", 61_000, &[("cpu", "", 10.0), ("disk", "sda", 3.0)]),
        sample("h", 70_000, &[("cpu", "", 30.0)]),
        sample("g", 125_000, &[("cpu", "", 50.0)]),
    ];
    let mut batch = Batch::default();
    for s in &samples {
        batch.record_host_sample(&RULES, s.clone());
    }
    let from_batch: Vec<_> = batch
        .sorted_host_windows()
        .into_iter()
        .map(|(k, w)| (k.clone(), *w))
        .collect();
    assert_eq!(host_windows_of(RULES.window_secs, &samples), from_batch);
    // Without the second sample (a duplicate the flush dropped): only the first one's value.
    let kept = host_windows_of(RULES.window_secs, [&samples[0], &samples[2]]);
    let cpu = kept
        .iter()
        .find(|(k, _)| k.host == "h" && k.metric == "cpu")
        .map(|(_, w)| (w.samples, w.sum))
        .unwrap();
    assert_eq!(cpu, (1, 10.0));
}

#[test]
fn merging_host_windows_is_order_independent() {
    let a = HostWindow::single(Unit::Bytes, 1_000, 4.0);
    let b = HostWindow::single(Unit::Bytes, 2_000, 2.0);
    let (mut ab, mut ba) = (a, b);
    ab.merge(&b);
    ba.merge(&a);
    assert_eq!(ab, ba);
    assert_eq!((ab.last, ab.min, ab.max, ab.sum), (2.0, 2.0, 4.0, 6.0));
}

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
    let mut batch = Batch::default();
    batch.record_probe(&RULES, probe("a", 61_000, ProbeOutcome::Ok, 0.2));
    batch.record_probe(&RULES, probe("a", 62_000, ProbeOutcome::Timeout, 5.0));
    batch.record_probe(&RULES, probe("a", 63_000, ProbeOutcome::Ok, 0.1));
    batch.record_probe(&RULES, probe("a", 121_000, ProbeOutcome::DnsError, 0.01));
    batch.record_probe(&RULES, probe("b", 61_000, ProbeOutcome::RegexMismatch, 0.3));
    assert_eq!(batch.messages(), 5);
    let w = batch.sorted_probe_windows();
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
