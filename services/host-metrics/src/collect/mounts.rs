//! The mount list, through `sysinfo` (`/proc/mounts`, then `statvfs` for space and
//! `/proc/diskstats` for I/O): what the `filesystem` and `disk` collectors read. One
//! [`MountList`] serves both, read once per sample.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use sysinfo::DiskRefreshKind;

/// The mounts below the host's root, read at most once per sample time however many
/// collectors ask (clones share the reading).
#[derive(Debug, Clone)]
pub struct MountList(Arc<Mutex<Reading>>);

#[derive(Debug)]
struct Reading {
    disks: sysinfo::Disks,
    root: PathBuf,
    /// The sample time of `mounts`.
    at: Option<DateTime<Utc>>,
    mounts: Vec<Mount>,
}

impl MountList {
    /// Nothing read yet; `root` is where the host's root filesystem is visible.
    pub fn new(root: PathBuf) -> Self {
        Self(Arc::new(Mutex::new(Reading {
            disks: sysinfo::Disks::new(),
            root,
            at: None,
            mounts: Vec::new(),
        })))
    }

    /// The mounts for the sample taken at `time`: read (space and I/O in one refresh) by the
    /// first collector that asks, reused by the others.
    pub fn at(&self, time: DateTime<Utc>) -> Vec<Mount> {
        let mut reading = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if reading.at != Some(time) {
            let both = DiskRefreshKind::nothing().with_storage().with_io_usage();
            reading.disks.refresh_specifics(true, both);
            reading.mounts = read(&reading.disks, &reading.root);
            reading.at = Some(time);
        }
        reading.mounts.clone()
    }
}

/// One mounted filesystem, by its mount point on the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mount {
    /// The host's mount point (`HOST_ROOT` stripped).
    pub mount: String,
    pub fstype: String,
    /// The device, `/dev/` stripped (`sda1`, `mapper/vg-root`).
    pub device: String,
    pub total: u64,
    pub available: u64,
    /// Since boot.
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// The mounts of `disks` (as last refreshed) below `root`, in `sysinfo`'s order; the
/// container's own mounts (outside `root`) are left out.
fn read(disks: &sysinfo::Disks, root: &Path) -> Vec<Mount> {
    let mounts = disks.list().iter().filter_map(|d| {
        let name = d.name().to_string_lossy();
        let usage = d.usage();
        Some(Mount {
            mount: host_mount(root, d.mount_point())?,
            fstype: d.file_system().to_string_lossy().into_owned(),
            device: name.strip_prefix("/dev/").unwrap_or(&name).to_string(),
            total: d.total_space(),
            available: d.available_space(),
            read_bytes: usage.total_read_bytes,
            written_bytes: usage.total_written_bytes,
        })
    });
    mounts.collect()
}

/// The host's mount point for `mount` as seen here: `root` stripped, `None` when outside it.
pub fn host_mount(root: &Path, mount: &Path) -> Option<String> {
    let relative = mount.strip_prefix(root).ok()?;
    Some(format!("/{}", relative.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_reported_as_the_host_sees_them() {
        let host = Path::new("/host");
        assert_eq!(host_mount(host, Path::new("/host")).as_deref(), Some("/"));
        assert_eq!(
            host_mount(host, Path::new("/host/boot/efi")).as_deref(),
            Some("/boot/efi")
        );
        assert_eq!(
            host_mount(host, Path::new("/etc/hosts")),
            None,
            "the container's own"
        );
        let native = Path::new("/");
        assert_eq!(host_mount(native, Path::new("/")).as_deref(), Some("/"));
        assert_eq!(
            host_mount(native, Path::new("/var")).as_deref(),
            Some("/var")
        );
    }
}
