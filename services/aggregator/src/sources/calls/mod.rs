//! Phone calls from `call-simulator` (and the Python demo's formats): per event-time window the
//! call count and duration statistics (`call_stats_1m`), each call above the long-call threshold
//! as a row (`long_calls`), and the all-time totals (`call_totals`).

mod decode;
mod store;

use std::collections::HashMap;

use deadpool_postgres::Pool;
use futures::future::BoxFuture;

pub use decode::{Call, MAX_CALL_DURATION_MS, decode_call};

use crate::db::StoreError;
use crate::decode::Invalid;
use crate::metrics::Metrics;
use crate::part::{Ingest, Message, Part, Write, Written};
use crate::rollup::Rollup;
use crate::rules::Rules;

/// Rough per-entry overheads for the memory budget (struct, map slot, allocation headers).
const LONG_CALL_OVERHEAD: usize = 96;
const WINDOW_OVERHEAD: usize = 64;

/// Additive statistics of one window; merging two deltas is associative and commutative, which
/// is what lets late events and several aggregators add into the same row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowDelta {
    pub calls: i64,
    pub duration_sum_ms: i64,
    pub duration_min_ms: i64,
    pub duration_max_ms: i64,
    pub long_calls: i64,
}

impl WindowDelta {
    fn single(duration_ms: i64, long: bool) -> Self {
        Self {
            calls: 1,
            duration_sum_ms: duration_ms,
            duration_min_ms: duration_ms,
            duration_max_ms: duration_ms,
            long_calls: i64::from(long),
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.duration_sum_ms += other.duration_sum_ms;
        self.duration_min_ms = self.duration_min_ms.min(other.duration_min_ms);
        self.duration_max_ms = self.duration_max_ms.max(other.duration_max_ms);
        self.long_calls += other.long_calls;
    }
}

/// A call above the long-call threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct LongCall {
    /// The topic incarnation (see [`crate::batch::Position`]): with the partition and offset,
    /// the message's key in `long_calls`.
    pub topic_id: i64,
    pub partition: i32,
    pub offset: i64,
    pub call_id: Option<uuid::Uuid>,
    pub caller: String,
    pub callee: String,
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// The calls of a batch.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    /// Window deltas keyed by window start (seconds since the epoch).
    pub windows: HashMap<i64, WindowDelta>,
    pub long_calls: Vec<LongCall>,
    /// Valid calls.
    pub calls: u64,
    /// Sum of their durations, in milliseconds.
    pub duration_ms: i64,
    /// Each valid call's duration, for `aggregator_call_duration_seconds` once stored.
    pub durations_ms: Vec<i64>,
    approx_bytes: usize,
}

impl Calls {
    /// Adds a valid call read at `at` (its topic id, partition and offset).
    pub fn record_call(&mut self, rules: &Rules, call: &Call<'_>, at: (i64, i32, i64)) {
        let (topic_id, partition, offset) = at;
        let long = call.duration_ms > rules.long_call_threshold_ms;
        let delta = WindowDelta::single(call.duration_ms, long);
        self.windows
            .entry(rules.window_of(call.start_ms))
            .and_modify(|w| w.merge(&delta))
            .or_insert(delta);
        self.calls += 1;
        self.duration_ms += call.duration_ms;
        self.durations_ms.push(call.duration_ms);
        if long {
            self.approx_bytes += LONG_CALL_OVERHEAD + call.caller.len() + call.callee.len();
            self.long_calls.push(LongCall {
                topic_id,
                partition,
                offset,
                call_id: call.call_id,
                caller: call.caller.to_string(),
                callee: call.callee.to_string(),
                start_ms: call.start_ms,
                duration_ms: call.duration_ms,
            });
        }
    }

    /// Window deltas sorted by window start: every flush locks rows in the same order, so two
    /// aggregators flushing at once cannot deadlock.
    pub fn sorted_windows(&self) -> Vec<(i64, WindowDelta)> {
        let mut windows: Vec<_> = self.windows.iter().map(|(k, v)| (*k, *v)).collect();
        windows.sort_unstable_by_key(|(start, _)| *start);
        windows
    }
}

impl Part for Calls {
    fn record(&mut self, message: &Message<'_>, cx: &Ingest) -> Result<i64, Invalid> {
        let call = decode_call(message.key, message.payload, cx.max_message_bytes)?;
        let time_ms = call.start_ms;
        cx.in_time(time_ms)?;
        let at = (message.topic_id, message.partition, message.offset);
        self.record_call(&cx.rules, &call, at);
        if call.duration_ms > cx.rules.long_call_threshold_ms {
            tracing::debug!(caller = %call.caller, callee = %call.callee,
                duration_ms = call.duration_ms, "long call");
        }
        Ok(time_ms)
    }

    fn messages(&self) -> u64 {
        self.calls
    }

    fn approx_bytes(&self) -> usize {
        self.approx_bytes
            + self.windows.len() * WINDOW_OVERHEAD
            + self.durations_ms.len() * size_of::<i64>()
    }

    fn tables(&self) -> &'static [&'static str] {
        &store::TABLES
    }

    fn rollup(&self) -> &'static Rollup {
        &store::ROLLUP
    }

    fn write<'a>(&'a self, to: &'a Write<'a>) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(store::write(self, to))
    }

    /// Shows the stored all-time totals in the `aggregator_stored_*` gauges.
    fn start<'a>(
        &'a self,
        pool: &'a Pool,
        metrics: &'a Metrics,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(store::restore_totals(pool, metrics))
    }
}

#[cfg(test)]
mod tests;
