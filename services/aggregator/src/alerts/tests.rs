use super::*;

/// A notification as Alertmanager 0.25 sends it: one firing alert (no end yet) and one
/// resolved alert.
const SAMPLE: &str = r#"{
  "receiver": "oncall",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "FleetServiceDown", "instance": "call-simulator:6067",
                 "job": "call-simulator", "service": "call-simulator", "severity": "critical"},
      "annotations": {"summary": "call-simulator is down", "runbook": "docs/alerts.md#alert-fleetservicedown"},
      "startsAt": "2026-11-23T10:00:00.123Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
      "fingerprint": "1a2b3c4d5e6f7a8b"
    },
    {
      "status": "resolved",
      "labels": {"alertname": "FleetDeadLetters", "job": "aggregator", "severity": "warning"},
      "annotations": {},
      "startsAt": "2026-11-23T09:00:00Z",
      "endsAt": "2026-11-23T09:30:00Z",
      "generatorURL": "",
      "fingerprint": "ffff"
    }
  ],
  "groupLabels": {"alertname": "FleetServiceDown"},
  "commonLabels": {},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}:{alertname=\"FleetServiceDown\"}",
  "truncatedAlerts": 0
}"#;

fn sample() -> Notification {
    serde_json::from_str(SAMPLE).unwrap()
}

#[test]
fn every_alert_of_a_notification_becomes_a_row() {
    let rows = rows(&sample()).unwrap();
    assert_eq!(rows.len(), 2);
    let firing = &rows[0];
    assert_eq!(firing.receiver, "oncall");
    assert_eq!(firing.status, AlertStatus::Firing);
    assert_eq!(firing.alertname, "FleetServiceDown");
    assert_eq!(firing.severity.as_deref(), Some("critical"));
    assert_eq!(firing.service.as_deref(), Some("call-simulator"));
    assert_eq!(firing.fingerprint, "1a2b3c4d5e6f7a8b");
    assert_eq!(firing.starts_at.timestamp_millis(), 1_795_428_000_123);
    assert_eq!(firing.ends_at, None, "year 1 means no end yet");
    let labels: BTreeMap<String, String> = serde_json::from_str(&firing.labels).unwrap();
    assert_eq!(labels["instance"], "call-simulator:6067");
    let annotations: BTreeMap<String, String> = serde_json::from_str(&firing.annotations).unwrap();
    assert_eq!(annotations["summary"], "call-simulator is down");
}

#[test]
fn a_resolved_alert_keeps_its_end_and_falls_back_to_the_job_for_the_service() {
    let rows = rows(&sample()).unwrap();
    let resolved = &rows[1];
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.service.as_deref(), Some("aggregator"));
    assert_eq!(
        resolved.ends_at.map(|t| t.to_rfc3339()),
        Some("2026-11-23T09:30:00+00:00".to_string())
    );
    assert_eq!(resolved.annotations, "{}");
}

#[test]
fn unknown_versions_and_statuses_are_rejected() {
    let mut n = sample();
    n.version = "5".to_string();
    assert_eq!(rows(&n), Err(Rejected::Version("5".to_string())));
    let mut n = sample();
    n.alerts[1].status = "pending".to_string();
    assert_eq!(rows(&n), Err(Rejected::Status("pending".to_string())));
}

#[test]
fn a_notification_without_alerts_stores_nothing() {
    let mut n = sample();
    n.alerts.clear();
    assert_eq!(rows(&n), Ok(Vec::new()));
}

fn authorization(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value.parse().unwrap());
    headers
}

#[test]
fn only_the_whole_bearer_token_is_authorized() {
    let token = b"0123456789abcdef0123";
    assert!(authorized(
        &authorization("Bearer 0123456789abcdef0123"),
        token
    ));
    // The scheme is case-insensitive, the token is not.
    assert!(authorized(
        &authorization("bearer 0123456789abcdef0123"),
        token
    ));
    assert!(!authorized(
        &authorization("Bearer 0123456789ABCDEF0123"),
        token
    ));
    assert!(!authorized(&HeaderMap::new(), token));
    assert!(!authorized(
        &authorization("Bearer 0123456789abcdef012"),
        token
    ));
    assert!(!authorized(
        &authorization("Bearer 0123456789abcdef01234"),
        token
    ));
    assert!(!authorized(&authorization("Bearer "), token));
    assert!(!authorized(
        &authorization("Basic 0123456789abcdef0123"),
        token
    ));
    assert!(!authorized(&authorization("0123456789abcdef0123"), token));
}

#[test]
fn a_short_token_or_one_a_header_cannot_carry_is_refused_without_being_shown() {
    assert_eq!(check_token("fifteen-chars15"), Err(BadToken::Short));
    assert_eq!(check_token("sixteen chars 16"), Err(BadToken::Character));
    assert_eq!(check_token("sixteen-chärs-16"), Err(BadToken::Character));
    assert_eq!(check_token("abcdefghijklmnop-._~+/="), Ok(()));
    assert!(BadToken::Character.to_string().contains("value not shown"));
}
