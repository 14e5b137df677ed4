//! Entry point: parse settings, start telemetry, run until stopped.

use host_metrics::Application;
use host_metrics::config::Config;

// One worker is plenty for a sample every few seconds and a scrape, and keeps the agent's
// footprint independent of the host's core count (the default is a worker per core; node_exporter
// likewise runs with GOMAXPROCS=1). Sampling runs in `block_in_place`, so a slow filesystem
// read hands the worker over and `/metrics` keeps answering.
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> anyhow::Result<()> {
    let config: Config = fleet::config::parse_or_exit();
    let _telemetry = fleet::telemetry::init("host-metrics", config.common.log_format)?;
    let shutdown = fleet::shutdown::on_signal();
    let app = fleet::config::or_exit(Application::build(config).await);
    fleet::config::or_fail(app.run_until_stopped(shutdown).await);
    Ok(())
}
