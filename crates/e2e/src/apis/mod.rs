//! The HTTP APIs the end-to-end test reads, typed, one file each: [`prometheus`]
//! (`/api/v1/...`), [`alertmanager`] (`/api/v2/alerts`), [`mailpit`] (`/api/v1/messages`) and
//! [`jaeger`]'s query API (`/api/traces`). Only the fields the checks read are declared; serde
//! skips the rest. Here: the HTTP client they share.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Context as _;
use serde::de::DeserializeOwned;

pub mod alertmanager;
pub mod jaeger;
pub mod mailpit;
pub mod prometheus;

pub use alertmanager::alertmanager_states;
pub use jaeger::jaeger_traces;
pub use mailpit::Mailpit;
pub use prometheus::{Prometheus, Target};

/// A series' or an alert's labels.
pub type Labels = BTreeMap<String, String>;

/// The states of the alerts named `name` among `alerts` (labels, state), sorted, no repeats.
fn states(alerts: impl Iterator<Item = (Labels, String)>, name: &str) -> BTreeSet<String> {
    alerts
        .filter(|(labels, _)| labels.get("alertname").is_some_and(|a| a == name))
        .map(|(_, state)| state)
        .collect()
}

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
