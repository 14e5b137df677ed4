//! The kinds of event the aggregator consumes, one folder each: [`calls`], [`hosts`],
//! [`probes`]. A source owns its decoder, its part of the [`Batch`](crate::batch::Batch), its
//! SQL and its tables, behind one interface, [`Part`]: `record` decodes a message and folds it
//! in (pure, on the consumer thread), `write` stores the part inside the flush transaction
//! after the offset fence held (see [`crate::store`]), and what `write` returns says what the
//! metrics count once that transaction committed.
//!
//! Registering a source is [`Source`]: its variant, its place in [`Source::ALL`], its topic
//! setting and its empty part. docs/architecture.md lists everything a new source touches.

pub mod calls;
pub mod hosts;
pub mod probes;

use futures::future::BoxFuture;
use prometheus::local::LocalHistogram;

use crate::batch::Rules;
use crate::decode::{Invalid, check_time};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::topics::Topics;

/// What a consumed topic carries: the registry of sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Phone calls from `call-simulator`.
    Calls,
    /// Host samples from `host-metrics`.
    Hosts,
    /// Check results from `web-prober`.
    Probes,
}

impl Source {
    /// Every source, in a fixed order (the order of the topic settings and of the flush).
    pub const ALL: [Source; 3] = [Self::Calls, Self::Hosts, Self::Probes];

    /// The setting that names its topic.
    pub fn setting(self) -> &'static str {
        match self {
            Self::Calls => "CALLS_TOPIC",
            Self::Hosts => "HOST_METRICS_TOPIC",
            Self::Probes => "PROBES_TOPIC",
        }
    }

    /// An empty part of a batch for its messages.
    pub fn part(self) -> Box<dyn Part> {
        match self {
            Self::Calls => Box::<calls::Calls>::default(),
            Self::Hosts => Box::<hosts::Hosts>::default(),
            Self::Probes => Box::<probes::Probes>::default(),
        }
    }
}

/// A consumed partition.
pub type Tp = (Source, i32);

/// One Kafka message of a source's topic.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// What `record` decides with: the rules, the limits and the time of the read.
#[derive(Debug)]
pub struct Ingest<'a> {
    pub rules: &'a Rules,
    pub max_message_bytes: usize,
    pub max_lateness_ms: i64,
    /// The wall clock when the read started, milliseconds since the epoch.
    pub now_ms: i64,
    /// The consumer thread's copy of the call duration histogram (flushed after every read).
    pub call_durations: &'a LocalHistogram,
}

impl Ingest<'_> {
    /// An event time within the lateness and clock-skew bounds, or `out_of_range`.
    pub fn in_time(&self, time_ms: i64) -> Result<(), Invalid> {
        check_time(time_ms, self.now_ms, self.max_lateness_ms)
    }
}

/// Where a part writes: the flush transaction, after the fence held.
pub struct Write<'a> {
    pub tx: &'a deadpool_postgres::Transaction<'a>,
    pub topics: &'a Topics,
    /// The window length, as stored in the `window_secs` columns.
    pub window_secs: i32,
}

impl std::fmt::Debug for Write<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Write")
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
    /// Decodes and checks one message and folds it in; the reason it is invalid otherwise
    /// (the batch then keeps it as a dead letter).
    fn record(&mut self, message: &Message<'_>, cx: &Ingest<'_>) -> Result<(), Invalid>;

    /// Valid messages held.
    fn messages(&self) -> u64;

    /// Approximate heap held, for the memory budget.
    fn approx_bytes(&self) -> usize;

    /// The tables `write` writes (label values, pre-registered at start).
    fn tables(&self) -> &'static [&'static str];

    /// Writes the part inside the flush transaction. Runs again, on a new transaction, when
    /// the previous attempt failed; nothing is counted until one commits.
    fn write<'a>(&'a self, to: &'a Write<'a>) -> BoxFuture<'a, Result<Written, StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_has_its_own_setting_and_tables() {
        let mut settings: Vec<_> = Source::ALL.iter().map(|s| s.setting()).collect();
        settings.sort_unstable();
        settings.dedup();
        assert_eq!(settings.len(), Source::ALL.len());
        let mut tables: Vec<_> = Source::ALL.iter().flat_map(|s| s.part().tables()).collect();
        let all = tables.len();
        tables.sort_unstable();
        tables.dedup();
        assert_eq!(tables.len(), all, "a table written by two sources");
    }
}
