//! `POST /alerts`: Alertmanager's webhook receiver. Every alert of every notification becomes a
//! row of table `alerts` (one multi-row insert per notification) and a log line, so the alert
//! history is queryable next to the data it is about.
//!
//! Answers 200 once stored, 400 for a body that is not an Alertmanager notification or holds a
//! value PostgreSQL refuses (retrying would not help), and 503 while PostgreSQL is unreachable,
//! so that Alertmanager retries; never with the database's own text. A NUL character, which
//! JSON can carry and PostgreSQL cannot store, is stored as U+FFFD.
//! With a token set, a request without `Authorization: Bearer <token>` gets 401 before its body
//! is read; a body above the size limit gets 413. Both are counted, neither stores anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use prometheus::IntCounterVec;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::store::{AlertRow, AlertStatus, AlertStore};

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
            let status = AlertStatus::parse(&alert.status)
                .ok_or_else(|| Rejected::Status(alert.status.clone()))?;
            let label = |name: &str| alert.labels.get(name).map(|v| storable(v));
            Ok(AlertRow {
                receiver: storable(&notification.receiver),
                status,
                alertname: label("alertname").unwrap_or_default(),
                severity: label("severity"),
                service: label("service").or_else(|| label("job")),
                fingerprint: storable(&alert.fingerprint),
                labels: json_object(&alert.labels),
                annotations: json_object(&alert.annotations),
                starts_at: alert.starts_at,
                // Year 1 is Alertmanager's "no end yet".
                ends_at: alert.ends_at.filter(|t| t.timestamp() > 0),
                generator_url: storable(&alert.generator_url),
            })
        })
        .collect()
}

fn json_object(map: &BTreeMap<String, String>) -> String {
    let map: BTreeMap<String, String> = map
        .iter()
        .map(|(k, v)| (storable(k), storable(v)))
        .collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_string())
}

/// `text` with each NUL (which PostgreSQL's text and jsonb refuse) replaced by U+FFFD.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Why a request to the webhook was refused: `aggregator_alerts_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a notification we accept (not JSON, another payload version, an unknown status).
    Rejected,
    /// A missing or wrong bearer token.
    Unauthorized,
    /// A body above `ALERTS_MAX_BODY_BYTES`.
    Oversize,
}

impl Refusal {
    /// Every reason, for pre-registering the label values.
    pub const ALL: [Refusal; 3] = [Self::Rejected, Self::Unauthorized, Self::Oversize];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Unauthorized => "unauthorized",
            Self::Oversize => "oversize",
        }
    }
}

/// What the webhook counts: alerts stored by status, requests refused by reason.
#[derive(Debug, Clone)]
pub struct Counts {
    /// `aggregator_alerts_received_total{status}`.
    pub received: IntCounterVec,
    /// `aggregator_alerts_refused_total{reason}`.
    pub refused: IntCounterVec,
}

impl Counts {
    fn refused(&self, why: Refusal) {
        self.refused.with_label_values(&[why.as_str()]).inc();
    }
}

/// Why a bearer token cannot be used; the token itself is never part of the message.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadToken {
    #[error("ALERTS_TOKEN is shorter than {MIN_TOKEN_LEN} characters (value not shown)")]
    Short,
    #[error(
        "ALERTS_TOKEN has a character a bearer token cannot carry (letters, digits and -._~+/= only; value not shown)"
    )]
    Character,
}

/// The shortest token accepted: 16 characters (`./dc-up.sh` generates 36).
pub const MIN_TOKEN_LEN: usize = 16;

/// A token that can travel in `Authorization: Bearer` (RFC 6750's b64token) and is not
/// trivially guessed.
pub fn check_token(token: &str) -> Result<(), BadToken> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(BadToken::Short);
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if !token.chars().all(allowed) {
        return Err(BadToken::Character);
    }
    Ok(())
}

/// True when `headers` carry `Authorization: Bearer <token>`. The scheme is case-insensitive
/// (RFC 7235); the token is compared in constant time, so that the time of a refusal does not
/// tell how much of a guess was right.
pub fn authorized(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, presented) = value.split_at(space);
    scheme.eq_ignore_ascii_case(b"Bearer") && presented.trim_ascii().ct_eq(token).into()
}

/// Who may post and how much.
#[derive(Debug, Clone)]
pub struct Access {
    /// The bearer token required; `None`: anyone who reaches the port.
    pub token: Option<String>,
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
}

#[derive(Clone)]
struct AlertState {
    store: AlertStore,
    counts: Counts,
    token: Option<Arc<[u8]>>,
    max_body_bytes: usize,
}

/// The `POST /alerts` route.
pub fn router(store: AlertStore, counts: Counts, access: Access) -> Router {
    let state = AlertState {
        store,
        counts,
        token: access.token.map(|t| Arc::from(t.into_bytes())),
        max_body_bytes: access.max_body_bytes,
    };
    // Layers wrap what is above them: the token is checked first, before any body is read.
    Router::new()
        .route("/alerts", post(receive))
        .layer(DefaultBodyLimit::max(access.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn authenticate(State(state): State<AlertState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token
        && !authorized(request.headers(), token)
    {
        state.counts.refused(Refusal::Unauthorized);
        // Debug only: whoever sends them decides how many there are.
        tracing::debug!("alert notification without the right bearer token refused");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "missing or wrong bearer token\n",
        )
            .into_response();
    }
    next.run(request).await
}

async fn receive(
    State(state): State<AlertState>,
    body: Result<Json<Notification>, JsonRejection>,
) -> (StatusCode, String) {
    let rejected = |reason: String| {
        state.counts.refused(Refusal::Rejected);
        tracing::warn!(%reason, "alert notification rejected");
        (StatusCode::BAD_REQUEST, format!("{reason}\n"))
    };
    let notification = match body {
        Ok(Json(notification)) => notification,
        Err(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            state.counts.refused(Refusal::Oversize);
            tracing::warn!(
                limit = state.max_body_bytes,
                "alert notification above ALERTS_MAX_BODY_BYTES refused"
            );
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body above {} bytes\n", state.max_body_bytes),
            );
        }
        Err(err) => return rejected(err.body_text()),
    };
    let rows = match rows(&notification) {
        Ok(rows) => rows,
        Err(err) => return rejected(err.to_string()),
    };
    if let Err(err) = state.store.insert(&rows).await {
        // The database's text stays in our log: it is not the client's business.
        if err.data_refusal().is_some() {
            state.counts.refused(Refusal::Rejected);
            tracing::warn!(%err, "alert notification refused by PostgreSQL");
            return (
                StatusCode::BAD_REQUEST,
                "the notification holds a value that cannot be stored\n".into(),
            );
        }
        tracing::warn!(%err, "cannot store alert notification; Alertmanager will retry");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "alert store unavailable, retry later\n".into(),
        );
    }
    for row in &rows {
        (state.counts.received)
            .with_label_values(&[row.status.as_str()])
            .inc();
        tracing::info!(
            status = row.status.as_str(),
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
