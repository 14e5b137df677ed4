use chrono::DateTime;
use fleet::events::{HostValue, Unit};

use super::*;

const RULES: Rules = Rules {
    window_secs: 60,
    long_call_threshold_ms: 60_000,
};

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
    let mut batch = Hosts::default();
    // Out of order within the window: the later time wins `last`, whatever the arrival order.
    batch.record_sample(&RULES, sample("h", 70_000, &[("cpu", "", 30.0)]));
    batch.record_sample(&RULES, sample("h", 61_000, &[("cpu", "", 10.0)]));
    batch.record_sample(
        &RULES,
        sample("h", 65_000, &[("cpu", "", 20.0), ("cpu", "c0", 5.0)]),
    );
    batch.record_sample(&RULES, sample("h", 125_000, &[("cpu", "", 50.0)]));
    batch.record_sample(&RULES, sample("other", 61_000, &[("cpu", "", 1.0)]));
    assert_eq!(batch.samples.len(), 5);
    assert_eq!(batch.values, 6);
    assert_eq!(batch.messages(), 5);
    let windows = batch.sorted_windows();
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
    let mut batch = Hosts::default();
    for s in &samples {
        batch.record_sample(&RULES, s.clone());
    }
    let from_batch: Vec<_> = batch
        .sorted_windows()
        .into_iter()
        .map(|(k, w)| (k.clone(), *w))
        .collect();
    assert_eq!(windows_of(RULES.window_secs, &samples), from_batch);
    // Without the second sample (a duplicate the flush dropped): only the first one's value.
    let kept = windows_of(RULES.window_secs, [&samples[0], &samples[2]]);
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
