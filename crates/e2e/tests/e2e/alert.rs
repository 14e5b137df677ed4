//! Step 4: an alert end to end. call-simulator stopped: the e2e alert fires in Prometheus,
//! reaches Alertmanager, lands in the alerts table (the aggregator's POST /alerts, which
//! refuses a caller without Alertmanager's token) and in Mailpit as an e-mail; restarted, it
//! resolves in each. Then the trace across services in Jaeger.

use std::collections::BTreeSet;

use fleet_e2e::apis::{alertmanager_states, jaeger_traces};
use fleet_e2e::dashboards::Pending;
use fleet_e2e::eventually::{eventually, secs};
use fleet_e2e::report::Report;

use crate::fleet::Fleet;

/// prometheus/e2e/fast-alerts.yml's alert on a service that is down.
pub const ALERT: &str = "FleetE2EServiceDown";
/// Where alertmanager/alertmanager.yml sends the on-call mail.
const MAIL_TO: &str = "oncall@fleetpulse.local";
/// The e2e alert's summary as fast-alerts.yml renders it for the simulator.
const SUMMARY: &str = "call-simulator is down (end-to-end test)";
/// The spans one trace must hold: the trace context crossed Kafka.
const TRACE: [&str; 3] = [
    "call-simulator/produce_call",
    "aggregator/aggregate",
    "aggregator/flush",
];

pub async fn check(
    fleet: &Fleet<'_>,
    report: &mut Report,
    queries: &mut Pending,
) -> anyhow::Result<()> {
    let stack = fleet.stack;
    report.step(format!("stop call-simulator: {ALERT} fires in Prometheus"));
    stack.script("scripts/local-down.sh", &["call-simulator"])?;
    let status = stack.exit_status("call-simulator");
    anyhow::ensure!(
        status.as_deref() == Some("0"),
        "call-simulator exited with status {} after SIGTERM",
        status.as_deref().unwrap_or("?")
    );
    prometheus_says(fleet, 60, &["firing"]).await?;
    report.passed();

    report.step(format!("Alertmanager has {ALERT}"));
    alertmanager_says(fleet, 30, &["active"]).await?;
    report.passed();

    report.step(format!(
        "a 'firing' row for {ALERT} lands in the alerts table"
    ));
    if fleet
        .db
        .flag("SELECT to_regclass('public.alerts') IS NULL")
        .await?
    {
        anyhow::bail!(
            "there is no table 'alerts': the aggregator does not store Alertmanager's webhooks \
             (POST /alerts). Alertmanager says: {}",
            alertmanager_errors(fleet, "webhook")
        );
    }
    row_lands(fleet, 30, "firing").await?;
    // The alert-history queries, while the alert is open; the rest get their chance later.
    let _ = queries.run(&fleet.prometheus, &fleet.db, false).await;
    report.passed();

    report.step("POST /alerts without Alertmanager's token is refused and stores nothing");
    forged_posts_refused(fleet).await?;
    report.passed();

    report.step(format!("the {ALERT} e-mail reaches {MAIL_TO} in Mailpit"));
    mail_arrives(fleet, "FIRING").await?;
    report.passed();

    report.step(format!(
        "restart call-simulator: {ALERT} resolves in Prometheus"
    ));
    stack.script_quiet("scripts/local-up.sh", &["call-simulator"])?;
    prometheus_says(fleet, 60, &[]).await?;
    report.passed();

    report.step(format!("Alertmanager resolves {ALERT}"));
    alertmanager_says(fleet, 30, &[]).await?;
    report.passed();

    report.step(format!(
        "a 'resolved' row for {ALERT} lands in the alerts table"
    ));
    row_lands(fleet, 60, "resolved").await?;
    report.passed();

    report.step(format!(
        "the [RESOLVED] e-mail for {ALERT} reaches {MAIL_TO} in Mailpit"
    ));
    mail_arrives(fleet, "RESOLVED").await?;
    report.passed();

    report.step("Jaeger has a trace from call-simulator (produce_call) to the aggregator (aggregate, flush)");
    let trace = trace_across_services(fleet).await?;
    report.info(format!(
        "trace {trace}: {}/api/traces/{trace}",
        fleet.jaeger
    ));
    report.passed();
    Ok(())
}

fn set(states: &[&str]) -> BTreeSet<String> {
    states.iter().map(|s| s.to_string()).collect()
}

/// The alert's states in Prometheus become `want` (none: resolved).
async fn prometheus_says(fleet: &Fleet<'_>, within: u64, want: &[&str]) -> anyhow::Result<()> {
    let want = set(want);
    eventually(
        secs(within),
        &format!("{ALERT} in Prometheus {want:?}"),
        async || {
            let states = fleet.prometheus.alert_states(ALERT).await?;
            anyhow::ensure!(states == want, "state {states:?}");
            Ok(())
        },
    )
    .await
}

/// The alert's states in Alertmanager become `want` (none: resolved).
async fn alertmanager_says(fleet: &Fleet<'_>, within: u64, want: &[&str]) -> anyhow::Result<()> {
    let want = set(want);
    eventually(
        secs(within),
        &format!("{ALERT} in Alertmanager {want:?}"),
        async || {
            let states = alertmanager_states(&fleet.http, &fleet.alertmanager, ALERT).await?;
            anyhow::ensure!(states == want, "state {states:?}");
            Ok(())
        },
    )
    .await
}

/// Alertmanager's last lines about failed notifications or `about` (`webhook`, `email`).
fn alertmanager_errors(fleet: &Fleet<'_>, about: &str) -> String {
    let lines = fleet
        .stack
        .log_lines("alertmanager", &["Notify for alerts failed", about], 3);
    if lines.is_empty() {
        return format!("nothing about failures or {about} in its log");
    }
    lines.join("\n")
}

async fn row_lands(fleet: &Fleet<'_>, within: u64, status: &str) -> anyhow::Result<()> {
    let sql =
        format!("SELECT count(*) FROM alerts WHERE alertname = '{ALERT}' AND status = '{status}'");
    eventually(
        secs(within),
        &format!("a '{status}' row in table alerts"),
        async || {
            let rows = fleet.db.number(&sql).await?;
            anyhow::ensure!(rows >= 1, "{rows} rows");
            Ok(())
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e:#}. Alertmanager says: {}",
            alertmanager_errors(fleet, "webhook")
        )
    })
}

/// A valid notification (stored, were it let in), without a token and with a wrong one: 401
/// both times, and no row.
async fn forged_posts_refused(fleet: &Fleet<'_>) -> anyhow::Result<()> {
    let forged = r#"{"version":"4","receiver":"oncall","status":"firing","alerts":[{"status":"firing",
        "labels":{"alertname":"E2EForged"},"startsAt":"2026-01-01T00:00:00Z"}]}"#;
    let url = format!("{}/alerts", fleet.stack.layout.url("AGGREGATOR_PORT"));
    for auth in [None, Some("Bearer not-the-token-0123456789")] {
        let code = fleet.http.post_json(&url, auth, forged).await?;
        anyhow::ensure!(
            code == 401,
            "POST /alerts with {} answered {code}, not 401",
            auth.map_or("no Authorization header".to_string(), |a| format!(
                "'Authorization: {a}'"
            ))
        );
    }
    let stored = fleet
        .db
        .number("SELECT count(*) FROM alerts WHERE alertname = 'E2EForged'")
        .await?;
    anyhow::ensure!(stored == 0, "a refused POST /alerts stored {stored} row(s)");
    Ok(())
}

/// A mail to [`MAIL_TO`] whose subject starts with `[STATUS` (Alertmanager's `[FIRING:1]`,
/// `[RESOLVED]`) and names the alert, with the alert's summary in its body.
async fn mail_arrives(fleet: &Fleet<'_>, status: &str) -> anyhow::Result<()> {
    let prefix = format!("[{status}");
    eventually(
        secs(30),
        &format!("a [{status}] mail for {ALERT} to {MAIL_TO} with '{SUMMARY}'"),
        async || {
            let messages = fleet.mailpit.messages().await?;
            for m in &messages {
                let ours = m.subject.starts_with(&prefix)
                    && m.subject.contains(ALERT)
                    && m.to.iter().any(|a| a.address == MAIL_TO);
                if ours {
                    let body = fleet.mailpit.message(&m.id).await?;
                    if body.html.contains(SUMMARY) || body.text.contains(SUMMARY) {
                        return Ok(());
                    }
                }
            }
            let seen: Vec<String> = messages.iter().map(|m| m.describe()).collect();
            anyhow::bail!("Mailpit has: '{}'", seen.join("; "))
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e:#}. Alertmanager says: {}",
            alertmanager_errors(fleet, "email")
        )
    })
}

/// The id of a trace holding every span of [`TRACE`].
async fn trace_across_services(fleet: &Fleet<'_>) -> anyhow::Result<String> {
    eventually(secs(60), "a trace across services in Jaeger", async || {
        let traces = jaeger_traces(&fleet.http, &fleet.jaeger, "aggregator", "flush").await?;
        if let Some(trace) = traces.iter().find(|t| {
            let names = t.span_names();
            TRACE.iter().all(|n| names.contains(*n))
        }) {
            return Ok(trace.trace_id.clone());
        }
        let seen: BTreeSet<String> = traces
            .iter()
            .map(|t| t.span_names().into_iter().collect::<Vec<_>>().join(" "))
            .collect();
        anyhow::bail!(
            "traces of the aggregator's flush hold: '{}'",
            seen.into_iter().collect::<Vec<_>>().join("; ")
        )
    })
    .await
}
