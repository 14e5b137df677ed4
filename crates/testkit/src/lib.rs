//! What the services' integration tests share, so that each test runs against real servers
//! with names of its own:
//!
//! - [`kafka`]: the run's Apache Kafka broker (started by `scripts/test.sh`, found through
//!   `TEST_KAFKA_BOOTSTRAP_SERVERS`) and topics a test creates on it with CreateTopics;
//! - [`broker`]: a private broker for one test, started with `scripts/kafka.sh`, which the test
//!   may kill, restart on the same data, or give TLS and SASL listeners;
//! - [`service`]: a Fleetpulse service run as its own process, configured by environment;
//! - [`prom`]: Prometheus' text format as `/metrics` serves it, parsed, a series found by its
//!   selector;
//! - [`tls`]: a certificate authority made by the test and certificates it signs;
//! - [`TempDir`]: a test's folder, removed when the test passes, kept when it fails.
//!
//! A dev-dependency only: nothing here ships in a service.

#![allow(clippy::unwrap_used)] // test support: a failure here is a failed test

pub mod broker;
pub mod kafka;
pub mod prom;
pub mod service;
pub mod tls;

/// The repository's root (scripts live under it).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fresh folder of one test's under the system's temporary folder (`<prefix>-<uuid>`).
///
/// Dropped after the test passed, it is removed: a CI run makes dozens (every service's log,
/// every private broker's data). Dropped while the test panics, it is kept, and its place
/// printed, for whoever reads the failure.
#[derive(Debug)]
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let name = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Only a drop during the unwinding of the test's own thread sees its failure; a test
        // that fails by other means (an abort, a timeout) never reaches here and keeps it too.
        if std::thread::panicking() {
            eprintln!("testkit: kept {} (the test failed)", self.path.display());
        } else if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!("testkit: cannot remove {}: {err}", self.path.display());
        }
    }
}
