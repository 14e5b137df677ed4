//! Settings of the aggregator (environment variables with matching flags).

use std::time::Duration;

use clap::Parser;
use fleet::config::CommonArgs;
use fleet::events::topics;

use crate::sources::TopicSettings;
use crate::store::{FlushLimits, Timeouts};
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

    /// Longest wait to open a PostgreSQL connection (TCP, TLS, authentication), in seconds;
    /// a `connect_timeout` in the URL wins.
    #[arg(long, env = "DB_CONNECT_TIMEOUT_SECS", default_value_t = Timeouts::DEFAULT.connect.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub db_connect_timeout_secs: u64,

    /// Longest wait for a free connection of the pool, in seconds.
    #[arg(long, env = "DB_POOL_WAIT_SECS", default_value_t = Timeouts::DEFAULT.pool_wait.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub db_pool_wait_secs: u64,

    /// Idle seconds before TCP keepalive probes start on a PostgreSQL connection (probes every
    /// third of it; three missed close it).
    #[arg(long, env = "DB_KEEPALIVE_IDLE_SECS", default_value_t = Timeouts::DEFAULT.keepalive_idle.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=7200))]
    pub db_keepalive_idle_secs: u64,

    /// Seconds sent data may stay unacknowledged before the kernel closes a PostgreSQL
    /// connection (`tcp_user_timeout`); a value in the URL wins.
    #[arg(long, env = "DB_TCP_USER_TIMEOUT_SECS", default_value_t = Timeouts::DEFAULT.tcp_user_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub db_tcp_user_timeout_secs: u64,

    /// Longest a flush may wait for a lock held by someone else (`lock_timeout`), in
    /// milliseconds; past it the attempt fails and is retried.
    #[arg(long, env = "DB_LOCK_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub db_lock_timeout_ms: u64,

    /// Deadline of one flush attempt, in seconds (also its `statement_timeout` and
    /// `idle_in_transaction_session_timeout`, and the deadline of an alert insert): past it the
    /// attempt is cancelled, its connection discarded, and the flush retried with twice the
    /// deadline, up to 8 times this.
    #[arg(long, env = "AGG_FLUSH_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub agg_flush_timeout_secs: u64,

    /// Largest dead letter sent, in bytes (the dead-letter producer's `message.max.bytes`;
    /// keep it within the topic's `max.message.bytes`). A larger invalid message is cut to
    /// fit, its headers saying so.
    #[arg(long, env = "DLQ_MAX_MESSAGE_BYTES", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u32).range(16_384..=1_000_000_000))]
    pub dlq_max_message_bytes: u32,

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

/// Settings that contradict what the database holds, found at start: one line, exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Config {
    /// The consumed topics; an error names the clash when two are the same, or when the
    /// dead-letter topic is one of them (each letter would be consumed, found invalid and sent
    /// again, forever).
    pub fn topics(&self) -> Result<Topics, String> {
        let topics = Topics::new(self.topics.names())?;
        if let Some(source) = topics.source_of(&self.dlq_topic) {
            return Err(format!(
                "DLQ_TOPIC must differ from {}, both are `{}`: dead letters would be consumed again, forever",
                source.setting(),
                self.dlq_topic
            ));
        }
        Ok(topics)
    }

    /// How long the connection pool waits.
    pub fn db_timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(self.db_connect_timeout_secs),
            pool_wait: Duration::from_secs(self.db_pool_wait_secs),
            keepalive_idle: Duration::from_secs(self.db_keepalive_idle_secs),
            tcp_user_timeout: Duration::from_secs(self.db_tcp_user_timeout_secs),
        }
    }

    /// The limits of a flush, and of the store's other queries.
    pub fn flush_limits(&self) -> FlushLimits {
        FlushLimits {
            deadline: self.flush_timeout(),
            lock: Duration::from_millis(self.db_lock_timeout_ms),
        }
    }

    /// The deadline of one flush attempt.
    pub fn flush_timeout(&self) -> Duration {
        Duration::from_secs(self.agg_flush_timeout_secs)
    }

    /// The flush interval as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.agg_flush_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_topic_that_is_consumed_is_refused() {
        let config = Config::try_parse_from(["aggregator", "--dlq-topic", "host-metrics"]).unwrap();
        let err = config.topics().unwrap_err();
        assert!(
            err.starts_with(
                "DLQ_TOPIC must differ from HOST_METRICS_TOPIC, both are `host-metrics`"
            ),
            "{err}"
        );
        let config = Config::try_parse_from(["aggregator"]).unwrap();
        assert!(config.topics().is_ok());
    }
}
