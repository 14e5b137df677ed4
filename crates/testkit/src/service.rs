//! A Fleetpulse service run as its own process, as an operator runs it: settings from the
//! environment (the `KAFKA_*` passthrough included), JSON logs to a file the test reads, and
//! its `/metrics` and `/readyz` on a port of its own.
//!
//! Dropped, the process is killed (SIGKILL, reaped within a bound, also while the test panics)
//! and its log's folder removed, unless the test failed: then it is kept for the reader.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The path of a workspace binary, built beside the running test (`cargo nextest run
/// --workspace` builds every service).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the services first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// A running service process; killed when dropped.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Mutex<Option<Child>>,
    port: u16,
    log: PathBuf,
    /// Dropped after the child is killed (fields drop after `Drop::drop`).
    _log_dir: crate::TempDir,
}

impl Service {
    /// Starts binary `name` with `env` (on top of this process's environment, minus any
    /// `KAFKA_*` of ours) and `METRICS_ADDR` on a free port; its logs (JSON) go to a file.
    pub fn start<K, V>(name: &str, env: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let port = crate::broker::free_port();
        let mut command = Command::new(bin(name));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KAFKA_")) {
            command.env_remove(key);
        }
        command
            .env("METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env(
                "RUST_LOG",
                std::env::var("CHILD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env);
        Self::spawn(name, port, command)
    }

    /// Runs `command` as service `name` answering on `port`, its output to its log file.
    fn spawn(name: &str, port: u16, mut command: Command) -> Self {
        let log_dir = crate::TempDir::new(&format!("{name}-log"));
        let log = log_dir.path().join("output.log");
        // The services log to stdout (tracing's default); panics and the final error line go
        // to stderr: both land in one file, in order.
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self {
            name: name.to_string(),
            child: Mutex::new(Some(child)),
            port,
            log,
            _log_dir: log_dir,
        }
    }

    /// The port of its HTTP endpoint (`METRICS_ADDR`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `(status, body)` of `GET path`, or `None` while nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// The value of the series `sample` selects, `name{label="value",...}` (`None`: absent or
    /// not answering). Panics on an exposition that does not parse.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        let scrape = crate::prom::parse(&body)
            .unwrap_or_else(|err| panic!("{}'s /metrics: {err}\n{body}", self.name));
        scrape.value(sample)
    }

    /// Waits (bounded) until `sample` satisfies `want`; panics with the last value and the log.
    pub fn wait_metric(&self, sample: &str, within: Duration, want: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(sample);
            if let Some(v) = value.filter(|v| want(*v)) {
                return v;
            }
            assert!(
                self.running(),
                "{} exited ({:?}) waiting for {sample}:\n{}",
                self.name,
                self.exit_status(),
                self.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "{}: {sample} = {value:?} after {within:?}\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while the process runs.
    pub fn running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// The exit status once the process has exited (`None` while it runs).
    pub fn exit_status(&self) -> Option<std::process::ExitStatus> {
        match self.child().as_mut() {
            Some(c) => c.try_wait().unwrap(),
            // Killed and reaped by `kill`: a SIGKILL's wait status.
            None => Some(std::os::unix::process::ExitStatusExt::from_raw(9)),
        }
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs after {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, the orderly stop (producers flush), and waits for the exit.
    pub fn terminate(&self, within: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(within)
    }

    /// Sends `SIG<name>` (`"TERM"`, `"INT"`) and returns at once.
    pub fn signal(&self, name: &str) {
        if let Some(child) = self.child().as_ref() {
            let pid = child.id().to_string();
            let _ = Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status();
        }
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&self) {
        if let Some(status) = self.kill_within(Duration::from_secs(10)) {
            panic!("{} still runs 10 s after SIGKILL ({status})", self.name);
        }
    }

    /// SIGKILL, and reaps the process within `within`; what went wrong otherwise. Never panics:
    /// `Drop` calls it, maybe while the test panics.
    fn kill_within(&self, within: Duration) -> Option<String> {
        let mut child = self.child().take()?;
        // Ok as well when it has exited already.
        if let Err(err) = child.kill() {
            return Some(err.to_string());
        }
        let deadline = Instant::now() + within;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return None,
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => return Some(format!("pid {}", child.id())),
                Err(err) => return Some(err.to_string()),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The child, also after a panic while it was held (a poisoned lock): teardown must still
    /// reach it.
    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything the service logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log records at `level` (`"WARN"`, `"ERROR"`).
    pub fn log_records(&self, level: &str) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| l.contains(&format!("\"level\":\"{level}\"")))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(problem) = self.kill_within(Duration::from_secs(10)) {
            eprintln!("testkit: {} not reaped after SIGKILL: {problem}", self.name);
        }
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1: enough for `/metrics` and `/readyz`.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(
        port,
        &format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"),
    )
}

/// A plain HTTP/1.0 POST of a JSON `body` with an `Authorization` header; the status.
pub fn http_post(port: u16, path: &str, authorization: &str, body: &str) -> Option<u16> {
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http_request(port, &request).map(|(status, _)| status)
}

fn http_request(port: u16, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A process that ignores SIGTERM, as a service stuck in its shutdown would.
    fn stubborn() -> (Service, u32) {
        let mut command = Command::new("sh");
        command.args(["-c", "trap '' TERM; echo started; exec sleep 600"]);
        let service = Service::spawn("stubborn", 0, command);
        let pid = service.child().as_ref().unwrap().id();
        (service, pid)
    }

    fn gone(pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_passing_test_kills_its_process_and_removes_its_log() {
        let (service, pid) = stubborn();
        let dir = service.log.parent().unwrap().to_path_buf();
        assert!(service.running() && dir.exists());
        drop(service);
        assert!(gone(pid), "pid {pid} survives its Service");
        assert!(!dir.exists(), "{} survives a passing test", dir.display());
    }

    #[test]
    fn a_failing_test_kills_its_process_at_once_and_keeps_its_log() {
        let (service, pid) = stubborn();
        let dir = service.log.parent().unwrap().to_path_buf();
        let started = Instant::now();
        let failed = std::panic::catch_unwind(move || {
            // A panic while the lock is held poisons it: teardown must get through all the same.
            let _held = service.child.lock().unwrap();
            panic!("the test fails while its service runs");
        });
        assert!(failed.is_err());
        assert!(gone(pid), "pid {pid} survives a failed test");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            dir.exists(),
            "{} removed although the test failed",
            dir.display()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
