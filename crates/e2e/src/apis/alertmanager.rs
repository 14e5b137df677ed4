//! Alertmanager's API v2: the alerts it holds.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{Http, Labels, states};

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
