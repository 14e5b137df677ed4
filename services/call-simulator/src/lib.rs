//! `call-simulator`: a Poisson stream of phone calls with exponential durations, to Kafka.
//!
//! - [`config`] — settings.
//! - [`generator`] — the pure, seeded call stream (tested statistically).
//! - [`pacing`] — realtime or flood scheduling on the Tokio clock.
//! - [`producer`] — the Kafka edge and its delivery reports.
//! - [`metrics`] — the `call_simulator_*` metrics.

pub mod config;
pub mod generator;
pub mod metrics;
pub mod pacing;
pub mod producer;

use std::time::Duration;

use anyhow::Context as _;
use chrono::{TimeDelta, Utc};
use fleet::http::Endpoint;
use fleet::service::Runner;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SimMode};
use crate::generator::CallGenerator;
use crate::metrics::Metrics;
use crate::producer::CallProducer;

/// Default port of the metrics endpoint.
pub const METRICS_PORT: u16 = 6067;
/// Name of the health check that fails when deliveries stall.
const DELIVERY_CHECK: &str = "delivery";
/// Everything is flushed within this time after a stop is requested.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(8);

/// A built simulator, its metrics endpoint bound.
#[derive(Debug)]
pub struct Application {
    config: Config,
    endpoint: Endpoint,
    metrics: Metrics,
}

impl Application {
    /// Registers metrics and binds the HTTP port (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let endpoint = Endpoint::bind(config.common.metrics_addr_or(METRICS_PORT)).await?;
        let metrics = Metrics::register(&endpoint.registry)?;
        Ok(Self {
            config,
            endpoint,
            metrics,
        })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.endpoint.port()
    }

    /// Runs until `SIM_MAX_CALLS` calls are sent or `shutdown` fires, then flushes.
    /// Returns the number of calls handed to the producer.
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
        propagate_trace: bool,
    ) -> anyhow::Result<u64> {
        let Self {
            config,
            endpoint,
            metrics,
        } = self;
        let runner = Runner::start(endpoint, &config.common, shutdown);
        runner.health.register(DELIVERY_CHECK, false);
        let (mut producer, delivered) = CallProducer::new(
            &runner.kafka,
            config.calls_topic.clone(),
            runner.watch.clone(),
            metrics.clone(),
            propagate_trace,
        )
        .context("create Kafka producer")?;
        let Some(mut runner) = runner.with_topics(&[&config.calls_topic]).await? else {
            return Ok(0); // stopped before Kafka answered: nothing generated, nothing queued
        };

        let generator = CallGenerator::new(
            config.calls_per_second,
            config.mean_call_duration_secs,
            config.sim_seed.unwrap_or_else(rand::random),
            stream_origin(&config),
        );
        let send_interval = Duration::from_secs_f64((1.0 / config.calls_per_second).max(1.0));
        let queue_depth = metrics.queue_depth.clone();
        let stall = send_interval * 3;
        runner.watch_deliveries(
            DELIVERY_CHECK,
            delivered,
            move || queue_depth.get() > 0,
            stall,
        );

        tracing::info!(topic = %config.calls_topic, mode = ?config.sim_mode,
            rate = config.calls_per_second, "simulating calls");
        let sent = pacing::run_stream(
            generator,
            config.sim_mode,
            config.sim_max_calls,
            &runner.shutdown,
            |call| {
                let result = producer.send(call);
                metrics.queue_depth.set(i64::from(producer.in_flight()));
                result
            },
        )
        .await;

        tracing::info!(sent, "flushing producer");
        let flushed = tokio::task::block_in_place(|| producer.flush(FLUSH_TIMEOUT));
        metrics.queue_depth.set(i64::from(producer.in_flight()));
        runner.stop().await;
        flushed.with_context(|| format!("{} calls not delivered", producer.in_flight()))?;
        tracing::info!(sent, delivered = metrics.produced.get(), "stopped");
        Ok(sent)
    }
}

/// Where the simulated clock starts. A bounded flood (a backfill) ends near now, so that its
/// events are neither in the future nor older than the aggregator accepts; everything else
/// starts now.
fn stream_origin(config: &Config) -> chrono::DateTime<Utc> {
    let now = Utc::now();
    match (config.sim_mode, config.sim_max_calls) {
        (SimMode::Flood, Some(max)) => {
            let span_secs = (max as f64 / config.calls_per_second).min(23.0 * 3600.0);
            now - TimeDelta::milliseconds((span_secs * 1000.0) as i64)
        }
        _ => now,
    }
}
