//! The pure core of the simulator: a seeded stream of calls whose arrivals form a Poisson
//! process (exponential gaps) and whose durations are exponential. No clock, no I/O: start
//! times are `origin + simulated offset`, so the stream is reproducible from its seed.

use chrono::{DateTime, TimeDelta, Utc};
use fleet::events::{CALL_SCHEMA_VERSION, CallEvent};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

/// One simulated call and where it sits on the simulated clock.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCall {
    /// Seconds since the start of the simulation at which the call starts.
    pub offset_secs: f64,
    /// The event to publish.
    pub event: CallEvent,
}

/// Generates calls. ChaCha8 rather than `StdRng` because its output is specified, so a seed
/// gives the same stream across `rand` releases and platforms.
#[derive(Debug, Clone)]
pub struct CallGenerator {
    rng: ChaCha8Rng,
    gaps: Exp<f64>,
    durations: Exp<f64>,
    origin: DateTime<Utc>,
    clock_secs: f64,
}

impl CallGenerator {
    /// A stream with arrival rate `calls_per_second` and mean duration `mean_duration_secs`,
    /// whose simulated clock starts at `origin`. Both parameters must be positive and finite
    /// (the config parser guarantees it).
    pub fn new(
        calls_per_second: f64,
        mean_duration_secs: f64,
        seed: u64,
        origin: DateTime<Utc>,
    ) -> Self {
        let exp = |rate: f64| Exp::new(rate).unwrap_or_else(|_| unreachable!("rate {rate} > 0"));
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            gaps: exp(calls_per_second),
            durations: exp(1.0 / mean_duration_secs),
            origin,
            clock_secs: 0.0,
        }
    }

    /// The next call: the clock advances by an exponential gap, then the call is drawn.
    pub fn next_call(&mut self) -> SimCall {
        self.clock_secs += self.gaps.sample(&mut self.rng);
        let caller = phone_number(&mut self.rng);
        let callee = loop {
            let n = phone_number(&mut self.rng);
            if n != caller {
                break n;
            }
        };
        let duration_secs = to_millis_never_zero(self.durations.sample(&mut self.rng));
        // Event times have millisecond resolution on the wire; truncate here so that the
        // generated event equals what a consumer decodes.
        let start_time = self.origin + TimeDelta::milliseconds((self.clock_secs * 1e3) as i64);
        let call_id = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        SimCall {
            offset_secs: self.clock_secs,
            event: CallEvent {
                schema_version: CALL_SCHEMA_VERSION,
                call_id,
                caller,
                callee,
                start_time,
                duration_secs,
            },
        }
    }

    /// Raw duration draw (seconds, continuous), for the distribution tests.
    pub fn sample_raw_duration(&mut self) -> f64 {
        self.durations.sample(&mut self.rng)
    }
}

/// A Swiss number as the original demo wrote them: `0041` followed by 7 digits.
fn phone_number(rng: &mut ChaCha8Rng) -> String {
    format!("0041{:07}", rng.random_range(0..10_000_000u32))
}

/// Rounds a duration to milliseconds; a draw that rounds to zero becomes 1 ms, because a call
/// that happened lasted some time.
pub fn to_millis_never_zero(secs: f64) -> f64 {
    (secs * 1000.0).round().max(1.0) / 1000.0
}

#[cfg(test)]
mod tests;
