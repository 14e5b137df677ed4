//! The native stack as the end-to-end test runs it: `scripts/local-up.sh` and
//! `scripts/local-down.sh` with the test's settings, the layout they use (read from
//! `scripts/lib/local-stack.sh` itself, so the ports and folders have one definition), the
//! components' pids, exit statuses and logs, and [`Stack`]'s `Drop`, which stops whatever is
//! still running, with the logs' tails first when the test is failing.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// The e2e's rule file (`FleetE2EServiceDown`), loaded besides the repository's rules.
pub const FAST_ALERTS: &str = "prometheus/e2e/fast-alerts.yml";

/// Where the stack lives and listens, as `scripts/lib/local-stack.sh` computes it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub state: PathBuf,
    pub run: PathBuf,
    pub logs: PathBuf,
    /// In start order; local-down stops them in reverse.
    pub components: Vec<String>,
    ports: HashMap<String, u16>,
}

impl Layout {
    /// The port of a `*_PORT` variable of local-stack.sh (`"PROMETHEUS_PORT"`).
    pub fn port(&self, variable: &str) -> u16 {
        self.ports
            .get(variable)
            .copied()
            .unwrap_or_else(|| panic!("scripts/lib/local-stack.sh defines no {variable}"))
    }

    /// Every port the stack listens on (local-down must close them all).
    pub fn ports(&self) -> impl Iterator<Item = (&str, u16)> {
        self.ports.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self, variable: &str) -> String {
        format!("http://127.0.0.1:{}", self.port(variable))
    }
}

/// The ports the e2e reads or must see closed after local-down (local-stack.sh's names).
const PORTS: [&str; 11] = [
    "AGGREGATOR_PORT",
    "CALL_SIMULATOR_PORT",
    "HOST_METRICS_PORT",
    "WEB_PROBER_PORT",
    "PROBE_SITE_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "SMTP_PORT",
    "MAILPIT_PORT",
    "JAEGER_PORT",
    "JAEGER_OTLP_PORT",
];

/// The stack of this test run. Dropping it stops everything still running (local-down),
/// printing the logs' tails first when the thread is panicking (a failed check).
#[derive(Debug)]
pub struct Stack {
    pub repo: PathBuf,
    pub layout: Layout,
    env: Vec<(String, Option<String>)>,
    /// True when there is nothing to stop: before `up`, after `down`.
    stopped: Cell<bool>,
}

impl Stack {
    /// The stack's settings: a state folder and database of its own, fast scrapes, samples
    /// and checks, the e2e's alert, and nothing of the shell's own Kafka, database, targets
    /// file or trace export (hermetic). Nothing is started yet.
    pub fn configure(repo: &Path) -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        // Relative to the repository, as the scripts read it.
        let state = repo.join(
            var("E2E_STATE_DIR")
                .as_deref()
                .unwrap_or(".local-stack-e2e"),
        );
        let mut env: Vec<(String, Option<String>)> = [
            ("FLEET_STATE_DIR", state.to_string_lossy().as_ref()),
            ("FLEET_SCRAPE_INTERVAL", "2s"),
            ("FLEET_FAST_ALERTS", "1"),
            ("FLEET_EXTRA_RULES", FAST_ALERTS),
            // host-metrics samples every second (default 10), web-prober checks every target
            // every second (default 60) and looks at its targets file twice a second (default
            // 2), so that rates and tables fill, and reloads happen, in seconds.
            ("SAMPLE_INTERVAL_SECS", "1"),
            ("PROBE_INTERVAL_SECS", "1"),
            ("PROBE_RELOAD_SECS", "0.5"),
            (
                "FLEET_DB_NAME",
                var("E2E_DB_NAME").as_deref().unwrap_or("fleetpulse_e2e"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
        // The generated targets file and probe-site's certificate; a Kafka and a database of
        // our own; traces to our Jaeger (local-up's default): whatever the shell points at.
        for name in [
            "PROBE_TARGETS_FILE",
            "PROBE_CA_FILE",
            "PROBE_REGEX",
            "DATABASE_URL",
            "KAFKA_BOOTSTRAP_SERVERS",
            "FLEET_PG_ADMIN_URL",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
        ] {
            env.push((name.to_string(), None));
        }
        if let Some(server) = var("TEST_DATABASE_URL") {
            env.push(("FLEET_PG_ADMIN_URL".to_string(), Some(server)));
        }
        let mut stack = Self {
            repo: repo.to_path_buf(),
            layout: Layout {
                state,
                run: PathBuf::new(),
                logs: PathBuf::new(),
                components: Vec::new(),
                ports: HashMap::new(),
            },
            env,
            stopped: Cell::new(true),
        };
        stack.layout = stack.read_layout()?;
        Ok(stack)
    }

    /// A command run in the repository with the stack's settings.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.current_dir(&self.repo);
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
    }

    /// Runs a script of the repository (`scripts/local-up.sh`) with the stack's settings;
    /// its output goes to the test's.
    pub fn script(&self, path: &str, args: &[&str]) -> anyhow::Result<()> {
        run_script(self.command(path), path, args)
    }

    /// As [`Stack::script`], its standard output dropped (errors still show).
    pub fn script_quiet(&self, path: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut command = self.command(path);
        command.stdout(std::process::Stdio::null());
        run_script(command, path, args)
    }

    /// `scripts/local-up.sh` with a fresh database; from here on, dropping `self` stops it.
    pub fn up(&self) -> anyhow::Result<()> {
        self.stopped.set(false);
        let status = self
            .command("scripts/local-up.sh")
            .env("FLEET_DB_RESET", "1")
            .status()
            .context("run scripts/local-up.sh")?;
        anyhow::ensure!(status.success(), "scripts/local-up.sh failed: {status}");
        Ok(())
    }

    /// `scripts/local-down.sh` for everything; dropping `self` afterwards does nothing.
    pub fn down(&self) -> anyhow::Result<()> {
        self.stopped.set(true);
        self.script("scripts/local-down.sh", &[])
    }

    /// The database URL local-up recorded in the state folder's run/stack.env (shell syntax,
    /// so the shell reads it).
    pub fn database_url(&self) -> anyhow::Result<String> {
        let env_file = self.layout.run.join("stack.env");
        let output = self
            .command("bash")
            .arg("-c")
            .arg(r#"source "$1" && printf %s "$STACK_DATABASE_URL""#)
            .arg("_")
            .arg(&env_file)
            .output()
            .context("run bash")?;
        let url = String::from_utf8_lossy(&output.stdout).into_owned();
        anyhow::ensure!(
            output.status.success() && !url.is_empty(),
            "local-up.sh recorded no database URL in {}",
            env_file.display()
        );
        Ok(url)
    }

    /// The pid of a live component started by local-up, as local-stack.sh's `pid_of`: its pid
    /// file names a live process that still runs the command it was started with.
    pub fn pid_of(&self, component: &str) -> Option<u32> {
        let read =
            |ext: &str| std::fs::read_to_string(self.layout.run.join(format!("{component}.{ext}")));
        let pid: u32 = read("pid").ok()?.trim().parse().ok()?;
        let proc = PathBuf::from(format!("/proc/{pid}"));
        if !proc.exists() {
            return None;
        }
        if let (Ok(want), Ok(cmdline)) = (read("cmd"), std::fs::read(proc.join("cmdline"))) {
            let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            if want.trim_end_matches('\n').as_bytes() != first {
                return None;
            }
        }
        Some(pid)
    }

    /// A component's exit status as its supervisor recorded it (run/NAME.rc).
    pub fn exit_status(&self, component: &str) -> Option<String> {
        std::fs::read_to_string(self.layout.run.join(format!("{component}.rc")))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// A component's log file.
    pub fn log(&self, component: &str) -> PathBuf {
        self.layout.logs.join(format!("{component}.log"))
    }

    /// The last `n` lines of a component's log that contain one of `needles` (all when
    /// `needles` is empty).
    pub fn log_lines(&self, component: &str, needles: &[&str], n: usize) -> Vec<String> {
        let text = std::fs::read_to_string(self.log(component)).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| needles.is_empty() || needles.iter().any(|s| l.contains(s)))
            .collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    /// Sends `SIG<signal>` to a component.
    pub fn signal(&self, component: &str, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid_of(component) else {
            bail!("{component} is not running");
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("run kill")?;
        anyhow::ensure!(
            status.success(),
            "kill -{signal} {pid} ({component}): {status}"
        );
        Ok(())
    }

    /// Reads local-stack.sh's variables with the stack's settings.
    fn read_layout(&self) -> anyhow::Result<Layout> {
        let script = format!(
            r#"source scripts/lib/local-stack.sh && printf '%s\n' "$STATE" "$RUN" "$LOGS" "${{COMPONENTS[*]}}" {}"#,
            PORTS.map(|p| format!("\"{p}=${p}\"")).join(" ")
        );
        let output = self.command("bash").arg("-c").arg(script).output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(
            output.status.success(),
            "scripts/lib/local-stack.sh: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let mut lines = text.lines();
        let mut next = || lines.next().unwrap_or_default().to_string();
        let (state, run, logs) = (next().into(), next().into(), next().into());
        let components = next().split_whitespace().map(str::to_string).collect();
        let mut ports = HashMap::new();
        for line in text.lines().skip(4) {
            let (name, value) = line.split_once('=').context("a NAME=port line")?;
            ports.insert(
                name.to_string(),
                value.parse().with_context(|| line.to_string())?,
            );
        }
        Ok(Layout {
            state,
            run,
            logs,
            components,
            ports,
        })
    }

    fn print_log_tails(&self) {
        eprintln!("\n--- logs (tails) from {}", self.layout.logs.display());
        for component in &self.layout.components {
            let path = self.log(component);
            if path.exists() {
                eprintln!("----- last 40 lines of {}", path.display());
                for line in self.log_lines(component, &[], 40) {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Runs `command` (the script at `path`) with `args`; an error unless it exits 0.
fn run_script(mut command: Command, path: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = (command.args(args).status()).with_context(|| format!("run {path}"))?;
    anyhow::ensure!(
        status.success(),
        "{path} {} failed: {status}",
        args.join(" ")
    );
    Ok(())
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_tails();
        }
        if self.stopped.get() {
            return;
        }
        // Quietly; again loudly if that failed, so that what would not stop is said.
        let quiet = self
            .command("scripts/local-down.sh")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !quiet.is_ok_and(|s| s.success()) {
            let _ = self.command("scripts/local-down.sh").status();
        }
        if std::thread::panicking() {
            eprintln!(
                "\ne2e: state and logs kept in {}",
                self.layout.state.display()
            );
        }
    }
}

/// True when something accepts connections on 127.0.0.1:`port`.
pub fn tcp_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .is_ok()
}
