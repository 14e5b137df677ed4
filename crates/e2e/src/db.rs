//! The stack's PostgreSQL database, as the end-to-end test reads it: numbers and lists the
//! checks compare, through tokio-postgres.

use anyhow::Context as _;
use tokio_postgres::{Client, NoTls};

/// A connection to the stack's database.
#[derive(Debug)]
pub struct Db {
    client: Client,
}

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .with_context(|| format!("connect to {url}"))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("e2e: PostgreSQL connection closed: {err}");
            }
        });
        Ok(Self { client })
    }

    /// The one row of `sql`, every column a `bigint`.
    pub async fn numbers(&self, sql: &str) -> anyhow::Result<Vec<i64>> {
        let row = self.client.query_one(sql, &[]).await.map_err(explain)?;
        (0..row.len())
            .map(|i| row.try_get::<_, i64>(i).map_err(anyhow::Error::from))
            .collect()
    }

    /// The one `bigint` of `sql`.
    pub async fn number(&self, sql: &str) -> anyhow::Result<i64> {
        let numbers = self.numbers(sql).await?;
        numbers.first().copied().context("no column")
    }

    /// The first column of every row of `sql`, a `text`.
    pub async fn texts(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        let rows = self.client.query(sql, &[]).await.map_err(explain)?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(anyhow::Error::from))
            .collect()
    }

    /// The one `boolean` of `sql`.
    pub async fn flag(&self, sql: &str) -> anyhow::Result<bool> {
        let row = self.client.query_one(sql, &[]).await.map_err(explain)?;
        Ok(row.try_get(0)?)
    }
}

/// The server's own message (`relation "alerts" does not exist`) rather than `db error`.
fn explain(err: tokio_postgres::Error) -> anyhow::Error {
    match err.as_db_error() {
        Some(db) => anyhow::anyhow!("PostgreSQL: {}", db.message()),
        None => anyhow::Error::from(err),
    }
}
