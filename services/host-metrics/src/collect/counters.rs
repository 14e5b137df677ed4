//! Rates from counters: the previous value of every counter turns the next one into an
//! [`Increase`]. The disk and network collectors each keep their own [`Counters`].

use std::collections::HashMap;

/// A counter's increase between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Increase {
    pub delta: u64,
    pub secs: f64,
}

impl Increase {
    /// Per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.delta as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Which counter of which device.
type CounterKey = (&'static str, String);

/// The previous value of every counter, to turn the next one into an increase.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    previous: HashMap<CounterKey, (u64, i64)>,
}

impl Counters {
    /// Records `value` of `counter` for `device` at `time_ms`; returns the increase since the
    /// previous record, or `None` the first time. A value below the previous one is a reset
    /// (an interface re-created, a counter wrapped): the counter restarted from zero, so the
    /// increase is the new value, as Prometheus' `rate()` reads it.
    pub fn observe(
        &mut self,
        counter: &'static str,
        device: &str,
        value: u64,
        time_ms: i64,
    ) -> Option<Increase> {
        let key = (counter, device.to_string());
        let previous = self.previous.insert(key, (value, time_ms))?;
        let (before, before_ms) = previous;
        let delta = if value >= before {
            value - before
        } else {
            value
        };
        Some(Increase {
            delta,
            secs: (time_ms - before_ms).max(0) as f64 / 1000.0,
        })
    }

    /// Forgets devices not in `devices` for `counter` (an interface that went away).
    pub fn retain(&mut self, counter: &'static str, devices: &[&str]) {
        self.previous
            .retain(|(c, d), _| *c != counter || devices.contains(&d.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_are_deltas_over_elapsed_time_and_the_first_reading_has_none() {
        let mut c = Counters::default();
        assert_eq!(c.observe("rx", "eth0", 1_000, 0), None);
        let inc = c.observe("rx", "eth0", 3_000, 2_000).unwrap();
        assert_eq!(inc.delta, 2_000);
        assert!((inc.rate() - 1_000.0).abs() < 1e-9);
        // Devices and counters are independent.
        assert_eq!(c.observe("rx", "eth1", 5, 2_000), None);
        assert_eq!(c.observe("tx", "eth0", 5, 2_000), None);
    }

    #[test]
    fn a_counter_that_goes_down_was_reset_and_counts_from_zero() {
        let mut c = Counters::default();
        c.observe("rx", "eth0", 1_000_000, 0);
        let inc = c.observe("rx", "eth0", 500, 10_000).unwrap();
        assert_eq!(inc.delta, 500);
        assert!((inc.rate() - 50.0).abs() < 1e-9);
    }

    #[test]
    fn zero_elapsed_time_gives_a_zero_rate_not_infinity() {
        let mut c = Counters::default();
        c.observe("rx", "eth0", 0, 5_000);
        assert_eq!(c.observe("rx", "eth0", 10, 5_000).unwrap().rate(), 0.0);
    }
}
