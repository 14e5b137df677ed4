//! The in-place upgrade to partitioned storage, after migration 0009 set the previous
//! schema's tables aside as `<table>_legacy`: their rows are moved into the partitioned tables
//! in short transactions of [`STEP_PAGES`] pages each, walking each legacy table from its last
//! page to its first (the newest rows first, which the dashboards want back soonest). A step
//! deletes the rows of its pages and inserts them in one statement, so a row is moved once
//! whatever fails; windows are merged as the flush merges them ([`Rollup`]), into what the
//! flush wrote meanwhile and into the hourly twins. Rows older than their tier's retention
//! are not moved (they would be dropped at the next pass). An emptied legacy table is
//! dropped. A step holds row locks only: the flushes go on meanwhile.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::partitions::{Retention, Tier};
use crate::db::StoreError;
use crate::rollup::Rollup;
use crate::sources::Source;

/// Heap pages one step moves (8 KiB each: 1 MiB of rows, a few thousand).
pub const STEP_PAGES: i64 = 128;

/// A legacy table being moved.
#[derive(Debug, Clone)]
pub struct Legacy {
    /// The partitioned table it moves into.
    pub parent: String,
    key: String,
    tier: Tier,
    /// Its columns, in order (a raw table's rows move as they are).
    columns: String,
    /// How its rows merge, for a window table.
    rollup: Option<&'static Rollup>,
    /// Pages below this one are still to be walked.
    end_page: i64,
}

/// The legacy tables left, with their sizes in pages.
pub async fn pending(client: &deadpool_postgres::Client) -> Result<Vec<Legacy>, StoreError> {
    let rows = client
        .query(
            "SELECT parent, key, tier, \
                    pg_relation_size((parent || '_legacy')::regclass) \
                    / current_setting('block_size')::bigint, \
                    (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) \
                     FROM pg_attribute \
                     WHERE attrelid = parent::regclass AND attnum > 0 AND NOT attisdropped) \
             FROM fleet_partitioned WHERE to_regclass(parent || '_legacy') IS NOT NULL \
             ORDER BY parent",
            &[],
        )
        .await?;
    let rollups = Source::ALL.map(|s| s.part().rollup());
    Ok(rows
        .iter()
        .map(|r| Legacy {
            parent: r.get(0),
            key: r.get(1),
            columns: r.get(4),
            rollup: rollups
                .into_iter()
                .find(|u| u.minutes == r.get::<_, &str>(0)),
            tier: Tier::ALL
                .into_iter()
                .find(|t| t.as_str() == r.get::<_, &str>(2))
                .unwrap_or(Tier::Raw),
            end_page: r.get(3),
        })
        .collect())
}

impl Legacy {
    /// True once every page was walked and the table dropped.
    pub fn done(&self) -> bool {
        self.end_page < 0
    }

    /// Moves the rows of the next [`STEP_PAGES`] pages (see the module docs); returns how many
    /// rows were moved. Drops the table once its first page was walked and it is empty.
    /// Every statement waits at most `lock` for a lock and runs at most `deadline`.
    pub async fn step(
        &mut self,
        client: &mut deadpool_postgres::Client,
        retention: Retention,
        now: DateTime<Utc>,
        limits: (Duration, Duration),
    ) -> Result<u64, StoreError> {
        let legacy = format!("{}_legacy", self.parent);
        if self.end_page <= 0 {
            let empty: bool = client
                .query_one(&format!("SELECT NOT EXISTS (SELECT FROM {legacy})"), &[])
                .await?
                .get(0);
            if empty {
                client
                    .batch_execute(&format!("DROP TABLE {legacy}"))
                    .await?;
                tracing::info!(table = %self.parent, "upgrade: every row moved, legacy table dropped");
                self.end_page = -1;
            } else {
                // Rows on pages past the size read at start: walk it again.
                self.end_page = client
                    .query_one(
                        &format!(
                            "SELECT pg_relation_size('{legacy}') \
                             / current_setting('block_size')::bigint"
                        ),
                        &[],
                    )
                    .await?
                    .get(0);
            }
            return Ok(0);
        }
        let first = (self.end_page - STEP_PAGES).max(0);
        let pages = format!(
            "ctid >= '({first},0)'::tid AND ctid < '({},0)'::tid",
            self.end_page.min(i64::from(u32::MAX))
        );
        let tx = client.transaction().await?;
        let (deadline, lock) = (
            limits.0.as_millis().to_string(),
            limits.1.as_millis().to_string(),
        );
        tx.query_one(
            "SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)",
            &[&deadline, &lock],
        )
        .await?;
        let span = tx
            .query_one(
                &format!(
                    "SELECT min({0}), max({0}) FROM {legacy} WHERE {pages}",
                    self.key
                ),
                &[],
            )
            .await?;
        let (Some(oldest), Some(newest)) = (
            span.get::<_, Option<DateTime<Utc>>>(0),
            span.get::<_, Option<DateTime<Utc>>>(1),
        ) else {
            tx.commit().await?;
            self.end_page = first;
            return Ok(0);
        };
        let moved = match self.rollup {
            Some(rollup) => {
                let minutes = retention.cutoff(Tier::Minutes, now);
                let hours = retention.cutoff(Tier::Hours, now);
                make_partitions(&tx, rollup.minutes, oldest, newest, minutes).await?;
                make_partitions(&tx, rollup.hours, oldest, newest, hours).await?;
                let rows = format!(
                    "DELETE FROM {legacy} WHERE {pages} RETURNING {}",
                    rollup.columns
                );
                let sql = rollup.upsert(
                    &rows,
                    "($1::timestamptz IS NULL OR window_start >= $1)",
                    "($2::timestamptz IS NULL OR window_start >= $2)",
                );
                let row = tx.query_one(&sql, &[&minutes, &hours]).await?;
                crate::rollup::written(&row).0
            }
            None => {
                let cutoff = retention.cutoff(self.tier, now);
                make_partitions(&tx, &self.parent, oldest, newest, cutoff).await?;
                let sql = format!(
                    "WITH d AS (DELETE FROM {legacy} WHERE {pages} RETURNING {columns}) \
                     INSERT INTO {parent} ({columns}) SELECT {columns} FROM d \
                     WHERE $1::timestamptz IS NULL OR {key} >= $1",
                    parent = self.parent,
                    columns = self.columns,
                    key = self.key,
                );
                tx.execute(&sql, &[&cutoff]).await?
            }
        };
        tx.commit().await?;
        self.end_page = first;
        Ok(moved)
    }
}

/// Makes `parent`'s partitions for `[oldest, newest]`, but none older than `cutoff`.
async fn make_partitions(
    tx: &deadpool_postgres::Transaction<'_>,
    parent: &str,
    oldest: DateTime<Utc>,
    newest: DateTime<Utc>,
    cutoff: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let lo = cutoff.map_or(oldest, |c| oldest.max(c));
    if lo <= newest {
        tx.query_one(
            "SELECT fleet_create_partitions($1, $2, ARRAY[$3])",
            &[&lo, &newest, &parent],
        )
        .await?;
    }
    Ok(())
}
