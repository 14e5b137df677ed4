use prometheus::Registry;

use super::*;
use crate::collect::tests::{at, registry_text, sample_of, setup, value};

fn nic(name: &str, rx: u64, tx: u64) -> Interface {
    Interface {
        name: name.into(),
        rx_bytes: rx,
        tx_bytes: tx,
        rx_packets: rx / 100,
        tx_packets: tx / 100,
    }
}

#[test]
fn a_vanished_interface_is_forgotten_and_starts_fresh_when_it_returns() {
    let mut c = Counters::default();
    increases(&mut c, 0, &[nic("eth0", 100, 100), nic("wg0", 5, 5)]);
    let incs = increases(&mut c, 1_000, &[nic("eth0", 200, 200)]);
    assert_eq!(incs.len(), 1);
    let incs = increases(&mut c, 2_000, &[nic("eth0", 300, 300), nic("wg0", 1, 1)]);
    assert_eq!(incs[1].1[0], None, "wg0 came back: no rate yet");
    assert_eq!(incs[0].1[0].unwrap().delta, 100);
}

#[test]
fn receive_is_received_and_transmit_is_sent_unlike_the_old_demo() {
    let mut c = Counters::default();
    let first = [nic("eth0", 10_000, 500)];
    let mut out = Values::default();
    push_values(&first, &increases(&mut c, 0, &first), &mut out);
    let sample = sample_of(out);
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

    let second = [nic("eth0", 30_000, 1_500)];
    let mut out = Values::default();
    push_values(&second, &increases(&mut c, 10_000, &second), &mut out);
    let sample = sample_of(out);
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
fn host_wide_rates_need_a_rate_for_every_interface() {
    let mut c = Counters::default();
    increases(&mut c, 0, &[nic("eth0", 100, 100)]);
    let now = [nic("eth0", 200, 200), nic("eth1", 5, 5)];
    let mut out = Values::default();
    push_values(&now, &increases(&mut c, 1_000, &now), &mut out);
    let sample = sample_of(out);
    assert!(value(&sample, "network_receive_rate", "eth0").is_some());
    assert_eq!(
        value(&sample, "network_receive_rate", ""),
        None,
        "eth1 is new"
    );
    assert_eq!(
        value(&sample, "network_receive_bytes", ""),
        Some((205.0, Unit::Bytes))
    );
}

#[test]
fn a_vanished_interface_loses_its_series_and_the_others_keep_counting() {
    let registry = Registry::new();
    let mut m = Network::new(&setup(), &registry).unwrap();
    let nic = |name: &str, bytes| Interface {
        name: name.into(),
        rx_bytes: bytes,
        tx_bytes: bytes,
        rx_packets: 1,
        tx_packets: 1,
    };
    let mut interfaces = vec![nic("eth0", 100), nic("vnet7", 5)];
    for (second, eth0) in [(1_000, 100), (1_010, 300)] {
        interfaces[0] = nic("eth0", eth0);
        m.record(at(second * 1_000), &interfaces, &mut Values::default());
    }
    let before = registry_text(&registry);
    assert!(before.contains(r#"interface="vnet7""#), "{before}");
    interfaces.truncate(1);
    interfaces[0] = nic("eth0", 400);
    m.record(at(1_020_000), &interfaces, &mut Values::default());
    let after = registry_text(&registry);
    assert!(!after.contains("vnet7"), "{after}");
    assert!(
        after
            .contains(r#"host_metrics_network_receive_bytes_total{host="h",interface="eth0"} 300"#),
        "{after}"
    );
}
