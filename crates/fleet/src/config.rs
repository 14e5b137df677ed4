//! Settings shared by every service, flattened into each service's own `clap` parser so that
//! the variable names, defaults and validation are the same everywhere.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings every service accepts.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Kafka bootstrap servers (comma separated host:port). Any other librdkafka property can be
    /// set as `KAFKA_` + the property in upper snake case, e.g. `KAFKA_SECURITY_PROTOCOL=ssl`.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub kafka_bootstrap_servers: String,

    /// Partitions for topics this service creates when they do not exist.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub kafka_topic_partitions: i32,

    /// Replication factor for topics this service creates (use 3 on a production cluster).
    #[arg(long, env = "KAFKA_TOPIC_REPLICATION_FACTOR", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=100))]
    pub kafka_topic_replication_factor: i32,

    /// Address of the HTTP server for `/metrics`, `/livez` and `/readyz`.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// The metrics address, or `0.0.0.0:default_port` when none was given.
    pub fn metrics_addr_or(&self, default_port: u16) -> SocketAddr {
        self.metrics_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port)))
    }
}

/// A `clap` value parser for durations in seconds, fractions allowed, from 1 ms to a day:
/// `value_parser = fleet::config::seconds`.
pub fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.001..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected seconds between 0.001 and 86400, got `{s}`"
        )),
    }
}

/// Parses the service's arguments. On an invalid value, prints one line naming the variable or
/// flag and the bad value, and exits with status 2 (clap's usage-error convention).
pub fn parse_or_exit<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(err) => match err.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                err.exit()
            }
            _ => {
                // clap's first line names the flag, its value name (which is the environment
                // variable's name) and the bad value; the rest is usage noise.
                let rendered = err.to_string();
                eprintln!(
                    "{}",
                    rendered.lines().next().unwrap_or("invalid configuration")
                );
                std::process::exit(2)
            }
        },
    }
}
/// The value of a start-up step, or, when it failed (settings that contradict each other, a
/// file that cannot be used, a port taken), one line with the whole cause and exit status 2,
/// like an invalid setting.
pub fn or_exit<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        std::process::exit(2)
    })
}

/// The end of a service's run: on a failure (a topic Kafka refuses to create, a store that
/// cannot be read), one line with the whole cause chain and exit status 1; no backtrace, which
/// says where the error was returned, not why.
pub fn or_fail<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        std::process::exit(1)
    })
}
