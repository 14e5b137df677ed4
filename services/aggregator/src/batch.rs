//! The pure core of aggregation: a [`Batch`] collects, between two flushes, the deltas of every
//! event-time window touched, the long calls, the host samples, the dead letters, and how far
//! each partition got. A flush writes the whole batch in one transaction, so a batch is the
//! unit of exactly-once.

use std::collections::HashMap;

use fleet::events::{HostSample, ProbeOutcome, ProbeResult, Unit};

use crate::decode::{Call, Invalid};
use crate::topics::Source;

/// Rough per-entry overheads for the memory budget (struct, map slot, allocation headers).
const LONG_CALL_OVERHEAD: usize = 96;
const DEAD_LETTER_OVERHEAD: usize = 128;
const HOST_VALUE_OVERHEAD: usize = 64;
const HOST_WINDOW_OVERHEAD: usize = 160;
const PROBE_RESULT_OVERHEAD: usize = 320;

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
    pub partition: i32,
    pub offset: i64,
    pub call_id: Option<uuid::Uuid>,
    pub caller: String,
    pub callee: String,
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// An invalid message, kept byte for byte for the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub source: Source,
    pub partition: i32,
    pub offset: i64,
    pub reason: Invalid,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// How far one partition got within the batch, and where the stored offset stood before it:
/// `expected` is the fence (`-1`: no stored offset yet), `next` the offset to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub source: Source,
    pub partition: i32,
    pub expected: i64,
    pub next: i64,
}

/// Statistics of one host value in one window. `last` is the value with the latest time, so
/// merging stays order-independent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostWindow {
    pub unit: Unit,
    pub samples: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub last_ms: i64,
    pub last: f64,
}

impl HostWindow {
    fn single(unit: Unit, time_ms: i64, value: f64) -> Self {
        Self {
            unit,
            samples: 1,
            sum: value,
            min: value,
            max: value,
            last_ms: time_ms,
            last: value,
        }
    }

    /// Folds `other` into `self`.
    pub fn merge(&mut self, other: &Self) {
        self.samples += other.samples;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.last_ms >= self.last_ms {
            self.last_ms = other.last_ms;
            self.last = other.last;
            self.unit = other.unit;
        }
    }
}

/// Which series and window a [`HostWindow`] belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostWindowKey {
    pub host: String,
    pub metric: String,
    pub device: String,
    /// Window start, seconds since the epoch.
    pub window: i64,
}

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

/// Folds every value of `sample` into `windows`; returns the bytes that added, approximately.
fn fold_host_sample(
    windows: &mut HashMap<HostWindowKey, HostWindow>,
    window_secs: i64,
    sample: &HostSample,
) -> usize {
    let time_ms = sample.time.timestamp_millis();
    let window = window_start(time_ms, window_secs);
    let mut bytes = 0;
    for v in &sample.metrics {
        let single = HostWindow::single(v.unit, time_ms, v.value);
        let key = HostWindowKey {
            host: sample.host.clone(),
            metric: v.metric.clone(),
            device: v.device.clone(),
            window,
        };
        match windows.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(&single),
            std::collections::hash_map::Entry::Vacant(e) => {
                bytes += HOST_WINDOW_OVERHEAD + sample.host.len() + v.metric.len() + v.device.len();
                e.insert(single);
            }
        }
        bytes += HOST_VALUE_OVERHEAD + v.metric.len() + v.device.len();
    }
    bytes
}

/// The host windows of some samples, in key order (as [`Batch::sorted_host_windows`]): what
/// the batch accumulates, for the samples a flush keeps.
pub fn host_windows_of<'a>(
    window_secs: i64,
    samples: impl IntoIterator<Item = &'a HostSample>,
) -> Vec<(HostWindowKey, HostWindow)> {
    let mut windows = HashMap::new();
    for sample in samples {
        fold_host_sample(&mut windows, window_secs, sample);
    }
    let mut sorted: Vec<_> = windows.into_iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    sorted
}

/// Everything consumed since the last flush, from every topic.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Window deltas keyed by window start (seconds since the epoch).
    pub windows: HashMap<i64, WindowDelta>,
    pub long_calls: Vec<LongCall>,
    pub dead_letters: Vec<DeadLetter>,
    pub progress: Vec<Progress>,
    /// Valid calls in the batch.
    pub calls: u64,
    /// Sum of their durations, in milliseconds.
    pub duration_ms: i64,
    /// Valid host samples, each stored raw (one row per value).
    pub host_samples: Vec<HostSample>,
    /// Host values in the samples.
    pub host_values: u64,
    pub host_windows: HashMap<HostWindowKey, HostWindow>,
    /// Valid check results, each stored raw.
    pub probe_results: Vec<ProbeResult>,
    /// Window statistics keyed by URL and window start.
    pub probe_windows: HashMap<(String, i64), ProbeWindow>,
    approx_bytes: usize,
}

/// Aggregation parameters.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub window_secs: i64,
    /// Strictly longer calls are long calls.
    pub long_call_threshold_ms: i64,
}

impl Rules {
    /// Start (seconds since the epoch) of the window holding `start_ms`; floors, so times
    /// before 1970 land in the right window too.
    pub fn window_of(&self, start_ms: i64) -> i64 {
        window_start(start_ms, self.window_secs)
    }
}

/// See [`Rules::window_of`].
fn window_start(time_ms: i64, window_secs: i64) -> i64 {
    time_ms.div_euclid(window_secs * 1000) * window_secs
}

impl Batch {
    /// Adds a valid call read at `partition`/`offset`.
    pub fn record_call(&mut self, rules: &Rules, call: &Call<'_>, partition: i32, offset: i64) {
        let long = call.duration_ms > rules.long_call_threshold_ms;
        let delta = WindowDelta::single(call.duration_ms, long);
        self.windows
            .entry(rules.window_of(call.start_ms))
            .and_modify(|w| w.merge(&delta))
            .or_insert(delta);
        self.calls += 1;
        self.duration_ms += call.duration_ms;
        if long {
            self.approx_bytes += LONG_CALL_OVERHEAD + call.caller.len() + call.callee.len();
            self.long_calls.push(LongCall {
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

    /// Adds a valid host sample.
    pub fn record_host_sample(&mut self, rules: &Rules, sample: HostSample) {
        self.approx_bytes += fold_host_sample(&mut self.host_windows, rules.window_secs, &sample);
        self.host_values += sample.metrics.len() as u64;
        self.host_samples.push(sample);
    }

    /// Adds a valid check result.
    pub fn record_probe(&mut self, rules: &Rules, result: ProbeResult) {
        let window = rules.window_of(result.time.timestamp_millis());
        let single = ProbeWindow::single(result.result, result.phases.total_seconds);
        self.probe_windows
            .entry((result.url.clone(), window))
            .and_modify(|w| w.merge(&single))
            .or_insert(single);
        self.approx_bytes += PROBE_RESULT_OVERHEAD
            + 2 * result.url.len()
            + result.method.len()
            + result.error.as_ref().map_or(0, String::len)
            + result.tls.as_ref().map_or(0, |t| t.version.len());
        self.probe_results.push(result);
    }

    /// Keeps an invalid message for the dead-letter topic.
    pub fn record_dead_letter(&mut self, letter: DeadLetter) {
        self.approx_bytes += DEAD_LETTER_OVERHEAD
            + letter.key.as_ref().map_or(0, Vec::len)
            + letter.payload.as_ref().map_or(0, Vec::len);
        self.dead_letters.push(letter);
    }

    /// Notes that `offset` of `source`'s `partition` is covered by this batch. `expected` is
    /// consulted only the first time the partition appears in the batch.
    pub fn advance(
        &mut self,
        source: Source,
        partition: i32,
        offset: i64,
        expected: impl FnOnce() -> i64,
    ) {
        match self
            .progress
            .iter_mut()
            .find(|p| p.partition == partition && p.source == source)
        {
            Some(p) => p.next = p.next.max(offset + 1),
            None => self.progress.push(Progress {
                source,
                partition,
                expected: expected(),
                next: offset + 1,
            }),
        }
    }

    /// True when a flush would change anything (even only offsets past invalid messages).
    pub fn is_empty(&self) -> bool {
        self.progress.is_empty()
    }

    /// Kafka messages the batch covers (valid or not).
    pub fn messages(&self) -> u64 {
        self.calls
            + self.host_samples.len() as u64
            + self.probe_results.len() as u64
            + self.dead_letters.len() as u64
    }

    /// Approximate heap held by the batch, for the memory budget.
    pub fn approx_bytes(&self) -> usize {
        self.approx_bytes + self.windows.len() * 64
    }

    /// Window deltas sorted by window start: every flush locks rows in the same order, so two
    /// aggregators flushing at once cannot deadlock.
    pub fn sorted_windows(&self) -> Vec<(i64, WindowDelta)> {
        let mut windows: Vec<_> = self.windows.iter().map(|(k, v)| (*k, *v)).collect();
        windows.sort_unstable_by_key(|(start, _)| *start);
        windows
    }

    /// Probe windows in key order, for the same reason as [`Self::sorted_windows`].
    pub fn sorted_probe_windows(&self) -> Vec<(&(String, i64), &ProbeWindow)> {
        let mut windows: Vec<_> = self.probe_windows.iter().collect();
        windows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        windows
    }

    /// Host windows in key order, for the same reason as [`Self::sorted_windows`].
    pub fn sorted_host_windows(&self) -> Vec<(&HostWindowKey, &HostWindow)> {
        let mut windows: Vec<_> = self.host_windows.iter().collect();
        windows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        windows
    }
}

#[cfg(test)]
mod tests;
