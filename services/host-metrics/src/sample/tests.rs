use super::*;
use crate::config::{DEFAULT_FS_MOUNTS_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_NET_EXCLUDE};

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn nic(name: &str, rx: u64, tx: u64) -> Interface {
    Interface {
        name: name.into(),
        rx_bytes: rx,
        tx_bytes: tx,
        rx_packets: rx / 100,
        tx_packets: tx / 100,
    }
}

fn reading(ms: i64, interfaces: Vec<Interface>) -> Reading {
    Reading {
        time: at(ms),
        cpu_usage_pct: 25.0,
        cores: vec![
            Core {
                name: "cpu0".into(),
                usage_pct: 20.0,
                frequency_mhz: 2000,
            },
            Core {
                name: "cpu1".into(),
                usage_pct: 30.0,
                frequency_mhz: 3000,
            },
        ],
        load: [0.5, 0.25, 0.125],
        memory_total: 1000,
        memory_used: 300,
        memory_available: 600,
        swap_total: 0,
        swap_used: 0,
        filesystems: vec![Filesystem {
            mount: "/".into(),
            fstype: "ext4".into(),
            total: 400,
            available: 100,
        }],
        disks: vec![DiskIo {
            device: "sda".into(),
            read_bytes: 1_000,
            written_bytes: 2_000,
        }],
        interfaces,
        uptime_secs: 3600,
        processes: 42,
    }
}

fn value(sample: &HostSample, metric: &str, device: &str) -> Option<(f64, Unit)> {
    sample.value(metric, device).map(|v| (v.value, v.unit))
}

#[test]
fn increases_are_deltas_over_elapsed_time_and_the_first_reading_has_none() {
    let mut c = Counters::default();
    assert_eq!(c.observe("rx", "eth0", 1_000, 0), None);
    let inc = c.observe("rx", "eth0", 3_000, 2_000).unwrap();
    assert_eq!(inc.delta, 2_000);
    assert!((inc.rate() - 1_000.0).abs() < 1e-9);
    // Devices and counters are independent.
    assert_eq!(c.observe("rx", "eth1", 5, 2_000), None);
    assert_eq!(c.observe("tx", "eth0", 5, 2_000), None);
}

#[test]
fn a_counter_that_goes_down_was_reset_and_counts_from_zero() {
    let mut c = Counters::default();
    c.observe("rx", "eth0", 1_000_000, 0);
    let inc = c.observe("rx", "eth0", 500, 10_000).unwrap();
    assert_eq!(inc.delta, 500);
    assert!((inc.rate() - 50.0).abs() < 1e-9);
}

#[test]
fn zero_elapsed_time_gives_a_zero_rate_not_infinity() {
    let mut c = Counters::default();
    c.observe("rx", "eth0", 0, 5_000);
    assert_eq!(c.observe("rx", "eth0", 10, 5_000).unwrap().rate(), 0.0);
}

#[test]
fn a_vanished_interface_is_forgotten_and_starts_fresh_when_it_returns() {
    let mut c = Counters::default();
    increases(
        &mut c,
        &reading(0, vec![nic("eth0", 100, 100), nic("wg0", 5, 5)]),
    );
    let incs = increases(&mut c, &reading(1_000, vec![nic("eth0", 200, 200)]));
    assert_eq!(incs.interfaces.len(), 1);
    let incs = increases(
        &mut c,
        &reading(2_000, vec![nic("eth0", 300, 300), nic("wg0", 1, 1)]),
    );
    assert_eq!(incs.interfaces[1].1[0], None, "wg0 came back: no rate yet");
    assert_eq!(incs.interfaces[0].1[0].unwrap().delta, 100);
}

#[test]
fn receive_is_received_and_transmit_is_sent_unlike_the_old_demo() {
    let mut c = Counters::default();
    let first = reading(0, vec![nic("eth0", 10_000, 500)]);
    let incs = increases(&mut c, &first);
    let sample = build_sample("h", &first, &incs);
    assert_eq!(
        value(&sample, "network_receive_bytes", "eth0"),
        Some((10_000.0, Unit::Bytes))
    );
    assert_eq!(
        value(&sample, "network_transmit_bytes", "eth0"),
        Some((500.0, Unit::Bytes))
    );
    assert_eq!(
        value(&sample, "network_receive_bytes", ""),
        Some((10_000.0, Unit::Bytes))
    );
    assert_eq!(
        value(&sample, "network_total_bytes", ""),
        Some((10_500.0, Unit::Bytes))
    );
    assert_eq!(
        value(&sample, "network_receive_rate", "eth0"),
        None,
        "no rate on the first"
    );

    let second = reading(10_000, vec![nic("eth0", 30_000, 1_500)]);
    let incs = increases(&mut c, &second);
    let sample = build_sample("h", &second, &incs);
    assert_eq!(
        value(&sample, "network_receive_rate", "eth0"),
        Some((2_000.0, Unit::BytesPerSecond))
    );
    assert_eq!(
        value(&sample, "network_transmit_rate", ""),
        Some((100.0, Unit::BytesPerSecond))
    );
    assert_eq!(
        value(&sample, "network_receive_packet_rate", "eth0"),
        Some((20.0, Unit::PacketsPerSecond))
    );
}

#[test]
fn a_sample_carries_every_value_with_its_unit() {
    let r = reading(1_763_892_000_000, vec![]);
    let sample = build_sample("db-1", &r, &increases(&mut Counters::default(), &r));
    assert_eq!(sample.host, "db-1");
    assert_eq!(sample.schema_version, HOST_SCHEMA_VERSION);
    assert_eq!(sample.time, r.time);
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
fn default_filters_skip_loopback_veths_and_pseudo_filesystems() {
    let filters = Filters {
        net_include: Regex::new(".*").unwrap(),
        net_exclude: Regex::new(DEFAULT_NET_EXCLUDE).unwrap(),
        fs_mounts_exclude: Regex::new(DEFAULT_FS_MOUNTS_EXCLUDE).unwrap(),
        fs_types_exclude: Regex::new(DEFAULT_FS_TYPES_EXCLUDE).unwrap(),
    };
    for name in ["eth0", "ens3", "enp0s31f6", "wlan0", "bond0"] {
        assert!(filters.keep_interface(name), "{name}");
    }
    for name in ["lo", "veth9f8e7d", "docker0", "br-0123abcd", "cali12ab"] {
        assert!(!filters.keep_interface(name), "{name}");
    }
    assert!(filters.keep_filesystem("/", "ext4"));
    assert!(filters.keep_filesystem("/home", "xfs"));
    assert!(!filters.keep_filesystem("/sys/fs/cgroup", "cgroup2"));
    assert!(!filters.keep_filesystem("/proc", "proc"));
    assert!(!filters.keep_filesystem("/snap/core/1", "squashfs"));
    assert!(!filters.keep_filesystem("/var/lib/docker/overlay2/abc/merged", "overlay"));
    let only_eth = Filters {
        net_include: Regex::new("^eth").unwrap(),
        ..filters
    };
    assert!(only_eth.keep_interface("eth1") && !only_eth.keep_interface("wlan0"));
}
