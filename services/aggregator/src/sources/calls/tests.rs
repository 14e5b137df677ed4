use std::borrow::Cow;

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
fn calls_add_into_their_own_window_including_late_ones() {
    let mut batch = Calls::default();
    batch.record_call(&RULES, &call(120_500, 10_000), (0, 0, 0));
    batch.record_call(&RULES, &call(150_000, 70_000), (0, 0, 1));
    batch.record_call(&RULES, &call(5_000, 1_000), (0, 0, 2)); // late: an earlier window
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
    let mut batch = Calls::default();
    batch.record_call(&RULES, &call(0, 60_000), (0, 3, 10));
    batch.record_call(&RULES, &call(0, 60_001), (0, 3, 11));
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
