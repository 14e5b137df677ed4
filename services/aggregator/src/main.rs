//! Entry point: parse settings, start telemetry, run until stopped.

use aggregator::Application;
use aggregator::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = fleet::config::parse_or_exit();
    let telemetry = fleet::telemetry::init("aggregator", config.common.log_format)?;
    let shutdown = fleet::shutdown::on_signal();
    let app = fleet::config::or_exit(Application::build(config).await);
    fleet::config::or_fail(app.run_until_stopped(shutdown, telemetry.exporting()).await);
    Ok(())
}
