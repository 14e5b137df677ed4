//! The kinds of event the aggregator consumes, one folder each: [`calls`], [`hosts`],
//! [`probes`]. A source owns its decoder, its part of the [`Batch`](crate::batch::Batch), its
//! SQL and its tables, behind one interface, [`Part`]: `record` decodes a message and folds it
//! in (pure, on the consumer thread), `write` stores the part inside the flush transaction
//! after the offset fence held (see [`crate::store`]), and what `write` returns says what the
//! metrics count once that transaction committed.
//!
//! Registering a source is one entry of the `sources!` registry below: its variant of
//! [`Source`], its part's type, and its topic setting (field, variable, default, help), which
//! `Config` flattens in. docs/architecture.md lists everything a new source touches.

pub mod calls;
pub mod hosts;
pub mod probes;

use fleet::events::topics;
use futures::future::BoxFuture;
use prometheus::local::LocalHistogram;

use crate::batch::Rules;
use crate::decode::{Invalid, check_time};
use crate::metrics::Metrics;
use crate::store::{Migration, StoreError};
use crate::topics::Topics;

/// Declares the registry: [`Source`], [`Source::ALL`], each source's topic setting and empty
/// part, and [`TopicSettings`] (the settings `Config` flattens in).
macro_rules! sources {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident($part:ty): $field:ident, $env:literal = $default:expr, $help:literal;
    )*) => {
        /// What a consumed topic carries.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Source {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Source {
            /// Every source, in a fixed order (the order of the topic settings and of the flush).
            pub const ALL: [Source; [$(Source::$variant),*].len()] = [$(Source::$variant),*];

            /// The setting that names its topic.
            pub fn setting(self) -> &'static str {
                match self {
                    $(Self::$variant => $env,)*
                }
            }

            /// An empty part of a batch for its messages.
            pub fn part(self) -> Box<dyn Part> {
                match self {
                    $(Self::$variant => Box::<$part>::default(),)*
                }
            }
        }

        /// The topic each source is read from.
        #[derive(Debug, Clone, clap::Args)]
        pub struct TopicSettings {
            $(
                #[doc = $help]
                #[arg(long, env = $env, default_value = $default)]
                pub $field: String,
            )*
        }

        impl TopicSettings {
            /// The topic names, in [`Source::ALL`] order.
            pub fn names(&self) -> [String; Source::ALL.len()] {
                [$(self.$field.clone()),*]
            }
        }
    };
}

// The registry: adding a source is a folder beside these and one entry here.
sources! {
    /// Phone calls from `call-simulator`.
    Calls(calls::Calls): calls_topic, "CALLS_TOPIC" = topics::CALLS, "Topic of the calls.";
    /// Host samples from `host-metrics`.
    Hosts(hosts::Hosts): host_metrics_topic, "HOST_METRICS_TOPIC" = topics::HOST_METRICS,
        "Topic of the host samples.";
    /// Check results from `web-prober`.
    Probes(probes::Probes): probes_topic, "PROBES_TOPIC" = topics::WEB_PROBES,
        "Topic of the web check results.";
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

    /// The migrations of its tables, beyond the history under `migrations/` (versions after
    /// it; the SQL files in the source's folder, by `include_str!`).
    fn migrations(&self) -> &'static [Migration] {
        &[]
    }

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
