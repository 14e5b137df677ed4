//! Processes on the host: the numeric entries of `/proc` (below `HOST_ROOT`).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use fleet::events::Unit;
use prometheus::{GaugeVec, Registry};

use super::{Collector, Setup, Values};

fleet::metrics! {
    /// The process count, labelled by the host id.
    struct Gauges in "host_metrics" {
        /// Processes on the host.
        processes: GaugeVec = "processes" labels ["host"],
    }
}

/// How many processes run.
#[derive(Debug)]
pub struct Processes {
    host: String,
    proc_dir: PathBuf,
    gauges: Gauges,
}

impl Processes {
    pub fn new(setup: &Setup, registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            host: setup.host.clone(),
            proc_dir: setup.root.join("proc"),
            gauges: Gauges::register(registry)?,
        })
    }
}

impl Collector for Processes {
    fn collect(&mut self, _time: DateTime<Utc>, out: &mut Values) {
        let n = count_processes(&self.proc_dir);
        push_values(n, out);
        self.gauges
            .processes
            .with_label_values(&[&self.host])
            .set(n as f64);
    }
}

/// Processes: the numeric entries of `/proc`, 0 when it cannot be read. (`sysinfo` would read
/// every process's status files to list them, hundreds of reads per sample for one number.)
fn count_processes(proc_dir: &Path) -> u64 {
    std::fs::read_dir(proc_dir).map_or(0, |entries| {
        let names = entries.filter_map(Result::ok).map(|e| e.file_name());
        names.filter(|n| is_pid(&n.to_string_lossy())).count() as u64
    })
}

/// The published value.
pub fn push_values(processes: u64, out: &mut Values) {
    out.push("processes", "", processes as f64, Unit::Count);
}

/// Whether an entry of `/proc` is a process (`1234`), not a kernel file (`cpuinfo`, `self`).
pub fn is_pid(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_the_numeric_entries_of_proc() {
        let dir = std::env::temp_dir().join(format!("hm-proc-{}", std::process::id()));
        for name in ["1", "42", "self", "cpuinfo", "1234567"] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
        }
        assert_eq!(count_processes(&dir), 3);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(count_processes(&dir), 0, "unreadable: 0, not a panic");
    }

    #[test]
    fn only_all_digit_names_are_processes() {
        let proc_entries = include_str!("fixtures/proc_entries.txt");
        let pids = proc_entries.lines().filter(|n| is_pid(n)).count();
        assert_eq!(pids, 4);
    }
}
