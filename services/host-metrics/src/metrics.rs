//! Every metric of host-metrics, in the `host_metrics` namespace: the current host values
//! (base units, ratios 0–1, counters for what the kernel counts, like node_exporter) and the
//! service's own. Labels are bounded: the host id (one per process), core, mount point,
//! block device and interface names (what the host has, after the filters).

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::sample::{Increases, Reading};

const NS: &str = "host_metrics";

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NS)
}

/// The service's metrics and the host's.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: IntCounter,
    pub published: IntCounter,
    pub delivery_errors: IntCounter,
    pub dropped: IntCounter,
    pub buffered: IntGauge,
    pub sample_duration: Histogram,
    host: HostGauges,
}

#[derive(Debug, Clone)]
struct HostGauges {
    cpu_usage: GaugeVec,
    core_usage: GaugeVec,
    frequency: GaugeVec,
    load: [GaugeVec; 3],
    memory_total: GaugeVec,
    memory_used: GaugeVec,
    memory_available: GaugeVec,
    swap_total: GaugeVec,
    swap_used: GaugeVec,
    fs_size: GaugeVec,
    fs_available: GaugeVec,
    disk_read: IntCounterVec,
    disk_written: IntCounterVec,
    net: [IntCounterVec; 4],
    boot_time: GaugeVec,
    processes: GaugeVec,
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<GaugeVec> {
    let mut all = vec!["host"];
    all.extend_from_slice(labels);
    let g = GaugeVec::new(opts(name, help), &all)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(opts(name, help), &["host", label])?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let r = registry;
        let m = Self {
            samples: IntCounter::with_opts(opts("samples_total", "Samples taken."))?,
            published: IntCounter::with_opts(opts(
                "samples_published_total",
                "Samples delivered to Kafka.",
            ))?,
            delivery_errors: IntCounter::with_opts(opts(
                "delivery_errors_total",
                "Failed delivery attempts (the sample stays buffered and is retried).",
            ))?,
            dropped: IntCounter::with_opts(opts(
                "samples_dropped_total",
                "Samples dropped, oldest first, because the buffer was full.",
            ))?,
            buffered: IntGauge::with_opts(opts(
                "buffered_samples",
                "Samples waiting for delivery.",
            ))?,
            sample_duration: Histogram::with_opts(
                HistogramOpts::new("sample_duration_seconds", "Time to read the host once.")
                    .namespace(NS)
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    ]),
            )?,
            host: HostGauges {
                cpu_usage: gauge(
                    r,
                    "cpu_usage_ratio",
                    "Busy share of all cores over the last interval (0-1).",
                    &[],
                )?,
                core_usage: gauge(
                    r,
                    "cpu_core_usage_ratio",
                    "Busy share of one core over the last interval (0-1).",
                    &["cpu"],
                )?,
                frequency: gauge(
                    r,
                    "cpu_frequency_hertz",
                    "Current frequency of one core.",
                    &["cpu"],
                )?,
                load: [
                    gauge(r, "load1", "1-minute load average.", &[])?,
                    gauge(r, "load5", "5-minute load average.", &[])?,
                    gauge(r, "load15", "15-minute load average.", &[])?,
                ],
                memory_total: gauge(r, "memory_total_bytes", "Physical memory.", &[])?,
                memory_used: gauge(
                    r,
                    "memory_used_bytes",
                    "Memory in use (total minus free, buffers and page cache).",
                    &[],
                )?,
                memory_available: gauge(
                    r,
                    "memory_available_bytes",
                    "Memory available for new work without swapping (MemAvailable).",
                    &[],
                )?,
                swap_total: gauge(r, "swap_total_bytes", "Swap space.", &[])?,
                swap_used: gauge(r, "swap_used_bytes", "Swap space in use.", &[])?,
                fs_size: gauge(
                    r,
                    "filesystem_size_bytes",
                    "Size of a mounted filesystem.",
                    &["mountpoint", "fstype"],
                )?,
                fs_available: gauge(
                    r,
                    "filesystem_available_bytes",
                    "Space available to unprivileged users on a filesystem.",
                    &["mountpoint", "fstype"],
                )?,
                disk_read: counter(
                    r,
                    "disk_read_bytes_total",
                    "Bytes read from a block device.",
                    "device",
                )?,
                disk_written: counter(
                    r,
                    "disk_written_bytes_total",
                    "Bytes written to a block device.",
                    "device",
                )?,
                net: [
                    counter(
                        r,
                        "network_receive_bytes_total",
                        "Bytes received on an interface.",
                        "interface",
                    )?,
                    counter(
                        r,
                        "network_transmit_bytes_total",
                        "Bytes sent on an interface.",
                        "interface",
                    )?,
                    counter(
                        r,
                        "network_receive_packets_total",
                        "Packets received on an interface.",
                        "interface",
                    )?,
                    counter(
                        r,
                        "network_transmit_packets_total",
                        "Packets sent on an interface.",
                        "interface",
                    )?,
                ],
                boot_time: gauge(
                    r,
                    "boot_time_seconds",
                    "When the host booted, seconds since the epoch.",
                    &[],
                )?,
                processes: gauge(r, "processes", "Processes on the host.", &[])?,
            },
        };
        r.register(Box::new(m.samples.clone()))?;
        r.register(Box::new(m.published.clone()))?;
        r.register(Box::new(m.delivery_errors.clone()))?;
        r.register(Box::new(m.dropped.clone()))?;
        r.register(Box::new(m.buffered.clone()))?;
        r.register(Box::new(m.sample_duration.clone()))?;
        Ok(m)
    }

    /// Sets the host values from a reading. Counters move by the reading's increases, so they
    /// start at zero with the process (Prometheus' `rate()` handles that like a reset).
    /// Devices that went away since the previous reading lose their series.
    pub fn set_host(&self, host: &str, reading: &Reading, incs: &Increases) {
        let h = &self.host;
        // Replace per-device gauges wholesale: a vanished mount or core must not linger.
        for vec in [&h.core_usage, &h.frequency, &h.fs_size, &h.fs_available] {
            vec.reset();
        }
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
        for (gauge, value) in h.load.iter().zip(reading.load) {
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
            for (c, inc) in h.net.iter().zip(incs) {
                let c = c.with_label_values(&[host, interface]);
                if let Some(inc) = inc {
                    c.inc_by(inc.delta);
                }
            }
        }
        let boot = reading.time.timestamp() as f64 - reading.uptime_secs as f64;
        h.boot_time.with_label_values(&[host]).set(boot);
        set(&h.processes, reading.processes);
    }
}
