//! devbroker's settings, in a library so that the docs check (crates/e2e) reads the same
//! `clap` description of its arguments as `--help` prints; the broker itself is `main.rs`.

use std::path::PathBuf;

use clap::Parser;

/// A development Kafka broker (librdkafka's mock cluster) on a random local port.
#[derive(Debug, Parser)]
#[command(name = "devbroker", version)]
pub struct Config {
    /// Number of mock brokers in the cluster.
    #[arg(long, env = "DEVBROKER_BROKERS", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=9))]
    pub brokers: i32,

    /// Partitions of each topic created at start.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,

    /// Topics created at start (comma separated).
    #[arg(
        long,
        env = "DEVBROKER_TOPICS",
        value_delimiter = ',',
        default_value = "calls,host-metrics,web-probes,fleet-dlq"
    )]
    pub topics: Vec<String>,

    /// The broker setting `group.initial.rebalance.delay.ms`: how long a new consumer group
    /// waits for more members before its first assignment.
    #[arg(long, env = "DEVBROKER_GROUP_INITIAL_REBALANCE_DELAY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..=300_000))]
    pub group_initial_rebalance_delay_ms: i32,

    /// Also write the bootstrap address to this file (for scripts).
    #[arg(long, env = "DEVBROKER_BOOTSTRAP_FILE")]
    pub bootstrap_file: Option<PathBuf>,
}
