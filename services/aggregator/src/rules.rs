//! The window rules every source aggregates by: the window length and the long-call threshold
//! (settings), and the window an event time falls in.

/// Aggregation parameters.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub window_secs: i64,
    /// Strictly longer calls are long calls.
    pub long_call_threshold_ms: i64,
}

impl Rules {
    /// Start (seconds since the epoch) of the window holding `time_ms`; floors, so times
    /// before 1970 land in the right window too.
    pub fn window_of(&self, time_ms: i64) -> i64 {
        window_start(time_ms, self.window_secs)
    }
}

/// See [`Rules::window_of`].
pub fn window_start(time_ms: i64, window_secs: i64) -> i64 {
    time_ms.div_euclid(window_secs * 1000) * window_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        window_secs: 60,
        long_call_threshold_ms: 60_000,
    };

    #[test]
    fn windows_are_tumbling_and_floor_negative_times() {
        assert_eq!(RULES.window_of(0), 0);
        assert_eq!(RULES.window_of(59_999), 0);
        assert_eq!(RULES.window_of(60_000), 60);
        assert_eq!(RULES.window_of(-1), -60);
        let five = Rules {
            window_secs: 300,
            ..RULES
        };
        assert_eq!(five.window_of(1_700_000_123_456), 1_700_000_100);
    }
}
