//! Every metric of web-prober, in the `web_prober` namespace. Per-target series carry the
//! `target` label (the URL): targets are configuration, so the label is bounded, and a target
//! removed from the file loses its series.

use fleet::events::{Phases, ProbeOutcome, ProbeResult};
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};

const NS: &str = "web_prober";

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NS)
}

/// The service's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub checks: IntCounterVec,
    pub check_duration: Histogram,
    pub latency: HistogramVec,
    pub delivery_errors: IntCounter,
    pub published: IntCounter,
    pub dropped: IntCounter,
    pub targets: IntGauge,
    pub reloads: IntCounterVec,
    pub config_valid: IntGauge,
    pub in_flight: IntGauge,
    target_success: GaugeVec,
    target_last_success: GaugeVec,
    target_status: GaugeVec,
    target_phase: GaugeVec,
    target_cert_expiry: GaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let m = Self {
            checks: IntCounterVec::new(
                opts("checks_total", "Checks done, by result."),
                &["result"],
            )?,
            check_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "check_duration_seconds",
                    "Duration of every check, failed ones included.",
                )
                .namespace(NS)
                .buckets(buckets.clone()),
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "latency_seconds",
                    "Phase durations of checks that got a response, over all targets.",
                )
                .namespace(NS)
                .buckets(buckets),
                &["phase"],
            )?,
            delivery_errors: IntCounter::with_opts(opts(
                "delivery_errors_total",
                "Results Kafka did not accept.",
            ))?,
            published: IntCounter::with_opts(opts(
                "results_published_total",
                "Results delivered to Kafka.",
            ))?,
            dropped: IntCounter::with_opts(opts(
                "results_dropped_total",
                "Results dropped because too many were waiting for Kafka.",
            ))?,
            targets: IntGauge::with_opts(opts("targets", "Targets in the current configuration."))?,
            reloads: IntCounterVec::new(
                opts(
                    "config_reloads_total",
                    "Reloads of the targets file, by result.",
                ),
                &["result"],
            )?,
            config_valid: IntGauge::with_opts(opts(
                "config_last_reload_successful",
                "1 if the last load of the targets file succeeded.",
            ))?,
            in_flight: IntGauge::with_opts(opts("checks_in_flight", "Checks running now."))?,
            target_success: GaugeVec::new(
                opts("target_success", "1 if the target's last check was ok."),
                &["target"],
            )?,
            target_last_success: GaugeVec::new(
                opts(
                    "target_last_success_timestamp_seconds",
                    "When the target's last ok check started.",
                ),
                &["target"],
            )?,
            target_status: GaugeVec::new(
                opts(
                    "target_status_code",
                    "HTTP status of the target's last response (0: none).",
                ),
                &["target"],
            )?,
            target_phase: GaugeVec::new(
                opts(
                    "target_phase_seconds",
                    "Phase durations of the target's last check (absent phases are 0).",
                ),
                &["target", "phase"],
            )?,
            target_cert_expiry: GaugeVec::new(
                opts(
                    "target_cert_expiry_timestamp_seconds",
                    "When the target's TLS certificate expires.",
                ),
                &["target"],
            )?,
        };
        registry.register(Box::new(m.checks.clone()))?;
        registry.register(Box::new(m.check_duration.clone()))?;
        registry.register(Box::new(m.latency.clone()))?;
        registry.register(Box::new(m.delivery_errors.clone()))?;
        registry.register(Box::new(m.published.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.targets.clone()))?;
        registry.register(Box::new(m.reloads.clone()))?;
        registry.register(Box::new(m.config_valid.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.target_success.clone()))?;
        registry.register(Box::new(m.target_last_success.clone()))?;
        registry.register(Box::new(m.target_status.clone()))?;
        registry.register(Box::new(m.target_phase.clone()))?;
        registry.register(Box::new(m.target_cert_expiry.clone()))?;
        for outcome in ProbeOutcome::ALL {
            m.checks.with_label_values(&[outcome.as_str()]);
        }
        for result in ["success", "failure"] {
            m.reloads.with_label_values(&[result]);
        }
        Ok(m)
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
