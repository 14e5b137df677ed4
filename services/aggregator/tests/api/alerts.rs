//! `POST /alerts` against a real PostgreSQL: Alertmanager's notifications land in `alerts`.

use std::time::{Duration, Instant};

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
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/alerts", app.port))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_notifications_are_stored_and_garbage_is_refused() {
    let names = Names::new();
    let bootstrap = broker(&names, 1);
    let db = TestDb::create().await;
    let app = TestApp::spawn(args(&bootstrap, &db.url, &names)).await;

    // Until migrations ran the insert fails: 503, which Alertmanager retries. Wait for 200.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = post(&app, notification("firing", "0001-01-01T00:00:00Z")).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never stored: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

    assert_eq!(
        app.metric(r#"aggregator_alerts_received_total{status="firing"}"#)
            .await,
        1.0
    );
    assert_eq!(
        app.metric(r#"aggregator_alerts_received_total{status="resolved"}"#)
            .await,
        1.0
    );
    assert_eq!(
        app.metric(r#"aggregator_alerts_received_total{status="rejected"}"#)
            .await,
        2.0
    );
    app.stop().await;
}
