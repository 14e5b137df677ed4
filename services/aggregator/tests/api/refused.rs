//! Rows PostgreSQL refuses for their data: the messages responsible are dead-lettered with the
//! SQLSTATE, everything else is stored exactly once, and the pipeline goes on.

use std::time::Duration;

use aggregator::store::{Timeouts, connect_pool, migrate};

use crate::helpers::*;

/// A legacy long call (95 s) to `callee`, now.
fn long_call(callee: &str) -> String {
    let t = chrono::Utc::now().timestamp();
    format!(
        r#"{{"called_phone_number":"{callee}","start_call_epoch_time":{t},"call_duration":95}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_postgresql_refuses_are_dead_lettered_and_the_rest_stored_once() {
    let Setup(names, bootstrap, db) = setup(1).await;
    // A rule the decoder cannot know, as an operator might add one: PostgreSQL refuses these
    // rows (check_violation, 23514) however often the flush is tried.
    let pool = connect_pool(&db.url, 1, Timeouts::DEFAULT).unwrap();
    migrate(&pool).await.unwrap();
    db.client
        .batch_execute(
            "ALTER TABLE long_calls ADD CONSTRAINT no_test_callee CHECK (callee <> '00419999999')",
        )
        .await
        .unwrap();
    let (good, bad) = (long_call("00412222222"), long_call("00419999999"));
    // And one the decoder rejects: the isolation replays it too, and must not send it again.
    let (refused_at, not_json) = ([7_usize, 22], 15);
    let payloads: Vec<&str> = (0..30)
        .map(|i| match i {
            i if refused_at.contains(&i) => bad.as_str(),
            i if i == not_json => "{not json",
            _ => good.as_str(),
        })
        .collect();
    let key = Some(b"00411111111".as_slice());
    let messages: Vec<_> = payloads.iter().map(|p| (key, Some(p.as_bytes()))).collect();
    // Produced before the aggregator starts: one batch holds the good and the refused.
    produce_raw(&bootstrap, &names.calls, &messages);

    let app = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;
    db.wait_for_offsets(&names.group, 30, Duration::from_secs(60))
        .await;
    assert_eq!(db.window_totals().await, (27, 27 * 95_000, 27));
    assert_eq!(db.long_call_rows().await, 27);

    let letters = read_topic(&bootstrap, &names.dlq, 3);
    let mut offsets: Vec<String> = letters
        .iter()
        .filter(|(headers, _)| headers["fleet.dlq.reason"] != "not_json")
        .map(|(headers, payload)| {
            assert_eq!(headers["fleet.dlq.reason"], "rejected_by_database");
            assert_eq!(headers["fleet.dlq.sqlstate"], "23514");
            assert_eq!(
                payload.as_deref(),
                Some(bad.as_bytes()),
                "letters unchanged"
            );
            headers["fleet.dlq.source.offset"].clone()
        })
        .collect();
    offsets.sort();
    assert_eq!(offsets, ["22", "7"]);
    let refused = format!(
        r#"aggregator_invalid_events_total{{reason="rejected_by_database",topic="{}"}}"#,
        names.calls
    );
    assert_eq!(app.metric(&refused).await, 2.0);

    // And the pipeline goes on.
    let more: Vec<_> = (0..5).map(|_| (key, Some(good.as_bytes()))).collect();
    produce_raw(&bootstrap, &names.calls, &more);
    db.wait_for_offsets(&names.group, 35, Duration::from_secs(30))
        .await;
    assert_eq!(db.long_call_rows().await, 32);
    app.wait_metric("health_status", 1.0, Duration::from_secs(10))
        .await;
    // Exactly three letters: the refused flush and its halves sent none twice.
    assert_eq!(topic_end(&bootstrap, &names.dlq), 3);
    app.stop().await;
}
