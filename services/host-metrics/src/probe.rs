//! The edge that reads the host, through `sysinfo`. In a container it reads the host when run
//! with the host's pid and network namespaces (`/proc` and `/sys/class/net` are then the
//! host's) and the host's root mounted at `HOST_ROOT` (mounts are read below it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::Utc;
use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, System};

use crate::sample::{Core, DiskIo, Filesystem, Filters, Interface, Reading};

/// Reads the host; keeps the state `sysinfo` needs for CPU usage between readings.
#[derive(Debug)]
pub struct HostProbe {
    system: System,
    disks: Disks,
    networks: Networks,
    root: PathBuf,
    filters: Filters,
}

impl HostProbe {
    /// A probe reading mounts below `root` (`/` outside containers).
    pub fn new(root: PathBuf, filters: Filters) -> Self {
        let mut system = System::new();
        // The baseline for the first reading's CPU usage.
        system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        Self {
            system,
            disks: Disks::new(),
            networks: Networks::new(),
            root,
            filters,
        }
    }

    /// Reads everything once. CPU usage covers the time since the previous call.
    pub fn read(&mut self) -> Reading {
        let time = Utc::now();
        self.system
            .refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage().with_frequency());
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::everything());
        self.disks.refresh_specifics(
            true,
            DiskRefreshKind::nothing().with_storage().with_io_usage(),
        );
        self.networks.refresh(true);
        let load = System::load_average();
        Reading {
            time,
            cpu_usage_pct: f64::from(self.system.global_cpu_usage()),
            cores: self
                .system
                .cpus()
                .iter()
                .map(|c| Core {
                    name: c.name().to_string(),
                    usage_pct: f64::from(c.cpu_usage()),
                    frequency_mhz: c.frequency(),
                })
                .collect(),
            load: [load.one, load.five, load.fifteen],
            memory_total: self.system.total_memory(),
            memory_used: self.system.used_memory(),
            memory_available: self.system.available_memory(),
            swap_total: self.system.total_swap(),
            swap_used: self.system.used_swap(),
            filesystems: self.filesystems(),
            disks: self.disk_io(),
            interfaces: self.interfaces(),
            uptime_secs: System::uptime(),
            processes: count_processes(&self.root.join("proc")),
        }
    }

    fn filesystems(&self) -> Vec<Filesystem> {
        let mut seen = HashSet::new();
        let mut out: Vec<Filesystem> = self
            .disks
            .list()
            .iter()
            .filter_map(|d| {
                let mount = host_mount(&self.root, d.mount_point())?;
                let fstype = d.file_system().to_string_lossy().into_owned();
                let keep = self.filters.keep_filesystem(&mount, &fstype) && d.total_space() > 0;
                (keep && seen.insert(mount.clone())).then(|| Filesystem {
                    mount,
                    fstype,
                    total: d.total_space(),
                    available: d.available_space(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.mount.cmp(&b.mount));
        out
    }

    /// I/O per block device: a device mounted several times (bind mounts) counts once.
    fn disk_io(&self) -> Vec<DiskIo> {
        let mut seen = HashSet::new();
        let mut out: Vec<DiskIo> = self
            .disks
            .list()
            .iter()
            .filter(|d| {
                host_mount(&self.root, d.mount_point()).is_some_and(|m| {
                    self.filters
                        .keep_filesystem(&m, &d.file_system().to_string_lossy())
                })
            })
            .filter_map(|d| {
                let name = d.name().to_string_lossy();
                let device = name.strip_prefix("/dev/").unwrap_or(&name).to_string();
                let usage = d.usage();
                seen.insert(device.clone()).then_some(DiskIo {
                    device,
                    read_bytes: usage.total_read_bytes,
                    written_bytes: usage.total_written_bytes,
                })
            })
            .collect();
        out.sort_by(|a, b| a.device.cmp(&b.device));
        out
    }

    fn interfaces(&self) -> Vec<Interface> {
        let mut out: Vec<Interface> = self
            .networks
            .iter()
            .filter(|(name, _)| self.filters.keep_interface(name))
            .map(|(name, data)| Interface {
                name: name.clone(),
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
                rx_packets: data.total_packets_received(),
                tx_packets: data.total_packets_transmitted(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// The host's mount point for `mount` as seen here: `root` stripped, `None` when outside it.
fn host_mount(root: &Path, mount: &Path) -> Option<String> {
    let relative = mount.strip_prefix(root).ok()?;
    Some(format!("/{}", relative.to_string_lossy()))
}

/// Processes: the numeric entries of `/proc`. (`sysinfo` would read every process's status
/// files to list them, hundreds of reads per sample for one number.)
fn count_processes(proc_dir: &Path) -> u64 {
    std::fs::read_dir(proc_dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count() as u64
    })
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

    #[test]
    fn processes_are_the_numeric_entries_of_proc() {
        let dir = std::env::temp_dir().join(format!("hm-proc-{}", std::process::id()));
        for name in ["1", "42", "self", "cpuinfo", "1234567"] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
        }
        assert_eq!(count_processes(&dir), 3);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(count_processes(&dir), 0, "unreadable: 0, not a panic");
    }
}
