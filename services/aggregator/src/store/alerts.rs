//! Table `alerts`: Alertmanager notifications, one row per alert per notification.

use deadpool_postgres::Pool;

use super::StoreError;
use crate::alerts::AlertRow;

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
}

impl AlertStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Stores `rows` in one statement.
    pub async fn insert(&self, rows: &[AlertRow]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        fn column<T: Clone>(rows: &[AlertRow], f: impl Fn(&AlertRow) -> &T) -> Vec<T> {
            rows.iter().map(|r| f(r).clone()).collect()
        }
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(INSERT_ALERTS).await?;
        let inserted = client
            .execute(
                &stmt,
                &[
                    &column(rows, |r| &r.receiver),
                    &column(rows, |r| &r.status),
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
            .await?;
        Ok(inserted)
    }
}
