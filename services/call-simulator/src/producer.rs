//! The Kafka edge: a threaded, idempotent producer whose delivery reports feed the metrics and
//! the delivery health check. Each call is one JSON message keyed by the caller's number.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fleet::kafka::BrokerWatch;
use fleet::kafka::PolledProducer;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;

use crate::generator::SimCall;
use crate::metrics::Metrics;
use crate::pacing::Backpressure;

/// Delivery reports land here, on librdkafka's polling thread.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    watch: BrokerWatch,
    metrics: Metrics,
    /// Successful deliveries so far; the health monitor watches it move.
    pub delivered: Arc<AtomicU64>,
}

impl ClientContext for DeliveryContext {
    fn stats(&self, statistics: Statistics) {
        self.watch.on_stats(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.on_error(&error, reason);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.watch.on_log(level, fac, log_message);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.metrics.produced.inc();
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((err, _)) => {
                self.metrics.delivery_errors.inc();
                tracing::warn!(%err, "call not delivered");
            }
        }
    }
}

/// The producer and what it needs per message.
pub struct CallProducer {
    producer: PolledProducer<DeliveryContext>,
    topic: String,
    metrics: Metrics,
    propagate_trace: bool,
    buf: Vec<u8>,
}

impl std::fmt::Debug for CallProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallProducer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl CallProducer {
    /// Creates the producer: idempotent (broker-side de-duplication of librdkafka's retries,
    /// and per-key ordering), lz4-compressed, with a short linger to form batches.
    pub fn new(
        base: &ClientConfig,
        topic: String,
        watch: BrokerWatch,
        metrics: Metrics,
        propagate_trace: bool,
    ) -> Result<(Self, Arc<AtomicU64>), KafkaError> {
        let config = fleet::kafka::with_defaults(
            base,
            &[
                ("enable.idempotence", "true"),
                ("compression.type", "lz4"),
                ("linger.ms", "5"),
            ],
        );
        let delivered = Arc::new(AtomicU64::new(0));
        let context = DeliveryContext {
            watch,
            metrics: metrics.clone(),
            delivered: delivered.clone(),
        };
        let producer = PolledProducer::new(&config, context)?;
        Ok((
            Self {
                producer,
                topic,
                metrics,
                propagate_trace,
                buf: Vec::with_capacity(256),
            },
            delivered,
        ))
    }

    /// Enqueues one call; `Backpressure` when the local queue is full.
    pub fn send(&mut self, call: &SimCall) -> Result<(), Backpressure> {
        let event = &call.event;
        self.buf.clear();
        if let Err(err) = serde_json::to_writer(&mut self.buf, event) {
            // Cannot happen for this struct; counted rather than panicking.
            tracing::error!(%err, "cannot serialize call");
            self.metrics.delivery_errors.inc();
            return Ok(());
        }
        let mut record = BaseRecord::to(&self.topic)
            .key(event.caller.as_bytes())
            .payload(&self.buf);
        if self.propagate_trace {
            let span = tracing::info_span!("produce_call", call_id = %event.call_id);
            if let Some(traceparent) = fleet::telemetry::traceparent(&span) {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: fleet::telemetry::TRACEPARENT,
                    value: Some(traceparent.as_bytes()),
                }));
            }
        }
        match self.producer.send(record) {
            Ok(()) => {
                self.metrics.durations.observe(event.duration_secs);
                Ok(())
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                self.metrics.queue_full.inc();
                Err(Backpressure)
            }
            Err((err, _)) => {
                self.metrics.delivery_errors.inc();
                tracing::warn!(%err, "call not enqueued");
                Ok(())
            }
        }
    }

    /// Messages not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to `timeout` for every queued message to be delivered.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
