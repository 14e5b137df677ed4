//! Time since boot, from `/proc/uptime`; on `/metrics` as the boot time.

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{GaugeVec, Registry};

use super::procfs::{self, Failures, ParseError};
use super::{Collector, Setup, Values};

fleet::metrics! {
    /// The boot time, labelled by the host id.
    struct Gauges in "host_metrics" {
        /// When the host booted, seconds since the epoch.
        boot_time: GaugeVec = "boot_time_seconds" labels ["host"],
    }
}

/// Whole seconds since boot.
#[derive(Debug)]
pub struct Uptime {
    host: String,
    gauges: Gauges,
    failures: Failures,
}

impl Uptime {
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            gauges: Gauges::register(registry)?,
            failures: Failures::default(),
        })
    }
}

impl Collector for Uptime {
    fn collect(&mut self, time: DateTime<Utc>, out: &mut Values) {
        let read = procfs::read("/proc/uptime", parse_uptime);
        // Without /proc, the kernel's sysinfo(2) (what `sysinfo` falls back to as well).
        let secs = self
            .failures
            .check(read)
            .unwrap_or_else(sysinfo::System::uptime);
        push_values(secs, out);
        let boot = time.timestamp() as f64 - secs as f64;
        self.gauges
            .boot_time
            .with_label_values(&[&self.host])
            .set(boot);
    }
}

/// Whole seconds since boot from `/proc/uptime` (`41931.62 78581.38`: uptime, then idle time
/// summed over the cores), truncated.
pub fn parse_uptime(text: &str) -> Result<u64, ParseError> {
    let uptime = text.split_whitespace().next();
    procfs::number("uptime", uptime.map(|u| u.split('.').next().unwrap_or(u)))
}

/// The published value.
pub fn push_values(uptime_secs: u64, out: &mut Values) {
    out.push("uptime", "", uptime_secs as f64, Unit::Seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_the_first_field_in_whole_seconds() {
        assert_eq!(
            parse_uptime(include_str!("fixtures/uptime.txt")),
            Ok(41_931)
        );
        assert_eq!(parse_uptime("7 3\n"), Ok(7));
    }

    #[test]
    fn an_empty_or_garbled_file_is_an_error() {
        assert_eq!(parse_uptime(""), Err(ParseError::Missing("uptime")));
        assert!(parse_uptime("-1.5 2.0").is_err());
    }
}
