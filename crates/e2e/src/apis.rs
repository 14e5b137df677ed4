//! The HTTP APIs the end-to-end test reads, typed: Prometheus' (`/api/v1/...`),
//! Alertmanager's (`/api/v2/alerts`), Mailpit's (`/api/v1/messages`) and Jaeger's query API
//! (`/api/traces`). Only the fields the checks read are declared; serde skips the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub type Labels = BTreeMap<String, String>;

/// An HTTP client for 127.0.0.1 (no proxy) with a 5 s timeout per request.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self { client })
    }

    /// GET `base` + `path` with `params` (URL-encoded), decoded from JSON; non-2xx is an error.
    pub async fn get<T: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> anyhow::Result<T> {
        let body = self.get_text(base, path, params).await?;
        serde_json::from_str(&body).with_context(|| format!("{base}{path}: unexpected JSON"))
    }

    /// GET, the body as text; non-2xx is an error.
    pub async fn get_text(
        &self,
        base: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let url = url::Url::parse_with_params(&format!("{base}{path}"), params)?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .with_context(|| format!("{base}{path} unreachable"))?;
        let status = response.status();
        let body = response.text().await?;
        anyhow::ensure!(status.is_success(), "{base}{path}: HTTP {status}: {body}");
        Ok(body)
    }

    /// POST a JSON `body`, with `authorization` as the Authorization header when given; the
    /// status code.
    pub async fn post_json(
        &self,
        url: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> anyhow::Result<u16> {
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{url} unreachable"))?;
        Ok(response.status().as_u16())
    }
}

// ---- Prometheus ------------------------------------------------------------------------

/// Every answer of Prometheus' API: `status` and `data`, or `error`.
#[derive(Debug, Deserialize)]
pub struct PromResponse<T> {
    pub status: String,
    pub data: Option<T>,
    pub error: Option<String>,
}

impl<T> PromResponse<T> {
    /// The data of a successful answer, else its error.
    pub fn into_data(self) -> anyhow::Result<T> {
        match (self.status.as_str(), self.data) {
            ("success", Some(data)) => Ok(data),
            _ => anyhow::bail!(
                "Prometheus: {}",
                self.error
                    .unwrap_or_else(|| format!("status {}", self.status))
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Targets {
    pub active_targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub labels: Labels,
    pub scrape_url: String,
    pub health: String,
    #[serde(default)]
    pub last_error: String,
}

impl Target {
    /// The `service` label, else the `job`.
    pub fn service(&self) -> &str {
        let label = |k: &str| self.labels.get(k).map(String::as_str);
        label("service").or(label("job")).unwrap_or("?")
    }
}

/// `/api/v1/query`'s data: a vector or matrix's series, or a scalar or string.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryData {
    pub result_type: String,
    pub result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub struct Series {
    pub metric: Labels,
}

impl QueryData {
    /// True when the query returned data: a scalar or string, or at least one series.
    pub fn has_data(&self) -> bool {
        matches!(self.result_type.as_str(), "scalar" | "string")
            || self.result.as_array().is_some_and(|r| !r.is_empty())
    }

    /// The values of `label` over the series returned, sorted, without repeats.
    pub fn label_values(&self, label: &str) -> anyhow::Result<BTreeSet<String>> {
        let series: Vec<Series> = serde_json::from_value(self.result.clone())
            .with_context(|| format!("a {} result is not a list of series", self.result_type))?;
        Ok(series
            .into_iter()
            .filter_map(|s| s.metric.get(label).cloned())
            .collect())
    }
}

#[derive(Debug, Deserialize)]
pub struct RuleGroups {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
pub struct RuleGroup {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub name: String,
    pub health: String,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl RuleGroups {
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.groups.iter().flat_map(|g| &g.rules)
    }
}

#[derive(Debug, Deserialize)]
pub struct PromAlerts {
    pub alerts: Vec<PromAlert>,
}

#[derive(Debug, Deserialize)]
pub struct PromAlert {
    pub labels: Labels,
    /// `pending` or `firing`.
    pub state: String,
}

/// Prometheus' API at `base`.
#[derive(Debug, Clone)]
pub struct Prometheus {
    pub http: Http,
    pub base: String,
}

impl Prometheus {
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> anyhow::Result<T> {
        let response: PromResponse<T> = self.http.get(&self.base, path, params).await?;
        response.into_data()
    }

    pub async fn targets(&self) -> anyhow::Result<Vec<Target>> {
        Ok(self
            .get::<Targets>("/api/v1/targets", &[])
            .await?
            .active_targets)
    }

    /// An instant query; Prometheus' error (a bad query) is the error.
    pub async fn query(&self, promql: &str) -> anyhow::Result<QueryData> {
        self.get("/api/v1/query", &[("query", promql)]).await
    }

    pub async fn rules(&self) -> anyhow::Result<RuleGroups> {
        self.get("/api/v1/rules", &[]).await
    }

    pub async fn alerts(&self) -> anyhow::Result<Vec<PromAlert>> {
        Ok(self.get::<PromAlerts>("/api/v1/alerts", &[]).await?.alerts)
    }

    /// The states of the alert `name` (`firing`, `pending`), sorted; empty when inactive.
    pub async fn alert_states(&self, name: &str) -> anyhow::Result<BTreeSet<String>> {
        Ok(states(
            self.alerts()
                .await?
                .into_iter()
                .map(|a| (a.labels, a.state)),
            name,
        ))
    }
}

fn states(alerts: impl Iterator<Item = (Labels, String)>, name: &str) -> BTreeSet<String> {
    alerts
        .filter(|(labels, _)| labels.get("alertname").is_some_and(|a| a == name))
        .map(|(_, state)| state)
        .collect()
}

// ---- Alertmanager ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct AmAlert {
    pub labels: Labels,
    pub status: AmStatus,
}

#[derive(Debug, Deserialize)]
pub struct AmStatus {
    /// `active`, `suppressed` or `unprocessed`.
    pub state: String,
}

/// The states of the alert `name` in Alertmanager at `base`, sorted; empty when it has none.
pub async fn alertmanager_states(
    http: &Http,
    base: &str,
    name: &str,
) -> anyhow::Result<BTreeSet<String>> {
    let alerts: Vec<AmAlert> = http.get(base, "/api/v2/alerts", &[]).await?;
    Ok(states(
        alerts.into_iter().map(|a| (a.labels, a.status.state)),
        name,
    ))
}

// ---- Mailpit ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct Messages {
    pub messages: Vec<MessageSummary>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageSummary {
    #[serde(rename = "ID")]
    pub id: String,
    pub subject: String,
    pub to: Vec<Address>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Address {
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Message {
    #[serde(rename = "HTML", default)]
    pub html: String,
    #[serde(default)]
    pub text: String,
}

impl MessageSummary {
    /// `Subject -> to,to`.
    pub fn describe(&self) -> String {
        let to: Vec<&str> = self.to.iter().map(|a| a.address.as_str()).collect();
        format!("{} -> {}", self.subject, to.join(","))
    }
}

/// Mailpit's API at `base`.
#[derive(Debug, Clone)]
pub struct Mailpit {
    pub http: Http,
    pub base: String,
}

impl Mailpit {
    pub async fn messages(&self) -> anyhow::Result<Vec<MessageSummary>> {
        let list: Messages = self
            .http
            .get(&self.base, "/api/v1/messages", &[("limit", "50")])
            .await?;
        Ok(list.messages)
    }

    pub async fn message(&self, id: &str) -> anyhow::Result<Message> {
        self.http
            .get(&self.base, &format!("/api/v1/message/{id}"), &[])
            .await
    }
}

// ---- Jaeger ----------------------------------------------------------------------------

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
