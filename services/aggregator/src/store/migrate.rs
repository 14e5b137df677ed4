//! Schema migrations: versioned SQL files, embedded at build time and applied in version order
//! at start: the history under `migrations/`, and those a source lists for its own tables
//! ([`Part::migrations`](crate::sources::Part::migrations)). One transaction holding an
//! advisory lock makes concurrent starts safe: the second aggregator waits, then finds
//! everything applied.

use deadpool_postgres::Pool;

use crate::db::{Migration, StoreError};
use crate::sources::Source;

/// The history, in order.
const MIGRATIONS: &[Migration] = &[
    (
        1,
        "call_pipeline",
        include_str!("../../migrations/0001_call_pipeline.sql"),
    ),
    (
        2,
        "long_calls_indexes",
        include_str!("../../migrations/0002_long_calls_indexes.sql"),
    ),
    (
        3,
        "alerts",
        include_str!("../../migrations/0003_alerts.sql"),
    ),
    (
        4,
        "host_metrics",
        include_str!("../../migrations/0004_host_metrics.sql"),
    ),
    (
        5,
        "probes",
        include_str!("../../migrations/0005_probes.sql"),
    ),
    (
        6,
        "host_samples_seen",
        include_str!("../../migrations/0006_host_samples_seen.sql"),
    ),
    (7, "roles", include_str!("../../migrations/0007_roles.sql")),
    (
        8,
        "partition_state",
        include_str!("../../migrations/0008_partition_state.sql"),
    ),
    (
        9,
        "partitioned_storage",
        include_str!("../../migrations/0009_partitioned_storage.sql"),
    ),
];

/// Every migration, in version order: the history and the sources' own.
fn all() -> Vec<Migration> {
    let mut all = MIGRATIONS.to_vec();
    for source in Source::ALL {
        all.extend_from_slice(source.part().migrations());
    }
    all.sort_unstable_by_key(|(version, ..)| *version);
    all
}

/// Arbitrary, fixed key of the migration advisory lock ("fleetpul" in ASCII).
const LOCK_KEY: i64 = 0x666c_6565_7470_756c;

/// Applies every migration not yet applied; returns how many were.
pub async fn migrate(pool: &Pool) -> Result<usize, StoreError> {
    migrate_to(pool, i32::MAX).await
}

/// Applies the migrations not yet applied up to version `last` (a test builds a database of
/// an earlier schema with it); returns how many were.
pub async fn migrate_to(pool: &Pool, last: i32) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    // Nothing to apply: no lock and no DDL, so that a role that may not change the schema
    // (fleetpulse_writer) starts on a database its owner migrated.
    if last == i32::MAX && all_applied(&client).await? {
        return Ok(0);
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied = applied(&*tx).await?;
    let mut count = 0;
    for (version, name, sql) in &all() {
        if applied.contains(version) || *version > last {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "migration applied");
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

async fn all_applied(client: &tokio_postgres::Client) -> Result<bool, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(false);
    }
    let applied = applied(client).await?;
    Ok(all().iter().all(|(version, ..)| applied.contains(version)))
}

/// The versions recorded in `schema_migrations`.
async fn applied(client: &impl tokio_postgres::GenericClient) -> Result<Vec<i32>, StoreError> {
    let rows = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_unique_and_the_history_comes_first() {
        let versions: Vec<i32> = all().iter().map(|(v, ..)| *v).collect();
        let mut unique = versions.clone();
        unique.dedup();
        assert_eq!(unique, versions, "two migrations share a version");
        let history: Vec<i32> = MIGRATIONS.iter().map(|(v, ..)| *v).collect();
        assert_eq!(versions[..history.len()], history[..]);
    }
}
