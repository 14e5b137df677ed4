//! `devbroker`: hosts librdkafka's in-process mock cluster so that the fleet runs, and its
//! tests run, without a Kafka installation. It speaks the real Kafka protocol (producers,
//! consumer groups, offset commits, `kcat`), with these limits:
//!
//! - each partition keeps at most 5 MB or 100,000 message sets and silently drops the oldest
//!   beyond that; give a big backfill enough partitions;
//! - everything lives in memory and is gone when the process stops;
//! - static group membership (`group.instance.id`) is ignored.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use rdkafka::mocking::MockCluster;

/// A development Kafka broker (librdkafka's mock cluster) on a random local port.
#[derive(Debug, Parser)]
#[command(name = "devbroker", version)]
struct Args {
    /// Number of mock brokers in the cluster.
    #[arg(long, env = "DEVBROKER_BROKERS", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=9))]
    brokers: i32,

    /// Partitions of each topic created at start.
    #[arg(long, env = "KAFKA_TOPIC_PARTITIONS", default_value_t = 6,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    partitions: i32,

    /// Topics created at start (comma separated).
    #[arg(
        long,
        env = "DEVBROKER_TOPICS",
        value_delimiter = ',',
        default_value = "calls,host-metrics,web-probes,fleet-dlq"
    )]
    topics: Vec<String>,

    /// Also write the bootstrap address to this file (for scripts).
    #[arg(long, env = "DEVBROKER_BOOTSTRAP_FILE")]
    bootstrap_file: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Args = fleet::config::parse_or_exit();
    // The mock cluster is not `Send`: it stays on this thread for the whole run.
    let cluster = MockCluster::new(args.brokers).context("start mock cluster")?;
    for topic in args.topics.iter().filter(|t| !t.is_empty()) {
        cluster
            .create_topic(topic, args.partitions, 1)
            .with_context(|| format!("create topic {topic}"))?;
    }
    let bootstrap = cluster.bootstrap_servers();
    if let Some(path) = &args.bootstrap_file {
        std::fs::write(path, format!("{bootstrap}\n"))
            .with_context(|| format!("write {}", path.display()))?;
    }
    println!("{bootstrap}");
    eprintln!(
        "devbroker: {} broker(s), topics {:?} with {} partitions; stop with SIGTERM or Ctrl-C",
        args.brokers, args.topics, args.partitions
    );
    fleet::shutdown::on_signal().cancelled().await;
    drop(cluster);
    Ok(())
}
