//! Every metric of the call simulator, declared once; the doc comment is the help text.

use prometheus::{Histogram, IntCounter, IntGauge};

fleet::metrics! {
    /// Metrics in the `call_simulator` namespace.
    pub struct Metrics in "call_simulator" {
        /// Calls acknowledged by the Kafka broker.
        pub produced: IntCounter = "calls_produced_total",
        /// Calls that could not be delivered to Kafka.
        pub delivery_errors: IntCounter = "delivery_errors_total",
        /// Sends that found the producer queue full and waited (backpressure).
        pub queue_full: IntCounter = "queue_full_total",
        /// Durations of the generated calls.
        pub durations: Histogram = "call_duration_seconds"
            buckets &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0],
        /// Messages in the producer queue or in flight to the broker.
        pub queue_depth: IntGauge = "queue_depth",
    }
}
