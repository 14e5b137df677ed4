//! Sampling the host: one collector per file, like node_exporter's. Each collector reads its
//! part of the host (the I/O edge), turns the reading into the values it publishes (pure,
//! unit-tested on fixtures) and sets its own series on `/metrics`. A [`Sampler`] runs them all,
//! in the order of `collectors()`, into one [`HostSample`].
//!
//! - [`cpu`], [`load`], [`memory`] (and swap), [`filesystem`], [`disk`], [`network`],
//!   [`uptime`], [`processes`] — the collectors.
//! - [`counters`] — rates from consecutive counter values; [`series`] — removing the series of
//!   devices that went away; [`filters`] — which devices are reported; [`mounts`] — the mount
//!   list that `filesystem` and `disk` read; [`procfs`] — reading and parsing `/proc` files.

pub mod counters;
pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod filters;
pub mod load;
pub mod memory;
pub mod mounts;
pub mod network;
pub mod processes;
pub mod procfs;
pub mod series;
pub mod uptime;

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use fleet::events::{HOST_SCHEMA_VERSION, HostSample, HostValue, Unit};
use prometheus::Registry;

pub use self::filters::Filters;

/// One part of the host: reads it, publishes its values, sets its series.
pub trait Collector: Send + fmt::Debug {
    /// Reads this part of the host once, appends the values published for it to `out` and
    /// sets its series. `time` is the sample's: rates are per second of sample time.
    fn collect(&mut self, time: DateTime<Utc>, out: &mut Values);
}

/// What every collector is built from.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The host id: the `host` label of every series.
    pub host: String,
    /// Where the host's root filesystem is visible (`HOST_ROOT`).
    pub root: PathBuf,
    /// Which devices are reported.
    pub filters: Filters,
    /// The mount list the `filesystem` and `disk` collectors share (read once per sample).
    pub mounts: mounts::MountList,
}

/// Every collector, in the order its values appear in a sample. Adding a host value is a new
/// file in this folder and a line here (see docs/architecture.md, "Adding a host value").
fn collectors(setup: &Setup, registry: &Registry) -> prometheus::Result<Vec<Box<dyn Collector>>> {
    Ok(vec![
        Box::new(cpu::Cpu::new(setup, registry)?),
        Box::new(load::Load::new(setup, registry)?),
        Box::new(memory::Memory::new(setup, registry)?),
        Box::new(filesystem::Filesystems::new(setup, registry)?),
        Box::new(disk::Disks::new(setup, registry)?),
        Box::new(network::Network::new(setup, registry)?),
        Box::new(uptime::Uptime::new(setup, registry)?),
        Box::new(processes::Processes::new(setup, registry)?),
    ])
}

/// The host values of one sample, in the order they are published.
#[derive(Debug, Default)]
pub struct Values(Vec<HostValue>);

impl Values {
    /// Appends `metric` of `device` (`""` for a host-wide value).
    pub fn push(&mut self, metric: &str, device: &str, value: f64, unit: Unit) {
        self.0.push(HostValue {
            metric: metric.to_string(),
            device: device.to_string(),
            value,
            unit,
        });
    }
}

/// The sample published for the values read at `time`.
pub fn build_sample(host: &str, time: DateTime<Utc>, values: Values) -> HostSample {
    HostSample {
        schema_version: HOST_SCHEMA_VERSION,
        host: host.to_string(),
        time,
        metrics: values.0,
    }
}

/// Every collector, and the host they sample.
#[derive(Debug)]
pub struct Sampler {
    host: String,
    collectors: Vec<Box<dyn Collector>>,
}

impl Sampler {
    /// Builds every collector and registers its series in `registry`. The CPU collector takes
    /// its baseline here: the first sample's CPU usage covers the time since.
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            collectors: collectors(setup, registry)?,
        })
    }

    /// Reads the host once. Rates appear from the second sample on.
    pub fn sample(&mut self) -> HostSample {
        let time = Utc::now();
        let mut values = Values::default();
        for collector in &mut self.collectors {
            collector.collect(time, &mut values);
        }
        build_sample(&self.host, time, values)
    }
}

/// `part` as a percentage of `whole`; 0 when `whole` is 0 (no swap: 0, not NaN).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests;
