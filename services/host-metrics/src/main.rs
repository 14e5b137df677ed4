//! Entry point: parse settings, start telemetry, run until stopped.

use host_metrics::Application;
use host_metrics::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = fleet::config::parse_or_exit();
    let _telemetry = fleet::telemetry::init("host-metrics", config.common.log_format)?;
    let shutdown = fleet::shutdown::on_signal();
    let app = fleet::config::or_exit(Application::build(config).await);
    app.run_until_stopped(shutdown).await?;
    Ok(())
}
