//! Shared plumbing of the Fleetpulse services. Only what two or more services use lives here.
//!
//! - [`config`] — settings every service shares (Kafka bootstrap, metrics address, log format).
//! - [`events`] — the wire types producers publish and the aggregator decodes.
//! - [`health`] — the `health_status` gauge, readiness components and the stall detector.
//! - [`http`] — the `/metrics`, `/livez`, `/readyz` router and its server.
//! - [`kafka`] — client settings (with the `KAFKA_*` passthrough), the broker watch, "ensure
//!   topics", the producers.
//! - [`retry`] — the backoff of every outage retry.
//! - [`metrics`] — [`metrics!`], one declaration point per metric.
//! - [`service`] — the one service runner: endpoint, Kafka settings, topics, tasks, teardown.
//! - [`shutdown`] — SIGINT/SIGTERM into a cancellation token.
//! - [`telemetry`] — `tracing` logs, optional OTLP export, W3C trace context in Kafka headers.

pub mod config;
pub mod events;
pub mod health;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod telemetry;
