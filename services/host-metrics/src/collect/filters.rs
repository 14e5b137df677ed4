//! Which devices are reported: interfaces by name, filesystems by mount point and type.

use regex::Regex;

/// Which devices are reported.
#[derive(Debug, Clone)]
pub struct Filters {
    pub net_include: Regex,
    pub net_exclude: Regex,
    pub fs_mounts_exclude: Regex,
    pub fs_types_exclude: Regex,
}

impl Filters {
    /// An interface is reported when included and not excluded.
    pub fn keep_interface(&self, name: &str) -> bool {
        self.net_include.is_match(name) && !self.net_exclude.is_match(name)
    }

    /// A filesystem is reported unless its mount point or type is excluded.
    pub fn keep_filesystem(&self, mount: &str, fstype: &str) -> bool {
        !self.fs_mounts_exclude.is_match(mount) && !self.fs_types_exclude.is_match(fstype)
    }
}

#[cfg(test)]
impl Filters {
    /// The defaults of the settings (every interface included).
    pub(crate) fn defaults() -> Self {
        use crate::config::{
            DEFAULT_FS_MOUNTS_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE, DEFAULT_NET_EXCLUDE,
        };
        Self {
            net_include: Regex::new(".*").unwrap(),
            net_exclude: Regex::new(DEFAULT_NET_EXCLUDE).unwrap(),
            fs_mounts_exclude: Regex::new(DEFAULT_FS_MOUNTS_EXCLUDE).unwrap(),
            fs_types_exclude: Regex::new(DEFAULT_FS_TYPES_EXCLUDE).unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_filters_skip_loopback_veths_and_pseudo_filesystems() {
        let filters = Filters::defaults();
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
}
