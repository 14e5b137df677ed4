//! Settings of web-prober (environment variables with matching flags).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fleet::config::CommonArgs;
use fleet::events::topics;

/// Checks websites and publishes every result to Kafka.
#[derive(Debug, Clone, Parser)]
#[command(name = "web-prober", version)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Topic the results are published to.
    #[arg(long, env = "PROBES_TOPIC", default_value = topics::WEB_PROBES)]
    pub probes_topic: String,

    /// The targets: one URL per line (optionally followed by a regex), or YAML. Reloaded when
    /// it changes and on SIGHUP.
    #[arg(long, env = "PROBE_TARGETS_FILE", default_value = "targets.txt")]
    pub probe_targets_file: PathBuf,

    /// Seconds between checks of a target that does not set its own.
    #[arg(long, env = "PROBE_INTERVAL_SECS", default_value_t = 60.0, value_parser = fleet::config::seconds)]
    pub probe_interval_secs: f64,

    /// Seconds a check may take (redirects included) before it is a `timeout`.
    #[arg(long, env = "PROBE_TIMEOUT_SECS", default_value_t = 15.0, value_parser = fleet::config::seconds)]
    pub probe_timeout_secs: f64,

    /// Regex the body must match, for targets without their own; empty: no content check.
    #[arg(long, env = "PROBE_REGEX", default_value = "", value_parser = regex_or_empty)]
    pub probe_regex: String,

    /// Checks running at once, over all targets.
    #[arg(long, env = "PROBE_CONCURRENCY", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub probe_concurrency: u32,

    /// Bodies larger than this are a `body_error`.
    #[arg(long, env = "PROBE_MAX_BODY_BYTES", default_value_t = 10 << 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_max_body_bytes: u64,

    /// Redirects followed before the redirect itself is the answer.
    #[arg(long, env = "PROBE_MAX_REDIRECTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub probe_max_redirects: u32,

    /// A PEM file of extra CA certificates to trust (besides the system's).
    #[arg(long, env = "PROBE_CA_FILE")]
    pub probe_ca_file: Option<PathBuf>,

    /// Seconds between looks at the targets file for changes.
    #[arg(long, env = "PROBE_RELOAD_SECS", default_value_t = 2.0, value_parser = fleet::config::seconds)]
    pub probe_reload_secs: f64,
}

impl Config {
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.probe_interval_secs)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.probe_timeout_secs)
    }

    pub fn reload_every(&self) -> Duration {
        Duration::from_secs_f64(self.probe_reload_secs)
    }
}

fn regex_or_empty(s: &str) -> Result<String, String> {
    if !s.is_empty() {
        regex::Regex::new(s).map_err(|e| format!("invalid regex `{s}`: {e}"))?;
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = Config::try_parse_from(["web-prober"]).unwrap();
        assert_eq!(c.probes_topic, "web-probes");
        assert_eq!(c.interval(), Duration::from_secs(60));
        assert_eq!(c.timeout(), Duration::from_secs(15));
        assert_eq!(c.probe_regex, "");
        assert_eq!(c.probe_concurrency, 100);
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        for (flag, value, var) in [
            ("--probe-interval-secs", "-1", "PROBE_INTERVAL_SECS"),
            ("--probe-regex", "(", "PROBE_REGEX"),
            ("--probe-concurrency", "0", "PROBE_CONCURRENCY"),
        ] {
            let err = Config::try_parse_from(["web-prober", &format!("{flag}={value}")])
                .unwrap_err()
                .to_string();
            let first = err.lines().next().unwrap();
            assert!(first.contains(var) && first.contains(value), "{first}");
        }
    }
}
