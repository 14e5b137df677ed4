//! Every metric of the aggregator, declared in one place; the help text is the doc.
//! Labels come from closed sets: topic names (configuration), partition numbers, reasons,
//! table names.

use prometheus::{
    Counter, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

use crate::decode::Invalid;
use crate::topics::Topics;

const NS: &str = "aggregator";

/// Metrics in the `aggregator` namespace.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Calls durably stored by this process (counted when their flush commits).
    pub calls: IntCounter,
    /// Sum of their durations.
    pub call_duration_seconds_total: Counter,
    /// Long calls durably stored by this process.
    pub long_calls: IntCounter,
    /// Host samples durably stored by this process.
    pub host_samples: IntCounter,
    pub duplicate_host_samples: IntCounter,
    /// Web check results durably stored by this process.
    pub probe_results: IntCounter,
    /// Durations of decoded calls.
    pub call_duration: Histogram,
    pub events_consumed: IntCounterVec,
    pub invalid_events: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub consumer_lag: IntGaugeVec,
    pub flush_duration: Histogram,
    pub flush_errors: IntCounterVec,
    pub rows_written: IntCounterVec,
    pub pending_bytes: IntGauge,
    pub partitions_paused: IntGauge,
    pub partitions_pending: IntGauge,
    pub rebalances: IntCounter,
    pub assigned_partitions: IntGauge,
    pub stored_calls: IntGauge,
    pub stored_call_duration_seconds: Gauge,
    pub stored_long_calls: IntGauge,
    /// Alerts received on `POST /alerts`, by status.
    pub alerts_received: IntCounterVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NS)
}

impl Metrics {
    /// Creates and registers every metric; pre-creates the label values of `topics` so that
    /// rates start at zero instead of appearing with the first event.
    pub fn register(registry: &Registry, topics: &Topics) -> prometheus::Result<Self> {
        let m = Self {
            calls: IntCounter::with_opts(opts(
                "calls_total",
                "Calls stored in PostgreSQL by this process.",
            ))?,
            call_duration_seconds_total: Counter::with_opts(opts(
                "call_duration_seconds_total",
                "Sum of the durations of the calls stored by this process.",
            ))?,
            long_calls: IntCounter::with_opts(opts(
                "long_calls_total",
                "Calls longer than LONG_CALL_THRESHOLD_SECS stored by this process.",
            ))?,
            host_samples: IntCounter::with_opts(opts(
                "host_samples_total",
                "Host samples stored in PostgreSQL by this process.",
            ))?,
            duplicate_host_samples: IntCounter::with_opts(opts(
                "duplicate_host_samples_total",
                "Host samples not stored again: the same host and time was already stored \
                 (a producer re-sent it after a delivery timeout).",
            ))?,
            probe_results: IntCounter::with_opts(opts(
                "probe_results_total",
                "Web check results stored in PostgreSQL by this process.",
            ))?,
            call_duration: Histogram::with_opts(
                HistogramOpts::new("call_duration_seconds", "Durations of the decoded calls.")
                    .namespace(NS)
                    .buckets(vec![
                        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                    ]),
            )?,
            events_consumed: IntCounterVec::new(
                opts(
                    "events_consumed_total",
                    "Kafka messages consumed, valid or not.",
                ),
                &["topic"],
            )?,
            invalid_events: IntCounterVec::new(
                opts(
                    "invalid_events_total",
                    "Messages rejected, by reason; each goes to the dead-letter topic.",
                ),
                &["topic", "reason"],
            )?,
            dead_letters: IntCounterVec::new(
                opts(
                    "dead_letters_total",
                    "Messages delivered to the dead-letter topic.",
                ),
                &["topic"],
            )?,
            consumer_lag: IntGaugeVec::new(
                opts(
                    "consumer_lag",
                    "Messages between the offset stored in PostgreSQL and the partition's end.",
                ),
                &["topic", "partition"],
            )?,
            flush_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "flush_duration_seconds",
                    "Duration of successful flush transactions.",
                )
                .namespace(NS)
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            flush_errors: IntCounterVec::new(
                opts(
                    "flush_errors_total",
                    "Failed flush attempts, by kind (postgres, dlq, fenced).",
                ),
                &["kind"],
            )?,
            rows_written: IntCounterVec::new(
                opts(
                    "rows_written_total",
                    "Rows written to PostgreSQL, by table.",
                ),
                &["table"],
            )?,
            pending_bytes: IntGauge::with_opts(opts(
                "pending_bytes",
                "Approximate memory held by data not yet flushed.",
            ))?,
            partitions_paused: IntGauge::with_opts(opts(
                "partitions_paused",
                "1 while consumption is paused because unflushed data reached its memory budget.",
            ))?,
            partitions_pending: IntGauge::with_opts(opts(
                "partitions_pending",
                "Assigned partitions whose stored offset PostgreSQL has not answered yet: paused, read again with backoff.",
            ))?,
            rebalances: IntCounter::with_opts(opts(
                "rebalances_total",
                "Partition assignments and revocations.",
            ))?,
            assigned_partitions: IntGauge::with_opts(opts(
                "assigned_partitions",
                "Partitions currently assigned to this instance.",
            ))?,
            stored_calls: IntGauge::with_opts(opts(
                "stored_calls",
                "All-time calls in PostgreSQL (all instances), as of this instance's last flush.",
            ))?,
            stored_call_duration_seconds: Gauge::with_opts(opts(
                "stored_call_duration_seconds",
                "All-time sum of call durations in PostgreSQL, as of this instance's last flush.",
            ))?,
            stored_long_calls: IntGauge::with_opts(opts(
                "stored_long_calls",
                "All-time long calls in PostgreSQL, as of this instance's last flush.",
            ))?,
            alerts_received: IntCounterVec::new(
                opts(
                    "alerts_received_total",
                    "Alerts received from Alertmanager's webhook, by status (firing, resolved); refused requests by why (rejected: not a notification, unauthorized: missing or wrong token, oversize: body above the limit).",
                ),
                &["status"],
            )?,
        };
        registry.register(Box::new(m.calls.clone()))?;
        registry.register(Box::new(m.call_duration_seconds_total.clone()))?;
        registry.register(Box::new(m.long_calls.clone()))?;
        registry.register(Box::new(m.host_samples.clone()))?;
        registry.register(Box::new(m.duplicate_host_samples.clone()))?;
        registry.register(Box::new(m.probe_results.clone()))?;
        registry.register(Box::new(m.call_duration.clone()))?;
        registry.register(Box::new(m.events_consumed.clone()))?;
        registry.register(Box::new(m.invalid_events.clone()))?;
        registry.register(Box::new(m.dead_letters.clone()))?;
        registry.register(Box::new(m.consumer_lag.clone()))?;
        registry.register(Box::new(m.flush_duration.clone()))?;
        registry.register(Box::new(m.flush_errors.clone()))?;
        registry.register(Box::new(m.rows_written.clone()))?;
        registry.register(Box::new(m.pending_bytes.clone()))?;
        registry.register(Box::new(m.partitions_paused.clone()))?;
        registry.register(Box::new(m.partitions_pending.clone()))?;
        registry.register(Box::new(m.rebalances.clone()))?;
        registry.register(Box::new(m.assigned_partitions.clone()))?;
        registry.register(Box::new(m.stored_calls.clone()))?;
        registry.register(Box::new(m.stored_call_duration_seconds.clone()))?;
        registry.register(Box::new(m.stored_long_calls.clone()))?;
        registry.register(Box::new(m.alerts_received.clone()))?;
        for topic in topics.names() {
            m.events_consumed.with_label_values(&[topic]);
            m.dead_letters.with_label_values(&[topic]);
            for reason in Invalid::ALL {
                m.invalid_events
                    .with_label_values(&[topic, reason.as_str()]);
            }
        }
        for kind in ["postgres", "dlq", "fenced"] {
            m.flush_errors.with_label_values(&[kind]);
        }
        let parts = crate::sources::Source::ALL.map(crate::sources::Source::part);
        let tables = parts.iter().flat_map(|p| p.tables().iter().copied());
        for table in std::iter::once(crate::store::Stored::OFFSETS_TABLE).chain(tables) {
            m.rows_written.with_label_values(&[table]);
        }
        for status in crate::alerts::STATUSES {
            m.alerts_received.with_label_values(&[status]);
        }
        Ok(m)
    }
}
