//! Table `alerts`: Alertmanager notifications, one row per alert per notification.

use chrono::{DateTime, Utc};
use std::time::Duration;

use deadpool_postgres::Pool;

use super::connect::bounded;
use super::partitions::Partitions;
use crate::db::StoreError;

/// The state of an alert in a notification (`alerts.status`, and the `status` label of
/// `aggregator_alerts_received_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    /// Every status, for pre-registering the label values.
    pub const ALL: [AlertStatus; 2] = [Self::Firing, Self::Resolved];

    /// Alertmanager's word for it; `None` for any other.
    pub fn parse(status: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == status)
    }

    /// As stored and as the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// A row of table `alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub receiver: String,
    pub status: AlertStatus,
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

/// One multi-row insert per notification, however many alerts it carries.
const INSERT_ALERTS: &str = "
INSERT INTO alerts (receiver, status, alertname, severity, service, fingerprint, labels,
                    annotations, starts_at, ends_at, generator_url)
SELECT receiver, status, alertname, severity, service, fingerprint, labels::jsonb,
       annotations::jsonb, starts_at, ends_at, generator_url
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::timestamptz[], $10::timestamptz[], $11::text[])
    AS t(receiver, status, alertname, severity, service, fingerprint, labels, annotations,
         starts_at, ends_at, generator_url)";

/// Writes alert notifications.
#[derive(Debug, Clone)]
pub struct AlertStore {
    pool: Pool,
    deadline: Duration,
    partitions: Partitions,
}

/// How far from this clock the server's `now()` (`received_at`) may be: the partitions made
/// before an insert cover it.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::hours(1);

impl AlertStore {
    /// Stores through `pool`, each insert within `deadline`, making a missing partition first.
    pub fn new(pool: Pool, deadline: Duration, partitions: Partitions) -> Self {
        Self {
            pool,
            deadline,
            partitions,
        }
    }

    /// Stores `rows` in one statement.
    pub async fn insert(&self, rows: &[AlertRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        fn column<T: Clone>(rows: &[AlertRow], f: impl Fn(&AlertRow) -> &T) -> Vec<T> {
            rows.iter().map(|r| f(r).clone()).collect()
        }
        let insert = async |client: &mut deadpool_postgres::Client| {
            let now = Utc::now();
            (self.partitions)
                .ensure(client, now - CLOCK_SKEW, now + CLOCK_SKEW)
                .await?;
            let stmt = client.prepare_cached(INSERT_ALERTS).await?;
            let inserted = client
                .execute(
                    &stmt,
                    &[
                        &column(rows, |r| &r.receiver),
                        &rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
                        &column(rows, |r| &r.alertname),
                        &column(rows, |r| &r.severity),
                        &column(rows, |r| &r.service),
                        &column(rows, |r| &r.fingerprint),
                        &column(rows, |r| &r.labels),
                        &column(rows, |r| &r.annotations),
                        &column(rows, |r| &r.starts_at),
                        &column(rows, |r| &r.ends_at),
                        &column(rows, |r| &r.generator_url),
                    ],
                )
                .await;
            self.partitions.noticed(inserted.map_err(StoreError::from))
        };
        Ok(bounded(&self.pool, self.deadline, None, insert).await?)
    }
}
