//! The steps of the end-to-end test as they run: a header when one starts, its time when it
//! passes, and the list of them all at the end.

use std::time::Instant;

/// The steps so far; `current` names the one a failure belongs to.
#[derive(Debug)]
pub struct Report {
    started: Instant,
    step: String,
    step_started: Instant,
    done: Vec<String>,
}

impl Default for Report {
    fn default() -> Self {
        Self::new()
    }
}

impl Report {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            step: String::new(),
            step_started: Instant::now(),
            done: Vec::new(),
        }
    }

    /// Starts the step `name`.
    pub fn step(&mut self, name: impl Into<String>) {
        self.step = name.into();
        self.step_started = Instant::now();
        println!("\n=== {}", self.step);
    }

    /// A detail of the current step, worth reading when it passes.
    pub fn info(&self, line: impl std::fmt::Display) {
        println!("    {line}");
    }

    /// The current step passed.
    pub fn passed(&mut self) {
        let secs = self.step_started.elapsed().as_secs_f64();
        println!("    ok ({secs:.1}s)");
        self.done
            .push(format!("  ok  {:<70} {secs:6.1}s", self.step));
    }

    /// The step running (or the last one started).
    pub fn current(&self) -> &str {
        &self.step
    }

    /// Seconds since the start.
    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The list of steps passed and the total time.
    pub fn summary(&self) -> String {
        format!(
            "{}\n\ne2e: all {} checks passed in {:.1}s",
            self.done.join("\n"),
            self.done.len(),
            self.elapsed_secs()
        )
    }
}
