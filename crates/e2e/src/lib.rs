//! The end-to-end test of the fleet on the native stack (`tests/e2e.rs`, `#[ignore]`d: run by
//! `scripts/test.sh`), and the check of the docs' settings tables against each binary's `clap`
//! arguments (`tests/settings.rs`, an ordinary test). The modules, bottom up:
//!
//! - [`eventually`]: a check retried until it passes or its deadline passes;
//! - [`report`]: the steps as they run, their times, and the summary;
//! - [`stack`]: the stack `scripts/local-up.sh` starts, its layout, processes and logs, and
//!   the guard that stops it;
//! - [`apis`]: Prometheus', Alertmanager's, Mailpit's and Jaeger's HTTP APIs, typed;
//! - [`db`]: the stack's PostgreSQL database;
//! - [`dashboards`]: the Grafana panels' queries (`scripts/dashboard-queries.py`), run;
//! - [`markdown`] and [`settings`]: docs/operations.md's settings tables, and their comparison
//!   with what `clap` says of each binary's arguments.

pub mod apis;
pub mod dashboards;
pub mod db;
pub mod eventually;
pub mod markdown;
pub mod report;
pub mod settings;
pub mod stack;

pub use eventually::eventually;
