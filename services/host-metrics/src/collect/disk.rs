//! I/O of every block device behind a reported filesystem: bytes read and written, and their
//! rates from the second reading on.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{IntCounterVec, Registry};

use super::counters::{Counters, Increase};
use super::mounts::{Mount, MountList};
use super::series::Present;
use super::{Collector, Filters, Setup, Values};

fleet::metrics! {
    /// Block device I/O, labelled by the host id and the device.
    struct Gauges in "host_metrics" {
        /// Bytes read from a block device.
        disk_read: IntCounterVec = "disk_read_bytes_total" labels ["host", "device"],
        /// Bytes written to a block device.
        disk_written: IntCounterVec = "disk_written_bytes_total" labels ["host", "device"],
    }
}

/// I/O counters of one block device, since boot.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskIo {
    pub device: String,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// `(device, [read bytes, written bytes])`: the increases since the previous reading.
pub type DiskIncreases = Vec<(String, [Option<Increase>; 2])>;

/// Counter names, for [`Counters`].
const READ_BYTES: &str = "read_bytes";
const WRITTEN_BYTES: &str = "written_bytes";

/// Block device I/O.
#[derive(Debug)]
pub struct Disks {
    host: String,
    filters: Filters,
    mounts: MountList,
    counters: Counters,
    gauges: Gauges,
    present: Present<String>,
}

impl Disks {
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            filters: setup.filters.clone(),
            mounts: setup.mounts.clone(),
            counters: Counters::default(),
            gauges: Gauges::register(registry)?,
            present: Present::default(),
        })
    }

    /// Takes a reading at `time`: its increases, its published values, its series.
    fn record(&mut self, time: DateTime<Utc>, disks: &[DiskIo], out: &mut Values) {
        let incs = increases(&mut self.counters, time.timestamp_millis(), disks);
        push_values(disks, &incs, out);
        self.set_series(&incs);
    }

    /// Counters move by the increases, so they start at zero with the process (Prometheus'
    /// `rate()` handles that like a reset); devices that went away lose their series.
    fn set_series(&mut self, incs: &DiskIncreases) {
        let (g, host) = (&self.gauges, self.host.as_str());
        for (device, [read, written]) in incs {
            for (c, inc) in [(&g.disk_read, read), (&g.disk_written, written)] {
                let c = c.with_label_values(&[host, device]);
                if let Some(inc) = inc {
                    c.inc_by(inc.delta);
                }
            }
        }
        let now: HashSet<String> = incs.iter().map(|(d, _)| d.clone()).collect();
        for disk in self.present.replace(now) {
            let _ = g.disk_read.remove_label_values(&[host, &disk]);
            let _ = g.disk_written.remove_label_values(&[host, &disk]);
        }
    }
}

impl Collector for Disks {
    fn collect(&mut self, time: DateTime<Utc>, out: &mut Values) {
        let disks = disks(&self.mounts.at(time), &self.filters);
        self.record(time, &disks, out);
    }
}

/// I/O per block device of the filesystems kept by the filters, sorted: a device mounted
/// several times (bind mounts) counts once.
pub fn disks(mounts: &[Mount], filters: &Filters) -> Vec<DiskIo> {
    let mut seen = HashSet::new();
    let mut out: Vec<DiskIo> = mounts
        .iter()
        .filter(|m| filters.keep_filesystem(&m.mount, &m.fstype))
        .filter(|m| seen.insert(m.device.clone()))
        .map(|m| DiskIo {
            device: m.device.clone(),
            read_bytes: m.read_bytes,
            written_bytes: m.written_bytes,
        })
        .collect();
    out.sort_by(|a, b| a.device.cmp(&b.device));
    out
}

/// The increases of `disks` at `time_ms`; devices that went away are forgotten.
pub fn increases(counters: &mut Counters, time_ms: i64, disks: &[DiskIo]) -> DiskIncreases {
    let incs = disks
        .iter()
        .map(|d| {
            let n = d.device.as_str();
            let read = counters.observe(READ_BYTES, n, d.read_bytes, time_ms);
            let written = counters.observe(WRITTEN_BYTES, n, d.written_bytes, time_ms);
            (d.device.clone(), [read, written])
        })
        .collect();
    let names: Vec<&str> = disks.iter().map(|d| d.device.as_str()).collect();
    for counter in [READ_BYTES, WRITTEN_BYTES] {
        counters.retain(counter, &names);
    }
    incs
}

/// The published values: bytes since boot, and rates once there are increases.
pub fn push_values(disks: &[DiskIo], incs: &DiskIncreases, out: &mut Values) {
    for (disk, (_, [read, written])) in disks.iter().zip(incs) {
        let device = disk.device.as_str();
        out.push(
            "disk_read_bytes",
            device,
            disk.read_bytes as f64,
            Unit::Bytes,
        );
        let written_bytes = disk.written_bytes as f64;
        out.push("disk_written_bytes", device, written_bytes, Unit::Bytes);
        if let (Some(r), Some(w)) = (read, written) {
            out.push("disk_read_rate", device, r.rate(), Unit::BytesPerSecond);
            out.push("disk_write_rate", device, w.rate(), Unit::BytesPerSecond);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::{at, registry_text, sample_of, setup, value};

    fn mount(mount: &str, fstype: &str, device: &str, read_bytes: u64) -> Mount {
        Mount {
            mount: mount.into(),
            fstype: fstype.into(),
            device: device.into(),
            read_bytes,
            written_bytes: read_bytes * 2,
            ..Mount::default()
        }
    }

    #[test]
    fn a_device_mounted_twice_counts_once_and_excluded_filesystems_not_at_all() {
        let mounts = [
            mount("/", "ext4", "sdb1", 10),
            mount("/home", "ext4", "sda1", 20),
            mount("/srv/home", "ext4", "sda1", 20),
            mount("/var/lib/docker/overlay2/x/merged", "overlay", "overlay", 5),
        ];
        let kept = disks(&mounts, &Filters::defaults());
        let kept: Vec<_> = kept.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(kept, ["sda1", "sdb1"]);
    }

    #[test]
    fn rates_appear_from_the_second_reading_and_series_count_from_zero() {
        let registry = Registry::new();
        let mut c = Disks::new(&setup(), &registry).unwrap();
        let io = |read_bytes| {
            [DiskIo {
                device: "sda".into(),
                read_bytes,
                written_bytes: 0,
            }]
        };
        let mut out = Values::default();
        c.record(at(0), &io(1_000), &mut out);
        let first = sample_of(out);
        assert_eq!(
            value(&first, "disk_read_bytes", "sda"),
            Some((1_000.0, Unit::Bytes))
        );
        assert_eq!(value(&first, "disk_read_rate", "sda"), None);
        let mut out = Values::default();
        c.record(at(2_000), &io(5_000), &mut out);
        assert_eq!(
            value(&sample_of(out), "disk_read_rate", "sda"),
            Some((2_000.0, Unit::BytesPerSecond))
        );
        let text = registry_text(&registry);
        assert!(
            text.contains(r#"host_metrics_disk_read_bytes_total{device="sda",host="h"} 4000"#),
            "{text}"
        );
    }
}
