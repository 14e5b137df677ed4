//! Settings of the aggregator (environment variables with matching flags).

use std::time::Duration;

use clap::Parser;
use fleet::config::CommonArgs;
use fleet::events::topics;

use crate::sources::TopicSettings;
use crate::topics::Topics;

/// Consumes the call stream, aggregates it in event-time windows and persists it to
/// PostgreSQL with an exactly-once effect.
#[derive(Debug, Clone, Parser)]
#[command(name = "aggregator", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The topic of each source (see `sources`).
    #[command(flatten)]
    pub topics: TopicSettings,

    /// Dead-letter topic: invalid messages are copied there unchanged.
    #[arg(long, env = "DLQ_TOPIC", default_value = topics::DLQ)]
    pub dlq_topic: String,

    /// Kafka consumer group; aggregators in one group share the partitions.
    #[arg(long, env = "CONSUMER_GROUP", default_value = "aggregator")]
    pub consumer_group: String,

    /// Static group membership id (`group.instance.id`): a restarted instance takes its
    /// partitions back without a rebalance on brokers that honour it.
    #[arg(long, env = "CONSUMER_INSTANCE_ID")]
    pub consumer_instance_id: Option<String>,

    /// PostgreSQL connection URL (libpq form; `sslmode=require` or `verify-full` for TLS).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@localhost:5432/fleetpulse",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Connection URL of the role that owns the schema, for the migrations at start only (then
    /// closed). Unset: DATABASE_URL's role runs them. With least-privilege roles, DATABASE_URL
    /// is a member of `fleetpulse_writer` and this one the owner (docs: security).
    #[arg(long, env = "DATABASE_MIGRATION_URL", hide_env_values = true)]
    pub database_migration_url: Option<String>,

    /// Bearer token `POST /alerts` requires (Alertmanager sends it through its webhook's
    /// `http_config.authorization`); at least 16 characters. Unset: the endpoint accepts
    /// notifications from anyone who reaches the port, and the aggregator warns at start.
    #[arg(long, env = "ALERTS_TOKEN", hide_env_values = true)]
    pub alerts_token: Option<String>,

    /// Largest `POST /alerts` body accepted, in bytes; a larger one gets 413.
    #[arg(long, env = "ALERTS_MAX_BODY_BYTES", default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u32).range(1024..=64 << 20))]
    pub alerts_max_body_bytes: u32,

    /// Maximum PostgreSQL connections.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(2..=256))]
    pub db_pool_size: u16,

    /// Length of the tumbling event-time windows, in seconds.
    #[arg(long, env = "AGG_WINDOW_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub agg_window_secs: u32,

    /// Interval between flushes to PostgreSQL, in milliseconds.
    #[arg(long, env = "AGG_FLUSH_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub agg_flush_interval_ms: u64,

    /// Events whose start time is older than this many seconds are invalid (`out_of_range`).
    #[arg(long, env = "AGG_MAX_LATENESS_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub agg_max_lateness_secs: u64,

    /// Calls strictly longer than this many seconds are long calls.
    #[arg(long, env = "LONG_CALL_THRESHOLD_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(0..=86_400))]
    pub long_call_threshold_secs: u32,

    /// Memory budget for data not yet flushed, in bytes; beyond it the partitions are paused
    /// until PostgreSQL catches up.
    #[arg(long, env = "AGG_MAX_PENDING_BYTES", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(1024..))]
    pub agg_max_pending_bytes: u64,

    /// Messages larger than this are invalid (`oversize`).
    #[arg(long, env = "AGG_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u32).range(64..))]
    pub agg_max_message_bytes: u32,
}

impl Config {
    /// The consumed topics; an error names the clash when two are the same.
    pub fn topics(&self) -> Result<Topics, String> {
        Topics::new(self.topics.names())
    }

    /// The flush interval as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.agg_flush_interval_ms)
    }
}
