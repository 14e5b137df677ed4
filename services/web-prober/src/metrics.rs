//! Every metric of web-prober, in the `web_prober` namespace. Per-target series carry the
//! `target` label (the URL): targets are configuration, so the label is bounded, and a target
//! removed from the file loses its series.

use fleet::events::{Phases, ProbeOutcome, ProbeResult};
use prometheus::{
    GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry,
};

/// Check and phase durations, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fleet::metrics! {
    /// The service's metrics.
    pub struct Metrics in "web_prober" {
        /// Checks done, by result.
        pub checks: IntCounterVec = "checks_total" labels ["result"],
        /// Duration of every check, failed ones included.
        pub check_duration: Histogram = "check_duration_seconds" buckets BUCKETS,
        /// Phase durations of checks that got a response, over all targets.
        pub latency: HistogramVec = "latency_seconds" labels ["phase"] buckets BUCKETS,
        /// Results Kafka did not accept.
        pub delivery_errors: IntCounter = "delivery_errors_total",
        /// Results delivered to Kafka.
        pub published: IntCounter = "results_published_total",
        /// Results dropped because too many were waiting for Kafka.
        pub dropped: IntCounter = "results_dropped_total",
        /// Targets in the current configuration.
        pub targets: IntGauge = "targets",
        /// Reloads of the targets file, by result.
        pub reloads: IntCounterVec = "config_reloads_total" labels ["result"],
        /// 1 if the last load of the targets file succeeded.
        pub config_valid: IntGauge = "config_last_reload_successful",
        /// Checks running now.
        pub in_flight: IntGauge = "checks_in_flight",
        /// 1 if the target's last check was ok.
        target_success: GaugeVec = "target_success" labels ["target"],
        /// When the target's last ok check started.
        target_last_success: GaugeVec = "target_last_success_timestamp_seconds" labels ["target"],
        /// HTTP status of the target's last response (0: none).
        target_status: GaugeVec = "target_status_code" labels ["target"],
        /// Phase durations of the target's last check (absent phases are 0).
        target_phase: GaugeVec = "target_phase_seconds" labels ["target", "phase"],
        /// When the target's TLS certificate expires.
        target_cert_expiry: GaugeVec = "target_cert_expiry_timestamp_seconds" labels ["target"],
    }
}

/// How a load of the targets file ended: `config_reloads_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The file was valid: its targets run now.
    Success,
    /// The file was rejected: the previous targets keep running.
    Failure,
}

impl Loaded {
    /// Every result, for pre-registering the label values.
    pub const ALL: [Loaded; 2] = [Self::Success, Self::Failure];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

impl Metrics {
    /// Creates and registers every metric, the closed label sets at zero.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::register(registry)?;
        for outcome in ProbeOutcome::ALL {
            m.checks.with_label_values(&[outcome.as_str()]);
        }
        for result in Loaded::ALL {
            m.reloads.with_label_values(&[result.as_str()]);
        }
        Ok(m)
    }

    /// Counts a load of the targets file, and shows whether the file in force is the last one.
    pub fn reloaded(&self, result: Loaded) {
        self.reloads.with_label_values(&[result.as_str()]).inc();
        self.config_valid.set(i64::from(result == Loaded::Success));
    }

    /// Records one result.
    pub fn observe(&self, target: &str, r: &ProbeResult) {
        self.checks.with_label_values(&[r.result.as_str()]).inc();
        self.check_duration.observe(r.phases.total_seconds);
        let ok = r.result == ProbeOutcome::Ok;
        self.target_success
            .with_label_values(&[target])
            .set(f64::from(u8::from(ok)));
        if ok {
            let started = r.time.timestamp_millis() as f64 / 1000.0;
            self.target_last_success
                .with_label_values(&[target])
                .set(started);
        }
        self.target_status
            .with_label_values(&[target])
            .set(f64::from(r.status.unwrap_or(0)));
        for (name, value) in Phases::NAMES.iter().zip(r.phases.values()) {
            self.target_phase
                .with_label_values(&[target, name])
                .set(value.unwrap_or(0.0));
            if r.status.is_some()
                && let Some(v) = value
            {
                self.latency.with_label_values(&[name]).observe(v);
            }
        }
        match &r.tls {
            Some(tls) => self
                .target_cert_expiry
                .with_label_values(&[target])
                .set(tls.cert_not_after.timestamp() as f64),
            None if r.status.is_some() => {
                // Answered without TLS (http, or redirected to it): no certificate to report.
                let _ = self.target_cert_expiry.remove_label_values(&[target]);
            }
            None => {} // a failed check keeps the last known expiry
        }
    }

    /// Drops every series of a target that left the configuration.
    pub fn forget(&self, target: &str) {
        let _ = self.target_success.remove_label_values(&[target]);
        let _ = self.target_last_success.remove_label_values(&[target]);
        let _ = self.target_status.remove_label_values(&[target]);
        let _ = self.target_cert_expiry.remove_label_values(&[target]);
        for phase in Phases::NAMES {
            let _ = self.target_phase.remove_label_values(&[target, phase]);
        }
    }
}
