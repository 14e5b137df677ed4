//! Trace continuation: the producer's W3C `traceparent` header parents the aggregator's
//! `aggregate` span, whose child is the `flush` span, so one trace spans produce → aggregate →
//! flush. Spans go to an in-memory OpenTelemetry exporter behind the real
//! `tracing-opentelemetry` layer, as the OTLP exporter would receive them.

use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::helpers::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCE_SPAN: &str = "00f067aa0ba902b7";
const OTHER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const OTHER_SPAN: &str = "b7ad6b7169203331";

fn span<'a>(spans: &'a [SpanData], name: &str) -> Option<&'a SpanData> {
    spans.iter().find(|s| s.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producers_trace_continues_through_aggregate_and_flush() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // nextest runs every test in its own process: this subscriber is this test's alone.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let Spawned(names, bootstrap, db, app) = spawn_app().traced().await;

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let traced = [(TRACE, PRODUCE_SPAN), (OTHER_TRACE, OTHER_SPAN)];
    for (trace, span) in traced {
        let payload = format!(
            r#"{{"called_phone_number":"00412222222","start_call_epoch_time":{now},"call_duration":95}}"#
        );
        let traceparent = format!("00-{trace}-{span}-01");
        let headers = OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(&traceparent),
        });
        producer
            .send(
                BaseRecord::to(&names.calls)
                    .key("00411111111")
                    .payload(&payload)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    db.wait_for_offsets(&names.group, 2, Duration::from_secs(30))
        .await;

    // The flush span ends when its transaction has committed and been settled.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = exporter.get_finished_spans().unwrap();
        if span(&spans, "flush").is_some() {
            break spans;
        }
        assert!(Instant::now() < deadline, "no flush span exported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let trace = TraceId::from_hex(TRACE).unwrap();
    let aggregate = span(&spans, "aggregate").expect("aggregate span");
    assert_eq!(aggregate.span_context.trace_id(), trace);
    assert_eq!(
        aggregate.parent_span_id,
        SpanId::from_hex(PRODUCE_SPAN).unwrap()
    );
    assert!(aggregate.parent_span_is_remote);
    // Later messages of the batch are linked, not lost.
    let linked: Vec<TraceId> = aggregate
        .links
        .iter()
        .map(|l| l.span_context.trace_id())
        .collect();
    assert_eq!(linked, vec![TraceId::from_hex(OTHER_TRACE).unwrap()]);
    let flush = span(&spans, "flush").unwrap();
    assert_eq!(flush.span_context.trace_id(), trace);
    assert_eq!(flush.parent_span_id, aggregate.span_context.span_id());
    app.stop().await;
}
