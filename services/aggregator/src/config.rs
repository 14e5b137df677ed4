//! Settings of the aggregator (environment variables with matching flags).

use std::time::Duration;

use clap::Parser;
use fleet::config::CommonArgs;
use fleet::events::topics;

use crate::sources::TopicSettings;
use crate::store::{FlushLimits, Retention, Timeouts};
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

    /// Connection URL of the role that owns the schema, for the migrations at start and the
    /// storage maintenance (dropping partitions past retention, the in-place upgrade; two
    /// connections). Unset: DATABASE_URL's role does both. With least-privilege roles,
    /// DATABASE_URL is a member of `fleetpulse_writer` and this one the owner (docs: security).
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

    /// Days raw rows are kept (`long_calls`, `system_metrics`, `probe_results`: one row per
    /// event); 0 keeps them forever. An event older than this is `out_of_range`.
    #[arg(long, env = "AGG_RETENTION_RAW_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub agg_retention_raw_days: u32,

    /// Days the `AGG_WINDOW_SECS` windows are kept (`*_1m`); 0 keeps them forever.
    #[arg(long, env = "AGG_RETENTION_1M_DAYS", default_value_t = 35,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub agg_retention_1m_days: u32,

    /// Days the hourly rollups (`*_1h`) and the alert history are kept; 0 keeps them forever.
    #[arg(long, env = "AGG_RETENTION_1H_DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub agg_retention_1h_days: u32,

    /// Seconds between storage maintenance passes (partitions made ahead, retention, sizes).
    #[arg(long, env = "AGG_MAINTENANCE_INTERVAL_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub agg_maintenance_interval_secs: u64,

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

    /// The retention of each tier. A tier shorter than the finer one below it is refused (a
    /// stored event's window, or a window's hour, would go first), and so is a lateness
    /// beyond the raw retention (a late event accepted would land in a partition it drops).
    pub fn retention(&self) -> Result<Retention, String> {
        let days = |d: u32| (d > 0).then(|| Duration::from_secs(u64::from(d) * 86_400));
        let tiers = [
            ("AGG_RETENTION_RAW_DAYS", self.agg_retention_raw_days),
            ("AGG_RETENTION_1M_DAYS", self.agg_retention_1m_days),
            ("AGG_RETENTION_1H_DAYS", self.agg_retention_1h_days),
        ];
        for pair in tiers.windows(2) {
            let [(finer, f), (coarser, c)] = [pair[0], pair[1]];
            if c > 0 && (f == 0 || c < f) {
                return Err(format!(
                    "{coarser}={c} keeps less than {finer}={f}: a coarser tier must keep at \
                     least as long (0 is forever)"
                ));
            }
        }
        let raw = days(self.agg_retention_raw_days);
        if let Some(raw) = raw
            && self.agg_max_lateness_secs > raw.as_secs()
        {
            return Err(format!(
                "AGG_MAX_LATENESS_SECS={} is beyond AGG_RETENTION_RAW_DAYS={} ({} s): a late \
                 event would be accepted into a partition retention drops",
                self.agg_max_lateness_secs,
                self.agg_retention_raw_days,
                raw.as_secs()
            ));
        }
        Ok(Retention {
            raw,
            minutes: days(self.agg_retention_1m_days),
            hours: days(self.agg_retention_1h_days),
        })
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

    #[test]
    fn retention_is_refused_shorter_than_the_tier_below_or_the_lateness() {
        let retention = |args: &[&str]| {
            let args = std::iter::once("aggregator").chain(args.iter().copied());
            Config::try_parse_from(args).unwrap().retention()
        };
        let defaults = retention(&[]).unwrap();
        assert_eq!(defaults.raw, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(defaults.hours, Some(Duration::from_secs(400 * 86_400)));
        let err = retention(&["--agg-retention-1m-days", "3"]).unwrap_err();
        assert!(
            err.starts_with("AGG_RETENTION_1M_DAYS=3 keeps less than AGG_RETENTION_RAW_DAYS=7"),
            "{err}"
        );
        let err = retention(&["--agg-retention-raw-days", "0"]).unwrap_err();
        assert!(
            err.starts_with("AGG_RETENTION_1M_DAYS=35 keeps less than AGG_RETENTION_RAW_DAYS=0"),
            "{err}"
        );
        let forever = [
            "--agg-retention-raw-days",
            "0",
            "--agg-retention-1m-days",
            "0",
        ];
        let forever = retention(&[&forever[..], &["--agg-retention-1h-days", "0"]].concat());
        assert_eq!(forever.unwrap(), Retention::FOREVER);
        let err = retention(&[
            "--agg-retention-raw-days",
            "1",
            "--agg-max-lateness-secs",
            "86401",
        ]);
        assert!(
            err.unwrap_err()
                .starts_with("AGG_MAX_LATENESS_SECS=86401 is beyond AGG_RETENTION_RAW_DAYS=1")
        );
        assert!(retention(&["--agg-retention-raw-days", "1"]).is_ok());
    }
}
