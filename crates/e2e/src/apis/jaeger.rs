//! Jaeger's query API: traces by service and operation.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::Http;

#[derive(Debug, Deserialize)]
pub struct Traces {
    pub data: Vec<Trace>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    pub processes: BTreeMap<String, Process>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "processID")]
    pub process_id: String,
    pub operation_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
}

impl Trace {
    /// Its spans as `service/operation`, sorted, without repeats.
    pub fn span_names(&self) -> BTreeSet<String> {
        self.spans
            .iter()
            .map(|s| {
                let service = self
                    .processes
                    .get(&s.process_id)
                    .map_or("?", |p| p.service_name.as_str());
                format!("{service}/{}", s.operation_name)
            })
            .collect()
    }
}

/// The last hour's traces (at most 20) holding `service`'s `operation`, from Jaeger at `base`.
pub async fn jaeger_traces(
    http: &Http,
    base: &str,
    service: &str,
    operation: &str,
) -> anyhow::Result<Vec<Trace>> {
    let params = [
        ("service", service),
        ("operation", operation),
        ("limit", "20"),
        ("lookback", "1h"),
    ];
    let traces: Traces = http.get(base, "/api/traces", &params).await?;
    Ok(traces.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_names_its_spans_by_service_and_operation() {
        let json = r#"{"data": [{"traceID": "ab", "spans": [
            {"processID": "p1", "operationName": "produce_call", "spanID": "1"},
            {"processID": "p2", "operationName": "flush"},
            {"processID": "p2", "operationName": "flush"}],
          "processes": {"p1": {"serviceName": "call-simulator"}, "p2": {"serviceName": "aggregator"}}}]}"#;
        let traces: Traces = serde_json::from_str(json).expect("Jaeger's JSON");
        let names: Vec<String> = traces.data[0].span_names().into_iter().collect();
        assert_eq!(names, ["aggregator/flush", "call-simulator/produce_call"]);
    }
}
