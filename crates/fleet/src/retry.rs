//! Retry timing for outages (PostgreSQL, Kafka): an exponential backoff with a cap. A loop
//! that retries sleeps [`Backoff::next_delay`] between attempts, inside a `select!` on its
//! shutdown token, and resets after a success.

use std::time::Duration;

/// Exponential backoff for outage retries: 100 ms doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at 100 ms, caps at `max`.
    pub fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(100),
            max,
        }
    }

    /// The delay to wait now; doubles the next one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

/// The cause of the last failure logged: a failure repeated on every retry is logged once at
/// warn, then at debug (its detail stays in `/readyz`); another cause is logged at warn again.
#[derive(Debug, Default)]
pub struct SaidOnce(Option<String>);

impl SaidOnce {
    /// Logs that `what` happened because of `cause` (the same text for every repeat of one
    /// failure), said in full by `detail`.
    pub fn log(&mut self, what: &str, cause: &str, detail: &str) {
        if self.0.as_deref() == Some(cause) {
            tracing::debug!(cause, error = detail, "{what}");
        } else {
            tracing::warn!(cause, error = detail, "{what}");
            self.0 = Some(cause.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
