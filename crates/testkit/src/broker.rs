//! A private Apache Kafka broker for one test: `scripts/kafka.sh` starts it on a folder and
//! ports of its own, so the test can kill it, restart it on the same data, or give it TLS and
//! SASL listeners without disturbing the other tests.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How a private broker is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Lines appended to the generated `server.properties` (they win): extra listeners and
    /// their TLS and SASL settings.
    pub properties: String,
    /// SCRAM-SHA-512 users `(name, password)` created when the storage is formatted.
    pub scram_users: Vec<(String, String)>,
    /// Listeners besides the plaintext one, as `(protocol, port)`: `("SSL", 9094)`.
    pub listeners: Vec<(String, u16)>,
}

/// One broker+controller JVM; killed (SIGKILL) when dropped. Its folder, logs included, is
/// then removed, unless the test failed: it is kept for whoever reads the failure.
#[derive(Debug)]
pub struct Broker {
    /// Dropped after the JVM is killed (fields drop after `Drop::drop`).
    dir: crate::TempDir,
    port: u16,
    options: Options,
}

impl Broker {
    /// Starts a broker with a plaintext listener on a free port and `options`; returns once it
    /// has started and accepts connections.
    pub fn start(options: Options) -> Self {
        let broker = Self {
            dir: crate::TempDir::new("kafka"),
            port: free_port(),
            options,
        };
        broker.run_start();
        broker
    }

    /// The plaintext listener, `127.0.0.1:port`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash or a lost machine would stop it; returns once the process is gone.
    pub fn kill(&self) {
        if let Err(problem) = self.kill_within(Duration::from_secs(10)) {
            panic!("{problem}");
        }
    }

    /// SIGKILL and a bounded wait for the process to go; what went wrong otherwise. Never
    /// panics: `Drop` calls it, maybe while the test panics.
    fn kill_within(&self, within: Duration) -> Result<(), String> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        let status = Command::new("kill").args(["-KILL", &pid]).status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            return Err(format!("kill -KILL {pid}: {status:?}"));
        }
        let deadline = Instant::now() + within;
        while Path::new(&format!("/proc/{pid}")).exists() {
            // A zombie until kafka.sh's shell (already gone) would reap it: init does.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state.split_whitespace().nth(2) == Some("Z") {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!("broker {pid} still runs {within:?} after SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the broker again on the same folder and ports, keeping its data.
    pub fn restart(&self) {
        self.run_start();
    }

    fn pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.dir.path().join("kafka.pid")).ok()?;
        let pid = pid.trim().to_string();
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    fn run_start(&self) {
        let mut command = Command::new(crate::repo_root().join("scripts/kafka.sh"));
        command
            .arg("start")
            .arg(self.dir.path())
            .args(["--port", &self.port.to_string()]);
        if !self.options.properties.is_empty() {
            let file = self.dir.path().join("extra.properties");
            std::fs::write(&file, &self.options.properties).unwrap();
            command.arg("--properties").arg(file);
        }
        for (protocol, port) in &self.options.listeners {
            command.args(["--listener", &format!("{protocol}:{port}")]);
        }
        for (user, password) in &self.options.scram_users {
            command.args(["--scram", &format!("{user}={password}")]);
        }
        // The test's own JVMs stay small: the run's broker and up to two private ones share
        // the machine with the tests.
        let output = command.env("FLEET_KAFKA_HEAP", "384m").output().unwrap();
        assert!(
            output.status.success(),
            "scripts/kafka.sh start {}: {}",
            self.dir.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Err(problem) = self.kill_within(Duration::from_secs(10)) {
            eprintln!("testkit: {problem}");
        }
    }
}

/// A port nothing listens on now (bound to port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
