//! Telemetry: `tracing` logs (text or JSON, filtered by `RUST_LOG`), and OTLP trace export via
//! `tracing-opentelemetry` when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Trace context crosses
//! Kafka as a W3C `traceparent` header so one trace spans produce → aggregate → flush.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// The W3C trace context header name.
pub const TRACEPARENT: &str = "traceparent";

/// Keeps the trace exporter alive; dropping it flushes pending spans.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// True when spans are exported, i.e. when it is worth propagating trace context.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(Err(err)) = self.provider.take().map(|p| p.shutdown()) {
            eprintln!("trace exporter shutdown: {err}");
        }
    }
}

/// Installs the global subscriber. Call once, from `main`, inside the Tokio runtime (the OTLP
/// exporter runs on it).
pub fn init(service: &'static str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .boxed(),
    };
    let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(otlp_provider(service, &endpoint)?),
        _ => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

fn otlp_provider(service: &'static str, endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    // The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (SDK default:
    // parent-based always-on).
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `traceparent` value for `span`, or `None` when the span is not being recorded.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The remote context carried by a `traceparent` value, if it is valid.
pub fn context_from_traceparent(value: &str) -> Option<opentelemetry::Context> {
    use opentelemetry::trace::TraceContextExt as _;
    let carrier = HashMap::from([(TRACEPARENT.to_string(), value.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_extracted_and_garbage_is_not() {
        let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(context_from_traceparent(value).is_some());
        assert!(context_from_traceparent("not-a-trace").is_none());
    }
}
