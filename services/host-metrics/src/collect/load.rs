//! The load averages, from `/proc/loadavg`.

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{GaugeVec, Registry};

use super::procfs::{self, Failures, ParseError};
use super::{Collector, Setup, Values};

fleet::metrics! {
    /// The load averages, labelled by the host id.
    struct Gauges in "host_metrics" {
        /// 1-minute load average.
        load1: GaugeVec = "load1" labels ["host"],
        /// 5-minute load average.
        load5: GaugeVec = "load5" labels ["host"],
        /// 15-minute load average.
        load15: GaugeVec = "load15" labels ["host"],
    }
}

/// The 1, 5 and 15 minute load averages.
#[derive(Debug)]
pub struct Load {
    host: String,
    gauges: Gauges,
    failures: Failures,
}

impl Load {
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            gauges: Gauges::register(registry)?,
            failures: Failures::default(),
        })
    }
}

impl Collector for Load {
    fn collect(&mut self, _time: DateTime<Utc>, out: &mut Values) {
        let read = procfs::read("/proc/loadavg", parse_loadavg);
        let load = self.failures.check(read).unwrap_or_default();
        push_values(load, out);
        let g = &self.gauges;
        for (gauge, value) in [&g.load1, &g.load5, &g.load15].into_iter().zip(load) {
            gauge.with_label_values(&[&self.host]).set(value);
        }
    }
}

/// The load averages of `/proc/loadavg` (`0.52 0.58 0.59 1/1234 5678`): its first three fields.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], ParseError> {
    let mut fields = text.split_whitespace();
    let mut next = |field| procfs::number(field, fields.next());
    Ok([next("load1")?, next("load5")?, next("load15")?])
}

/// The published values.
pub fn push_values(load: [f64; 3], out: &mut Values) {
    for (metric, value) in ["load_1", "load_5", "load_15"].iter().zip(load) {
        out.push(metric, "", value, Unit::Tasks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_averages_are_the_first_three_fields() {
        let load = parse_loadavg(include_str!("fixtures/loadavg.txt")).unwrap();
        assert_eq!(load, [0.52, 1.25, 10.5]);
    }

    #[test]
    fn a_truncated_or_garbled_file_is_an_error_not_zeros() {
        assert_eq!(
            parse_loadavg("0.52 1.25"),
            Err(ParseError::Missing("load15"))
        );
        assert!(matches!(
            parse_loadavg("0.52 x 3 1/2 3"),
            Err(ParseError::NotANumber { field: "load5", .. })
        ));
    }
}
