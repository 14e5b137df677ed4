//! Ingest, on the consumer thread: a message from either queue → its source's decoder → the
//! batch, counted, and its trace continued. Messages of a partition whose stored offset is not
//! known yet (pending, see [`super::offsets`]) are dropped: the seek to that offset re-reads
//! them.

use rdkafka::message::{BorrowedMessage, Headers, Message as _};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::LoopSettings;
use super::context::AggregatorContext;
use super::fetch::Fetched;
use crate::batch::Batch;
use crate::metrics::Metrics;
use crate::part::{Ingest, Message};
use crate::sources::{Source, Tp};
use crate::topics::Topics;

/// Most span links attached to one aggregate span.
const MAX_TRACE_LINKS: usize = 16;
/// The trace context header, as librdkafka looks it up.
const TRACEPARENT: &std::ffi::CStr = c"traceparent";

/// The batch being built and what building it takes: the loop's state apart from its consumer
/// (which a polled message borrows).
pub(super) struct Ingestor {
    pub batch: Batch,
    /// The batch's `aggregate` span and how many links it carries.
    pub aggregate_span: Option<(tracing::Span, usize)>,
    settings: LoopSettings,
    metrics: Metrics,
    topics: Topics,
    consumed: [prometheus::IntCounter; Source::ALL.len()],
    /// The wall clock when the current read started, milliseconds since the epoch.
    now_ms: i64,
    /// Partitions whose fetch offset (the second) librdkafka found outside the log, for the
    /// loop to handle (see [`super::pending`]).
    pub out_of_range: Vec<(Tp, i64)>,
}

impl Ingestor {
    pub fn new(settings: LoopSettings, metrics: Metrics, topics: Topics) -> Self {
        let consumed =
            Source::ALL.map(|s| metrics.events_consumed.with_label_values(&[topics.name(s)]));
        Self {
            batch: Batch::default(),
            aggregate_span: None,
            settings,
            metrics,
            topics,
            consumed,
            now_ms: 0,
            out_of_range: Vec::new(),
        }
    }

    /// A read starts: events are checked against this time.
    pub fn start_read(&mut self) {
        self.now_ms = chrono::Utc::now().timestamp_millis();
    }

    /// Drops the batch (a rebalance, or a flush that did not commit): it is re-read.
    pub fn drop_batch(&mut self) {
        self.batch = Batch::default();
        self.aggregate_span = None;
    }

    /// Counts, decodes and aggregates one message; continues its trace when tracing is on.
    fn take(
        &mut self,
        context: &AggregatorContext,
        source: Source,
        message: &Message<'_>,
        traceparent: Option<&[u8]>,
    ) {
        let tp: Tp = (source, message.partition);
        if context.positions().is_pending(tp) {
            return;
        }
        self.consumed[source as usize].inc();
        let cx = Ingest {
            now_ms: self.now_ms,
            ..self.settings.ingest
        };
        let fence = || context.positions().read(|p| p.fence(tp));
        if let Err(reason) = self.batch.read(source, message, &cx, fence) {
            let topic = self.topics.name(source);
            self.metrics
                .invalid_events
                .with_label_values(&[topic, reason.as_str()])
                .inc();
            tracing::debug!(
                partition = message.partition,
                offset = message.offset,
                reason = reason.as_str(),
                "invalid message"
            );
        }
        if let Some(value) = traceparent {
            trace_message(&mut self.aggregate_span, value);
        }
    }

    /// Takes a message polled from the consumer queue.
    pub fn take_polled(&mut self, context: &AggregatorContext, polled: &BorrowedMessage<'_>) {
        let Some(source) = self.topics.source_of(polled.topic()) else {
            return; // not subscribed; cannot happen
        };
        let traceparent = if self.settings.trace {
            polled
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == fleet::telemetry::TRACEPARENT))
                .and_then(|h| h.value)
        } else {
            None
        };
        let message = Message {
            topic_id: 0, // the batch sets it
            partition: polled.partition(),
            offset: polled.offset(),
            key: polled.key(),
            payload: polled.payload(),
        };
        self.take(context, source, &message, traceparent);
    }

    /// Takes a batch from the fetch queue, in order.
    pub fn take_fetched(&mut self, context: &AggregatorContext, fetched: &Fetched) {
        // Topic handle → source, for this batch only (a handle is only known to stay the same
        // topic while a message of it is alive).
        let mut sources: Vec<(*const std::ffi::c_void, Option<Source>)> = Vec::with_capacity(3);
        for record in fetched.iter() {
            if let Some(err) = record.error() {
                let source = record.topic().and_then(|t| self.topics.source_of(t));
                match source {
                    Some(source) if record.is_offset_out_of_range() => {
                        let tp = (source, record.partition());
                        self.out_of_range.push((tp, record.offset()));
                    }
                    _ => tracing::warn!(%err, partition = record.partition(), "consume error"),
                }
                continue;
            }
            let handle = record.topic_handle();
            let source = match sources.iter().find(|(h, _)| *h == handle) {
                Some((_, source)) => *source,
                None => {
                    let source = record.topic().and_then(|t| self.topics.source_of(t));
                    sources.push((handle, source));
                    source
                }
            };
            let Some(source) = source else {
                continue; // not subscribed; cannot happen
            };
            let traceparent = if self.settings.trace {
                record.header(TRACEPARENT)
            } else {
                None
            };
            let message = Message {
                topic_id: 0, // the batch sets it
                partition: record.partition(),
                offset: record.offset(),
                key: record.key(),
                payload: record.payload(),
            };
            self.take(context, source, &message, traceparent);
        }
    }
}

/// Continues the producer's trace: the first traced message of a batch parents the batch's
/// `aggregate` span, later ones are linked to it.
fn trace_message(aggregate: &mut Option<(tracing::Span, usize)>, traceparent: &[u8]) {
    use opentelemetry::trace::TraceContextExt as _;
    let Ok(value) = std::str::from_utf8(traceparent) else {
        return;
    };
    let Some(cx) = fleet::telemetry::context_from_traceparent(value) else {
        return;
    };
    match aggregate {
        None => {
            let span = tracing::info_span!("aggregate");
            let _ = span.set_parent(cx);
            *aggregate = Some((span, 0));
        }
        Some((span, links)) if *links < MAX_TRACE_LINKS => {
            span.add_link(cx.span().span_context().clone());
            *links += 1;
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_header_name_is_the_producers() {
        assert_eq!(TRACEPARENT.to_str(), Ok(fleet::telemetry::TRACEPARENT));
    }
}
