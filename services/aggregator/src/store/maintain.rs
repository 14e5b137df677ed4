//! Storage maintenance, one pass: partitions made [`AHEAD`] of the clock, whole partitions
//! older than their tier's retention dropped, and what the partitioned tables hold read back
//! for the metrics. Runs as the schema's owner (dropping a table needs it). The clock is a
//! parameter, so that a test can run a pass days ahead.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::partitions::{AHEAD, Partitions, Retention, Tier};
use crate::db::StoreError;

/// What one pass did and found.
#[derive(Debug, Default)]
pub struct Report {
    /// Partitions made.
    pub made: u64,
    /// Partitions dropped, by tier.
    pub dropped: Vec<(Tier, Vec<String>)>,
    /// What each partitioned table holds.
    pub tables: Vec<TableReport>,
}

/// One partitioned table, from the `fleet_partitions` view.
#[derive(Debug, Clone, PartialEq)]
pub struct TableReport {
    pub table: String,
    pub partitions: i64,
    /// Lower bound of the oldest partition.
    pub oldest: Option<DateTime<Utc>>,
    /// Upper bound of the newest partition.
    pub end: Option<DateTime<Utc>>,
    pub bytes: i64,
}

const REPORT: &str = "
SELECT f.parent, count(p.partition), min(p.lower), max(p.upper), coalesce(sum(p.bytes), 0)::bigint
FROM fleet_partitioned f LEFT JOIN fleet_partitions p ON p.parent = f.parent
GROUP BY f.parent ORDER BY f.parent";

/// One pass at `now` (see the module docs). Each step is a transaction of its own that waits
/// at most `lock` for a lock (a drop takes the parent's exclusive lock for a moment: a long
/// query on the table delays it to the next pass rather than the flushes behind it).
pub async fn maintain(
    client: &mut deadpool_postgres::Client,
    partitions: &Partitions,
    retention: Retention,
    now: DateTime<Utc>,
    lock: Duration,
) -> Result<Report, StoreError> {
    let lock = lock.as_millis().to_string();
    let mut report = Report::default();
    let ahead = chrono::Duration::from_std(AHEAD).unwrap_or(chrono::Duration::days(2));
    let tx = client.transaction().await?;
    tx.query_one("SELECT set_config('lock_timeout', $1, true)", &[&lock])
        .await?;
    let made: i32 = tx
        .query_one(
            "SELECT fleet_create_partitions($1, $2)",
            &[&now, &(now + ahead)],
        )
        .await?
        .get(0);
    tx.commit().await?;
    report.made = u64::try_from(made).unwrap_or(0);
    for tier in Tier::ALL {
        let Some(cutoff) = retention.cutoff(tier, now) else {
            continue;
        };
        let tx = client.transaction().await?;
        tx.query_one("SELECT set_config('lock_timeout', $1, true)", &[&lock])
            .await?;
        let dropped: Vec<String> = tx
            .query(
                "SELECT fleet_drop_partitions($1, $2)",
                &[&tier.as_str(), &cutoff],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.commit().await?;
        if !dropped.is_empty() {
            tracing::info!(tier = tier.as_str(), %cutoff, ?dropped, "partitions dropped by retention");
        }
        report.dropped.push((tier, dropped));
    }
    report.tables = (client.query(REPORT, &[]).await?.iter())
        .map(|r| TableReport {
            table: r.get(0),
            partitions: r.get(1),
            oldest: r.get(2),
            end: r.get(3),
            bytes: r.get(4),
        })
        .collect();
    partitions.refresh(client).await?;
    Ok(report)
}
