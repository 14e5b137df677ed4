//! `POST /alerts`: Alertmanager's webhook receiver. Every alert of every notification becomes a
//! row of table `alerts` (one multi-row insert per notification) and a log line, so the alert
//! history is queryable next to the data it is about.
//!
//! Answers 200 once stored, 400 for a body that is not an Alertmanager notification (retrying
//! would not help), and 503 while PostgreSQL is unreachable, so that Alertmanager retries.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use prometheus::IntCounterVec;
use serde::Deserialize;

use crate::store::AlertStore;

/// An Alertmanager webhook notification (payload version 4). Fields we do not store
/// (`groupKey`, `commonLabels`, …) are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    pub receiver: String,
    pub alerts: Vec<Alert>,
}

/// One alert of a notification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// Alertmanager sends `0001-01-01T00:00:00Z` while an alert has no end.
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// A row of table `alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub receiver: String,
    pub status: String,
    pub alertname: String,
    pub severity: Option<String>,
    pub service: Option<String>,
    pub fingerprint: String,
    /// JSON objects, as text (cast to `jsonb` by the insert).
    pub labels: String,
    pub annotations: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
}

/// Why a body is not a notification we accept.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("unsupported webhook payload version {0:?} (expected \"4\")")]
    Version(String),
    #[error("alert status {0:?} is neither firing nor resolved")]
    Status(String),
}

/// The rows a notification stores, one per alert.
pub fn rows(notification: &Notification) -> Result<Vec<AlertRow>, Rejected> {
    if notification.version != "4" {
        return Err(Rejected::Version(notification.version.clone()));
    }
    notification
        .alerts
        .iter()
        .map(|alert| {
            if alert.status != "firing" && alert.status != "resolved" {
                return Err(Rejected::Status(alert.status.clone()));
            }
            let label = |name: &str| alert.labels.get(name).cloned();
            Ok(AlertRow {
                receiver: notification.receiver.clone(),
                status: alert.status.clone(),
                alertname: label("alertname").unwrap_or_default(),
                severity: label("severity"),
                service: label("service").or_else(|| label("job")),
                fingerprint: alert.fingerprint.clone(),
                labels: json_object(&alert.labels),
                annotations: json_object(&alert.annotations),
                starts_at: alert.starts_at,
                // Year 1 is Alertmanager's "no end yet".
                ends_at: alert.ends_at.filter(|t| t.timestamp() > 0),
                generator_url: alert.generator_url.clone(),
            })
        })
        .collect()
}

fn json_object(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_string())
}

#[derive(Clone)]
struct AlertState {
    store: AlertStore,
    /// `aggregator_alerts_received_total{status}`.
    received: IntCounterVec,
}

/// The `POST /alerts` route.
pub fn router(store: AlertStore, received: IntCounterVec) -> Router {
    Router::new()
        .route("/alerts", post(receive))
        .with_state(AlertState { store, received })
}

async fn receive(
    State(state): State<AlertState>,
    body: Result<Json<Notification>, JsonRejection>,
) -> (StatusCode, String) {
    let rejected = |reason: String| {
        state.received.with_label_values(&["rejected"]).inc();
        tracing::warn!(%reason, "alert notification rejected");
        (StatusCode::BAD_REQUEST, format!("{reason}\n"))
    };
    let notification = match body {
        Ok(Json(notification)) => notification,
        Err(err) => return rejected(err.body_text()),
    };
    let rows = match rows(&notification) {
        Ok(rows) => rows,
        Err(err) => return rejected(err.to_string()),
    };
    if let Err(err) = state.store.insert(&rows).await {
        tracing::warn!(%err, "cannot store alert notification; Alertmanager will retry");
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n"));
    }
    for row in &rows {
        state
            .received
            .with_label_values(&[row.status.as_str()])
            .inc();
        tracing::info!(
            status = %row.status,
            alertname = %row.alertname,
            severity = row.severity.as_deref().unwrap_or(""),
            service = row.service.as_deref().unwrap_or(""),
            annotations = %row.annotations,
            "alert"
        );
    }
    (StatusCode::OK, format!("stored {} alert(s)\n", rows.len()))
}

#[cfg(test)]
mod tests;
