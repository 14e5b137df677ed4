//! Memory and swap, from `/proc/meminfo`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{GaugeVec, Registry};

use super::procfs::{self, Failures, ParseError};
use super::{Collector, Setup, Values, percent};

fleet::metrics! {
    /// Memory and swap, labelled by the host id.
    struct Gauges in "host_metrics" {
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
    }
}

/// Memory and swap, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total: u64,
    /// Available for new work without swapping: page cache and reclaimable slab count as
    /// available.
    pub available: u64,
    pub swap_total: u64,
    pub swap_free: u64,
}

impl MemInfo {
    /// In use: what is not available.
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }

    pub fn swap_used(&self) -> u64 {
        self.swap_total.saturating_sub(self.swap_free)
    }
}

/// Memory and swap of the host.
#[derive(Debug)]
pub struct Memory {
    host: String,
    gauges: Gauges,
    failures: Failures,
}

impl Memory {
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            gauges: Gauges::register(registry)?,
            failures: Failures::default(),
        })
    }
}

impl Collector for Memory {
    fn collect(&mut self, _time: DateTime<Utc>, out: &mut Values) {
        let read = procfs::read("/proc/meminfo", parse_meminfo);
        let mem = self.failures.check(read).unwrap_or_default();
        push_values(&mem, out);
        let g = &self.gauges;
        let set = |gauge: &GaugeVec, v: u64| gauge.with_label_values(&[&self.host]).set(v as f64);
        set(&g.memory_total, mem.total);
        set(&g.memory_used, mem.used());
        set(&g.memory_available, mem.available);
        set(&g.swap_total, mem.swap_total);
        set(&g.swap_used, mem.swap_used());
    }
}

/// Memory and swap from `/proc/meminfo` (`MemTotal:  24731400 kB`, one field a line, KiB).
/// Kernels before 3.14 have no `MemAvailable`: it is estimated as free, buffers, page cache
/// and reclaimable slab, less shared memory (what `sysinfo` and `free` did). Fields missing
/// besides `MemTotal` are 0.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let fields: HashMap<&str, u64> = text
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((key, kib.saturating_mul(1024)))
        })
        .collect();
    let field = |key: &str| fields.get(key).copied().unwrap_or(0);
    let total = *fields
        .get("MemTotal")
        .ok_or(ParseError::Missing("MemTotal"))?;
    let available = fields.get("MemAvailable").copied().unwrap_or_else(|| {
        ["MemFree", "Buffers", "Cached", "SReclaimable"]
            .iter()
            .fold(0u64, |sum, key| sum.saturating_add(field(key)))
            .saturating_sub(field("Shmem"))
    });
    Ok(MemInfo {
        total,
        available,
        swap_total: field("SwapTotal"),
        swap_free: field("SwapFree"),
    })
}

/// The published values.
pub fn push_values(mem: &MemInfo, out: &mut Values) {
    out.push("memory_total", "", mem.total as f64, Unit::Bytes);
    out.push("memory_used", "", mem.used() as f64, Unit::Bytes);
    out.push("memory_available", "", mem.available as f64, Unit::Bytes);
    let usage = percent(mem.total.saturating_sub(mem.available), mem.total);
    out.push("memory_usage", "", usage, Unit::Percent);
    out.push("swap_total", "", mem.swap_total as f64, Unit::Bytes);
    out.push("swap_used", "", mem.swap_used() as f64, Unit::Bytes);
    let swap_usage = percent(mem.swap_used(), mem.swap_total);
    out.push("swap_usage", "", swap_usage, Unit::Percent);
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn kib_fields_become_bytes() {
        let mem = parse_meminfo(include_str!("fixtures/meminfo.txt")).unwrap();
        assert_eq!(
            mem,
            MemInfo {
                total: 24_731_400 * KIB,
                available: 22_951_156 * KIB,
                swap_total: 2_097_148 * KIB,
                swap_free: 1_572_860 * KIB,
            }
        );
        assert_eq!(mem.used(), (24_731_400 - 22_951_156) * KIB);
        assert_eq!(mem.swap_used(), (2_097_148 - 1_572_860) * KIB);
    }

    #[test]
    fn without_mem_available_it_is_estimated_from_free_buffers_cache_and_slab() {
        let mem = parse_meminfo(include_str!("fixtures/meminfo-3.10.txt")).unwrap();
        // MemFree + Buffers + Cached + SReclaimable - Shmem.
        let estimate = 101_328 + 25_652 + 412_052 + 53_976 - 22_828;
        assert_eq!(mem.available, estimate * KIB);
        assert_eq!(mem.total, 1_016_452 * KIB);
    }

    #[test]
    fn no_mem_total_is_an_error() {
        assert_eq!(
            parse_meminfo("MemFree: 1 kB\n"),
            Err(ParseError::Missing("MemTotal"))
        );
    }
}
