//! Entry point: parse settings, start telemetry, run until stopped.

use aggregator::Application;
use aggregator::config::{Config, Refused};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = fleet::config::parse_or_exit();
    let telemetry = fleet::telemetry::init("aggregator", config.common.log_format)?;
    let shutdown = fleet::shutdown::on_signal();
    let app = fleet::config::or_exit(Application::build(config).await);
    let ran = app.run_until_stopped(shutdown, telemetry.exporting()).await;
    // Settings that contradict the database are a usage error, as an invalid value is.
    if ran.as_ref().is_err_and(|err| err.is::<Refused>()) {
        fleet::config::or_exit(ran);
    } else {
        fleet::config::or_fail(ran);
    }
    Ok(())
}
