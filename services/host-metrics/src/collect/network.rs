//! Bytes and packets of every network interface kept by the filters, their rates from the
//! second reading on, and host-wide totals.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{IntCounterVec, Registry};

use super::counters::{Counters, Increase};
use super::series::Present;
use super::{Collector, Filters, Setup, Values};

fleet::metrics! {
    /// Interface counters, labelled by the host id and the interface.
    struct Gauges in "host_metrics" {
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
    }
}

impl Gauges {
    /// The counters, in the order of an interface's increases.
    fn all(&self) -> [&IntCounterVec; 4] {
        [
            &self.receive_bytes,
            &self.transmit_bytes,
            &self.receive_packets,
            &self.transmit_packets,
        ]
    }
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

/// `(interface, [rx bytes, tx bytes, rx packets, tx packets])`: the increases since the
/// previous reading.
pub type NetIncreases = Vec<(String, [Option<Increase>; 4])>;

/// Counter names, for [`Counters`].
const RX_BYTES: &str = "rx_bytes";
const TX_BYTES: &str = "tx_bytes";
const RX_PACKETS: &str = "rx_packets";
const TX_PACKETS: &str = "tx_packets";

/// Network interfaces.
#[derive(Debug)]
pub struct Network {
    host: String,
    filters: Filters,
    networks: sysinfo::Networks,
    counters: Counters,
    gauges: Gauges,
    present: Present<String>,
}

impl Network {
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            filters: setup.filters.clone(),
            networks: sysinfo::Networks::new(),
            counters: Counters::default(),
            gauges: Gauges::register(registry)?,
            present: Present::default(),
        })
    }

    /// The interfaces kept by the filters, by name (`/sys/class/net`, through `sysinfo`).
    fn read(&mut self) -> Vec<Interface> {
        self.networks.refresh(true);
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

    /// Takes a reading at `time`: its increases, its published values, its series.
    fn record(&mut self, time: DateTime<Utc>, interfaces: &[Interface], out: &mut Values) {
        let incs = increases(&mut self.counters, time.timestamp_millis(), interfaces);
        push_values(interfaces, &incs, out);
        self.set_series(&incs);
    }

    /// Counters move by the increases, so they start at zero with the process (Prometheus'
    /// `rate()` handles that like a reset); interfaces that went away lose their series.
    fn set_series(&mut self, incs: &NetIncreases) {
        let (g, host) = (&self.gauges, self.host.as_str());
        for (interface, incs) in incs {
            for (c, inc) in g.all().into_iter().zip(incs) {
                let c = c.with_label_values(&[host, interface]);
                if let Some(inc) = inc {
                    c.inc_by(inc.delta);
                }
            }
        }
        let now: HashSet<String> = incs.iter().map(|(i, _)| i.clone()).collect();
        for interface in self.present.replace(now) {
            for c in g.all() {
                let _ = c.remove_label_values(&[host, &interface]);
            }
        }
    }
}

impl Collector for Network {
    fn collect(&mut self, time: DateTime<Utc>, out: &mut Values) {
        let interfaces = self.read();
        self.record(time, &interfaces, out);
    }
}

/// The increases of `interfaces` at `time_ms`; interfaces that went away are forgotten, so
/// one that returns starts fresh.
pub fn increases(counters: &mut Counters, time_ms: i64, interfaces: &[Interface]) -> NetIncreases {
    let incs = interfaces
        .iter()
        .map(|i| {
            let n = i.name.as_str();
            let incs = [
                counters.observe(RX_BYTES, n, i.rx_bytes, time_ms),
                counters.observe(TX_BYTES, n, i.tx_bytes, time_ms),
                counters.observe(RX_PACKETS, n, i.rx_packets, time_ms),
                counters.observe(TX_PACKETS, n, i.tx_packets, time_ms),
            ];
            (i.name.clone(), incs)
        })
        .collect();
    let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
    for counter in [RX_BYTES, TX_BYTES, RX_PACKETS, TX_PACKETS] {
        counters.retain(counter, &names);
    }
    incs
}

/// The published values: each interface's, then host-wide totals (the demo's
/// network_traffic_in/out/total, with "in" meaning received: the demo reported bytes sent
/// there). Host-wide rates only when every interface has them.
pub fn push_values(interfaces: &[Interface], incs: &NetIncreases, out: &mut Values) {
    let (mut rx_total, mut tx_total) = (0u64, 0u64);
    let (mut rx_rate, mut tx_rate, mut have_rates) = (0.0, 0.0, true);
    for (nic, (_, incs)) in interfaces.iter().zip(incs) {
        rx_total += nic.rx_bytes;
        tx_total += nic.tx_bytes;
        match push_interface(nic, incs, out) {
            Some((rx, tx)) => {
                rx_rate += rx;
                tx_rate += tx;
            }
            None => have_rates = false,
        }
    }
    out.push("network_receive_bytes", "", rx_total as f64, Unit::Bytes);
    out.push("network_transmit_bytes", "", tx_total as f64, Unit::Bytes);
    let total = (rx_total + tx_total) as f64;
    out.push("network_total_bytes", "", total, Unit::Bytes);
    if have_rates && !interfaces.is_empty() {
        out.push("network_receive_rate", "", rx_rate, Unit::BytesPerSecond);
        out.push("network_transmit_rate", "", tx_rate, Unit::BytesPerSecond);
    }
}

/// One interface's values; returns its byte rates `(receive, transmit)` once it has them.
fn push_interface(
    nic: &Interface,
    incs: &[Option<Increase>; 4],
    out: &mut Values,
) -> Option<(f64, f64)> {
    let n = nic.name.as_str();
    out.push("network_receive_bytes", n, nic.rx_bytes as f64, Unit::Bytes);
    out.push(
        "network_transmit_bytes",
        n,
        nic.tx_bytes as f64,
        Unit::Bytes,
    );
    out.push(
        "network_receive_packets",
        n,
        nic.rx_packets as f64,
        Unit::Packets,
    );
    out.push(
        "network_transmit_packets",
        n,
        nic.tx_packets as f64,
        Unit::Packets,
    );
    let [Some(rx), Some(tx), Some(rxp), Some(txp)] = incs else {
        return None;
    };
    out.push("network_receive_rate", n, rx.rate(), Unit::BytesPerSecond);
    out.push("network_transmit_rate", n, tx.rate(), Unit::BytesPerSecond);
    out.push(
        "network_receive_packet_rate",
        n,
        rxp.rate(),
        Unit::PacketsPerSecond,
    );
    out.push(
        "network_transmit_packet_rate",
        n,
        txp.rate(),
        Unit::PacketsPerSecond,
    );
    Some((rx.rate(), tx.rate()))
}

#[cfg(test)]
mod tests;
