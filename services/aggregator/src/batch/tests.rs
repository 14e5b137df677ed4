use super::Position;
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
    batch.advance(Source::Calls, 2, 40, || at(40, 9));
    batch.advance(Source::Calls, 2, 41, || {
        unreachable!("asked only once per partition")
    });
    batch.advance(Source::Calls, 5, 0, || Position::START);
    // Same partition number, another topic: its own fence.
    batch.advance(Source::Hosts, 2, 7, || at(7, 8));
    assert_eq!(
        batch.progress,
        vec![
            Progress {
                source: Source::Calls,
                partition: 2,
                expected: 40,
                next: 42,
                watermark_ms: 9,
                topic_id: 3,
            },
            Progress {
                source: Source::Calls,
                partition: 5,
                expected: -1,
                next: 1,
                watermark_ms: i64::MIN,
                topic_id: 0,
            },
            Progress {
                source: Source::Hosts,
                partition: 2,
                expected: 7,
                next: 8,
                watermark_ms: 8,
                topic_id: 3,
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
        topic_id: 0,
        partition: 0,
        offset: 1,
        key: Some(b"00411111111"),
        payload: Some(long_call),
    };
    batch
        .read(Source::Calls, &message, &cx(1_000_000), || Position::START)
        .unwrap();
    assert!(batch.approx_bytes() > mid);
}

fn at(offset: i64, watermark_ms: i64) -> Position {
    Position {
        offset,
        watermark_ms,
        topic_id: 3,
    }
}

/// Lateness 60 s, the clock at `now_ms`.
fn cx(now_ms: i64) -> Ingest {
    Ingest {
        rules: RULES,
        max_message_bytes: 65_536,
        max_lateness_ms: 60_000,
        now_ms,
        watermark_ms: i64::MIN,
        retention_ms: i64::MAX,
    }
}

/// A legacy call message at `offset` starting at `start_secs`.
fn call_at(offset: i64, start_secs: i64) -> (Message<'static>, String) {
    let payload = format!(
        r#"{{"called_phone_number":"00412222222","start_call_epoch_time":{start_secs},"call_duration":5}}"#
    );
    let message = Message {
        topic_id: 0,
        partition: 0,
        offset,
        key: Some(b"00411111111"),
        payload: None,
    };
    (message, payload)
}

/// Reads calls starting at `starts` (seconds) from offset 0 with the clock at `now_ms`; the
/// verdicts, and the partition's watermark after the batch.
fn verdicts(batch: &mut Batch, starts: &[i64], now_ms: i64, fence: Position) -> Vec<bool> {
    (starts.iter().enumerate())
        .map(|(i, start)| {
            let (mut message, payload) = call_at(fence.offset.max(0) + i as i64, *start);
            message.payload = Some(payload.as_bytes());
            batch
                .read(Source::Calls, &message, &cx(now_ms), || fence)
                .is_ok()
        })
        .collect()
}

#[test]
fn lateness_is_judged_against_the_partitions_watermark_not_the_clock() {
    // Two days after the events: a replayed backlog. Nothing is late against its own stream;
    // an event more than 60 s behind the latest one read is.
    let two_days_later = (10_000 + 2 * 86_400) * 1000;
    let mut batch = Batch::default();
    let starts = [10_000, 10_030, 10_100, 10_039, 10_040, 10_200];
    let read = verdicts(&mut batch, &starts, two_days_later, Position::START);
    assert_eq!(read, [true, true, true, false, true, true]);
    assert_eq!(batch.progress[0].watermark_ms, 10_200_000);
    assert_eq!(batch.dead_letters[0].reason, Invalid::OutOfRange);

    // The clock still bounds the future.
    let mut batch = Batch::default();
    let read = verdicts(&mut batch, &[10_000, 10_301], 10_000_000, Position::START);
    assert_eq!(read, [true, false]);
}

#[test]
fn a_restart_from_the_stored_position_judges_as_the_first_read_did() {
    let now = 20_000_000;
    let starts = [10_000, 10_100, 10_030, 10_050];
    let mut whole = Batch::default();
    let first = verdicts(&mut whole, &starts, now, Position::START);
    // Stored after the first two, then the rest read by a restarted instance.
    let mut head = Batch::default();
    let mut verdicts_after = verdicts(&mut head, &starts[..2], now, Position::START);
    let stored = head.progress[0].reached();
    let mut tail = Batch::default();
    verdicts_after.extend(verdicts(&mut tail, &starts[2..], now, stored));
    assert_eq!(first, verdicts_after);
    assert_eq!(first, [true, true, false, true]);
    assert_eq!(whole.progress[0].reached(), tail.progress[0].reached());
}

#[test]
fn a_replayed_range_judges_its_messages_and_leaves_the_watermark_as_the_read_did() {
    let mut batch = Batch::default();
    let read = verdicts(
        &mut batch,
        &[10_000, 10_100, 10_030, 10_050],
        20_000_000,
        at(5, 9_000_000),
    );
    assert_eq!(read, [true, true, false, true]);
    // The second half alone, fenced where the first half would leave the partition.
    let half = batch.replay(2..4, |_, _| 7, None);
    assert_eq!(half.dead_letters.len(), 1, "the late one again");
    assert_eq!(
        half.progress,
        [Progress {
            source: Source::Calls,
            partition: 0,
            expected: 7,
            next: 9,
            watermark_ms: 10_100_000,
            topic_id: 3,
        }]
    );
    assert_eq!(half.messages(), 2);
}
