//! Space of every mounted filesystem, by its mount point on the host.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{GaugeVec, Registry};

use super::mounts::{Mount, MountList};
use super::series::Present;
use super::{Collector, Filters, Setup, Values, percent};

fleet::metrics! {
    /// Filesystem space, labelled by the host id, the mount point and the type.
    struct Gauges in "host_metrics" {
        /// Size of a mounted filesystem.
        fs_size: GaugeVec = "filesystem_size_bytes" labels ["host", "mountpoint", "fstype"],
        /// Space available to unprivileged users on a filesystem.
        fs_available: GaugeVec = "filesystem_available_bytes"
            labels ["host", "mountpoint", "fstype"],
    }
}

/// One mounted filesystem, by its mount point on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Filesystem {
    pub mount: String,
    pub fstype: String,
    pub total: u64,
    pub available: u64,
}

/// Filesystem space.
#[derive(Debug)]
pub struct Filesystems {
    host: String,
    filters: Filters,
    mounts: MountList,
    gauges: Gauges,
    /// `(mount point, type)` of the previous reading.
    present: Present<(String, String)>,
}

impl Filesystems {
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            filters: setup.filters.clone(),
            mounts: setup.mounts.clone(),
            gauges: Gauges::register(registry)?,
            present: Present::default(),
        })
    }

    /// Sets the series; removes those of filesystems no longer mounted.
    fn set_series(&mut self, filesystems: &[Filesystem]) {
        let g = &self.gauges;
        for fs in filesystems {
            let labels = [self.host.as_str(), fs.mount.as_str(), fs.fstype.as_str()];
            g.fs_size.with_label_values(&labels).set(fs.total as f64);
            g.fs_available
                .with_label_values(&labels)
                .set(fs.available as f64);
        }
        let now = filesystems
            .iter()
            .map(|f| (f.mount.clone(), f.fstype.clone()));
        for (mount, fstype) in self.present.replace(now.collect::<HashSet<_>>()) {
            let _ = g
                .fs_size
                .remove_label_values(&[&self.host, &mount, &fstype]);
            let _ = g
                .fs_available
                .remove_label_values(&[&self.host, &mount, &fstype]);
        }
    }
}

impl Collector for Filesystems {
    fn collect(&mut self, time: DateTime<Utc>, out: &mut Values) {
        let filesystems = filesystems(&self.mounts.at(time), &self.filters);
        push_values(&filesystems, out);
        self.set_series(&filesystems);
    }
}

/// The filesystems reported, by mount point: those kept by the filters and not empty
/// (`total` 0: no space to report), a mount point mounted over counted once.
pub fn filesystems(mounts: &[Mount], filters: &Filters) -> Vec<Filesystem> {
    let mut seen = HashSet::new();
    let mut out: Vec<Filesystem> = mounts
        .iter()
        .filter(|m| filters.keep_filesystem(&m.mount, &m.fstype) && m.total > 0)
        .filter(|m| seen.insert(m.mount.clone()))
        .map(|m| Filesystem {
            mount: m.mount.clone(),
            fstype: m.fstype.clone(),
            total: m.total,
            available: m.available,
        })
        .collect();
    out.sort_by(|a, b| a.mount.cmp(&b.mount));
    out
}

/// The published values: size, available, used and usage of each.
pub fn push_values(filesystems: &[Filesystem], out: &mut Values) {
    for fs in filesystems {
        let used = fs.total.saturating_sub(fs.available);
        out.push("filesystem_size", &fs.mount, fs.total as f64, Unit::Bytes);
        let available = fs.available as f64;
        out.push("filesystem_available", &fs.mount, available, Unit::Bytes);
        out.push("filesystem_used", &fs.mount, used as f64, Unit::Bytes);
        let usage = percent(used, fs.total);
        out.push("filesystem_usage", &fs.mount, usage, Unit::Percent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::tests::{registry_text, sample_of, setup, value};

    fn mount(mount: &str, fstype: &str, total: u64) -> Mount {
        Mount {
            mount: mount.into(),
            fstype: fstype.into(),
            device: "sda1".into(),
            total,
            available: total / 4,
            ..Mount::default()
        }
    }

    /// A host's mount list: an overmount, pseudo filesystems, an empty one.
    fn host_mounts() -> Vec<Mount> {
        vec![
            mount("/var", "xfs", 800),
            mount("/", "ext4", 400),
            mount("/proc", "proc", 0),
            mount("/sys/fs/cgroup", "cgroup2", 10),
            mount("/mnt/empty", "ext4", 0),
            mount("/var", "tmpfs", 100),
        ]
    }

    #[test]
    fn filtered_empty_and_overmounted_filesystems_are_left_out_and_the_rest_sorted() {
        let kept = filesystems(&host_mounts(), &Filters::defaults());
        let kept: Vec<_> = kept
            .iter()
            .map(|f| (f.mount.as_str(), f.fstype.as_str()))
            .collect();
        assert_eq!(kept, [("/", "ext4"), ("/var", "xfs")]);
    }

    #[test]
    fn used_is_what_is_not_available() {
        let mut out = Values::default();
        push_values(&filesystems(&host_mounts(), &Filters::defaults()), &mut out);
        let sample = sample_of(out);
        assert_eq!(
            value(&sample, "filesystem_used", "/var"),
            Some((600.0, Unit::Bytes))
        );
        assert_eq!(
            value(&sample, "filesystem_usage", "/var"),
            Some((75.0, Unit::Percent))
        );
    }

    #[test]
    fn an_unmounted_filesystem_loses_its_series() {
        let registry = Registry::new();
        let mut c = Filesystems::new(&setup(), &registry).unwrap();
        c.set_series(&filesystems(&host_mounts(), &Filters::defaults()));
        let mounted = registry_text(&registry);
        assert!(mounted.contains(r#"mountpoint="/var""#), "{mounted}");
        c.set_series(&filesystems(&host_mounts()[1..2], &Filters::defaults()));
        let after = registry_text(&registry);
        assert!(!after.contains(r#"mountpoint="/var""#), "{after}");
        assert!(after.contains(r#"mountpoint="/""#), "{after}");
    }
}
