//! Every metric of host-metrics, in the `host_metrics` namespace: the current host values
//! (base units, ratios 0–1, counters for what the kernel counts, like node_exporter) and the
//! service's own. Labels are bounded: the host id (one per process), core, mount point,
//! block device and interface names (what the host has, after the filters).

use prometheus::{GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::sample::{Increases, Reading};

fleet::metrics! {
    /// The service's own metrics.
    pub struct ServiceMetrics in "host_metrics" {
        /// Samples taken.
        pub samples: IntCounter = "samples_total",
        /// Samples delivered to Kafka.
        pub published: IntCounter = "samples_published_total",
        /// Failed delivery attempts (the sample stays buffered and is retried).
        pub delivery_errors: IntCounter = "delivery_errors_total",
        /// Samples dropped, oldest first, because the buffer was full.
        pub dropped: IntCounter = "samples_dropped_total",
        /// Samples waiting for delivery.
        pub buffered: IntGauge = "buffered_samples",
        /// Time to read the host once.
        pub sample_duration: Histogram = "sample_duration_seconds"
            buckets &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    }
}

fleet::metrics! {
    /// The host's current values, each labelled by the host id and, per device, its name.
    struct HostGauges in "host_metrics" {
        /// Busy share of all cores over the last interval (0-1).
        cpu_usage: GaugeVec = "cpu_usage_ratio" labels ["host"],
        /// Busy share of one core over the last interval (0-1).
        core_usage: GaugeVec = "cpu_core_usage_ratio" labels ["host", "cpu"],
        /// Current frequency of one core.
        frequency: GaugeVec = "cpu_frequency_hertz" labels ["host", "cpu"],
        /// 1-minute load average.
        load1: GaugeVec = "load1" labels ["host"],
        /// 5-minute load average.
        load5: GaugeVec = "load5" labels ["host"],
        /// 15-minute load average.
        load15: GaugeVec = "load15" labels ["host"],
        /// Physical memory.
        memory_total: GaugeVec = "memory_total_bytes" labels ["host"],
        /// Memory in use (total minus free, buffers and page cache).
        memory_used: GaugeVec = "memory_used_bytes" labels ["host"],
        /// Memory available for new work without swapping (MemAvailable).
        memory_available: GaugeVec = "memory_available_bytes" labels ["host"],
        /// Swap space.
        swap_total: GaugeVec = "swap_total_bytes" labels ["host"],
        /// Swap space in use.
        swap_used: GaugeVec = "swap_used_bytes" labels ["host"],
        /// Size of a mounted filesystem.
        fs_size: GaugeVec = "filesystem_size_bytes" labels ["host", "mountpoint", "fstype"],
        /// Space available to unprivileged users on a filesystem.
        fs_available: GaugeVec = "filesystem_available_bytes"
            labels ["host", "mountpoint", "fstype"],
        /// Bytes read from a block device.
        disk_read: IntCounterVec = "disk_read_bytes_total" labels ["host", "device"],
        /// Bytes written to a block device.
        disk_written: IntCounterVec = "disk_written_bytes_total" labels ["host", "device"],
        /// Bytes received on an interface.
        receive_bytes: IntCounterVec = "network_receive_bytes_total" labels ["host", "interface"],
        /// Bytes sent on an interface.
        transmit_bytes: IntCounterVec = "network_transmit_bytes_total"
            labels ["host", "interface"],
        /// Packets received on an interface.
        receive_packets: IntCounterVec = "network_receive_packets_total"
            labels ["host", "interface"],
        /// Packets sent on an interface.
        transmit_packets: IntCounterVec = "network_transmit_packets_total"
            labels ["host", "interface"],
        /// When the host booted, seconds since the epoch.
        boot_time: GaugeVec = "boot_time_seconds" labels ["host"],
        /// Processes on the host.
        processes: GaugeVec = "processes" labels ["host"],
    }
}

impl HostGauges {
    /// The load averages, as a reading holds them.
    fn load(&self) -> [&GaugeVec; 3] {
        [&self.load1, &self.load5, &self.load15]
    }

    /// The interface counters, in the order of a reading's increases.
    fn net(&self) -> [&IntCounterVec; 4] {
        [
            &self.receive_bytes,
            &self.transmit_bytes,
            &self.receive_packets,
            &self.transmit_packets,
        ]
    }
}

/// The service's metrics and the host's.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub service: ServiceMetrics,
    host: HostGauges,
    /// The per-device label sets of the previous reading, to remove those that vanish.
    seen: Arc<Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    cores: HashSet<String>,
    filesystems: HashSet<(String, String)>,
    disks: HashSet<String>,
    interfaces: HashSet<String>,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            service: ServiceMetrics::register(registry)?,
            host: HostGauges::register(registry)?,
            seen: Arc::default(),
        })
    }

    /// Sets the host values from a reading. Counters move by the reading's increases, so they
    /// start at zero with the process (Prometheus' `rate()` handles that like a reset).
    /// Devices that went away since the previous reading lose their series (removed, not
    /// reset and set again, so a scrape never sees a present device missing).
    pub fn set_host(&self, host: &str, reading: &Reading, incs: &Increases) {
        let h = &self.host;
        h.cpu_usage
            .with_label_values(&[host])
            .set(reading.cpu_usage_pct / 100.0);
        for core in &reading.cores {
            h.core_usage
                .with_label_values(&[host, &core.name])
                .set(core.usage_pct / 100.0);
            h.frequency
                .with_label_values(&[host, &core.name])
                .set(core.frequency_mhz as f64 * 1e6);
        }
        for (gauge, value) in h.load().into_iter().zip(reading.load) {
            gauge.with_label_values(&[host]).set(value);
        }
        let set = |g: &GaugeVec, v: u64| g.with_label_values(&[host]).set(v as f64);
        set(&h.memory_total, reading.memory_total);
        set(&h.memory_used, reading.memory_used);
        set(&h.memory_available, reading.memory_available);
        set(&h.swap_total, reading.swap_total);
        set(&h.swap_used, reading.swap_used);
        for fs in &reading.filesystems {
            let labels = [host, fs.mount.as_str(), fs.fstype.as_str()];
            h.fs_size.with_label_values(&labels).set(fs.total as f64);
            h.fs_available
                .with_label_values(&labels)
                .set(fs.available as f64);
        }
        for (device, [read, written]) in &incs.disks {
            for (c, inc) in [(&h.disk_read, read), (&h.disk_written, written)] {
                let c = c.with_label_values(&[host, device]);
                if let Some(inc) = inc {
                    c.inc_by(inc.delta);
                }
            }
        }
        for (interface, incs) in &incs.interfaces {
            for (c, inc) in h.net().into_iter().zip(incs) {
                let c = c.with_label_values(&[host, interface]);
                if let Some(inc) = inc {
                    c.inc_by(inc.delta);
                }
            }
        }
        let boot = reading.time.timestamp() as f64 - reading.uptime_secs as f64;
        h.boot_time.with_label_values(&[host]).set(boot);
        set(&h.processes, reading.processes);
        self.forget_vanished(host, reading, incs);
    }

    /// Removes the series of cores, filesystems, disks and interfaces that were in the
    /// previous reading but not in this one (a replaced VM interface must not linger forever).
    fn forget_vanished(&self, host: &str, reading: &Reading, incs: &Increases) {
        let h = &self.host;
        let now = Seen {
            cores: reading.cores.iter().map(|c| c.name.clone()).collect(),
            filesystems: reading
                .filesystems
                .iter()
                .map(|f| (f.mount.clone(), f.fstype.clone()))
                .collect(),
            disks: incs.disks.iter().map(|(d, _)| d.clone()).collect(),
            interfaces: incs.interfaces.iter().map(|(i, _)| i.clone()).collect(),
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for core in seen.cores.difference(&now.cores) {
            let _ = h.core_usage.remove_label_values(&[host, core]);
            let _ = h.frequency.remove_label_values(&[host, core]);
        }
        for (mount, fstype) in seen.filesystems.difference(&now.filesystems) {
            let _ = h.fs_size.remove_label_values(&[host, mount, fstype]);
            let _ = h.fs_available.remove_label_values(&[host, mount, fstype]);
        }
        for disk in seen.disks.difference(&now.disks) {
            let _ = h.disk_read.remove_label_values(&[host, disk]);
            let _ = h.disk_written.remove_label_values(&[host, disk]);
        }
        for interface in seen.interfaces.difference(&now.interfaces) {
            for c in h.net() {
                let _ = c.remove_label_values(&[host, interface]);
            }
        }
        *seen = now;
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use crate::sample::{Counters, Interface, increases};

    fn nic(name: &str, bytes: u64) -> Interface {
        Interface {
            name: name.into(),
            rx_bytes: bytes,
            tx_bytes: bytes,
            rx_packets: 1,
            tx_packets: 1,
        }
    }

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_vanished_interface_loses_its_series_and_the_others_keep_counting() {
        let registry = Registry::new();
        let m = Metrics::register(&registry).unwrap();
        let mut counters = Counters::default();
        let mut reading = Reading {
            time: chrono::DateTime::from_timestamp(1_000, 0).unwrap(),
            interfaces: vec![nic("eth0", 100), nic("vnet7", 5)],
            ..Reading::default()
        };
        for (second, eth0) in [(1_000, 100), (1_010, 300)] {
            reading.time = chrono::DateTime::from_timestamp(second, 0).unwrap();
            reading.interfaces[0] = nic("eth0", eth0);
            let incs = increases(&mut counters, &reading);
            m.set_host("h", &reading, &incs);
        }
        let before = text(&registry);
        assert!(before.contains(r#"interface="vnet7""#), "{before}");
        reading.interfaces.truncate(1);
        reading.time = chrono::DateTime::from_timestamp(1_020, 0).unwrap();
        reading.interfaces[0] = nic("eth0", 400);
        let incs = increases(&mut counters, &reading);
        m.set_host("h", &reading, &incs);
        let after = text(&registry);
        assert!(!after.contains("vnet7"), "{after}");
        assert!(
            after.contains(
                r#"host_metrics_network_receive_bytes_total{host="h",interface="eth0"} 300"#
            ),
            "{after}"
        );
    }
}
