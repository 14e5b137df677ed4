//! The sample as a whole, and the helpers of every collector's tests.

use std::path::PathBuf;

use fleet::events::HostSample;
use prometheus::{Encoder, TextEncoder};

use super::*;
use crate::collect::disk::DiskIo;
use crate::collect::filesystem::Filesystem;
use crate::collect::memory::MemInfo;
use crate::collect::mounts::MountList;

pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// Host `h`, native (root `/`), the default filters.
pub(crate) fn setup() -> Setup {
    Setup {
        host: "h".into(),
        root: PathBuf::from("/"),
        filters: Filters::defaults(),
        mounts: MountList::new(PathBuf::from("/")),
    }
}

/// What `/metrics` would show of `registry`.
pub(crate) fn registry_text(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// `values` as a sample of host `h` at time 0.
pub(crate) fn sample_of(values: Values) -> HostSample {
    build_sample("h", at(0), values)
}

pub(crate) fn value(sample: &HostSample, metric: &str, device: &str) -> Option<(f64, Unit)> {
    sample.value(metric, device).map(|v| (v.value, v.unit))
}

/// Every collector's values for one first reading, in the order of `collectors()`.
fn first_reading() -> Values {
    let mut out = Values::default();
    cpu::push_values(&cpu::tests::two_cores(), &mut out);
    load::push_values([0.5, 0.25, 0.125], &mut out);
    let mem = MemInfo {
        total: 1000,
        available: 600,
        ..MemInfo::default()
    };
    memory::push_values(&mem, &mut out);
    let fs = Filesystem {
        mount: "/".into(),
        fstype: "ext4".into(),
        total: 400,
        available: 100,
    };
    filesystem::push_values(&[fs], &mut out);
    let sda = DiskIo {
        device: "sda".into(),
        read_bytes: 1_000,
        written_bytes: 2_000,
    };
    disk::push_values(&[sda], &vec![("sda".into(), [None, None])], &mut out);
    network::push_values(&[], &Vec::new(), &mut out);
    uptime::push_values(3600, &mut out);
    processes::push_values(42, &mut out);
    out
}

#[test]
fn a_sample_carries_every_value_with_its_unit() {
    let time = at(1_763_892_000_000);
    let sample = build_sample("db-1", time, first_reading());
    assert_eq!(sample.host, "db-1");
    assert_eq!(sample.schema_version, HOST_SCHEMA_VERSION);
    assert_eq!(sample.time, time);
    assert_eq!(value(&sample, "cpu_usage", ""), Some((25.0, Unit::Percent)));
    assert_eq!(
        value(&sample, "cpu_core_usage", "cpu1"),
        Some((30.0, Unit::Percent))
    );
    assert_eq!(
        value(&sample, "cpu_frequency", ""),
        Some((2.5e9, Unit::Hertz))
    );
    assert_eq!(value(&sample, "cpu_cores", ""), Some((2.0, Unit::Count)));
    assert_eq!(value(&sample, "load_15", ""), Some((0.125, Unit::Tasks)));
    // Usage counts what is not available (page cache is reclaimable).
    assert_eq!(
        value(&sample, "memory_usage", ""),
        Some((40.0, Unit::Percent))
    );
    assert_eq!(
        value(&sample, "memory_available", ""),
        Some((600.0, Unit::Bytes))
    );
    assert_eq!(
        value(&sample, "swap_usage", ""),
        Some((0.0, Unit::Percent)),
        "no swap: 0, not NaN"
    );
    assert_eq!(
        value(&sample, "filesystem_used", "/"),
        Some((300.0, Unit::Bytes))
    );
    assert_eq!(
        value(&sample, "filesystem_usage", "/"),
        Some((75.0, Unit::Percent))
    );
    assert_eq!(
        value(&sample, "disk_written_bytes", "sda"),
        Some((2_000.0, Unit::Bytes))
    );
    assert_eq!(value(&sample, "uptime", ""), Some((3600.0, Unit::Seconds)));
    assert_eq!(value(&sample, "processes", ""), Some((42.0, Unit::Count)));
    assert!(sample.metrics.iter().all(|v| v.value.is_finite()));
}

#[test]
fn every_collector_registers_its_own_series_and_reads_this_host() {
    let registry = Registry::new();
    let mut sampler = Sampler::new(&setup(), &registry).expect("no name registered twice");
    let sample = sampler.sample();
    for metric in [
        "cpu_usage",
        "load_1",
        "memory_total",
        "network_total_bytes",
        "uptime",
        "processes",
    ] {
        assert!(value(&sample, metric, "").is_some(), "{metric}");
    }
    let text = registry_text(&registry);
    for series in [
        "cpu_usage_ratio",
        "load1",
        "memory_total_bytes",
        "boot_time_seconds",
        "processes",
    ] {
        assert!(
            text.contains(&format!("host_metrics_{series}{{")),
            "{series}: {text}"
        );
    }
}
