//! What the services' integration tests share, so that each test runs against real servers
//! with names of its own:
//!
//! - [`kafka`]: the run's Apache Kafka broker (started by `scripts/test.sh`, found through
//!   `TEST_KAFKA_BOOTSTRAP_SERVERS`) and topics a test creates on it with CreateTopics;
//! - [`broker`]: a private broker for one test, started with `scripts/kafka.sh`, which the test
//!   may kill, restart on the same data, or give TLS and SASL listeners;
//! - [`service`]: a Fleetpulse service run as its own process, configured by environment;
//! - [`tls`]: a certificate authority made by the test and certificates it signs.
//!
//! A dev-dependency only: nothing here ships in a service.

#![allow(clippy::unwrap_used)] // test support: a failure here is a failed test

pub mod broker;
pub mod kafka;
pub mod service;
pub mod tls;

/// The repository's root (scripts live under it).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fresh folder under the system's temporary folder, removed by nobody: brokers' logs stay
/// for a failed test's reader (`scripts/test.sh` runs on throwaway machines).
pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
