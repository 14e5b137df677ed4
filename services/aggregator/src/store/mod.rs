//! The PostgreSQL edge: connection pool (with TLS), migrations, stored offsets, and the flush
//! transaction that makes the aggregator's effect exactly-once.
//!
//! **Guarantee.** A flush writes, in one transaction, every source's part of the batch (see
//! [`crate::sources`]: the call windows, long calls and totals; the host samples, each host and
//! sample time once however many messages carried it, and their windows; the check results and
//! their windows) and the next offset of every partition (of every topic) the batch covers. The
//! offsets are fenced: a partition's row advances only if it still holds the value this
//! aggregator started the batch from, so a zombie (an instance that lost the partition in a
//! rebalance it has not seen yet) cannot commit a batch another instance has also read; its
//! transaction rolls back and it re-reads the stored offsets. Dead letters are produced before the transaction that moves
//! past them, so they are delivered at least once.

mod alerts;
mod connect;
mod maintain;
mod migrate;
mod partitions;
mod upgrade;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

pub use alerts::{AlertRow, AlertStatus, AlertStore};
pub use connect::{Bounded, Timeouts, bounded, connect_pool};
pub use maintain::{Report, TableReport, maintain};
pub use migrate::{migrate, migrate_to};
pub use partitions::{AHEAD, PARTITIONED, Partitions, Retention, Tier};
pub use upgrade::{Legacy, pending};

use crate::batch::{Batch, Position};
use crate::db::StoreError;
use crate::part::{Write, Written};
use crate::sources::{Source, Tp};
use crate::topics::Topics;

/// What a committed flush wrote.
#[derive(Debug)]
pub struct Stored {
    /// Offset rows moved (one per partition the batch covers).
    pub offsets: u64,
    /// Each source's part, in [`Source::ALL`] order.
    pub parts: Vec<Written>,
}

impl Stored {
    /// The `table` label value of the offset rows in `aggregator_rows_written_total`.
    pub const OFFSETS_TABLE: &'static str = "consumer_offsets";

    /// Rows per table.
    pub fn rows(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let parts = self.parts.iter().flat_map(|w| w.rows.iter().copied());
        std::iter::once((Self::OFFSETS_TABLE, self.offsets)).chain(parts)
    }
}

/// Which consumer group and topics a store serves.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    group: String,
    topics: Topics,
    window_secs: i32,
    limits: FlushLimits,
    partitions: Partitions,
}

/// The limits of a flush, and of the store's other queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushLimits {
    /// `AGG_FLUSH_TIMEOUT_SECS`: a flush's first attempt gets this long (later ones may get
    /// more, see `crate::flush`), and so does any other query of the store.
    pub deadline: Duration,
    /// `lock_timeout` (`DB_LOCK_TIMEOUT_MS`): an operator's `LOCK TABLE` fails the attempt,
    /// which is retried, instead of blocking it for as long as the lock is held.
    pub lock: Duration,
}

// A partition's row moves only from the batch's `expected`; a missing row is inserted only by
// a batch that expects none (`-1`). Under READ COMMITTED a concurrent mover makes the UPDATE
// re-check the new row (and fail it), and the INSERT wait for the other insert (and skip it):
// either way fewer rows move than the batch has partitions, which is the fence.
const FENCED_OFFSETS: &str = "
WITH input AS (
    SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::bigint[])
        AS i(topic, partition, expected, next_offset, watermark_ms, topic_id)
), updated AS (
    UPDATE consumer_offsets AS o
    SET next_offset = i.next_offset, watermark_ms = i.watermark_ms, topic_id = i.topic_id,
        updated_at = now()
    FROM input AS i
    WHERE o.group_id = $1 AND o.topic = i.topic AND o.partition = i.partition
        AND i.expected >= 0 AND o.next_offset = i.expected
    RETURNING 1
), inserted AS (
    INSERT INTO consumer_offsets (group_id, topic, partition, next_offset, watermark_ms, topic_id)
    SELECT $1, topic, partition, next_offset, watermark_ms, topic_id FROM input
    WHERE expected = -1
    ON CONFLICT (group_id, topic, partition) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted)";

const LOAD_OFFSETS: &str = "
SELECT o.topic, o.partition, o.next_offset, o.watermark_ms, o.topic_id
FROM consumer_offsets o
JOIN unnest($2::text[], $3::int[]) AS i(topic, partition)
    ON o.topic = i.topic AND o.partition = i.partition
WHERE o.group_id = $1";

impl Store {
    /// A store for `group` consuming `topics`, aggregating in windows of `window_secs`.
    pub fn new(
        pool: Pool,
        group: String,
        topics: Topics,
        window_secs: i32,
        limits: FlushLimits,
        partitions: Partitions,
    ) -> Self {
        Self {
            pool,
            group,
            topics,
            window_secs,
            limits,
            partitions,
        }
    }

    /// The stored positions of `partitions`; partitions never flushed are absent.
    pub async fn load_offsets(
        &self,
        partitions: &[Tp],
    ) -> Result<HashMap<Tp, Position>, StoreError> {
        let client = self.pool.get().await?;
        let names: Vec<&str> = partitions
            .iter()
            .map(|(s, _)| self.topics.name(*s))
            .collect();
        let numbers: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        let rows = client
            .query(LOAD_OFFSETS, &[&self.group, &names, &numbers])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let source = self.topics.source_of(r.get(0))?;
                let at = Position {
                    offset: r.get(2),
                    watermark_ms: r.get::<_, Option<i64>>(3).unwrap_or(i64::MIN),
                    topic_id: r.get::<_, Option<i64>>(4).unwrap_or(0),
                };
                Some(((source, r.get::<_, i32>(1)), at))
            })
            .collect())
    }

    /// Writes `batch` in one transaction on `client` (see the module docs): the fence first,
    /// then each source's part. Returns what each part wrote, and the offset rows. `deadline`
    /// is the attempt's: PostgreSQL cancels a statement past it, and ends the transaction if
    /// its client goes silent that long, releasing its locks (a client-side deadline alone
    /// would leave them held, and every later attempt waiting on them). `backend` gets the
    /// server process's id, for [`Store::terminate`].
    pub async fn flush(
        &self,
        client: &mut deadpool_postgres::Client,
        batch: &Batch,
        deadline: Duration,
        backend: &AtomicI32,
    ) -> Result<Stored, StoreError> {
        let written = async {
            if let Some((lo, hi)) = self.span(batch) {
                self.partitions.ensure(client, lo, hi).await?;
            }
            self.transaction(client, batch, deadline, backend).await
        };
        self.partitions.noticed(written.await)
    }

    /// The flush's transaction, on partitions that exist.
    async fn transaction(
        &self,
        client: &mut deadpool_postgres::Client,
        batch: &Batch,
        deadline: Duration,
        backend: &AtomicI32,
    ) -> Result<Stored, StoreError> {
        let tx = client.transaction().await?;
        // Safe for the guarantee: data and offsets commit together, so a server crash that
        // loses the last commits loses both, and the batch is re-read from Kafka. Not waiting
        // for the WAL flush lets the next flush start sooner.
        // One round trip, which also says which server process runs the transaction.
        let (deadline, lock) = (
            deadline.as_millis().to_string(),
            self.limits.lock.as_millis().to_string(),
        );
        let row = tx
            .query_one(
                "SELECT pg_backend_pid(), set_config('synchronous_commit', 'off', true), \
                 set_config('statement_timeout', $1, true), \
                 set_config('idle_in_transaction_session_timeout', $1, true), \
                 set_config('lock_timeout', $2, true)",
                &[&deadline, &lock],
            )
            .await?;
        backend.store(row.get(0), Ordering::Relaxed);
        // Fence first: a stale batch fails before it writes anything.
        let offsets = self.advance_offsets(&tx, batch).await?;
        let mut parts = Vec::with_capacity(Source::ALL.len());
        for (source, part) in batch.parts() {
            let to = Write {
                tx: &tx,
                topic: self.topics.name(source),
                window_secs: self.window_secs,
            };
            parts.push(part.write(&to).await?);
        }
        tx.commit().await?;
        Ok(Stored { offsets, parts })
    }

    /// The times the batch's rows are partitioned by: its events', and the windows they start
    /// in (epoch-aligned, so the earliest is the first event's). An hour starts no earlier
    /// than the day its window starts in, so the hours need nothing more.
    fn span(&self, batch: &Batch) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (first, last) = batch.span()?;
        let window_ms = i64::from(self.window_secs) * 1000;
        let at = |ms: i64| DateTime::from_timestamp_millis(ms);
        Some((at(first - first.rem_euclid(window_ms))?, at(last)?))
    }

    /// Moves the stored offset of every partition the batch covers, if it still holds the
    /// batch's fence; [`StoreError::Fenced`] otherwise. A missing row is inserted only by a
    /// batch that expects none: one that expects an offset and finds no row (a commit the
    /// server lost, e.g. with `synchronous_commit = off`) is fenced, and the partition re-read
    /// from where the row says, or from its start.
    async fn advance_offsets(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        batch: &Batch,
    ) -> Result<u64, StoreError> {
        let names: Vec<&str> = batch
            .progress
            .iter()
            .map(|p| self.topics.name(p.source))
            .collect();
        let partitions: Vec<i32> = batch.progress.iter().map(|p| p.partition).collect();
        let expected: Vec<i64> = batch.progress.iter().map(|p| p.expected).collect();
        let next: Vec<i64> = batch.progress.iter().map(|p| p.next).collect();
        // A partition that yielded no valid event yet has no watermark (NULL).
        let watermarks: Vec<Option<i64>> = (batch.progress.iter())
            .map(|p| (p.watermark_ms != i64::MIN).then_some(p.watermark_ms))
            .collect();
        let topic_ids: Vec<Option<i64>> = (batch.progress.iter())
            .map(|p| (p.topic_id != 0).then_some(p.topic_id))
            .collect();
        let stmt = tx.prepare_cached(FENCED_OFFSETS).await?;
        let moved: i64 = tx
            .query_one(
                &stmt,
                &[
                    &self.group,
                    &names,
                    &partitions,
                    &expected,
                    &next,
                    &watermarks,
                    &topic_ids,
                ],
            )
            .await?
            .get(0);
        if moved == partitions.len() as i64 {
            Ok(moved as u64)
        } else {
            Err(StoreError::Fenced) // dropping the transaction rolls it back
        }
    }

    /// Moves `tp`'s stored position from `from` to `to` if it still holds `from` (fenced as a
    /// flush is; [`StoreError::Fenced`] otherwise): a recreated topic starts again.
    pub async fn restart_partition(
        &self,
        tp: Tp,
        from: Position,
        to: Position,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let moved = client
            .execute(
                "UPDATE consumer_offsets SET next_offset = $4, topic_id = $5, watermark_ms = NULL, \
                 updated_at = now() \
                 WHERE group_id = $1 AND topic = $2 AND partition = $3 \
                   AND next_offset = $6 AND topic_id = $7",
                &[
                    &self.group,
                    &self.topics.name(tp.0),
                    &tp.1,
                    &to.offset,
                    &to.topic_id,
                    &from.offset,
                    &from.topic_id,
                ],
            )
            .await?;
        if moved == 1 {
            Ok(())
        } else {
            Err(StoreError::Fenced)
        }
    }

    /// The other consumer groups holding stored offsets of our topics, when ours holds none:
    /// starting would count every retained message again on top of theirs.
    pub async fn groups_before_us(&self) -> Result<Vec<String>, StoreError> {
        let names = self.topics.names();
        let read = async |client: &mut deadpool_postgres::Client| {
            let rows = client
                .query(
                    "SELECT DISTINCT group_id FROM consumer_offsets \
                     WHERE topic = ANY($2) AND group_id <> $1 \
                       AND NOT EXISTS (SELECT 1 FROM consumer_offsets WHERE group_id = $1) \
                     ORDER BY group_id",
                    &[&self.group, &names],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        };
        Ok(bounded(&self.pool, self.limits.deadline, None, read).await?)
    }

    /// The lowest watermark of `source`'s stored partitions; `None` while any has none.
    pub async fn low_watermark(
        &self,
        source: Source,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let read = async |client: &mut deadpool_postgres::Client| {
            let row = client
                .query_one(
                    "SELECT CASE WHEN count(*) = count(watermark_ms) THEN min(watermark_ms) END \
                     FROM consumer_offsets WHERE group_id = $1 AND topic = $2",
                    &[&self.group, &self.topics.name(source)],
                )
                .await?;
            Ok(row.get::<_, Option<i64>>(0))
        };
        let low = bounded(&self.pool, self.limits.deadline, None, read).await?;
        Ok(low.and_then(chrono::DateTime::from_timestamp_millis))
    }

    /// Ends the server process `backend` (from [`Store::flush`]) and its transaction: what is
    /// left of an attempt that ran out of time. Neither `statement_timeout` nor
    /// `idle_in_transaction_session_timeout` ends a `COPY` waiting for data from a client that
    /// went silent, and its locks would stop every later flush. The same role may end its own
    /// sessions. Within `deadline`; false if that failed (logged).
    pub async fn terminate(&self, backend: i32, deadline: Duration) -> bool {
        if backend == 0 {
            return true;
        }
        let end = async |client: &mut deadpool_postgres::Client| {
            client
                .execute("SELECT pg_terminate_backend($1)", &[&backend])
                .await?;
            Ok(())
        };
        match bounded(&self.pool, deadline, None, end).await {
            Ok(()) => {
                tracing::debug!(backend, "ended the server session of an abandoned attempt");
                true
            }
            Err(err) => {
                tracing::warn!(
                    backend,
                    ?err,
                    "cannot end the server session of an abandoned attempt"
                );
                false
            }
        }
    }

    /// How long a flush's first attempt, or any other query of the store, may take.
    pub fn deadline(&self) -> Duration {
        self.limits.deadline
    }

    /// The consumer group whose offsets this store keeps.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The partitions known to exist.
    pub fn partitions(&self) -> &Partitions {
        &self.partitions
    }

    /// The pool, for what a source stores outside a flush (e.g. at start).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A cheap round trip within `deadline`, for the health check while idle.
    pub async fn ping(&self, deadline: Duration) -> Result<(), StoreError> {
        let ping = async |client: &mut deadpool_postgres::Client| {
            client.simple_query("SELECT 1").await?;
            Ok(())
        };
        Ok(bounded(&self.pool, deadline, None, ping).await?)
    }
}
