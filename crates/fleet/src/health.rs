//! Health and readiness.
//!
//! A service registers named checks ("kafka", "postgres", "progress"). `health_status` is 1 only
//! while every check passes; `/readyz` answers 200 only while every check marked as a readiness
//! check passes. Checks are flipped by the code that observes the condition (a delivery report,
//! a flush result, a broker state), so the gauge moves with reality instead of being set once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::{IntGauge, IntGaugeVec, Registry};

#[derive(Debug)]
struct Check {
    name: &'static str,
    ok: bool,
    gates_readiness: bool,
    detail: String,
}

crate::metrics! {
    /// The health gauges every service has (no namespace: the same name everywhere).
    struct Gauges in "" {
        /// 1 while the service is doing its job, 0 when any health check fails.
        status: IntGauge = "health_status",
        /// 1 while the named health check passes.
        per_check: IntGaugeVec = "health_check_status" labels ["check"],
    }
}

/// Shared, cloneable health state of one service.
#[derive(Debug, Clone)]
pub struct Health {
    checks: Arc<Mutex<Vec<Check>>>,
    status: IntGauge,
    per_check: IntGaugeVec,
}

impl Health {
    /// Registers `health_status` and `health_check_status{check}` in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let Gauges { status, per_check } = Gauges::register(registry)?;
        Ok(Self {
            checks: Arc::default(),
            status,
            per_check,
        })
    }

    /// Adds a check, initially failing ("not yet confirmed"). `gates_readiness` checks must
    /// pass for `/readyz` to answer 200.
    pub fn register(&self, name: &'static str, gates_readiness: bool) {
        let mut checks = self.lock();
        if checks.iter().all(|c| c.name != name) {
            checks.push(Check {
                name,
                ok: false,
                gates_readiness,
                detail: "starting".into(),
            });
        }
        self.per_check.with_label_values(&[name]).set(0);
        self.status.set(0);
    }

    /// Marks a check as passing.
    pub fn pass(&self, name: &'static str) {
        self.set(name, true, String::new());
    }

    /// Marks a check as failing, with a short reason shown by `/readyz`.
    pub fn fail(&self, name: &'static str, detail: impl Into<String>) {
        self.set(name, false, detail.into());
    }

    fn set(&self, name: &'static str, ok: bool, detail: String) {
        let mut checks = self.lock();
        let Some(check) = checks.iter_mut().find(|c| c.name == name) else {
            debug_assert!(false, "health check {name} was never registered");
            return;
        };
        if check.ok != ok {
            if ok {
                tracing::info!(check = name, "health check passes");
            } else {
                tracing::warn!(check = name, reason = %detail, "health check fails");
            }
        }
        check.ok = ok;
        check.detail = detail;
        self.per_check.with_label_values(&[name]).set(i64::from(ok));
        self.status.set(i64::from(checks.iter().all(|c| c.ok)));
    }

    /// `Ok` when every readiness check passes, else the failing checks as text.
    pub fn readiness(&self) -> Result<(), String> {
        let failing: Vec<String> = self
            .lock()
            .iter()
            .filter(|c| c.gates_readiness && !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(failing.join("\n"))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Check>> {
        // A panic while holding this lock cannot leave the Vec inconsistent: keep serving.
        self.checks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Decides whether a loop that should make progress has stalled: it had work pending and no
/// success for `window` (e.g. 3 send or flush intervals). Pure, so it is tested on fake instants.
#[derive(Debug, Clone)]
pub struct StallDetector {
    window: Duration,
    last_success: Option<Instant>,
    pending_since: Option<Instant>,
}

impl StallDetector {
    /// A detector that reports a stall after `window` without success while work is pending.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_success: None,
            pending_since: None,
        }
    }

    /// Work is waiting (a message in flight, data to flush). Keeps the earliest instant.
    pub fn pending(&mut self, now: Instant) {
        self.pending_since.get_or_insert(now);
    }

    /// Nothing is waiting any more; an idle loop is not a stalled one.
    pub fn idle(&mut self) {
        self.pending_since = None;
    }

    /// The work succeeded (a delivery, a flush).
    pub fn success(&mut self, now: Instant) {
        self.last_success = Some(now);
    }

    /// True when work has been pending for `window` without any success in that time.
    pub fn is_stalled(&self, now: Instant) -> bool {
        let Some(pending_since) = self.pending_since else {
            return false;
        };
        let since = match self.last_success {
            Some(success) if success > pending_since => success,
            _ => pending_since,
        };
        now.saturating_duration_since(since) >= self.window
    }
}

/// Keeps a producer's delivery check true to reality: every second, fails `check` when
/// messages were waiting (`waiting()`) and `delivered` did not move for `limit` (three send
/// intervals), passes it otherwise. Runs until `stop`.
pub async fn watch_deliveries(
    health: Health,
    check: &'static str,
    delivered: Arc<std::sync::atomic::AtomicU64>,
    waiting: impl Fn() -> bool,
    limit: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut detector = StallDetector::new(limit);
    let mut last_delivered = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let count = delivered.load(std::sync::atomic::Ordering::Relaxed);
        if count > last_delivered {
            detector.success(now);
            last_delivered = count;
        }
        if waiting() {
            detector.pending(now)
        } else {
            detector.idle()
        }
        if detector.is_stalled(now) {
            health.fail(check, "no delivery for 3 send intervals");
        } else {
            health.pass(check);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_status_follows_every_check_and_moves_back_and_forth() {
        let registry = Registry::new();
        let health = Health::new(&registry).unwrap();
        health.register("kafka", true);
        health.register("progress", false);
        assert_eq!(health.status.get(), 0);
        health.pass("kafka");
        assert_eq!(health.status.get(), 0, "progress has not passed yet");
        assert!(
            health.readiness().is_ok(),
            "progress does not gate readiness"
        );
        health.pass("progress");
        assert_eq!(health.status.get(), 1);
        health.fail("kafka", "all brokers down");
        assert_eq!(health.status.get(), 0);
        assert_eq!(health.readiness().unwrap_err(), "kafka: all brokers down");
        health.pass("kafka");
        assert_eq!(health.status.get(), 1);
    }

    #[test]
    fn stall_is_reported_only_after_the_window_with_work_pending() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut d = StallDetector::new(Duration::from_secs(3));
        assert!(!d.is_stalled(s(100)), "never had work: not stalled");
        d.pending(s(0));
        assert!(!d.is_stalled(s(2)));
        assert!(d.is_stalled(s(3)));
        d.success(s(4));
        assert!(!d.is_stalled(s(6)));
        assert!(d.is_stalled(s(7)));
        d.idle();
        assert!(!d.is_stalled(s(50)), "idle loops are healthy");
        d.pending(s(50));
        d.pending(s(52));
        assert!(d.is_stalled(s(53)), "pending keeps the earliest instant");
    }
}
