use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::*;

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_reaches_the_dlq_and_valid_messages_around_it_are_counted() {
    let Spawned(names, bootstrap, db, app) = spawn_app().await;

    let t = now_secs();
    let legacy_a = format!(
        r#"{{"called_phone_number":"00412222222","start_call_epoch_time":{t},"call_duration":95}}"#
    );
    let legacy_b = format!(
        r#"{{"key":"00413333333","value":{{"called_phone_number":"00414444444","start_call_epoch_time":{t},"call_duration":30}}}}"#
    );
    let legacy_c = serde_json::to_string(&legacy_a).unwrap();
    let old = format!(
        r#"{{"called_phone_number":"1","start_call_epoch_time":{},"call_duration":5}}"#,
        t - 2 * 86_400
    );
    let future = format!(
        r#"{{"called_phone_number":"1","start_call_epoch_time":{},"call_duration":5}}"#,
        t + 3600
    );
    let negative =
        format!(r#"{{"called_phone_number":"1","start_call_epoch_time":{t},"call_duration":-4}}"#);
    let absurd =
        format!(r#"{{"called_phone_number":"1","start_call_epoch_time":{t},"call_duration":1e9}}"#);
    let wrong_type = format!(
        r#"{{"called_phone_number":"1","start_call_epoch_time":{t},"call_duration":"95"}}"#
    );
    let oversize = vec![b'x'; 70 * 1024];
    let key = Some(b"00411111111".as_slice());
    let bad: Vec<(&[u8], &str)> = vec![
        (b"\x00\x01garbage", "not_json"),
        (b"{\"truncated\":", "not_json"),
        (wrong_type.as_bytes(), "wrong_type"),
        (b"[1,2,3]", "wrong_type"),
        (b"{\"call_duration\":5}", "missing_field"),
        (b"{\"schema_version\":2}", "unsupported_version"),
        (negative.as_bytes(), "invalid_duration"),
        (absurd.as_bytes(), "invalid_duration"),
        (old.as_bytes(), "out_of_range"),
        (future.as_bytes(), "out_of_range"),
        (&oversize, "oversize"),
    ];
    // valid, bad, valid, bad, ... then the tombstone (no payload) and three legacy formats.
    let mut messages: Vec<(Option<&[u8]>, Option<&[u8]>)> = Vec::new();
    for (payload, _) in &bad {
        messages.push((key, Some(legacy_a.as_bytes())));
        messages.push((key, Some(payload)));
    }
    messages.push((key, None));
    messages.push((None, Some(legacy_b.as_bytes())));
    messages.push((key, Some(legacy_c.as_bytes())));
    produce_raw(&bootstrap, &names.calls, &messages);
    let valid = bad.len() as i64 + 2;

    db.wait_for_offsets(&names.group, messages.len() as i64, Duration::from_secs(60))
        .await;
    let (calls, duration_ms, long_calls) = db.window_totals().await;
    assert_eq!(calls, valid);
    assert_eq!(duration_ms, (bad.len() as i64 + 1) * 95_000 + 30_000);
    assert_eq!(long_calls, bad.len() as i64 + 1);

    // The dead-letter topic holds every bad message, unchanged, with its provenance.
    let mut expected_reasons: HashMap<String, usize> = HashMap::new();
    for (_, reason) in &bad {
        *expected_reasons.entry((*reason).to_string()).or_default() += 1;
    }
    *expected_reasons.entry("empty".into()).or_default() += 1;
    let letters = read_topic(&bootstrap, &names.dlq, bad.len() + 1);
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for (i, (headers, payload)) in letters.iter().enumerate() {
        assert_eq!(headers["fleet.dlq.source.topic"], names.calls);
        assert_eq!(headers["fleet.dlq.source.partition"], "0");
        let reason = headers["fleet.dlq.reason"].clone();
        let offset: usize = headers["fleet.dlq.source.offset"].parse().unwrap();
        match messages[offset].1 {
            Some(original) => {
                assert_eq!(payload.as_deref(), Some(original), "letter {i} unchanged")
            }
            None => assert!(payload.is_none()),
        }
        *reasons.entry(reason).or_default() += 1;
    }
    assert_eq!(reasons, expected_reasons);
    for (reason, count) in &expected_reasons {
        let name = format!(
            r#"aggregator_invalid_events_total{{reason="{reason}",topic="{}"}}"#,
            names.calls
        );
        assert_eq!(app.metric(&name).await, *count as f64, "{name}");
    }
    let dead = format!(
        r#"aggregator_dead_letters_total{{topic="{}"}}"#,
        names.calls
    );
    assert_eq!(app.metric(&dead).await, (bad.len() + 1) as f64);
    app.stop().await;
}
