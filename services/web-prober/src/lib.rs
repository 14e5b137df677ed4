//! `web-prober`: checks websites and publishes every result to Kafka.
//!
//! - [`config`] — settings; [`targets`] — the targets file (pure parsing and validation).
//! - [`check`] — one check, timed phase by phase (the HTTP/TLS edge).
//! - [`scheduler`] — a task per target, jittered starts, a global concurrency bound, reloads.
//! - [`metrics`] — the `web_prober_*` metrics, per target and overall.

pub mod check;
pub mod config;
pub mod metrics;
pub mod scheduler;
pub mod targets;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use fleet::events::ProbeResult;
use fleet::health::Health;
use fleet::http::Endpoint;
use fleet::kafka::{AsyncProducer, Outgoing};
use fleet::service::Runner;
use tokio_util::sync::CancellationToken;

use crate::check::Checker;
use crate::config::Config;
use crate::metrics::{Loaded, Metrics};
use crate::scheduler::Scheduler;
use crate::targets::{Defaults, Target};

/// Default port of the metrics endpoint.
pub const METRICS_PORT: u16 = 6069;
const DELIVERY_CHECK: &str = "delivery";
/// Fails while the targets file cannot be used (the last good one keeps running).
const TARGETS_CHECK: &str = "targets";
const FLUSH_TIMEOUT: Duration = Duration::from_secs(8);
/// Results waiting for Kafka at most; beyond, new ones are dropped and counted, so that an
/// outage costs bounded memory.
const MAX_PENDING_RESULTS: u64 = 10_000;

/// A built prober, its metrics endpoint bound.
#[derive(Debug)]
pub struct Application {
    config: Config,
    checker: Checker,
    defaults: Defaults,
    endpoint: Endpoint,
    metrics: Metrics,
}

impl Application {
    /// Registers metrics and binds the HTTP port (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Before any network: a CA file that cannot be used is a setting to fix, not an outage.
        let checker = Checker::new(
            config.probe_ca_file.as_deref(),
            config.probe_max_body_bytes,
            config.probe_max_redirects,
        )
        .with_context(|| match &config.probe_ca_file {
            Some(path) => format!(
                "PROBE_CA_FILE={}: not a PEM file of certificates",
                path.display()
            ),
            None => "TLS setup".to_string(),
        })?;
        let defaults = Defaults {
            interval: config.interval(),
            timeout: config.timeout(),
            regex: (!config.probe_regex.is_empty())
                .then(|| regex::Regex::new(&config.probe_regex))
                .transpose()
                .with_context(|| format!("PROBE_REGEX={}: not a regex", config.probe_regex))?,
        };
        // As Prometheus does: a targets file that cannot be used stops the start, rather than
        // a prober that checks nothing and says so only on /readyz. Once running, a broken
        // edit keeps the last good targets (`Reload::load`).
        let path = &config.probe_targets_file;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("PROBE_TARGETS_FILE={}: cannot read it", path.display()))?;
        targets::parse(&text, is_yaml(path), &defaults)
            .map_err(|why| anyhow::anyhow!("PROBE_TARGETS_FILE={}: {why}", path.display()))?;
        let endpoint = Endpoint::bind(config.common.metrics_addr_or(METRICS_PORT)).await?;
        let metrics = Metrics::new(&endpoint.registry)?;
        Ok(Self {
            config,
            checker,
            defaults,
            endpoint,
            metrics,
        })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.endpoint.port()
    }

    /// Checks the targets until `shutdown`, reloading the file when it changes or on
    /// `reload`; then delivers the results still in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
        mut reload: impl ReloadSignal,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            checker,
            defaults,
            endpoint,
            metrics,
        } = self;
        let runner = Runner::start(endpoint, &config.common, shutdown);
        let health = runner.health.clone();
        health.register(DELIVERY_CHECK, false);
        health.register(TARGETS_CHECK, false);
        let producer_config = fleet::kafka::with_defaults(
            &runner.kafka,
            &[
                ("enable.idempotence", "true"),
                ("compression.type", "lz4"),
                ("linger.ms", "5"),
            ],
        );
        let producer = AsyncProducer::new(&producer_config, runner.watch.clone())
            .context("create Kafka producer")?;
        let Some(mut runner) = runner.with_topics(&[&config.probes_topic]).await? else {
            return Ok(()); // stopped before Kafka answered
        };

        let delivered = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(AtomicU64::new(0));
        let sink = result_sink(
            producer.clone(),
            config.probes_topic.clone(),
            metrics.clone(),
            delivered.clone(),
            pending.clone(),
        );
        let waiting = pending.clone();
        let stall = config.interval().max(Duration::from_secs(10)) * 3;
        let waiting = move || waiting.load(Ordering::Relaxed) > 0;
        runner.watch_deliveries(DELIVERY_CHECK, delivered, waiting, stall);

        let mut scheduler = Scheduler::new(
            checker,
            config.probe_concurrency as usize,
            metrics.clone(),
            sink,
        );
        let cx = Reload {
            config: &config,
            defaults: &defaults,
            metrics: &metrics,
            health: &health,
        };
        check_until_stopped(&cx, &mut scheduler, &mut reload, &runner.shutdown).await;

        scheduler.stop().await;
        let flushed = tokio::task::block_in_place(|| producer.flush(FLUSH_TIMEOUT));
        runner.stop().await;
        flushed.context("results not delivered at shutdown")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Something that says "reload now" (SIGHUP in production).
pub trait ReloadSignal {
    fn recv(&mut self) -> impl Future<Output = ()> + Send;
}

/// No reload signal (tests; the file is still watched).
#[derive(Debug)]
pub struct NoReloadSignal;

impl ReloadSignal for NoReloadSignal {
    async fn recv(&mut self) {
        std::future::pending::<()>().await
    }
}

impl ReloadSignal for tokio::signal::unix::Signal {
    async fn recv(&mut self) {
        if tokio::signal::unix::Signal::recv(self).await.is_none() {
            std::future::pending::<()>().await
        }
    }
}

/// What loading the targets file needs besides the scheduler.
struct Reload<'a> {
    config: &'a Config,
    defaults: &'a Defaults,
    metrics: &'a Metrics,
    health: &'a Health,
}

/// Loads the targets file into the scheduler, then again whenever it changes (polled) or on
/// `reload`, until `shutdown`.
async fn check_until_stopped(
    cx: &Reload<'_>,
    scheduler: &mut Scheduler,
    reload: &mut impl ReloadSignal,
    shutdown: &CancellationToken,
) {
    let mut loaded: Option<String> = None;
    let mut poll = tokio::time::interval(cx.config.reload_every());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = poll.tick() => {}
            () = reload.recv() => {
                tracing::info!("SIGHUP: reloading the targets file");
                loaded = None;
            }
        }
        cx.load(&mut loaded, scheduler);
    }
}

impl Reload<'_> {
    /// Applies the targets file when its text differs from `loaded` (the last text applied, or
    /// the last error), and records the outcome.
    fn load(&self, loaded: &mut Option<String>, scheduler: &mut Scheduler) {
        let Self {
            config,
            defaults,
            metrics,
            health,
        } = *self;
        let path = &config.probe_targets_file;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                let why = format!("cannot read {}: {err}", path.display());
                if loaded.as_deref() != Some(why.as_str()) {
                    reject(metrics, health, &why);
                    *loaded = Some(why);
                }
                return;
            }
        };
        if loaded.as_deref() == Some(text.as_str()) {
            return;
        }
        match targets::parse(&text, is_yaml(path), defaults) {
            Ok(targets) => {
                let diff = scheduler.apply(&targets);
                metrics.reloaded(Loaded::Success);
                health.pass(TARGETS_CHECK);
                tracing::info!(targets = targets.len(), started = diff.start.len(),
                stopped = diff.stop.len(), file = %path.display(), "targets loaded");
            }
            Err(why) => reject(metrics, health, &format!("{}: {why}", path.display())),
        }
        *loaded = Some(text);
    }
}

/// The YAML form for `.yaml` and `.yml` files, the line form otherwise.
fn is_yaml(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

fn reject(metrics: &Metrics, health: &Health, why: &str) {
    metrics.reloaded(Loaded::Failure);
    health.fail(TARGETS_CHECK, why.to_string());
    tracing::error!(%why, "targets file rejected; the previous targets keep running");
}

/// Publishes each result as one JSON message keyed by URL; delivery is awaited in its own
/// task so that a slow broker never holds a check.
fn result_sink(
    producer: AsyncProducer,
    topic: String,
    metrics: Metrics,
    delivered: Arc<AtomicU64>,
    pending: Arc<AtomicU64>,
) -> scheduler::Sink {
    Arc::new(move |_target: &Target, result: ProbeResult| {
        let payload = match serde_json::to_vec(&result) {
            Ok(p) => p,
            Err(err) => return tracing::error!(%err, "cannot encode result"),
        };
        let (producer, topic, metrics) = (producer.clone(), topic.clone(), metrics.clone());
        let (delivered, pending) = (delivered.clone(), pending.clone());
        if pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_RESULTS {
            pending.fetch_sub(1, Ordering::Relaxed);
            metrics.dropped.inc();
            return;
        }
        tokio::spawn(async move {
            let message = Outgoing {
                topic: &topic,
                key: Some(result.url.as_bytes()),
                payload: Some(&payload),
                headers: None,
            };
            match producer.send(message).await {
                Ok(()) => {
                    metrics.published.inc();
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    metrics.delivery_errors.inc();
                    tracing::warn!(%err, url = %result.url, "result not delivered");
                }
            }
            pending.fetch_sub(1, Ordering::Relaxed);
        });
    })
}
