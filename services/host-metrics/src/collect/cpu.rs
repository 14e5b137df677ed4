//! CPU usage and frequency, all cores and each, through `sysinfo` (which keeps the previous
//! `/proc/stat` times that usage is computed from).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{GaugeVec, Registry};
use sysinfo::{CpuRefreshKind, System};

use super::series::Present;
use super::{Collector, Setup, Values};

fleet::metrics! {
    /// CPU usage and frequency, labelled by the host id and, per core, its name.
    struct Gauges in "host_metrics" {
        /// Busy share of all cores over the last interval (0-1).
        cpu_usage: GaugeVec = "cpu_usage_ratio" labels ["host"],
        /// Busy share of one core over the last interval (0-1).
        core_usage: GaugeVec = "cpu_core_usage_ratio" labels ["host", "cpu"],
        /// Current frequency of one core.
        frequency: GaugeVec = "cpu_frequency_hertz" labels ["host", "cpu"],
    }
}

/// The CPUs as read once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuReading {
    /// Busy share of all cores since the previous reading, 0–100.
    pub usage_pct: f64,
    pub cores: Vec<Core>,
}

/// One logical CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    /// `cpu0`, `cpu1`, …
    pub name: String,
    pub usage_pct: f64,
    pub frequency_mhz: u64,
}

/// CPU usage and frequency; keeps the state `sysinfo` needs for usage between readings.
#[derive(Debug)]
pub struct Cpu {
    host: String,
    system: System,
    gauges: Gauges,
    cores: Present<String>,
}

impl Cpu {
    /// Takes the baseline of the first reading's usage.
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        let mut system = System::new();
        system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        Ok(Self {
            host: setup.host.clone(),
            system,
            gauges: Gauges::register(registry)?,
            cores: Present::default(),
        })
    }

    /// Usage since the previous call, current frequencies.
    fn read(&mut self) -> CpuReading {
        self.system
            .refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage().with_frequency());
        CpuReading {
            usage_pct: f64::from(self.system.global_cpu_usage()),
            cores: self
                .system
                .cpus()
                .iter()
                .map(|c| Core {
                    name: c.name().to_string(),
                    usage_pct: f64::from(c.cpu_usage()),
                    frequency_mhz: c.frequency(),
                })
                .collect(),
        }
    }

    /// Sets the series (ratios, hertz); removes those of cores that went away.
    fn set_series(&mut self, cpu: &CpuReading) {
        let (g, host) = (&self.gauges, self.host.as_str());
        g.cpu_usage
            .with_label_values(&[host])
            .set(cpu.usage_pct / 100.0);
        for core in &cpu.cores {
            let labels = [host, core.name.as_str()];
            g.core_usage
                .with_label_values(&labels)
                .set(core.usage_pct / 100.0);
            g.frequency
                .with_label_values(&labels)
                .set(core.frequency_mhz as f64 * 1e6);
        }
        let now: HashSet<String> = cpu.cores.iter().map(|c| c.name.clone()).collect();
        for core in self.cores.replace(now) {
            let _ = g.core_usage.remove_label_values(&[host, &core]);
            let _ = g.frequency.remove_label_values(&[host, &core]);
        }
    }
}

impl Collector for Cpu {
    fn collect(&mut self, _time: DateTime<Utc>, out: &mut Values) {
        let cpu = self.read();
        push_values(&cpu, out);
        self.set_series(&cpu);
    }
}

/// The published values: usage, core count and mean frequency, then each core's.
pub fn push_values(cpu: &CpuReading, out: &mut Values) {
    out.push("cpu_usage", "", cpu.usage_pct, Unit::Percent);
    out.push("cpu_cores", "", cpu.cores.len() as f64, Unit::Count);
    if !cpu.cores.is_empty() {
        let sum_mhz: f64 = cpu.cores.iter().map(|c| c.frequency_mhz as f64).sum();
        let mean_mhz = sum_mhz / cpu.cores.len() as f64;
        out.push("cpu_frequency", "", mean_mhz * 1e6, Unit::Hertz);
    }
    for core in &cpu.cores {
        out.push("cpu_core_usage", &core.name, core.usage_pct, Unit::Percent);
        let hertz = core.frequency_mhz as f64 * 1e6;
        out.push("cpu_core_frequency", &core.name, hertz, Unit::Hertz);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::collect::tests::{registry_text, sample_of, setup, value};

    /// Two cores at 20 % and 30 %, 2 and 3 GHz; 25 % overall.
    pub(crate) fn two_cores() -> CpuReading {
        let core = |name: &str, usage_pct, frequency_mhz| Core {
            name: name.into(),
            usage_pct,
            frequency_mhz,
        };
        CpuReading {
            usage_pct: 25.0,
            cores: vec![core("cpu0", 20.0, 2000), core("cpu1", 30.0, 3000)],
        }
    }

    #[test]
    fn the_mean_frequency_is_over_cores_and_no_cores_publish_no_frequency() {
        let mut out = Values::default();
        push_values(&two_cores(), &mut out);
        assert_eq!(
            value(&sample_of(out), "cpu_frequency", ""),
            Some((2.5e9, Unit::Hertz))
        );
        let mut out = Values::default();
        push_values(&CpuReading::default(), &mut out);
        assert_eq!(value(&sample_of(out), "cpu_frequency", ""), None, "not NaN");
    }

    #[test]
    fn series_are_ratios_and_a_core_taken_offline_loses_its_series() {
        let registry = Registry::new();
        let mut cpu = Cpu::new(&setup(), &registry).unwrap();
        cpu.set_series(&two_cores());
        let before = registry_text(&registry);
        assert!(
            before.contains(r#"host_metrics_cpu_core_usage_ratio{cpu="cpu1",host="h"} 0.3"#),
            "{before}"
        );
        let mut one = two_cores();
        one.cores.truncate(1);
        cpu.set_series(&one);
        let after = registry_text(&registry);
        assert!(!after.contains("cpu1"), "{after}");
        assert!(
            after.contains(r#"host_metrics_cpu_usage_ratio{host="h"} 0.25"#),
            "{after}"
        );
    }
}
