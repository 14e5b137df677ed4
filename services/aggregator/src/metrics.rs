//! Every metric of the aggregator, declared once; the doc comment is the help text.
//! Labels come from closed sets: topic names (configuration), partition numbers, reasons,
//! table names. The sets are given to [`Metrics::new`] by the layers that own them, so this
//! module, at the bottom, imports none of them.

use prometheus::{
    Counter, Gauge, GaugeVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

use crate::decode::Invalid;

fleet::metrics! {
    /// Metrics in the `aggregator` namespace.
    pub struct Metrics in "aggregator" {
        /// Calls stored in PostgreSQL by this process.
        pub calls: IntCounter = "calls_total",
        /// Sum of the durations of the calls stored by this process.
        pub call_duration_seconds_total: Counter = "call_duration_seconds_total",
        /// Calls longer than LONG_CALL_THRESHOLD_SECS stored by this process.
        pub long_calls: IntCounter = "long_calls_total",
        /// Host samples stored in PostgreSQL by this process.
        pub host_samples: IntCounter = "host_samples_total",
        /// Host samples not stored again: the same host and time was already stored (a
        /// producer re-sent it after a delivery timeout).
        pub duplicate_host_samples: IntCounter = "duplicate_host_samples_total",
        /// Web check results stored in PostgreSQL by this process.
        pub probe_results: IntCounter = "probe_results_total",
        /// Durations of the calls stored by this process.
        pub call_duration: Histogram = "call_duration_seconds"
            buckets &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0],
        /// Kafka messages consumed, valid or not.
        pub events_consumed: IntCounterVec = "events_consumed_total" labels ["topic"],
        /// Messages rejected, by reason; each goes to the dead-letter topic.
        pub invalid_events: IntCounterVec = "invalid_events_total" labels ["topic", "reason"],
        /// Messages delivered to the dead-letter topic.
        pub dead_letters: IntCounterVec = "dead_letters_total" labels ["topic"],
        /// Messages between the offset stored in PostgreSQL and the partition's end.
        pub consumer_lag: IntGaugeVec = "consumer_lag" labels ["topic", "partition"],
        /// Duration of successful flush transactions.
        pub flush_duration: Histogram = "flush_duration_seconds"
            buckets &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
        /// Failed flush attempts, by kind (postgres: the transaction failed, dlq: a dead letter
        /// was not delivered, fenced: another instance moved the offsets).
        pub flush_errors: IntCounterVec = "flush_errors_total" labels ["kind"],
        /// Rows written to PostgreSQL, by table.
        pub rows_written: IntCounterVec = "rows_written_total" labels ["table"],
        /// Approximate memory held by data not yet flushed.
        pub pending_bytes: IntGauge = "pending_bytes",
        /// 1 while consumption is paused because unflushed data reached its memory budget.
        pub partitions_paused: IntGauge = "partitions_paused",
        /// Assigned partitions whose stored offset is not read, or not sought, yet (PostgreSQL
        /// did not answer, a flush did not commit, a seek failed): paused, retried with backoff.
        pub partitions_pending: IntGauge = "partitions_pending",
        /// Failed resumes of paused partitions (each is retried: a partition left paused would
        /// stop without a word).
        pub resume_errors: IntCounter = "partition_resume_errors_total",
        /// Partitions found stored for a topic since deleted and created again (another topic
        /// id): each was restarted from the new topic's start.
        pub topic_recreations: IntCounter = "topic_recreations_total",
        /// How far each stopped partition's offset lies outside its log: below the log start
        /// (messages deleted unread) or beyond its end (truncated); 0 once resumed. Such a
        /// partition is not read until an operator chooses where it resumes.
        pub offsets_out_of_range: IntGaugeVec = "offsets_out_of_range" labels ["topic", "partition"],
        /// Partition assignments and revocations.
        pub rebalances: IntCounter = "rebalances_total",
        /// Partitions currently assigned to this instance.
        pub assigned_partitions: IntGauge = "assigned_partitions",
        /// All-time calls in PostgreSQL (all instances), as of this instance's last flush.
        pub stored_calls: IntGauge = "stored_calls",
        /// All-time sum of call durations in PostgreSQL, as of this instance's last flush.
        pub stored_call_duration_seconds: Gauge = "stored_call_duration_seconds",
        /// All-time long calls in PostgreSQL, as of this instance's last flush.
        pub stored_long_calls: IntGauge = "stored_long_calls",
        /// Alerts received from Alertmanager's webhook and stored, by status (firing,
        /// resolved).
        pub alerts_received: IntCounterVec = "alerts_received_total" labels ["status"],
        /// Requests to the webhook refused, by reason (rejected: not a notification,
        /// unauthorized: missing or wrong token, oversize: body above the limit).
        pub alerts_refused: IntCounterVec = "alerts_refused_total" labels ["reason"],
        /// Partitions of each time-partitioned table, as of the last maintenance pass.
        pub table_partitions: IntGaugeVec = "table_partitions" labels ["table"],
        /// Bytes on disk of each time-partitioned table (every partition, indexes and TOAST
        /// included), as of the last maintenance pass.
        pub table_bytes: IntGaugeVec = "table_bytes" labels ["table"],
        /// Where each table's oldest partition starts: what retention keeps lies after it.
        pub table_oldest_partition: GaugeVec =
            "table_oldest_partition_timestamp_seconds" labels ["table"],
        /// Where each table's newest partition ends: rows up to this time land in partitions
        /// made ahead; later ones wait for the flush to make theirs.
        pub table_partitions_end: GaugeVec =
            "table_partitions_end_timestamp_seconds" labels ["table"],
        /// Partitions made, by maintenance ahead of time or by a flush that found one missing.
        pub partitions_created: IntCounter = "partitions_created_total",
        /// Partitions dropped by retention, by tier (raw, 1m, 1h).
        pub partitions_dropped: IntCounterVec = "partitions_dropped_total" labels ["tier"],
        /// Storage maintenance passes started (partitions made ahead, retention, the report).
        pub maintenance_runs: IntCounter = "maintenance_runs_total",
        /// Storage maintenance passes that failed (each is retried at the next).
        pub maintenance_failures: IntCounter = "maintenance_failures_total",
        /// When a storage maintenance pass last succeeded (0: none yet in this process).
        pub maintenance_last_success: Gauge = "maintenance_last_success_timestamp_seconds",
        /// Rows of the previous schema's tables moved into the partitioned ones (in-place
        /// upgrade).
        pub upgrade_rows_moved: IntCounter = "upgrade_rows_moved_total",
        /// Tables of the previous schema not yet moved into the partitioned ones.
        pub upgrade_tables_pending: IntGauge = "upgrade_tables_pending",
    }
}

/// The closed sets of label values, pre-registered so that rates start at zero instead of
/// appearing with the first event. Each comes from the module that owns it.
#[derive(Debug, Default)]
pub struct LabelSets<'a> {
    /// Consumed topic names (`topic`).
    pub topics: Vec<&'a str>,
    /// `flush_errors_total{kind}`.
    pub flush_errors: Vec<&'static str>,
    /// Every table a flush writes (`rows_written_total{table}`).
    pub tables: Vec<&'static str>,
    /// `alerts_received_total{status}`.
    pub alert_statuses: Vec<&'static str>,
    /// `alerts_refused_total{reason}`.
    pub alert_refusals: Vec<&'static str>,
    /// The retention tiers (`partitions_dropped_total{tier}`).
    pub tiers: Vec<&'static str>,
}

impl Metrics {
    /// Creates and registers every metric, and every label value of `sets` (with
    /// [`Invalid::ALL`] for the reasons).
    pub fn new(registry: &Registry, sets: &LabelSets<'_>) -> prometheus::Result<Self> {
        let m = Self::register(registry)?;
        for topic in &sets.topics {
            m.events_consumed.with_label_values(&[topic]);
            m.dead_letters.with_label_values(&[topic]);
            for reason in Invalid::ALL {
                m.invalid_events
                    .with_label_values(&[topic, reason.as_str()]);
            }
        }
        let labelled = [
            (&m.flush_errors, &sets.flush_errors),
            (&m.rows_written, &sets.tables),
            (&m.alerts_received, &sets.alert_statuses),
            (&m.alerts_refused, &sets.alert_refusals),
            (&m.partitions_dropped, &sets.tiers),
        ];
        for (metric, values) in labelled {
            for value in values {
                metric.with_label_values(&[value]);
            }
        }
        Ok(m)
    }
}
