//! The interface between the core and the sources: what a source's part of a batch does
//! ([`Part`]) and what it is given to do it. `record` decodes a message and folds it in (pure,
//! on the consumer thread); `write` stores the part inside the flush transaction after the
//! offset fence held (see [`crate::store`]), and what it returns says what the metrics count
//! once that transaction committed; `start` and `maintain` are the source's own hooks, which
//! the core calls for every source alike.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures::future::BoxFuture;

use crate::db::{Migration, StoreError};
use crate::decode::{Invalid, check_time};
use crate::metrics::Metrics;
use crate::rollup::Rollup;
use crate::rules::Rules;

/// How often [`Part::maintain`] runs.
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(600);

/// What a source's periodic maintenance gets.
#[derive(Debug)]
pub struct Maintenance<'a> {
    pub pool: &'a Pool,
    /// The lowest watermark of the source's stored partitions (see
    /// [`crate::batch::Position`]); `None` while any has none (it would accept any time).
    pub watermark: Option<DateTime<Utc>>,
    /// `AGG_MAX_LATENESS_SECS`: an event older than a partition's watermark by more is late.
    pub max_lateness: Duration,
}

/// One Kafka message of a source's topic.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Which incarnation of the topic it was read from (see [`crate::batch::Position`]); set
    /// by the batch from its partition's position.
    pub topic_id: i64,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// What `record` decides with: the rules, the limits, and the times an event is judged
/// against. Kept with each message of a batch, so a replay judges it as the read did.
#[derive(Debug, Clone, Copy)]
pub struct Ingest {
    pub rules: Rules,
    pub max_message_bytes: usize,
    pub max_lateness_ms: i64,
    /// The wall clock when the read started, milliseconds since the epoch: the future bound.
    pub now_ms: i64,
    /// The partition's watermark (see [`crate::batch::Position`]): the lateness bound.
    pub watermark_ms: i64,
    /// `AGG_RETENTION_RAW_DAYS` in milliseconds (`i64::MAX`: kept forever): an event older
    /// than the clock by more would land in a partition retention drops.
    pub retention_ms: i64,
}

impl Ingest {
    /// An event time within the lateness, retention and clock-skew bounds, or `out_of_range`.
    pub fn in_time(&self, time_ms: i64) -> Result<(), Invalid> {
        check_time(
            time_ms,
            self.now_ms,
            self.watermark_ms,
            self.max_lateness_ms,
            self.retention_ms,
        )
    }
}

/// Where a part writes: the flush transaction, after the fence held.
pub struct Write<'a> {
    pub tx: &'a deadpool_postgres::Transaction<'a>,
    /// The topic the part's messages came from.
    pub topic: &'a str,
    /// The window length, as stored in the `window_secs` columns.
    pub window_secs: i32,
}

impl std::fmt::Debug for Write<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
            .field("topic", &self.topic)
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

/// What one part's write did.
pub struct Written {
    /// Rows per table (`aggregator_rows_written_total`).
    pub rows: Vec<(&'static str, u64)>,
    /// What the metrics count once the transaction committed; not before, so that they count
    /// what is stored, once.
    pub committed: Box<dyn FnOnce(&Metrics) + Send>,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// A source's part of a batch: the one interface every source implements.
pub trait Part: Send + Sync + std::fmt::Debug {
    /// Decodes and checks one message (its time with [`Ingest::in_time`]) and folds it in;
    /// returns its event time (milliseconds since the epoch, what moves the partition's
    /// watermark), or the reason it is invalid (the batch then keeps it as a dead letter).
    fn record(&mut self, message: &Message<'_>, cx: &Ingest) -> Result<i64, Invalid>;

    /// Valid messages held.
    fn messages(&self) -> u64;

    /// Approximate heap held, for the memory budget.
    fn approx_bytes(&self) -> usize;

    /// The tables `write` writes (label values, pre-registered at start).
    fn tables(&self) -> &'static [&'static str];

    /// How its window rows merge into its window table and the hourly twin (also what the
    /// in-place upgrade moves the previous schema's windows with).
    fn rollup(&self) -> &'static Rollup;

    /// The migrations of its tables, beyond the history under `migrations/` (versions after
    /// it; the SQL files in the source's folder, by `include_str!`).
    fn migrations(&self) -> &'static [Migration] {
        &[]
    }

    /// Writes the part inside the flush transaction. Runs again, on a new transaction, when
    /// the previous attempt failed; nothing is counted until one commits.
    fn write<'a>(&'a self, to: &'a Write<'a>) -> BoxFuture<'a, Result<Written, StoreError>>;

    /// Once at start, after the migrations and before the first message is read: e.g. showing
    /// what the tables hold in the metrics. An error stops the start.
    fn start<'a>(
        &'a self,
        _pool: &'a Pool,
        _metrics: &'a Metrics,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }

    /// Every [`MAINTENANCE_EVERY`] while running, outside any flush: e.g. forgetting keys no
    /// message can match any more. An error is logged and the next round tries again.
    fn maintain<'a>(&'a self, _cx: &'a Maintenance<'a>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}
