use super::*;
use crate::part::{Ingest, Message};
use crate::rules::Rules;

const RULES: Rules = Rules {
    window_secs: 60,
    long_call_threshold_ms: 60_000,
};

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
        sqlstate: None,
        key: None,
        payload: Some(vec![0; 1000]),
    });
    assert!(batch.approx_bytes() >= before + 1000);
    let mid = batch.approx_bytes();
    let long_call = br#"{"called_phone_number":"00412222222","start_call_epoch_time":1000,"call_duration":100}"#;
    let message = Message {
        partition: 0,
        offset: 1,
        key: Some(b"00411111111"),
        payload: Some(long_call),
    };
    let cx = Ingest {
        rules: RULES,
        max_message_bytes: 65_536,
        max_lateness_ms: 60_000,
        now_ms: 1_000_000,
    };
    batch.record(Source::Calls, &message, &cx).unwrap();
    assert!(batch.approx_bytes() > mid);
}
