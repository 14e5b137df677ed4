//! Scheduling: every target runs in its own task on its own interval, starting at a random
//! offset within its first interval so that thousands of targets do not fire together. A
//! global semaphore bounds the checks running at once; a slow or hanging target holds only its
//! own task (and one permit, for at most its timeout), never another target's turn.

use std::collections::HashMap;
use std::sync::Arc;

use fleet::events::ProbeResult;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::check::Checker;
use crate::metrics::Metrics;
use crate::targets::Target;

/// A target's identity: two entries with the same method and URL are the same target.
pub type Key = (String, String);

pub fn key(t: &Target) -> Key {
    (t.method.to_string(), t.url.to_string())
}

/// What a reload changes: targets to stop (removed or changed) and to start (new or changed).
#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    pub stop: Vec<Key>,
    pub start: Vec<Target>,
}

/// Compares the running targets with a new configuration; unchanged targets keep their
/// schedule.
pub fn diff(running: &HashMap<Key, Target>, wanted: &[Target]) -> Diff {
    let wanted_keys: HashMap<Key, &Target> = wanted.iter().map(|t| (key(t), t)).collect();
    let mut d = Diff::default();
    for (k, t) in running {
        match wanted_keys.get(k) {
            Some(w) if *w == t => {}
            _ => d.stop.push(k.clone()),
        }
    }
    for t in wanted {
        match running.get(&key(t)) {
            Some(r) if r == t => {}
            _ => d.start.push(t.clone()),
        }
    }
    d.stop.sort();
    d
}

/// Where results go.
pub type Sink = Arc<dyn Fn(&Target, ProbeResult) + Send + Sync>;

/// The running targets.
pub struct Scheduler {
    checker: Checker,
    permits: Arc<Semaphore>,
    metrics: Metrics,
    sink: Sink,
    running: HashMap<Key, (Target, CancellationToken, JoinHandle<()>)>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("targets", &self.running.len())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    pub fn new(checker: Checker, concurrency: usize, metrics: Metrics, sink: Sink) -> Self {
        Self {
            checker,
            permits: Arc::new(Semaphore::new(concurrency)),
            metrics,
            sink,
            running: HashMap::new(),
        }
    }

    /// Moves to `wanted`: stops what left or changed, starts what is new or changed.
    pub fn apply(&mut self, wanted: &[Target]) -> Diff {
        let current: HashMap<Key, Target> = self
            .running
            .iter()
            .map(|(k, (t, _, _))| (k.clone(), t.clone()))
            .collect();
        let d = diff(&current, wanted);
        for k in &d.stop {
            if let Some((_, stop, _)) = self.running.remove(k) {
                stop.cancel();
            }
            if !wanted.iter().any(|t| key(t) == *k) {
                self.metrics.forget(&k.1);
            }
        }
        for t in &d.start {
            let stop = CancellationToken::new();
            let task = tokio::spawn(run_target(
                t.clone(),
                self.checker.clone(),
                self.permits.clone(),
                self.metrics.clone(),
                self.sink.clone(),
                stop.clone(),
            ));
            self.running.insert(key(t), (t.clone(), stop, task));
        }
        self.metrics.targets.set(self.running.len() as i64);
        d
    }

    /// Stops every target; checks in flight are abandoned.
    pub async fn stop(&mut self) {
        for (_, (_, stop, task)) in self.running.drain() {
            stop.cancel();
            let _ = task.await;
        }
    }
}

async fn run_target(
    target: Target,
    checker: Checker,
    permits: Arc<Semaphore>,
    metrics: Metrics,
    sink: Sink,
    stop: CancellationToken,
) {
    let offset = target.interval.mul_f64(rand::rng().random_range(0.0..1.0));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, target.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let label = target.url.to_string();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return, // closed: shutting down
            },
        };
        metrics.in_flight.inc();
        let result = tokio::select! {
            () = stop.cancelled() => None,
            r = checker.check(&target) => Some(r),
        };
        metrics.in_flight.dec();
        drop(permit);
        let Some(result) = result else { return };
        if result.result != fleet::events::ProbeOutcome::Ok {
            tracing::debug!(url = %label, result = result.result.as_str(),
                error = result.error.as_deref().unwrap_or(""), "check failed");
        }
        metrics.observe(&label, &result);
        sink(&target, result);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::targets::{Defaults, parse};

    fn targets(text: &str) -> Vec<Target> {
        let d = Defaults {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            regex: None,
        };
        parse(text, false, &d).unwrap()
    }

    fn running(text: &str) -> HashMap<Key, Target> {
        targets(text).into_iter().map(|t| (key(&t), t)).collect()
    }

    #[test]
    fn a_reload_touches_only_what_changed() {
        let before = running("http://a.test\nhttp://b.test x\nhttp://c.test");
        let after = targets("http://a.test\nhttp://b.test y\nhttp://d.test");
        let d = diff(&before, &after);
        let stopped: Vec<&str> = d.stop.iter().map(|(_, u)| u.as_str()).collect();
        assert_eq!(stopped, ["http://b.test/", "http://c.test/"]);
        let started: Vec<&str> = d.start.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(started, ["http://b.test/", "http://d.test/"]);
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let text = "http://a.test\nhttp://b.test x";
        assert_eq!(diff(&running(text), &targets(text)), Diff::default());
    }
}
