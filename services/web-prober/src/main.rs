//! Entry point: parse settings, start telemetry, run until stopped; SIGHUP reloads targets.

use tokio::signal::unix::{SignalKind, signal};
use web_prober::Application;
use web_prober::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = fleet::config::parse_or_exit();
    let _telemetry = fleet::telemetry::init("web-prober", config.common.log_format)?;
    let shutdown = fleet::shutdown::on_signal();
    let hangup = signal(SignalKind::hangup())?;
    let app = fleet::config::or_exit(Application::build(config).await);
    fleet::config::or_fail(app.run_until_stopped(shutdown, hangup).await);
    Ok(())
}
