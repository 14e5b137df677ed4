//! `devbroker`: hosts librdkafka's in-process mock cluster so that the fleet runs, and its
//! tests run, without a Kafka installation. It speaks the real Kafka protocol (producers,
//! consumer groups, offset commits, `kcat`), with these limits:
//!
//! - each partition keeps at most 5 MB or 100,000 message sets and silently drops the oldest
//!   beyond that; give a big backfill enough partitions;
//! - everything lives in memory and is gone when the process stops;
//! - static group membership (`group.instance.id`) is ignored.
//!
//! Unlike a production broker it starts consumer groups at once: the mock's default
//! `group.initial.rebalance.delay.ms` of 3 s (which real Kafka uses to gather a group's members)
//! only delays every first join in development and tests.

use anyhow::Context as _;
use devbroker::Config;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer as _};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Config = fleet::config::parse_or_exit();
    // The mock cluster lives inside a client handle (`test.mock.num.brokers`) and is not `Send`:
    // it stays on this thread for the whole run.
    let host: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", args.brokers.to_string())
        .create()
        .context("start mock cluster")?;
    let cluster = host
        .client()
        .mock_cluster()
        .context("client has no mock cluster")?;
    set_group_initial_rebalance_delay(&host, args.group_initial_rebalance_delay_ms);
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
    drop(host);
    Ok(())
}

/// rdkafka's `MockCluster` does not wrap this setting; librdkafka's C API does.
#[expect(unsafe_code, reason = "one FFI call rdkafka's safe API does not wrap")]
fn set_group_initial_rebalance_delay(host: &BaseProducer, delay_ms: i32) {
    // SAFETY: `host` owns a live client handle created with `test.mock.num.brokers`, so
    // `rd_kafka_handle_mock_cluster` returns its live mock cluster (checked for null); the
    // cluster outlives this call because `host` does.
    unsafe {
        let cluster = rdkafka_sys::rd_kafka_handle_mock_cluster(host.client().native_ptr());
        if !cluster.is_null() {
            rdkafka_sys::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, delay_ms);
        }
    }
}
