//! Every metric of the call simulator, declared in one place; the help text is the doc.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};

/// Metrics in the `call_simulator` namespace.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Calls acknowledged by the broker.
    pub produced: IntCounter,
    /// Calls the producer gave up on (after librdkafka's own retries).
    pub delivery_errors: IntCounter,
    /// Sends that found the producer queue full and had to wait.
    pub queue_full: IntCounter,
    /// Durations generated.
    pub durations: Histogram,
    /// Messages waiting in the producer queue or in flight to the broker.
    pub queue_depth: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let ns = |name: &str, help: &str| Opts::new(name, help).namespace("call_simulator");
        let metrics = Self {
            produced: IntCounter::with_opts(ns(
                "calls_produced_total",
                "Calls acknowledged by the Kafka broker.",
            ))?,
            delivery_errors: IntCounter::with_opts(ns(
                "delivery_errors_total",
                "Calls that could not be delivered to Kafka.",
            ))?,
            queue_full: IntCounter::with_opts(ns(
                "queue_full_total",
                "Sends that found the producer queue full and waited (backpressure).",
            ))?,
            durations: Histogram::with_opts(
                HistogramOpts::new("call_duration_seconds", "Durations of the generated calls.")
                    .namespace("call_simulator")
                    .buckets(vec![
                        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                    ]),
            )?,
            queue_depth: IntGauge::with_opts(ns(
                "queue_depth",
                "Messages in the producer queue or in flight to the broker.",
            ))?,
        };
        registry.register(Box::new(metrics.produced.clone()))?;
        registry.register(Box::new(metrics.delivery_errors.clone()))?;
        registry.register(Box::new(metrics.queue_full.clone()))?;
        registry.register(Box::new(metrics.durations.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        Ok(metrics)
    }
}
