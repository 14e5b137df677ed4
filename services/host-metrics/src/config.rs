//! Settings of host-metrics (environment variables with matching flags).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fleet::config::CommonArgs;
use fleet::events::topics;
use regex::Regex;

/// Interfaces skipped by default: loopback and the virtual ends of container networking.
pub const DEFAULT_NET_EXCLUDE: &str =
    r"^(lo|veth.*|docker\d+|br-[0-9a-f]+|cni\d+|flannel\..*|cali.*|virbr\d+(-nic)?)$";
/// Mount points skipped by default: kernel and container-runtime internals (node_exporter's).
pub const DEFAULT_FS_MOUNTS_EXCLUDE: &str =
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// Filesystem types skipped by default: pseudo and read-only image filesystems.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs|nfsd|ramfs)$";

/// Samples the host (CPU, memory, swap, disks, network, load) and publishes each sample to
/// Kafka; exposes the current values on `/metrics`.
#[derive(Debug, Clone, Parser)]
#[command(name = "host-metrics", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Topic the samples are published to.
    #[arg(long, env = "HOST_METRICS_TOPIC", default_value = topics::HOST_METRICS)]
    pub host_metrics_topic: String,

    /// Seconds between samples (fractions allowed).
    #[arg(long, env = "SAMPLE_INTERVAL_SECS", default_value_t = 10.0, value_parser = fleet::config::seconds)]
    pub sample_interval_secs: f64,

    /// The host's name in every sample and the message key. Default: the hostname.
    #[arg(long, env = "HOST_ID", value_parser = non_empty)]
    pub host_id: Option<String>,

    /// Where the host's root filesystem is visible. In a container, mount the host's `/` at
    /// `/host` (read-only) and set `/host`: mounts are read below it and reported without it.
    #[arg(long, env = "HOST_ROOT", default_value = "/", value_parser = directory)]
    pub host_root: PathBuf,

    /// Network interfaces to include (regular expression on the name).
    #[arg(long, env = "NET_INTERFACES_INCLUDE", default_value = ".*")]
    pub net_interfaces_include: Regex,

    /// Network interfaces to skip (regular expression; wins over the include).
    #[arg(long, env = "NET_INTERFACES_EXCLUDE", default_value = DEFAULT_NET_EXCLUDE)]
    pub net_interfaces_exclude: Regex,

    /// Mount points to skip (regular expression on the host's mount point).
    #[arg(long, env = "FS_MOUNTS_EXCLUDE", default_value = DEFAULT_FS_MOUNTS_EXCLUDE)]
    pub fs_mounts_exclude: Regex,

    /// Filesystem types to skip (regular expression).
    #[arg(long, env = "FS_TYPES_EXCLUDE", default_value = DEFAULT_FS_TYPES_EXCLUDE)]
    pub fs_types_exclude: Regex,

    /// Samples kept while Kafka is unreachable; beyond it the oldest are dropped (counted).
    /// The default holds a day at the default interval.
    #[arg(long, env = "BUFFER_MAX_SAMPLES", default_value_t = 8_640,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub buffer_max_samples: u32,

    /// Stop after this many samples: deliver them, then exit 0. Unlimited when unset.
    #[arg(long, env = "SAMPLE_MAX_COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_max_count: Option<u64>,
}

impl Config {
    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.sample_interval_secs)
    }
}

fn non_empty(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err("expected a host name, got an empty one".into()),
        name => Ok(name.to_string()),
    }
}

fn directory(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if path.is_dir() {
        Ok(path)
    } else {
        Err(format!("`{s}` is not a directory"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::try_parse_from(["host-metrics"]).unwrap();
        assert_eq!(c.host_metrics_topic, "host-metrics");
        assert_eq!(c.interval(), Duration::from_secs(10));
        assert_eq!(c.host_root, PathBuf::from("/"));
        assert_eq!(c.buffer_max_samples, 8_640);
        assert!(c.net_interfaces_exclude.is_match("lo"));
        assert!(c.net_interfaces_exclude.is_match("veth1a2b3c"));
        assert!(!c.net_interfaces_exclude.is_match("eth0"));
        assert!(c.fs_mounts_exclude.is_match("/proc"));
        assert!(
            c.fs_mounts_exclude
                .is_match("/var/lib/docker/overlay2/x/merged")
        );
        assert!(!c.fs_mounts_exclude.is_match("/"));
        assert!(c.fs_types_exclude.is_match("sysfs"));
        assert!(!c.fs_types_exclude.is_match("ext4"));
    }

    #[test]
    fn an_empty_host_id_is_rejected_and_one_is_trimmed() {
        let err = Config::try_parse_from(["host-metrics", "--host-id= "])
            .unwrap_err()
            .to_string();
        assert!(err.lines().next().unwrap().contains("HOST_ID"), "{err}");
        let c = Config::try_parse_from(["host-metrics", "--host-id= db-1 "]).unwrap();
        assert_eq!(c.host_id.as_deref(), Some("db-1"));
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        for (flag, value, var) in [
            ("--sample-interval-secs", "0", "SAMPLE_INTERVAL_SECS"),
            ("--net-interfaces-exclude", "(", "NET_INTERFACES_EXCLUDE"),
            ("--buffer-max-samples", "0", "BUFFER_MAX_SAMPLES"),
            ("--host-root", "/no/such/dir", "HOST_ROOT"),
        ] {
            let err = Config::try_parse_from(["host-metrics", &format!("{flag}={value}")])
                .unwrap_err()
                .to_string();
            let first = err.lines().next().unwrap();
            assert!(first.contains(var) && first.contains(value), "{first}");
        }
    }
}
