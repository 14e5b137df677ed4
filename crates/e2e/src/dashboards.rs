//! Every query of the Grafana dashboards, as `scripts/dashboard-queries.py` prints them
//! (Grafana's variables substituted), run against the stack: PromQL through Prometheus' API,
//! SQL on the database. A query passes once it returns data; passed queries are not run again.

use std::path::Path;
use std::process::Command;
use std::sync::LazyLock;

use anyhow::Context as _;
use regex::Regex;
use serde::Deserialize;

use crate::apis::Prometheus;
use crate::db::Db;

/// One panel's (or template variable's) query.
#[derive(Debug, Deserialize)]
pub struct Query {
    pub dashboard: String,
    pub panel: String,
    pub datasource: Datasource,
    pub query: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Datasource {
    Prometheus,
    Postgres,
}

/// Queries over the alert history can only return rows once an alert went through.
static ABOUT_ALERTS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\bFROM alerts\b|\bJOIN alerts\b|\bALERTS\b").expect("a valid regex")
});

impl Query {
    pub fn about_alerts(&self) -> bool {
        ABOUT_ALERTS.is_match(&self.query)
    }

    /// Ok when it returned data; else why not.
    pub async fn run(&self, prometheus: &Prometheus, db: &Db) -> anyhow::Result<()> {
        match self.datasource {
            Datasource::Prometheus => {
                let data = prometheus.query(&self.query).await?;
                anyhow::ensure!(data.has_data(), "empty result");
            }
            Datasource::Postgres => {
                // A trailing `;` cannot stay inside the subquery.
                let query = self.query.trim_end().trim_end_matches(';');
                let rows = db
                    .number(&format!("SELECT count(*) FROM ({query}) AS e2e_query"))
                    .await?;
                anyhow::ensure!(rows >= 1, "no rows");
            }
        }
        Ok(())
    }

    /// `[datasource] dashboard / panel`, the query's start and why it did not pass.
    pub fn describe(&self, why: &str) -> String {
        let text: String = self.query.replace('\n', " ").chars().take(200).collect();
        format!(
            "      [{:?}] {} / {}\n        {text}\n        -> {why}",
            self.datasource, self.dashboard, self.panel
        )
    }
}

/// The queries of every dashboard of the repository at `repo`.
pub fn load(repo: &Path) -> anyhow::Result<Vec<Query>> {
    let output = Command::new("python3")
        .arg("scripts/dashboard-queries.py")
        .current_dir(repo)
        .output()
        .context("run python3 scripts/dashboard-queries.py")?;
    anyhow::ensure!(
        output.status.success(),
        "scripts/dashboard-queries.py failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let queries = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not a query: {line}")))
        .collect::<anyhow::Result<Vec<Query>>>()?;
    anyhow::ensure!(
        !queries.is_empty(),
        "scripts/dashboard-queries.py printed no query"
    );
    Ok(queries)
}

/// The queries still to pass, with the last reason each did not.
#[derive(Debug)]
pub struct Pending {
    queries: Vec<(Query, Option<String>)>,
}

impl Pending {
    pub fn new(queries: Vec<Query>) -> Self {
        Self {
            queries: queries.into_iter().map(|q| (q, None)).collect(),
        }
    }

    /// Runs every pending query once, keeping those that did not pass; Ok when none is left
    /// but (with `defer`) queries over the alert history.
    pub async fn run(
        &mut self,
        prometheus: &Prometheus,
        db: &Db,
        defer: bool,
    ) -> anyhow::Result<()> {
        let mut left = Vec::new();
        for (query, _) in std::mem::take(&mut self.queries) {
            if let Err(why) = query.run(prometheus, db).await {
                left.push((query, Some(format!("{why:#}"))));
            }
        }
        self.queries = left;
        let open = self.open(defer).count();
        anyhow::ensure!(
            open == 0,
            "{open} queries without data:\n{}",
            self.list(defer)
        );
        Ok(())
    }

    /// The pending queries; with `defer`, not those over the alert history.
    fn open(&self, defer: bool) -> impl Iterator<Item = &(Query, Option<String>)> {
        self.queries
            .iter()
            .filter(move |(q, _)| !(defer && q.about_alerts()))
    }

    /// How many queries have not passed yet.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// True when every query passed.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// The pending queries, one block each.
    pub fn list(&self, defer: bool) -> String {
        self.open(defer)
            .map(|(q, why)| q.describe(why.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
