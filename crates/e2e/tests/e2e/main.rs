//! The whole fleet end to end on the native stack (scripts/local-up.sh): real processes;
//! Prometheus, Alertmanager, Mailpit and Jaeger at compose's versions with the repository's
//! configuration; Apache Kafka; PostgreSQL. `#[ignore]`d, so that `cargo nextest run` does not
//! start the stack; `scripts/test.sh` runs it:
//!
//!     FLEET_BIN_DIR=target/debug cargo test -p fleet-e2e --test e2e -- --ignored --nocapture
//!
//! Each check is a deadline by polling (`fleet_e2e::eventually`), in this order:
//!   1. every Prometheus scrape target is up (host-metrics and web-prober included);
//!   2. call_stats_1m, long_calls and call_totals grow; host samples reach system_metrics and
//!      host_metrics_1m, under the host name Prometheus sees; web checks reach probe_results
//!      and probe_stats_1m with every kind of answer of the generated targets file, under the
//!      URLs Prometheus sees in `target`; every rule evaluates without error and the host and
//!      probe pipelines' own alerts stay inactive; web-prober rejects a broken targets file
//!      (keeping its targets), reloads the fixed one on change, and again on SIGHUP;
//!   3. every dashboard query (scripts/dashboard-queries.py) returns data (those over the
//!      alert history after step 4);
//!   4. the e2e alert (prometheus/e2e/fast-alerts.yml) on a stopped call-simulator fires in
//!      Prometheus, reaches Alertmanager, lands as a 'firing' row in the alerts table and as an
//!      e-mail in Mailpit, while a POST /alerts without Alertmanager's bearer token gets 401 and
//!      stores nothing; restarting the simulator resolves it everywhere, and a second e-mail;
//!      then Jaeger holds a trace from call-simulator's produce_call to the aggregator's
//!      aggregate and flush spans;
//!   5. every target is up again and the remaining queries return data;
//!   6. scripts/local-down.sh stops everything: no process left, every exit status 0.
//!
//! Its own state folder (E2E_STATE_DIR, default .local-stack-e2e/) and database (E2E_DB_NAME,
//! default fleetpulse_e2e, dropped at start); TEST_DATABASE_URL as the PostgreSQL server when
//! set. The stack is always stopped at the end (`Stack`'s `Drop`, also on SIGINT or SIGTERM);
//! on failure the logs' tails are printed.

mod alert;
mod fleet;
mod pipelines;

use fleet_e2e::report::Report;
use fleet_e2e::stack::Stack;

use crate::fleet::Fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts the whole native stack; scripts/test.sh runs it (--ignored)"]
async fn the_fleet_works_end_to_end() {
    let mut report = Report::new();
    let stack = Stack::configure(&testkit::repo_root()).unwrap_or_else(|e| panic!("{e:#}"));
    let outcome = tokio::select! {
        outcome = run(&stack, &mut report) => outcome,
        signal = interrupted() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    if let Err(err) = outcome {
        // `stack` is dropped while this unwinds: the logs' tails, then local-down.
        panic!(
            "\nE2E FAILED at \"{}\" after {:.1}s: {err:#}",
            report.current(),
            report.elapsed_secs()
        );
    }
    println!("\n{}", report.summary());
}

async fn run(stack: &Stack, report: &mut Report) -> anyhow::Result<()> {
    report.step("preflight: tools and a clean state folder");
    fleet::preflight(stack)?;
    report.passed();

    report.step("start the native stack (scripts/local-up.sh)");
    stack.up()?;
    let fleet = Fleet::connect(stack).await?;
    report.passed();

    pipelines::check(&fleet, report).await?;
    let mut queries = pipelines::dashboards(&fleet, report).await?;
    alert::check(&fleet, report, &mut queries).await?;
    fleet::after_restart(&fleet, report, &mut queries).await?;
    fleet::stop(&fleet, report).await
}

/// The first SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
