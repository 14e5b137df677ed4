//! The service's own metrics, in the `host_metrics` namespace. The host values' series are in
//! the same namespace, each declared by its collector (`collect/*.rs`, the doc comment is the
//! help text): base units, ratios 0–1, counters for what the kernel counts, like
//! node_exporter. Every label is bounded: the host id (one per process), core, mount point,
//! filesystem type, block device and interface names (what the host has, after the filters).

use prometheus::{Histogram, IntCounter, IntGauge};

fleet::metrics! {
    /// The service's own metrics.
    pub struct Metrics in "host_metrics" {
        /// Samples taken.
        pub samples: IntCounter = "samples_total",
        /// Samples delivered to Kafka.
        pub published: IntCounter = "samples_published_total",
        /// Failed delivery attempts (the sample stays buffered and is retried).
        pub delivery_errors: IntCounter = "delivery_errors_total",
        /// Samples dropped, oldest first, because the buffer was full.
        pub dropped: IntCounter = "samples_dropped_total",
        /// Samples waiting for delivery.
        pub buffered: IntGauge = "buffered_samples",
        /// Time to read the host once.
        pub sample_duration: Histogram = "sample_duration_seconds"
            buckets &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    }
}
