//! `host-metrics`: samples the host and publishes every sample to Kafka.
//!
//! - [`config`] — settings.
//! - [`collect`] — one collector per part of the host (CPU, load, memory, filesystems, disks,
//!   network, uptime, processes), each reading the host, turning the reading into published
//!   values (pure) and setting its series; the sampler that runs them into one sample.
//! - [`publisher`] — the bounded backlog and its delivery to Kafka.
//! - [`metrics`] — the service's own `host_metrics_*` metrics.

pub mod collect;
pub mod config;
pub mod metrics;
pub mod publisher;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fleet::http::Endpoint;
use fleet::kafka::AsyncProducer;
use fleet::service::Runner;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use prometheus::Registry;

use crate::collect::mounts::MountList;
use crate::collect::{Filters, Sampler, Setup};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::publisher::Shared;

/// Default port of the metrics endpoint.
pub const METRICS_PORT: u16 = 6068;
/// Name of the health check that fails when deliveries stall.
const DELIVERY_CHECK: &str = "delivery";
/// Time allowed to deliver the backlog after a stop is requested (the stop takes < 10 s).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(8);

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Samples taken.
    pub taken: u64,
    /// Samples acknowledged by Kafka.
    pub delivered: u64,
    /// Samples dropped because the buffer was full.
    pub dropped: u64,
}

/// A built service, its metrics endpoint bound.
#[derive(Debug)]
pub struct Application {
    config: Config,
    host: String,
    endpoint: Endpoint,
    metrics: Metrics,
    /// Where the collectors register their series once sampling starts.
    registry: Registry,
}

impl Application {
    /// Registers metrics and binds the HTTP port (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let host = match &config.host_id {
            Some(id) => id.clone(),
            None => sysinfo::System::host_name().context("no hostname: set HOST_ID")?,
        };
        let endpoint = Endpoint::bind(config.common.metrics_addr_or(METRICS_PORT)).await?;
        let metrics = Metrics::register(&endpoint.registry)?;
        let registry = endpoint.registry.clone();
        Ok(Self {
            config,
            host,
            endpoint,
            metrics,
            registry,
        })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.endpoint.port()
    }

    /// Samples until `SAMPLE_MAX_COUNT` samples are taken or `shutdown` fires, then delivers
    /// the backlog.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<Summary> {
        let Self {
            config,
            host,
            endpoint,
            metrics,
            registry,
        } = self;
        let runner = Runner::start(endpoint, &config.common, shutdown);
        runner.health.register(DELIVERY_CHECK, false);
        let producer = producer(&runner)?;
        let Some(mut runner) = runner.with_topics(&[&config.host_metrics_topic]).await? else {
            return Ok(Summary::default()); // stopped before Kafka answered: nothing sampled
        };
        // Built now, not in `build`: the CPU usage of the first sample covers the time from
        // here, not the wait for Kafka.
        let sampler = Sampler::new(&setup(&config, &host), &registry)
            .context("register the host's metrics")?;

        let shared = Shared::new(config.buffer_max_samples as usize, metrics.clone());
        let delivered = Arc::new(AtomicU64::new(0));
        let deliver_stop = CancellationToken::new();
        let deliverer = tokio::spawn(publisher::deliver(
            shared.clone(),
            producer,
            config.host_metrics_topic.clone(),
            host.clone(),
            delivered.clone(),
            deliver_stop.clone(),
            FLUSH_TIMEOUT,
        ));
        let buffered = metrics.buffered.clone();
        let stall = config.interval().max(Duration::from_secs(1)) * 3;
        runner.watch_deliveries(DELIVERY_CHECK, delivered, move || buffered.get() > 0, stall);

        tracing::info!(%host, topic = %config.host_metrics_topic,
            interval_secs = config.sample_interval_secs, "sampling");
        let taken =
            sample_until_stopped(&config, sampler, &metrics, &shared, &runner.shutdown).await;

        tracing::info!(taken, buffered = shared.waiting(), "delivering the backlog");
        deliver_stop.cancel();
        let undelivered = deliverer.await.context("delivery task panicked")?;
        runner.stop().await;
        if undelivered > 0 {
            anyhow::bail!("{undelivered} samples not delivered");
        }
        let summary = Summary {
            taken,
            delivered: metrics.published.get(),
            dropped: metrics.dropped.get(),
        };
        tracing::info!(?summary, "stopped");
        Ok(summary)
    }
}

/// The producer of the samples, idempotent.
fn producer(runner: &Runner) -> anyhow::Result<AsyncProducer> {
    let config = fleet::kafka::with_defaults(
        &runner.kafka,
        &[
            ("enable.idempotence", "true"),
            ("compression.type", "lz4"),
            ("linger.ms", "5"),
            // A failed attempt returns the sample to our backlog; retrying from there keeps
            // the outage visible in the metrics instead of inside librdkafka's queue.
            ("message.timeout.ms", "10000"),
        ],
    );
    AsyncProducer::new(&config, runner.watch.clone()).context("create Kafka producer")
}

/// Samples every interval until `SAMPLE_MAX_COUNT` samples are taken or `shutdown` fires, each
/// into the delivery backlog. Returns how many were taken.
async fn sample_until_stopped(
    config: &Config,
    mut sampler: Sampler,
    metrics: &Metrics,
    backlog: &Shared,
    shutdown: &CancellationToken,
) -> u64 {
    // The first sample waits a little, so that its CPU usage covers a real interval.
    let first = tokio::time::Instant::now() + config.interval().min(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(first, config.interval());
    // A late tick (a suspended VM) is not made up for with a burst of samples.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut taken = 0u64;
    while config.sample_max_count.is_none_or(|max| taken < max) {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let started = Instant::now();
        let sample = tokio::task::block_in_place(|| sampler.sample());
        let took = started.elapsed().as_secs_f64();
        metrics.sample_duration.observe(took);
        metrics.samples.inc();
        taken += 1;
        match serde_json::to_vec(&sample) {
            Ok(payload) => backlog.push(payload),
            Err(err) => tracing::error!(%err, "cannot encode sample"),
        }
    }
    taken
}

/// What the collectors are built from.
fn setup(config: &Config, host: &str) -> Setup {
    Setup {
        host: host.to_string(),
        root: config.host_root.clone(),
        mounts: MountList::new(config.host_root.clone()),
        filters: Filters {
            net_include: config.net_interfaces_include.clone(),
            net_exclude: config.net_interfaces_exclude.clone(),
            fs_mounts_exclude: config.fs_mounts_exclude.clone(),
            fs_types_exclude: config.fs_types_exclude.clone(),
        },
    }
}
