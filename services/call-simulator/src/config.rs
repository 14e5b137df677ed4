//! Settings of the call simulator (environment variables with matching flags).

use clap::{Parser, ValueEnum};
use fleet::config::CommonArgs;
use fleet::events::topics;

/// How the simulator paces its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimMode {
    /// Each call is sent when the wall clock reaches its simulated start time.
    Realtime,
    /// Calls are sent as fast as the broker accepts them; their start times still follow the
    /// simulated Poisson clock (the load generator).
    Flood,
}

/// Poisson stream of phone calls with exponential durations, published to Kafka.
#[derive(Debug, Clone, Parser)]
#[command(name = "call-simulator", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Topic the calls are published to.
    #[arg(long, env = "CALLS_TOPIC", default_value = topics::CALLS)]
    pub calls_topic: String,

    /// Mean arrival rate λ of the Poisson process, in calls per second.
    #[arg(long, env = "CALLS_PER_SECOND", default_value_t = 10.0, value_parser = positive_f64)]
    pub calls_per_second: f64,

    /// Mean call duration in seconds (durations are exponential, millisecond resolution).
    #[arg(long, env = "MEAN_CALL_DURATION_SECS", default_value_t = 120.0, value_parser = positive_f64)]
    pub mean_call_duration_secs: f64,

    /// Seed of the random stream; the same seed gives the same calls. Random when unset.
    #[arg(long, env = "SIM_SEED")]
    pub sim_seed: Option<u64>,

    /// Stop after this many calls: flush, then exit 0. Unlimited when unset.
    #[arg(long, env = "SIM_MAX_CALLS", value_parser = clap::value_parser!(u64).range(1..))]
    pub sim_max_calls: Option<u64>,

    /// `realtime` or `flood`.
    #[arg(long, env = "SIM_MODE", value_enum, default_value_t = SimMode::Realtime)]
    pub sim_mode: SimMode,
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive number, got `{s}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::try_parse_from(["call-simulator"]).unwrap();
        assert_eq!(c.calls_topic, "calls");
        assert!((c.calls_per_second - 10.0).abs() < f64::EPSILON);
        assert!((c.mean_call_duration_secs - 120.0).abs() < f64::EPSILON);
        assert_eq!(c.sim_mode, SimMode::Realtime);
    }

    #[test]
    fn a_bad_rate_is_rejected_with_the_variable_and_value() {
        let err = Config::try_parse_from(["call-simulator", "--calls-per-second=-3"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("-3") && err.contains("CALLS_PER_SECOND"),
            "{err}"
        );
    }
}
