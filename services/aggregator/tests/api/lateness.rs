//! Lateness is the stream's own: the same input gives the same tables whether it is read live
//! or replayed two days later (after a long outage), and a restart judges as the first run did.

use std::time::Duration;

use crate::helpers::*;

const DAY: i64 = 86_400;

/// A stream of calls over five minutes ending at `end` (seconds), every 60th call 23 h behind
/// (within the lateness of the default 24 h: stored), and one 25 h behind its predecessors
/// (late: dead-lettered). Legacy format, explicit start times.
fn stream(end: i64) -> Vec<String> {
    let mut calls = Vec::new();
    for i in 0..300_i64 {
        let start = if i % 60 == 59 {
            end - 23 * 3600
        } else {
            end - 300 + i
        };
        let duration = 10 + (i * 37) % 190;
        calls.push(format!(
            r#"{{"called_phone_number":"0041{:07}","start_call_epoch_time":{start},"call_duration":{duration}}}"#,
            i
        ));
    }
    calls.push(format!(
        r#"{{"called_phone_number":"00410000001","start_call_epoch_time":{},"call_duration":5}}"#,
        end - 25 * 3600
    ));
    calls
}

fn produce(bootstrap: &str, topic: &str, calls: &[String]) {
    let key = Some(b"00411111111".as_slice());
    let messages: Vec<_> = calls.iter().map(|c| (key, Some(c.as_bytes()))).collect();
    produce_raw(bootstrap, topic, &messages);
}

/// `call_stats_1m` with window starts shifted by `shift` seconds, and the long calls.
async fn tables(db: &TestDb, shift: i64) -> (Vec<(i64, i64, i64, i64, i64, i64)>, i64) {
    let rows = db
        .client
        .query(
            "SELECT extract(epoch FROM window_start)::bigint, calls, duration_sum_ms, \
             duration_min_ms, duration_max_ms, long_calls FROM call_stats_1m ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let windows = rows
        .iter()
        .map(|r| {
            let start: i64 = r.get(0);
            (
                start + shift,
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
            )
        })
        .collect();
    (windows, db.long_call_rows().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_replayed_two_days_later_gives_the_tables_it_gave_live() {
    // Whole minutes, so that shifting by two days maps windows onto windows.
    let end = chrono::Utc::now().timestamp() / 60 * 60;
    let late = |names: &Names| {
        format!(
            r#"aggregator_invalid_events_total{{reason="out_of_range",topic="{}"}}"#,
            names.calls
        )
    };

    let Spawned(live_names, bootstrap, live_db, live) = spawn_app().await;
    let live_stream = stream(end);
    produce(&bootstrap, &live_names.calls, &live_stream);
    live_db
        .wait_for_offsets(
            &live_names.group,
            live_stream.len() as i64,
            Duration::from_secs(60),
        )
        .await;

    // The same stream, produced two days ago and read only now (PostgreSQL was down).
    let Spawned(names, bootstrap, db, replay) = spawn_app().await;
    let replayed = stream(end - 2 * DAY);
    produce(&bootstrap, &names.calls, &replayed);
    db.wait_for_offsets(&names.group, replayed.len() as i64, Duration::from_secs(60))
        .await;

    let live_tables = tables(&live_db, 0).await;
    assert_eq!(live_tables.0.iter().map(|w| w.1).sum::<i64>(), 300);
    assert_eq!(tables(&db, 2 * DAY).await, live_tables);
    assert_eq!(live.metric(&late(&live_names)).await, 1.0);
    assert_eq!(replay.metric(&late(&names)).await, 1.0);
    live.stop().await;
    replay.stop().await;

    // A restart judges as the first run did: the watermark came back with the offsets, so
    // a call 25 h behind the stream is late again (a fresh start would have taken it).
    let again = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;
    let behind = format!(
        r#"{{"called_phone_number":"00410000002","start_call_epoch_time":{},"call_duration":5}}"#,
        end - 2 * DAY - 25 * 3600
    );
    produce(&bootstrap, &names.calls, &[behind]);
    db.wait_for_offsets(
        &names.group,
        replayed.len() as i64 + 1,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(again.metric(&late(&names)).await, 1.0);
    assert_eq!(tables(&db, 2 * DAY).await, live_tables);
    again.stop().await;
}
