//! Decode + aggregate throughput on one core, in events per second: the consume loop's CPU
//! work per message without the broker. Run with `cargo bench -p aggregator`.
//! Prints the current schema and legacy format (a) side by side.

use std::hint::black_box;
use std::time::Instant;

use aggregator::batch::{Batch, Position};
use aggregator::part::{Ingest, Message};
use aggregator::rules::Rules;
use aggregator::sources::Source;
use call_simulator::generator::CallGenerator;

const N: usize = 1_000_000;

/// Messages are read into batches of `batch` messages (a new batch after each, as a flush
/// takes the batch away): the consume loop flushes at 10,000 (`EAGER_FLUSH_MESSAGES`).
fn run(label: &str, messages: &[(Vec<u8>, Vec<u8>)], now_ms: i64, batch_size: usize) {
    let rules = Rules {
        window_secs: 60,
        long_call_threshold_ms: 60_000,
    };
    // What the consume loop does per message: its fence and watermark, then the source's
    // decoder into the batch.
    let cx = Ingest {
        rules,
        max_message_bytes: 65_536,
        max_lateness_ms: 86_400_000,
        now_ms,
        watermark_ms: i64::MIN,
        retention_ms: 7 * 86_400_000,
    };
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut batch = Batch::default();
        let mut read = 0;
        let started = Instant::now();
        for (offset, (key, payload)) in messages.iter().enumerate() {
            if offset % batch_size == 0 && offset > 0 {
                read += black_box(std::mem::take(&mut batch)).messages();
            }
            let offset = offset as i64;
            let message = Message {
                topic_id: 0,
                partition: 0,
                offset,
                key: Some(key),
                payload: Some(payload),
            };
            let _ = batch.read(Source::Calls, &message, &cx, || Position::START);
        }
        best = best.min(started.elapsed().as_secs_f64());
        let batch = black_box(&batch);
        assert!(batch.dead_letters.is_empty(), "every call valid");
        assert_eq!((read + batch.messages()) as usize, messages.len());
    }
    println!(
        "{label:<28} {:>12.0} events/s per core  ({N} events in batches of {batch_size}, best of 3)",
        N as f64 / best
    );
}

fn main() {
    let now = chrono::Utc::now();
    let origin = now - chrono::TimeDelta::seconds(1_000);
    let mut generator = CallGenerator::new(1_000.0, 120.0, 1, origin);
    let calls: Vec<_> = (0..N).map(|_| generator.next_call().event).collect();
    let current: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.caller.clone().into_bytes(),
                serde_json::to_vec(c).expect("serializable"),
            )
        })
        .collect();
    let legacy: Vec<_> = calls
        .iter()
        .map(|c| {
            let payload = format!(
                r#"{{"called_phone_number":"{}","start_call_epoch_time":{},"call_duration":{}}}"#,
                c.callee,
                c.start_time.timestamp(),
                c.duration_secs.round()
            );
            (c.caller.clone().into_bytes(), payload.into_bytes())
        })
        .collect();
    let now_ms = now.timestamp_millis();
    // One batch of everything, and batches of the consume loop's eager flush size.
    for batch in [N, 10_000] {
        run("decode+aggregate v1", &current, now_ms, batch);
        run("decode+aggregate legacy (a)", &legacy, now_ms, batch);
    }
}
