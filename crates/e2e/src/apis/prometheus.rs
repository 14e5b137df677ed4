//! Prometheus' HTTP API: targets, instant queries, rules and alerts.

use std::collections::BTreeSet;

use anyhow::Context as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Http, Labels, states};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> QueryData {
        let response: PromResponse<QueryData> =
            serde_json::from_str(json).expect("Prometheus' JSON");
        response.into_data().expect("success")
    }

    #[test]
    fn an_empty_vector_has_no_data_and_a_scalar_has() {
        assert!(
            !data(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#).has_data()
        );
        assert!(
            data(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#)
                .has_data()
        );
        let hosts = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"host":"b"},"value":[1,"1"]},{"metric":{"host":"a"},"value":[1,"1"]}]}}"#,
        );
        assert_eq!(
            hosts.label_values("host").ok(),
            Some(["a".into(), "b".into()].into())
        );
    }

    #[test]
    fn an_error_answer_is_its_error() {
        let response: PromResponse<QueryData> = serde_json::from_str(
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        )
        .expect("Prometheus' JSON");
        assert_eq!(
            response.into_data().err().map(|e| e.to_string()).as_deref(),
            Some("Prometheus: parse error")
        );
    }
}
