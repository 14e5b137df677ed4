//! The stack's endpoints as the checks use them, and the steps around the checks: preflight,
//! the targets, the restart's aftermath, and the stop.

use anyhow::{Context as _, bail};
use fleet_e2e::apis::{Http, Mailpit, Prometheus, Target};
use fleet_e2e::dashboards::Pending;
use fleet_e2e::db::Db;
use fleet_e2e::eventually::{eventually, secs};
use fleet_e2e::report::Report;
use fleet_e2e::stack::{FAST_ALERTS, Stack, tcp_open};

/// Every service a scrape target must exist for.
const SERVICES: [&str; 6] = [
    "aggregator",
    "call-simulator",
    "host-metrics",
    "web-prober",
    "prometheus",
    "alertmanager",
];

/// The running stack: its APIs, its database, and the stack itself.
pub struct Fleet<'s> {
    pub stack: &'s Stack,
    pub http: Http,
    pub prometheus: Prometheus,
    pub mailpit: Mailpit,
    pub alertmanager: String,
    pub jaeger: String,
    pub db: Db,
}

impl<'s> Fleet<'s> {
    pub async fn connect(stack: &'s Stack) -> anyhow::Result<Self> {
        let http = Http::new()?;
        let layout = &stack.layout;
        let db = Db::connect(&stack.database_url()?).await?;
        Ok(Self {
            stack,
            prometheus: Prometheus {
                http: http.clone(),
                base: layout.url("PROMETHEUS_PORT"),
            },
            mailpit: Mailpit {
                http: http.clone(),
                base: layout.url("MAILPIT_PORT"),
            },
            alertmanager: layout.url("ALERTMANAGER_PORT"),
            jaeger: layout.url("JAEGER_PORT"),
            http,
            db,
        })
    }

    /// The value of one series of a service's /metrics (`PORT` variable; `name{label="v"}`).
    pub async fn metric(&self, port: &str, sample: &str) -> anyhow::Result<f64> {
        let body = self
            .http
            .get_text(&self.stack.layout.url(port), "/metrics", &[])
            .await?;
        let scrape = testkit::prom::parse(&body).map_err(|err| anyhow::anyhow!("{port}: {err}"))?;
        scrape
            .value(sample)
            .with_context(|| format!("no sample {sample}"))
    }

    /// Every scrape target up, one at least for each of [`SERVICES`].
    pub async fn targets_up(&self) -> anyhow::Result<Vec<Target>> {
        let targets = self.prometheus.targets().await?;
        let missing: Vec<&str> = SERVICES
            .into_iter()
            .filter(|s| {
                !targets
                    .iter()
                    .any(|t| t.labels.get("service").is_some_and(|l| l == s))
            })
            .collect();
        let all_up = targets.iter().all(|t| t.health == "up");
        anyhow::ensure!(
            !targets.is_empty() && all_up && missing.is_empty(),
            "no target for {missing:?}, or not all up:\n{}",
            show(&targets)
        );
        Ok(targets)
    }
}

/// One line per target: service, URL, health, last error.
pub fn show(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| {
            format!(
                "      {} {} {} {}",
                t.service(),
                t.scrape_url,
                t.health,
                t.last_error
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tools local-up and the checks need, the observability binaries (built once, cached),
/// and no state left from an earlier run.
pub fn preflight(stack: &Stack) -> anyhow::Result<()> {
    let missing: Vec<&str> = ["curl", "psql", "python3", "openssl"]
        .into_iter()
        .filter(|tool| {
            !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "missing: {} (apt-get install curl postgresql-client python3 openssl)",
        missing.join(" ")
    );
    stack
        .script("scripts/observability.sh", &["build"])
        .context("scripts/observability.sh could not build the observability stack")?;
    anyhow::ensure!(
        stack.repo.join(FAST_ALERTS).is_file(),
        "{FAST_ALERTS} is missing"
    );
    stack.script_quiet("scripts/local-down.sh", &["--purge"])
}

/// Step 5: after the alert's round trip, everything is up again and every query has data.
pub async fn after_restart(
    fleet: &Fleet<'_>,
    report: &mut Report,
    queries: &mut Pending,
) -> anyhow::Result<()> {
    report.step("every target up again; every remaining dashboard query returns data");
    eventually(secs(60), "every target up after the restart", async || {
        fleet.targets_up().await
    })
    .await?;
    eventually(secs(60), "every dashboard query returns data", async || {
        queries.run(&fleet.prometheus, &fleet.db, false).await
    })
    .await?;
    report.passed();
    Ok(())
}

/// Step 6: local-down stops every process, each with exit status 0, and closes every port.
pub async fn stop(fleet: &Fleet<'_>, report: &mut Report) -> anyhow::Result<()> {
    report.step("scripts/local-down.sh stops everything cleanly");
    let stack = fleet.stack;
    let running: Vec<(&str, u32)> = stack
        .layout
        .components
        .iter()
        .filter_map(|c| stack.pid_of(c).map(|pid| (c.as_str(), pid)))
        .collect();
    stack.down()?;
    for (component, pid) in &running {
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            bail!("{component} (pid {pid}) still alive after local-down.sh");
        }
        let status = stack.exit_status(component);
        match (*component, status.as_deref()) {
            // Stopped by pg_ctl: no exit status of ours.
            ("postgres", _) | (_, Some("0")) => {}
            // A JVM stopped by SIGTERM exits 143 once its shutdown hook (Kafka's orderly stop)
            // is done.
            ("kafka", Some("143")) => {}
            (_, status) => bail!(
                "{component} exited with status {} after SIGTERM",
                status.unwrap_or("?")
            ),
        }
    }
    for (name, port) in stack.layout.ports() {
        anyhow::ensure!(
            !tcp_open(port),
            "port {port} ({name}) still accepts connections"
        );
    }
    let names: Vec<&str> = running.iter().map(|(c, _)| *c).collect();
    report.info(format!("stopped: {}", names.join(" ")));
    report.passed();
    Ok(())
}
