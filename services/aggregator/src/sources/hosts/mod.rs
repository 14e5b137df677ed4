//! Host samples from `host-metrics`: every value stored raw (`system_metrics`, one row per
//! value), each host and sample time once however many messages carried it
//! (`host_samples_seen`), and per series and event-time window the value statistics
//! (`host_metrics_1m`).

mod decode;
mod store;

use std::collections::HashMap;

use fleet::events::{HostSample, Unit};
use futures::future::BoxFuture;

pub use decode::{MAX_VALUES, decode_host};

use crate::db::StoreError;
use crate::decode::Invalid;
use crate::part::{Ingest, Maintenance, Message, Part, Write, Written};
use crate::rollup::Rollup;
use crate::rules::Rules;

/// How much longer than the lateness limit a stored sample's key is kept.
const SEEN_MARGIN: std::time::Duration = std::time::Duration::from_secs(3600);

/// Rough per-entry overheads for the memory budget (struct, map slot, allocation headers).
const HOST_VALUE_OVERHEAD: usize = 64;
const HOST_WINDOW_OVERHEAD: usize = 160;

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

/// Folds every value of `sample` into `windows`; returns the bytes that added, approximately.
fn fold_host_sample(
    windows: &mut HashMap<HostWindowKey, HostWindow>,
    window_secs: i64,
    sample: &HostSample,
) -> usize {
    let time_ms = sample.time.timestamp_millis();
    let window = crate::rules::window_start(time_ms, window_secs);
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

/// The host windows of some samples, in key order (as [`Hosts::sorted_windows`]): what
/// the batch accumulates, for the samples a flush keeps.
pub fn windows_of<'a>(
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

/// The host samples of a batch.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// Valid samples, each stored raw (one row per value).
    pub samples: Vec<HostSample>,
    /// Values in the samples.
    pub values: u64,
    pub windows: HashMap<HostWindowKey, HostWindow>,
    approx_bytes: usize,
}

impl Hosts {
    /// Adds a valid host sample.
    pub fn record_sample(&mut self, rules: &Rules, sample: HostSample) {
        self.approx_bytes += fold_host_sample(&mut self.windows, rules.window_secs, &sample);
        self.values += sample.metrics.len() as u64;
        self.samples.push(sample);
    }

    /// Host windows in key order: every flush locks rows in the same order, so two
    /// aggregators flushing at once cannot deadlock.
    pub fn sorted_windows(&self) -> Vec<(&HostWindowKey, &HostWindow)> {
        let mut windows: Vec<_> = self.windows.iter().collect();
        windows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        windows
    }
}

impl Part for Hosts {
    fn record(&mut self, message: &Message<'_>, cx: &Ingest) -> Result<i64, Invalid> {
        let sample = decode_host(message.payload, cx.max_message_bytes)?;
        let time_ms = sample.time.timestamp_millis();
        cx.in_time(time_ms)?;
        self.record_sample(&cx.rules, sample);
        Ok(time_ms)
    }

    fn messages(&self) -> u64 {
        self.samples.len() as u64
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

    /// Forgets the stored host samples a re-sent copy could no longer match: older than every
    /// partition's watermark by the lateness limit (such a copy is rejected as late), with
    /// [`SEEN_MARGIN`] to spare. Nothing while a partition has no watermark.
    fn maintain<'a>(&'a self, cx: &'a Maintenance<'a>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(watermark) = cx.watermark else {
                return Ok(());
            };
            let keep = chrono::Duration::from_std(cx.max_lateness + SEEN_MARGIN)
                .unwrap_or(chrono::Duration::MAX);
            let before = (watermark.checked_sub_signed(keep))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            let pruned = store::prune_seen(cx.pool, before).await?;
            tracing::debug!(pruned, "host sample keys pruned");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests;
