//! Web check results from `web-prober`: every result stored raw (`probe_results`) and per URL
//! and event-time window the counts per result and the check durations (`probe_stats_1m`).

mod decode;
mod store;

use std::collections::HashMap;

use fleet::events::{ProbeOutcome, ProbeResult};
use futures::future::BoxFuture;

pub use decode::decode_probe;

use crate::db::StoreError;
use crate::decode::Invalid;
use crate::part::{Ingest, Message, Part, Write, Written};
use crate::rollup::Rollup;
use crate::rules::Rules;

/// Rough per-result overhead for the memory budget (struct, map slot, allocation headers).
const PROBE_RESULT_OVERHEAD: usize = 320;

/// Statistics of one URL's checks in one window: counts per result and the check durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeWindow {
    pub checks: i64,
    /// Per result, in [`ProbeOutcome::ALL`] order.
    pub by_result: [i64; 8],
    pub latency_sum: f64,
    pub latency_min: f64,
    pub latency_max: f64,
}

impl ProbeWindow {
    fn single(outcome: ProbeOutcome, seconds: f64) -> Self {
        let mut by_result = [0; 8];
        by_result[outcome_index(outcome)] = 1;
        Self {
            checks: 1,
            by_result,
            latency_sum: seconds,
            latency_min: seconds,
            latency_max: seconds,
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.checks += other.checks;
        for (a, b) in self.by_result.iter_mut().zip(other.by_result) {
            *a += b;
        }
        self.latency_sum += other.latency_sum;
        self.latency_min = self.latency_min.min(other.latency_min);
        self.latency_max = self.latency_max.max(other.latency_max);
    }

    /// Checks with `outcome`.
    pub fn count(&self, outcome: ProbeOutcome) -> i64 {
        self.by_result[outcome_index(outcome)]
    }
}

fn outcome_index(outcome: ProbeOutcome) -> usize {
    ProbeOutcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or_default()
}

/// The check results of a batch.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    /// Valid check results, each stored raw.
    pub results: Vec<ProbeResult>,
    /// Window statistics keyed by URL and window start.
    pub windows: HashMap<(String, i64), ProbeWindow>,
    approx_bytes: usize,
}

impl Probes {
    /// Adds a valid check result.
    pub fn record_result(&mut self, rules: &Rules, result: ProbeResult) {
        let window = rules.window_of(result.time.timestamp_millis());
        let single = ProbeWindow::single(result.result, result.phases.total_seconds);
        self.windows
            .entry((result.url.clone(), window))
            .and_modify(|w| w.merge(&single))
            .or_insert(single);
        self.approx_bytes += PROBE_RESULT_OVERHEAD
            + 2 * result.url.len()
            + result.method.len()
            + result.error.as_ref().map_or(0, String::len)
            + result.tls.as_ref().map_or(0, |t| t.version.len());
        self.results.push(result);
    }

    /// Windows in key order: every flush locks rows in the same order, so two aggregators
    /// flushing at once cannot deadlock.
    pub fn sorted_windows(&self) -> Vec<(&(String, i64), &ProbeWindow)> {
        let mut windows: Vec<_> = self.windows.iter().collect();
        windows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        windows
    }
}

impl Part for Probes {
    fn record(&mut self, message: &Message<'_>, cx: &Ingest) -> Result<i64, Invalid> {
        let result = decode_probe(message.payload, cx.max_message_bytes)?;
        let time_ms = result.time.timestamp_millis();
        cx.in_time(time_ms)?;
        self.record_result(&cx.rules, result);
        Ok(time_ms)
    }

    fn messages(&self) -> u64 {
        self.results.len() as u64
    }

    fn approx_bytes(&self) -> usize {
        self.approx_bytes
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
}

#[cfg(test)]
mod tests;
