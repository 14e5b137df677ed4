//! The pure core: a [`Reading`] of the host (what the kernel reports, counters as they are)
//! becomes a [`HostSample`] (what we publish), with rates computed from consecutive readings
//! by [`Counters`] and devices chosen by [`Filters`]. No I/O here; `probe` does the reading.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fleet::events::{HOST_SCHEMA_VERSION, HostSample, HostValue, Unit};
use regex::Regex;

/// Everything read from the host at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub time: DateTime<Utc>,
    /// Busy share of all cores since the previous reading, 0–100.
    pub cpu_usage_pct: f64,
    pub cores: Vec<Core>,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    pub memory_total: u64,
    pub memory_used: u64,
    pub memory_available: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    pub filesystems: Vec<Filesystem>,
    pub disks: Vec<DiskIo>,
    pub interfaces: Vec<Interface>,
    pub uptime_secs: u64,
    pub processes: u64,
}

/// One logical CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    /// `cpu0`, `cpu1`, …
    pub name: String,
    pub usage_pct: f64,
    pub frequency_mhz: u64,
}

/// One mounted filesystem, by its mount point on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Filesystem {
    pub mount: String,
    pub fstype: String,
    pub total: u64,
    pub available: u64,
}

/// I/O counters of one block device, since boot.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskIo {
    pub device: String,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// Counters of one network interface, since it came up.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// Which devices are reported.
#[derive(Debug, Clone)]
pub struct Filters {
    pub net_include: Regex,
    pub net_exclude: Regex,
    pub fs_mounts_exclude: Regex,
    pub fs_types_exclude: Regex,
}

impl Filters {
    /// An interface is reported when included and not excluded.
    pub fn keep_interface(&self, name: &str) -> bool {
        self.net_include.is_match(name) && !self.net_exclude.is_match(name)
    }

    /// A filesystem is reported unless its mount point or type is excluded.
    pub fn keep_filesystem(&self, mount: &str, fstype: &str) -> bool {
        !self.fs_mounts_exclude.is_match(mount) && !self.fs_types_exclude.is_match(fstype)
    }
}

/// A counter's increase between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Increase {
    pub delta: u64,
    pub secs: f64,
}

impl Increase {
    /// Per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.delta as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Which counter of which device.
type CounterKey = (&'static str, String);

/// The previous value of every counter, to turn the next one into an increase.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    previous: HashMap<CounterKey, (u64, i64)>,
}

impl Counters {
    /// Records `value` of `counter` for `device` at `time_ms`; returns the increase since the
    /// previous record, or `None` the first time. A value below the previous one is a reset
    /// (an interface re-created, a counter wrapped): the counter restarted from zero, so the
    /// increase is the new value, as Prometheus' `rate()` reads it.
    pub fn observe(
        &mut self,
        counter: &'static str,
        device: &str,
        value: u64,
        time_ms: i64,
    ) -> Option<Increase> {
        let key = (counter, device.to_string());
        let previous = self.previous.insert(key, (value, time_ms))?;
        let (before, before_ms) = previous;
        let delta = if value >= before {
            value - before
        } else {
            value
        };
        Some(Increase {
            delta,
            secs: (time_ms - before_ms).max(0) as f64 / 1000.0,
        })
    }

    /// Forgets devices not in `devices` for `counter` (an interface that went away).
    pub fn retain(&mut self, counter: &'static str, devices: &[&str]) {
        self.previous
            .retain(|(c, d), _| *c != counter || devices.contains(&d.as_str()));
    }
}

/// Increases of one reading, by device, for the Prometheus counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Increases {
    /// `(interface, rx bytes, tx bytes, rx packets, tx packets)`.
    pub interfaces: Vec<(String, [Option<Increase>; 4])>,
    /// `(device, read bytes, written bytes)`.
    pub disks: Vec<(String, [Option<Increase>; 2])>,
}

/// Counter names, for [`Counters`].
const RX_BYTES: &str = "rx_bytes";
const TX_BYTES: &str = "tx_bytes";
const RX_PACKETS: &str = "rx_packets";
const TX_PACKETS: &str = "tx_packets";
const READ_BYTES: &str = "read_bytes";
const WRITTEN_BYTES: &str = "written_bytes";

/// Turns the counters of `reading` into increases since the previous reading.
pub fn increases(counters: &mut Counters, reading: &Reading) -> Increases {
    let t = reading.time.timestamp_millis();
    let interfaces = reading
        .interfaces
        .iter()
        .map(|i| {
            let n = i.name.as_str();
            let incs = [
                counters.observe(RX_BYTES, n, i.rx_bytes, t),
                counters.observe(TX_BYTES, n, i.tx_bytes, t),
                counters.observe(RX_PACKETS, n, i.rx_packets, t),
                counters.observe(TX_PACKETS, n, i.tx_packets, t),
            ];
            (i.name.clone(), incs)
        })
        .collect();
    let names: Vec<&str> = reading.interfaces.iter().map(|i| i.name.as_str()).collect();
    for counter in [RX_BYTES, TX_BYTES, RX_PACKETS, TX_PACKETS] {
        counters.retain(counter, &names);
    }
    let disks = reading
        .disks
        .iter()
        .map(|d| {
            let n = d.device.as_str();
            let incs = [
                counters.observe(READ_BYTES, n, d.read_bytes, t),
                counters.observe(WRITTEN_BYTES, n, d.written_bytes, t),
            ];
            (d.device.clone(), incs)
        })
        .collect();
    let names: Vec<&str> = reading.disks.iter().map(|d| d.device.as_str()).collect();
    for counter in [READ_BYTES, WRITTEN_BYTES] {
        counters.retain(counter, &names);
    }
    Increases { interfaces, disks }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The sample published for `reading`. Rates appear from the second reading on.
pub fn build_sample(host: &str, reading: &Reading, incs: &Increases) -> HostSample {
    let mut values = Vec::with_capacity(32 + reading.cores.len() * 2);
    let mut push = |metric: &str, device: &str, value: f64, unit: Unit| {
        values.push(HostValue {
            metric: metric.to_string(),
            device: device.to_string(),
            value,
            unit,
        });
    };
    push("cpu_usage", "", reading.cpu_usage_pct, Unit::Percent);
    push("cpu_cores", "", reading.cores.len() as f64, Unit::Count);
    if !reading.cores.is_empty() {
        let mean_mhz = reading
            .cores
            .iter()
            .map(|c| c.frequency_mhz as f64)
            .sum::<f64>()
            / reading.cores.len() as f64;
        push("cpu_frequency", "", mean_mhz * 1e6, Unit::Hertz);
    }
    for core in &reading.cores {
        push("cpu_core_usage", &core.name, core.usage_pct, Unit::Percent);
        push(
            "cpu_core_frequency",
            &core.name,
            core.frequency_mhz as f64 * 1e6,
            Unit::Hertz,
        );
    }
    for (metric, value) in ["load_1", "load_5", "load_15"].iter().zip(reading.load) {
        push(metric, "", value, Unit::Tasks);
    }
    push("memory_total", "", reading.memory_total as f64, Unit::Bytes);
    push("memory_used", "", reading.memory_used as f64, Unit::Bytes);
    push(
        "memory_available",
        "",
        reading.memory_available as f64,
        Unit::Bytes,
    );
    push(
        "memory_usage",
        "",
        percent(
            reading
                .memory_total
                .saturating_sub(reading.memory_available),
            reading.memory_total,
        ),
        Unit::Percent,
    );
    push("swap_total", "", reading.swap_total as f64, Unit::Bytes);
    push("swap_used", "", reading.swap_used as f64, Unit::Bytes);
    push(
        "swap_usage",
        "",
        percent(reading.swap_used, reading.swap_total),
        Unit::Percent,
    );
    for fs in &reading.filesystems {
        let used = fs.total.saturating_sub(fs.available);
        push("filesystem_size", &fs.mount, fs.total as f64, Unit::Bytes);
        push(
            "filesystem_available",
            &fs.mount,
            fs.available as f64,
            Unit::Bytes,
        );
        push("filesystem_used", &fs.mount, used as f64, Unit::Bytes);
        push(
            "filesystem_usage",
            &fs.mount,
            percent(used, fs.total),
            Unit::Percent,
        );
    }
    for (disk, (_, [read, written])) in reading.disks.iter().zip(&incs.disks) {
        push(
            "disk_read_bytes",
            &disk.device,
            disk.read_bytes as f64,
            Unit::Bytes,
        );
        push(
            "disk_written_bytes",
            &disk.device,
            disk.written_bytes as f64,
            Unit::Bytes,
        );
        if let (Some(r), Some(w)) = (read, written) {
            push(
                "disk_read_rate",
                &disk.device,
                r.rate(),
                Unit::BytesPerSecond,
            );
            push(
                "disk_write_rate",
                &disk.device,
                w.rate(),
                Unit::BytesPerSecond,
            );
        }
    }
    let (mut rx_total, mut tx_total) = (0u64, 0u64);
    let (mut rx_rate, mut tx_rate, mut have_rates) = (0.0, 0.0, true);
    for (nic, (_, [rx, tx, rxp, txp])) in reading.interfaces.iter().zip(&incs.interfaces) {
        let n = nic.name.as_str();
        push("network_receive_bytes", n, nic.rx_bytes as f64, Unit::Bytes);
        push(
            "network_transmit_bytes",
            n,
            nic.tx_bytes as f64,
            Unit::Bytes,
        );
        push(
            "network_receive_packets",
            n,
            nic.rx_packets as f64,
            Unit::Packets,
        );
        push(
            "network_transmit_packets",
            n,
            nic.tx_packets as f64,
            Unit::Packets,
        );
        rx_total += nic.rx_bytes;
        tx_total += nic.tx_bytes;
        match (rx, tx, rxp, txp) {
            (Some(rx), Some(tx), Some(rxp), Some(txp)) => {
                push("network_receive_rate", n, rx.rate(), Unit::BytesPerSecond);
                push("network_transmit_rate", n, tx.rate(), Unit::BytesPerSecond);
                push(
                    "network_receive_packet_rate",
                    n,
                    rxp.rate(),
                    Unit::PacketsPerSecond,
                );
                push(
                    "network_transmit_packet_rate",
                    n,
                    txp.rate(),
                    Unit::PacketsPerSecond,
                );
                rx_rate += rx.rate();
                tx_rate += tx.rate();
            }
            _ => have_rates = false,
        }
    }
    // Host-wide network totals: the demo's network_traffic_in/out/total, with "in" meaning
    // received (the demo reported bytes sent there).
    push("network_receive_bytes", "", rx_total as f64, Unit::Bytes);
    push("network_transmit_bytes", "", tx_total as f64, Unit::Bytes);
    push(
        "network_total_bytes",
        "",
        (rx_total + tx_total) as f64,
        Unit::Bytes,
    );
    if have_rates && !reading.interfaces.is_empty() {
        push("network_receive_rate", "", rx_rate, Unit::BytesPerSecond);
        push("network_transmit_rate", "", tx_rate, Unit::BytesPerSecond);
    }
    push("uptime", "", reading.uptime_secs as f64, Unit::Seconds);
    push("processes", "", reading.processes as f64, Unit::Count);
    HostSample {
        schema_version: HOST_SCHEMA_VERSION,
        host: host.to_string(),
        time: reading.time,
        metrics: values,
    }
}

#[cfg(test)]
mod tests;
