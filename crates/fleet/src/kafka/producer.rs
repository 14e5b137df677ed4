//! Producers whose delivery reports are served by a thread of our own.
//!
//! rdkafka's `ThreadedProducer` (and `FutureProducer`, built on it) polls every 100 ms, and
//! rdkafka 0.39 truncates the remaining time of a poll to whole milliseconds: the last
//! fraction of each poll becomes a series of zero-timeout polls, a busy wait that cost an idle
//! producer about 1 % of a core (measured with `perf`: `clock_gettime` under
//! `Deadline::elapsed`). [`PolledProducer`] polls with a one-second timeout instead: a delivery
//! report is still served the moment it arrives, and the wait is spent asleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use tokio::sync::oneshot;

use super::BrokerWatch;

/// How long one poll of the delivery-report thread waits for events.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// A `BaseProducer` with a thread serving its delivery reports. Dereferences to the producer;
/// the thread stops (within a second) when this is dropped.
pub struct PolledProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
}

impl<C: ProducerContext + 'static> std::fmt::Debug for PolledProducer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolledProducer").finish_non_exhaustive()
    }
}

impl<C: ProducerContext + 'static> PolledProducer<C> {
    /// Creates the producer and starts its delivery-report thread.
    pub fn new(config: &ClientConfig, context: C) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<C>> = Arc::new(config.create_with_context(context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kafka-deliveries".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.poll(POLL_TIMEOUT);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        Ok(Self { producer, stop })
    }
}

impl<C: ProducerContext + 'static> std::ops::Deref for PolledProducer<C> {
    type Target = BaseProducer<C>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for PolledProducer<C> {
    fn drop(&mut self) {
        // The thread notices within a second and drops its handle; not joined, so that
        // dropping never blocks an async task.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The context of an [`AsyncProducer`]: feeds the [`BrokerWatch`] and completes each send.
#[derive(Debug, Clone)]
pub struct AckContext {
    watch: BrokerWatch,
}

impl ClientContext for AckContext {
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

impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<oneshot::Sender<KafkaResult<()>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        let _ = ack.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// A producer whose `send` resolves when Kafka acknowledges the message (or gives up on it).
#[derive(Clone)]
pub struct AsyncProducer {
    inner: Arc<PolledProducer<AckContext>>,
}

impl std::fmt::Debug for AsyncProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncProducer").finish_non_exhaustive()
    }
}

/// One message for [`AsyncProducer::send`].
#[derive(Debug, Default)]
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Option<OwnedHeaders>,
}

impl AsyncProducer {
    /// Creates the producer; its connectivity feeds `watch`.
    pub fn new(config: &ClientConfig, watch: BrokerWatch) -> KafkaResult<Self> {
        Ok(Self {
            inner: Arc::new(PolledProducer::new(config, AckContext { watch })?),
        })
    }

    /// Enqueues `message` (waiting while librdkafka's queue is full) and resolves with its
    /// delivery result.
    pub async fn send(&self, message: Outgoing<'_>) -> KafkaResult<()> {
        let (tx, rx) = oneshot::channel();
        let mut ack = Box::new(tx);
        let mut headers = message.headers;
        loop {
            let mut record: BaseRecord<'_, [u8], [u8], _> =
                BaseRecord::with_opaque_to(message.topic, ack);
            if let Some(k) = message.key {
                record = record.key(k);
            }
            if let Some(p) = message.payload {
                record = record.payload(p);
            }
            if let Some(h) = headers.take() {
                record = record.headers(h);
            }
            match self.inner.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    ack = record.delivery_opaque;
                    headers = record.headers;
                }
                Err((err, _)) => return Err(err),
            }
            // The queue is full: give the delivery thread time to drain it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Waits up to `timeout` for every queued message to be delivered.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.inner.flush(timeout)
    }

    /// Messages not yet acknowledged.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }
}
