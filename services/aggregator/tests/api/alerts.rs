//! `POST /alerts` against a real PostgreSQL: Alertmanager's notifications land in `alerts`.

use std::time::{Duration, Instant};

use testkit::service::Service;

use crate::helpers::*;

/// Shaped as Alertmanager 0.25 posts it (webhook payload version 4).
fn notification(status: &str, ends_at: &str) -> String {
    format!(
        r#"{{"receiver":"oncall","status":"{status}","version":"4","groupKey":"{{}}:{{}}",
        "groupLabels":{{}},"commonLabels":{{}},"commonAnnotations":{{}},"externalURL":"http://am",
        "alerts":[{{"status":"{status}",
          "labels":{{"alertname":"FleetServiceDown","service":"call-simulator","severity":"critical"}},
          "annotations":{{"summary":"call-simulator is down"}},
          "startsAt":"2026-11-23T10:00:00Z","endsAt":"{ends_at}",
          "generatorURL":"http://prometheus/graph","fingerprint":"abc"}}]}}"#
    )
}

async fn post(app: &TestApp, body: String) -> (u16, String) {
    post_with(app, body, None).await
}

/// `POST /alerts` with `authorization` as the Authorization header, if any.
async fn post_with(app: &TestApp, body: String, authorization: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/alerts", app.port))
        .header("content-type", "application/json")
        .body(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Posts a firing notification until it is stored: until the migrations ran the insert fails
/// with 503, which Alertmanager retries.
async fn post_firing_once_ready(app: &TestApp, authorization: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let firing = notification("firing", "0001-01-01T00:00:00Z");
        let (status, body) = post_with(app, firing, authorization).await;
        if status == 200 {
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never stored: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stored_alerts(db: &TestDb) -> i64 {
    db.client
        .query_one("SELECT count(*) FROM alerts", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_notifications_are_stored_and_garbage_is_refused() {
    let Spawned(_, _, db, app) = spawn_app().await;

    post_firing_once_ready(&app, None).await;
    let (status, _) = post(&app, notification("resolved", "2026-11-23T10:05:00Z")).await;
    assert_eq!(status, 200);

    let rows = db
        .client
        .query(
            "SELECT status, alertname, severity, service, labels->>'service', \
             annotations->>'summary', ends_at IS NULL FROM alerts ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String, String, String, String, String, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect();
    let row = |status: &str, open: bool| {
        (
            status.to_string(),
            "FleetServiceDown".to_string(),
            "critical".to_string(),
            "call-simulator".to_string(),
            "call-simulator".to_string(),
            "call-simulator is down".to_string(),
            open,
        )
    };
    assert_eq!(rows, vec![row("firing", true), row("resolved", false)]);

    let (status, body) = post(&app, "{not json".to_string()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&app, notification("pending", "0001-01-01T00:00:00Z")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("pending"), "{body}");
    let count: i64 = db
        .client
        .query_one("SELECT count(*) FROM alerts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "refused notifications store nothing");

    // A NUL (JSON carries it, PostgreSQL's text and jsonb refuse it) is stored as U+FFFD.
    let with_nul = notification("firing", "0001-01-01T00:00:00Z")
        .replace("call-simulator is down", "down\\u0000now")
        .replace(r#""fingerprint":"abc""#, r#""fingerprint":"a\u0000b""#);
    let (status, body) = post(&app, with_nul).await;
    assert_eq!(status, 200, "{body}");
    let row = db
        .client
        .query_one(
            "SELECT annotations->>'summary', fingerprint FROM alerts ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("down\u{FFFD}now".to_string(), "a\u{FFFD}b".to_string())
    );
    // Any other value PostgreSQL refuses is a 400 (retrying cannot help), in our words.
    db.client
        .batch_execute(
            "ALTER TABLE alerts ADD CONSTRAINT no_test_alert CHECK (fingerprint <> 'refused')",
        )
        .await
        .unwrap();
    let refused = notification("firing", "0001-01-01T00:00:00Z")
        .replace(r#""fingerprint":"abc""#, r#""fingerprint":"refused""#);
    let (status, body) = post(&app, refused).await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "the notification holds a value that cannot be stored\n"
        )
    );

    assert_eq!(
        app.metric(r#"aggregator_alerts_received_total{status="firing"}"#)
            .await,
        2.0
    );
    assert_eq!(
        app.metric(r#"aggregator_alerts_received_total{status="resolved"}"#)
            .await,
        1.0
    );
    assert_eq!(
        app.metric(r#"aggregator_alerts_refused_total{reason="rejected"}"#)
            .await,
        3.0
    );
    app.stop().await;
}

const TOKEN: &str = "alerts-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_only_its_bearer_stores_and_a_body_above_the_limit_is_refused() {
    let Spawned(_, _, db, app) = spawn_app()
        .args(["--alerts-token", TOKEN, "--alerts-max-body-bytes", "4096"])
        .await;
    let bearer = format!("Bearer {TOKEN}");

    // The right token: stored.
    post_firing_once_ready(&app, Some(&bearer)).await;

    // No token, a wrong one, the right one without its scheme, another scheme: 401 each.
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for authorization in [
        None,
        Some(wrong.as_str()),
        Some(TOKEN),
        Some(basic.as_str()),
    ] {
        let resolved = notification("resolved", "2026-11-23T10:05:00Z");
        let (status, body) = post_with(&app, resolved, authorization).await;
        assert_eq!(status, 401, "{authorization:?}: {body}");
    }
    let unauthorized = r#"aggregator_alerts_refused_total{reason="unauthorized"}"#;
    assert_eq!(app.metric(unauthorized).await, 4.0);

    // Above 4096 bytes (a valid notification after 5,000 spaces): 413, with the right token.
    let large = format!(
        "{}{}",
        " ".repeat(5_000),
        notification("resolved", "2026-11-23T10:05:00Z")
    );
    let (status, body) = post_with(&app, large, Some(&bearer)).await;
    assert_eq!(status, 413, "{body}");
    let oversize = r#"aggregator_alerts_refused_total{reason="oversize"}"#;
    assert_eq!(app.metric(oversize).await, 1.0);

    // Only the first notification was stored.
    assert_eq!(stored_alerts(&db).await, 1);
    let resolved = r#"aggregator_alerts_received_total{status="resolved"}"#;
    assert_eq!(app.metric(resolved).await, 0.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_endpoint_is_warned_about_once_and_a_weak_token_stops_the_start() {
    let Setup(names, bootstrap, db) = setup(1).await;
    let kafka = [("KAFKA_BOOTSTRAP_SERVERS", bootstrap)];

    let open = Service::start("aggregator", crate::fleet::env(&names, &db, &kafka, &[]));
    open.wait_metric(
        "aggregator_assigned_partitions",
        Duration::from_secs(30),
        |v| v > 0.0,
    );
    let warning = "ALERTS_TOKEN is not set";
    assert_eq!(
        open.log_text().matches(warning).count(),
        1,
        "{}",
        open.log_text()
    );
    assert!(open.terminate(Duration::from_secs(15)).success());

    let weak = "weak-secret";
    let own = [("ALERTS_TOKEN", weak.to_string())];
    let refused = Service::start("aggregator", crate::fleet::env(&names, &db, &kafka, &own));
    assert_eq!(refused.wait_exit(Duration::from_secs(10)).code(), Some(2));
    let log = refused.log_text();
    assert!(
        log.contains("ALERTS_TOKEN is shorter than 16 characters"),
        "{log}"
    );
    assert!(!log.contains(weak), "the token reached the log: {log}");
}
