//! Steps 1 to 3: the targets, the three pipelines into their tables (calls, host samples, web
//! checks), the rules, web-prober's targets file, and the dashboards' queries.

use std::collections::BTreeSet;

use anyhow::Context as _;
use fleet_e2e::dashboards::{self, Pending};
use fleet_e2e::eventually::{eventually, secs};
use fleet_e2e::report::Report;

use crate::alert::ALERT;
use crate::fleet::{Fleet, show};

const HOST_ALERTS: [&str; 5] = [
    "FleetHostCpuHigh",
    "FleetHostMemoryLow",
    "FleetHostDiskFull",
    "FleetHostSamplesDropped",
    "FleetHostSamplesNotStored",
];
const PROBE_ALERTS: [&str; 5] = [
    "FleetProbeFailing",
    "FleetProbeSlow",
    "FleetProbeCertExpiring",
    "FleetProbeTargetsRejected",
    "FleetProbeResultsNotStored",
];
/// Samples and results are published and stored, the targets file loaded, probe-site's
/// certificate has 30 days: the alerts about the pipelines themselves must not even pend.
const QUIET_ALERTS: [&str; 5] = [
    "FleetHostSamplesDropped",
    "FleetHostSamplesNotStored",
    "FleetProbeResultsNotStored",
    "FleetProbeTargetsRejected",
    "FleetProbeCertExpiring",
];
/// The generated targets file has one target of each of these answers.
const PROBE_RESULTS: [&str; 4] = ["connect_error", "http_status", "ok", "regex_mismatch"];

pub async fn check(fleet: &Fleet<'_>, report: &mut Report) -> anyhow::Result<()> {
    report.step("every Prometheus scrape target is up");
    let targets = eventually(secs(60), "every scrape target up", async || {
        fleet.targets_up().await
    })
    .await?;
    report.info(format!("\n{}", show(&targets)));
    let rules = fleet.prometheus.rules().await?;
    anyhow::ensure!(
        rules.rules().any(|r| r.name == ALERT),
        "Prometheus has not loaded the rule {ALERT} (FLEET_EXTRA_RULES)"
    );
    report.passed();

    report.step("call_stats_1m, long_calls and call_totals grow");
    grow(
        fleet,
        report,
        "sum(calls), long_calls, call_totals.calls",
        60,
        "SELECT (SELECT coalesce(sum(calls), 0) FROM call_stats_1m)::bigint,
                (SELECT count(*) FROM long_calls),
                (SELECT coalesce(max(calls), 0) FROM call_totals)::bigint",
    )
    .await?;
    report.passed();

    report.step("host samples reach system_metrics and host_metrics_1m; hosts agree");
    grow(
        fleet,
        report,
        "system_metrics rows, sum(host_metrics_1m.samples)",
        30,
        "SELECT (SELECT count(*) FROM system_metrics),
                (SELECT coalesce(sum(samples), 0) FROM host_metrics_1m)::bigint",
    )
    .await?;
    let hosts = same_in_both(
        fleet,
        "hosts",
        "SELECT DISTINCT host::text FROM system_metrics",
        "group by (host) (host_metrics_cpu_usage_ratio)",
        "host",
    )
    .await?;
    report.info(format!("host: {hosts:?}"));
    report.passed();

    report.step("web checks reach probe_results and probe_stats_1m; URLs agree");
    grow(
        fleet,
        report,
        "probe_results rows, sum(probe_stats_1m.checks)",
        30,
        "SELECT (SELECT count(*) FROM probe_results),
                (SELECT coalesce(sum(checks), 0) FROM probe_stats_1m)::bigint",
    )
    .await?;
    let results = eventually(secs(10), "every kind of result stored", async || {
        let stored: BTreeSet<String> = fleet
            .db
            .texts("SELECT DISTINCT result::text FROM probe_results")
            .await?
            .into_iter()
            .collect();
        let missing: Vec<&str> = PROBE_RESULTS
            .into_iter()
            .filter(|r| !stored.contains(*r))
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "results stored {stored:?}, missing {missing:?}"
        );
        Ok(stored)
    })
    .await?;
    report.info(format!("results: {results:?}"));
    let urls = same_in_both(
        fleet,
        "URLs",
        "SELECT DISTINCT url::text FROM probe_results",
        "group by (target) (web_prober_target_success)",
        "target",
    )
    .await?;
    report.info(format!("URLs: {urls:?}"));
    report.passed();

    report.step("every rule evaluates; the pipelines' own alerts stay inactive");
    rules_evaluate(fleet).await?;
    report.passed();

    report.step("targets file: a bad one is rejected; reloads on change and on SIGHUP");
    targets_file(fleet, report).await?;
    report.passed();
    Ok(())
}

/// Every number of `sql`'s one row grows above its value now, within `within` seconds.
async fn grow(
    fleet: &Fleet<'_>,
    report: &Report,
    what: &str,
    within: u64,
    sql: &str,
) -> anyhow::Result<()> {
    let before = fleet.db.numbers(sql).await?;
    let after = eventually(secs(within), &format!("{what} all grow"), async || {
        let now = fleet.db.numbers(sql).await?;
        let grew = now.len() == before.len() && now.iter().zip(&before).all(|(n, b)| n > b);
        anyhow::ensure!(grew, "{before:?} -> {now:?}");
        Ok(now)
    })
    .await?;
    report.info(format!("{what}: {before:?} -> {after:?}"));
    Ok(())
}

/// The values of `sql` in PostgreSQL and of `label` over `promql` in Prometheus are the same,
/// and not none, within 10 s.
async fn same_in_both(
    fleet: &Fleet<'_>,
    what: &str,
    sql: &str,
    promql: &str,
    label: &str,
) -> anyhow::Result<BTreeSet<String>> {
    eventually(
        secs(10),
        &format!("the same {what} in PostgreSQL and Prometheus"),
        async || {
            let stored: BTreeSet<String> = fleet.db.texts(sql).await?.into_iter().collect();
            let scraped = fleet.prometheus.query(promql).await?.label_values(label)?;
            anyhow::ensure!(
                !stored.is_empty() && stored == scraped,
                "PostgreSQL {stored:?}, Prometheus {scraped:?}"
            );
            Ok(stored)
        },
    )
    .await
}

async fn rules_evaluate(fleet: &Fleet<'_>) -> anyhow::Result<()> {
    let rules = fleet.prometheus.rules().await?;
    for name in HOST_ALERTS.iter().chain(&PROBE_ALERTS) {
        anyhow::ensure!(
            rules.rules().any(|r| r.name == *name),
            "{name} is not loaded"
        );
    }
    eventually(secs(20), "every rule healthy", async || {
        let rules = fleet.prometheus.rules().await?;
        let bad: Vec<String> = rules
            .rules()
            .filter(|r| r.health != "ok")
            .map(|r| {
                format!(
                    "{}: {} {}",
                    r.name,
                    r.health,
                    r.last_error.as_deref().unwrap_or("")
                )
            })
            .collect();
        anyhow::ensure!(bad.is_empty(), "{}", bad.join("; "));
        Ok(())
    })
    .await?;
    eventually(secs(20), "the pipelines' own alerts inactive", async || {
        let active: Vec<String> = fleet
            .prometheus
            .alerts()
            .await?
            .into_iter()
            .filter_map(|a| {
                let name = a.labels.get("alertname")?;
                QUIET_ALERTS
                    .contains(&name.as_str())
                    .then(|| format!("{name} {}", a.state))
            })
            .collect();
        anyhow::ensure!(active.is_empty(), "active: {}", active.join(", "));
        Ok(())
    })
    .await
}

async fn targets_file(fleet: &Fleet<'_>, report: &Report) -> anyhow::Result<()> {
    const PORT: &str = "WEB_PROBER_PORT";
    const OK: &str = "web_prober_config_last_reload_successful";
    const RELOADS: &str = "web_prober_config_reloads_total{result=\"success\"}";
    let file = fleet.stack.layout.state.join("web-prober/targets.yaml");
    let good =
        std::fs::read(&file).with_context(|| format!("local-up.sh wrote no {}", file.display()))?;
    let targets = fleet.metric(PORT, "web_prober_targets").await?;
    let reload_is = |want: f64| async move {
        let got = fleet.metric(PORT, OK).await?;
        anyhow::ensure!(got == want, "{OK} {got}");
        Ok(())
    };

    std::fs::write(&file, "targets:\n  - url: ftp://not-http.example/\n")?;
    let rejected = async {
        eventually(secs(10), "a broken targets file rejected", async || {
            reload_is(0.0).await
        })
        .await?;
        let kept = fleet.metric(PORT, "web_prober_targets").await?;
        anyhow::ensure!(
            kept == targets,
            "web_prober_targets moved from {targets} to {kept} after a rejected file"
        );
        Ok(())
    }
    .await;
    // The good file back whatever happened, so that the stack stays as it was.
    std::fs::write(&file, &good)?;
    rejected?;
    eventually(secs(10), "the fixed targets file loaded", async || {
        reload_is(1.0).await
    })
    .await?;

    let loads = fleet.metric(PORT, RELOADS).await?;
    fleet.stack.signal("web-prober", "HUP")?;
    let after = eventually(secs(10), "a reload on SIGHUP", async || {
        let now = fleet.metric(PORT, RELOADS).await?;
        anyhow::ensure!(now > loads, "{RELOADS} still {now}");
        Ok(now)
    })
    .await?;
    report.info(format!(
        "{targets} targets kept through a rejected file; reloads (success): {loads} -> {after}"
    ));
    Ok(())
}

/// Step 3: every dashboard query returns data, but those over the alert history (after the
/// alert); the queries still pending are returned.
pub async fn dashboards(fleet: &Fleet<'_>, report: &mut Report) -> anyhow::Result<Pending> {
    report.step("every dashboard query returns data (alert history: after the alert)");
    let queries = dashboards::load(&fleet.stack.repo)?;
    report.info(format!(
        "{} queries from scripts/dashboard-queries.py",
        queries.len()
    ));
    let mut pending = Pending::new(queries);
    eventually(secs(90), "every dashboard query returns data", async || {
        pending.run(&fleet.prometheus, &fleet.db, true).await
    })
    .await?;
    report.info(format!(
        "{} over the alert history wait for the alert",
        pending.len()
    ));
    report.passed();
    Ok(pending)
}
