//! `aggregator`: consumes calls, host samples and web check results, aggregates them in tumbling
//! event-time windows and persists them to PostgreSQL with an exactly-once effect (see
//! [`store`] for the guarantee).
//!
//! The modules, by layer: each imports only modules of the layers below it
//! (`scripts/check-layers.py` checks it; docs/architecture.md#layers).
//!
//! - Vocabulary: [`decode`] — the reasons a message is rejected, time bounds; [`rules`] — the
//!   windows; [`db`] — the store's error type, a migration; [`metrics`] — the `aggregator_*`
//!   metrics, given their label sets.
//! - [`part`] — the interface of a source's part of a batch, and its hooks.
//! - [`sources`] — one folder per kind of event (calls, host samples, web checks): its
//!   decoder, its part, its SQL and tables, its hooks; and the registry.
//! - [`batch`] — the pure batch of a flush interval: each source's part, dead letters, offsets;
//!   [`topics`] — the topic each source is read from.
//! - [`config`] — settings; [`store`] — PostgreSQL: pool, migrations, the fenced flush
//!   transaction, the alerts table.
//! - [`flush`] — one flush job: dead letters, then the transaction, with retries;
//!   [`alerts`] — `POST /alerts`, Alertmanager's webhook, into table `alerts`.
//! - [`consumer`] — the consume loop: rebalances, offset bookkeeping, ingest, the commit;
//!   [`upkeep`] — the migrations retried, the PostgreSQL ping, the sources' maintenance.
//! - This file: building and running the whole.

pub mod alerts;
pub mod batch;
pub mod config;
pub mod consumer;
pub mod db;
pub mod decode;
pub mod flush;
pub mod metrics;
pub mod part;
pub mod rollup;
pub mod rules;
pub mod sources;
pub mod store;
pub mod topics;
pub mod upkeep;

use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use fleet::http::Endpoint;
use fleet::kafka::AsyncProducer;
use fleet::service::Runner;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

use crate::alerts::Refusal;
use crate::config::{Config, Refused};
use crate::consumer::{AggregatorContext, ConsumeLoop, LoopSettings};
use crate::flush::{AttemptError, DLQ_CHECK, DeadLetters, Failing, Flusher, POSTGRES_CHECK};
use crate::metrics::{LabelSets, Metrics};
use crate::part::Ingest;
use crate::rules::Rules;
use crate::sources::Source;
use crate::store::{AlertStatus, Partitions, Retention, Store, Stored, Tier};
use crate::topics::Topics;

/// Default port of the metrics endpoint.
pub const METRICS_PORT: u16 = 6066;
/// Time allowed for the final flush after a stop is requested (the whole stop takes < 10 s).
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(8);

/// A built aggregator, its metrics endpoint bound.
#[derive(Debug)]
pub struct Application {
    config: Config,
    topics: Topics,
    endpoint: Endpoint,
    metrics: Metrics,
    pool: Pool,
    /// The schema owner's pool (DATABASE_MIGRATION_URL), for the migrations and the storage
    /// maintenance.
    owner: Option<Pool>,
    retention: Retention,
}

impl Application {
    /// Registers metrics, prepares the connection pool (lazily connected) and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let topics = config.topics().map_err(anyhow::Error::msg)?;
        let retention = config.retention().map_err(anyhow::Error::msg)?;
        match &config.alerts_token {
            Some(token) => alerts::check_token(token)?,
            None => tracing::warn!(
                "ALERTS_TOKEN is not set: POST /alerts stores notifications from anyone who can reach this port"
            ),
        }
        let endpoint = Endpoint::bind(config.common.metrics_addr_or(METRICS_PORT)).await?;
        let metrics = Metrics::new(&endpoint.registry, &label_sets(&topics))?;
        let timeouts = config.db_timeouts();
        let pool = store::connect_pool(
            &config.database_url,
            usize::from(config.db_pool_size),
            timeouts,
        )
        .context("DATABASE_URL")?;
        // Two connections: storage maintenance and the upgrade's moves.
        let owner = (config.database_migration_url.as_deref())
            .map(|url| store::connect_pool(url, 2, timeouts).context("DATABASE_MIGRATION_URL"))
            .transpose()?;
        Ok(Self {
            config,
            topics,
            endpoint,
            metrics,
            pool,
            owner,
            retention,
        })
    }

    /// The bound HTTP port.
    pub fn port(&self) -> u16 {
        self.endpoint.port()
    }

    /// Runs until `shutdown`, then makes a final flush.
    pub async fn run_until_stopped(
        self,
        shutdown: CancellationToken,
        trace: bool,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            topics,
            endpoint,
            metrics,
            pool,
            owner,
            retention,
        } = self;
        let partitions = Partitions::new(metrics.partitions_created.clone());
        let alerts = alert_routes(&config, &metrics, &pool, &partitions);
        let runner = Runner::start_with(endpoint, alerts, &config.common, shutdown);
        let health = runner.health.clone();
        health.register(POSTGRES_CHECK, true);
        // Healthy until a delivery fails.
        health.register(DLQ_CHECK, true);
        health.pass(DLQ_CHECK);
        let owner = owner.unwrap_or_else(|| pool.clone());
        let storage = upkeep::Storage {
            owner,
            partitions,
            retention,
            limits: config.flush_limits(),
            metrics: metrics.clone(),
        };
        let Some(store) = open_store(&config, &topics, pool, &storage, &metrics, &runner).await?
        else {
            runner.stop().await;
            return Ok(());
        };

        let mut all_topics = topics.names();
        all_topics.push(config.dlq_topic.as_str());
        let Some(mut runner) = runner.with_topics(&all_topics).await? else {
            return Ok(()); // stopped before Kafka answered
        };
        let settings = loop_settings(&config, trace, storage.retention);
        let flusher = Flusher {
            store: store.clone(),
            letters: DeadLetters {
                producer: dlq_producer(&runner, config.dlq_max_message_bytes)?,
                topic: config.dlq_topic.clone(),
                max_bytes: config.dlq_max_message_bytes as usize,
            },
            topics: topics.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
            failing: Failing::default(),
        };
        let consumer = create_consumer(&config, &topics, &runner, &metrics, &store)?;
        let (pinged, watched, failing) = (store.clone(), health.clone(), flusher.failing.clone());
        runner.spawn("postgres ping", move |stop| {
            upkeep::ping_postgres(pinged, watched, failing, stop)
        });
        let lateness = Duration::from_secs(config.agg_max_lateness_secs);
        let maintained = store.clone();
        runner.spawn("source maintenance", move |stop| {
            upkeep::maintain_sources(maintained, lateness, stop)
        });
        let every = Duration::from_secs(config.agg_maintenance_interval_secs);
        let upgraded = storage.clone();
        runner.spawn("storage maintenance", move |stop| {
            upkeep::maintain_storage(storage, every, stop)
        });
        runner.spawn("storage upgrade", move |stop| {
            upkeep::upgrade_storage(upgraded, stop)
        });
        let consume =
            ConsumeLoop::new(consumer, flusher, settings, health, runner.shutdown.clone());
        tracing::info!(topics = ?topics.names(), group = %config.consumer_group, "consuming");
        let consumed = tokio::task::spawn_blocking(move || consume.run()).await;
        runner.stop().await;
        consumed.context("consume loop panicked")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// `POST /alerts`, storing through `pool`.
fn alert_routes(
    config: &Config,
    metrics: &Metrics,
    pool: &Pool,
    partitions: &Partitions,
) -> axum::Router {
    alerts::router(
        store::AlertStore::new(pool.clone(), config.flush_timeout(), partitions.clone()),
        alerts::Counts {
            received: metrics.alerts_received.clone(),
            refused: metrics.alerts_refused.clone(),
        },
        alerts::Access {
            token: config.alerts_token.clone(),
            max_body_bytes: config.alerts_max_body_bytes as usize,
        },
    )
}

/// The producer of the dead letters: idempotent, so a retried delivery writes a letter once;
/// its records up to `max_bytes` (the letters are cut to fit).
fn dlq_producer(runner: &Runner, max_bytes: u32) -> anyhow::Result<AsyncProducer> {
    let max_bytes = max_bytes.to_string();
    let settings = fleet::kafka::with_defaults(
        &runner.kafka,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
            ("message.max.bytes", &max_bytes),
        ],
    );
    AsyncProducer::new(&settings, runner.watch.clone()).context("create dead-letter producer")
}

/// Migrates the schema (as the storage's owner), retrying while PostgreSQL is unreachable,
/// then runs every source's start hook. `None` if the stop came first.
async fn open_store(
    config: &Config,
    topics: &Topics,
    pool: Pool,
    storage: &upkeep::Storage,
    metrics: &Metrics,
    runner: &Runner,
) -> anyhow::Result<Option<Store>> {
    if !upkeep::migrate_with_retry(&storage.owner, &runner.health, &runner.shutdown).await {
        return Ok(None);
    }
    let window_secs = config.agg_window_secs as i32;
    let store = Store::new(
        pool,
        config.consumer_group.clone(),
        topics.clone(),
        window_secs,
        config.flush_limits(),
        storage.partitions.clone(),
    );
    let others = store
        .groups_before_us()
        .await
        .context("read the stored offsets")?;
    if !others.is_empty() {
        let (ours, theirs) = (&config.consumer_group, others.join("`, `"));
        return Err(Refused(format!(
            "CONSUMER_GROUP `{ours}` has no stored offsets but the tables hold group `{theirs}`'s \
             for the same topics: starting would count every retained message again. To move \
             this deployment to `{ours}`, stop its aggregators and rename the group's offsets \
             (docs/operations.md#moving-to-another-consumer-group)"
        ))
        .into());
    }
    for source in Source::ALL {
        (source.part().start(store.pool(), metrics).await)
            .with_context(|| format!("start the {source:?} source"))?;
    }
    Ok(Some(store))
}

/// The consume loop's settings.
fn loop_settings(config: &Config, trace: bool, retention: Retention) -> LoopSettings {
    LoopSettings {
        ingest: Ingest {
            rules: Rules {
                window_secs: i64::from(config.agg_window_secs),
                long_call_threshold_ms: i64::from(config.long_call_threshold_secs) * 1000,
            },
            max_message_bytes: config.agg_max_message_bytes as usize,
            max_lateness_ms: i64::try_from(config.agg_max_lateness_secs).unwrap_or(i64::MAX) * 1000,
            now_ms: 0,
            watermark_ms: i64::MIN,
            retention_ms: (retention.raw).map_or(i64::MAX, |raw| raw.as_millis() as i64),
        },
        flush_interval: config.flush_interval(),
        max_pending_bytes: usize::try_from(config.agg_max_pending_bytes).unwrap_or(usize::MAX),
        trace,
        final_flush_timeout: FINAL_FLUSH_TIMEOUT,
    }
}

fn create_consumer(
    config: &Config,
    topics: &Topics,
    runner: &Runner,
    metrics: &Metrics,
    store: &Store,
) -> anyhow::Result<BaseConsumer<AggregatorContext>> {
    let mut consumer_config = fleet::kafka::with_defaults(
        &runner.kafka,
        &[
            // Never moved silently: an offset outside the log is handled explicitly (a
            // recreated topic read from its start, otherwise the partition stops).
            ("auto.offset.reset", "error"),
            // A restarted instance gets its partitions back within seconds, not a minute.
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "1000"),
            ("partition.assignment.strategy", "roundrobin"),
            ("fetch.wait.max.ms", "100"),
            // When the prefetch queue (queued.max.messages.kbytes) is full, librdkafka waits
            // this long before fetching the partition again; its default of 1 s left the
            // consumer idle for most of every second while a backlog was drained.
            ("fetch.queue.backoff.ms", "20"),
        ],
    );
    // Offsets are ours to manage: PostgreSQL is the source of truth.
    consumer_config
        .set("group.id", &config.consumer_group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    if let Some(id) = &config.consumer_instance_id {
        consumer_config.set("group.instance.id", id);
    }
    let context = AggregatorContext::new(
        runner.watch.clone(),
        metrics.clone(),
        store.clone(),
        tokio::runtime::Handle::current(),
        topics.clone(),
        runner.shutdown.clone(),
    );
    let consumer: BaseConsumer<AggregatorContext> = consumer_config
        .create_with_context(context)
        .context("create Kafka consumer")?;
    consumer.subscribe(&topics.names()).context("subscribe")?;
    Ok(consumer)
}

/// The closed sets of label values, from the modules that own them.
fn label_sets(topics: &Topics) -> LabelSets<'_> {
    let parts = Source::ALL.map(Source::part);
    let tables = parts.iter().flat_map(|p| p.tables().iter().copied());
    LabelSets {
        topics: topics.names(),
        flush_errors: AttemptError::ALL.map(AttemptError::as_str).into(),
        tables: std::iter::once(Stored::OFFSETS_TABLE)
            .chain(tables)
            .collect(),
        alert_statuses: AlertStatus::ALL.map(AlertStatus::as_str).into(),
        alert_refusals: Refusal::ALL.map(Refusal::as_str).into(),
        tiers: Tier::ALL.map(Tier::as_str).into(),
    }
}
