//! The work on PostgreSQL beside the consume loop, each a task of the service runner that a
//! stop ends at once: the migrations at start, retried while PostgreSQL is unreachable; the
//! ping that keeps the `postgres` check true while there is nothing to flush; every source's
//! periodic maintenance; the storage's (partitions and retention, [`maintain_storage`]) and
//! the in-place upgrade's moves ([`upgrade_storage`]).

use std::time::Duration;

use deadpool_postgres::Pool;
use fleet::health::Health;
use fleet::retry::{Backoff, SaidOnce};
use tokio_util::sync::CancellationToken;

use crate::flush::{Failing, POSTGRES_CHECK};
use crate::metrics::Metrics;
use crate::part::{MAINTENANCE_EVERY, Maintenance};
use crate::sources::Source;
use crate::store::{self, Bounded, FlushLimits, Partitions, Report, Retention, Store, bounded};

/// What storage maintenance works with: the schema owner's pool (dropping a partition needs
/// it), the partitions the flushes know of, the retention, the limits of each step.
#[derive(Debug, Clone)]
pub struct Storage {
    pub owner: Pool,
    pub partitions: Partitions,
    pub retention: Retention,
    pub limits: FlushLimits,
    pub metrics: Metrics,
}

/// A storage maintenance pass every `every`, the first at once (see [`store::maintain`]); a
/// failed pass is logged and counted (`aggregator_maintenance_failures_total`, and the
/// `FleetStorageMaintenanceStale` alert when none succeeds for long), and retried at the next.
pub async fn maintain_storage(storage: Storage, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let m = &storage.metrics;
    let mut said = SaidOnce::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        m.maintenance_runs.inc();
        let pass = async |client: &mut deadpool_postgres::Client| {
            let now = chrono::Utc::now();
            let (partitions, retention) = (&storage.partitions, storage.retention);
            store::maintain(client, partitions, retention, now, storage.limits.lock).await
        };
        match bounded(
            &storage.owner,
            storage.limits.deadline,
            Some(&shutdown),
            pass,
        )
        .await
        {
            Ok(report) => {
                show(&report, m);
                m.maintenance_last_success
                    .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                said = SaidOnce::default();
            }
            Err(Bounded::Cancelled) => return,
            Err(Bounded::Failed(err)) => {
                m.maintenance_failures.inc();
                let detail = err.to_string();
                said.log(
                    "storage maintenance failed, retrying at the next pass",
                    &err.cause(),
                    &detail,
                );
            }
        }
    }
}

/// A pass's report in the metrics.
fn show(report: &Report, m: &Metrics) {
    m.partitions_created.inc_by(report.made);
    for (tier, dropped) in &report.dropped {
        (m.partitions_dropped.with_label_values(&[tier.as_str()])).inc_by(dropped.len() as u64);
    }
    let seconds = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
    };
    for t in &report.tables {
        let table = [t.table.as_str()];
        m.table_partitions
            .with_label_values(&table)
            .set(t.partitions);
        m.table_bytes.with_label_values(&table).set(t.bytes);
        (m.table_oldest_partition.with_label_values(&table)).set(seconds(t.oldest));
        (m.table_partitions_end.with_label_values(&table)).set(seconds(t.end));
    }
}

/// Moves the previous schema's rows into the partitioned tables, step after step (see
/// [`store::Legacy`]), until none is left; a failed step is logged and retried with backoff.
pub async fn upgrade_storage(storage: Storage, shutdown: CancellationToken) {
    let m = &storage.metrics;
    let limits = (storage.limits.deadline, storage.limits.lock);
    let mut backoff = Backoff::new(Duration::from_secs(30));
    let mut said = SaidOnce::default();
    let mut left: Option<Vec<store::Legacy>> = None;
    loop {
        let step = async |client: &mut deadpool_postgres::Client| {
            let tables = match left.take() {
                Some(tables) => tables,
                None => store::pending(client).await?,
            };
            let mut tables: Vec<_> = tables.into_iter().filter(|t| !t.done()).collect();
            m.upgrade_tables_pending.set(tables.len() as i64);
            let moved = match tables.first_mut() {
                Some(table) => {
                    let now = chrono::Utc::now();
                    table.step(client, storage.retention, now, limits).await
                }
                None => Ok(0),
            };
            let finished = tables.is_empty();
            left = Some(tables);
            moved.map(|moved| (moved, finished))
        };
        match bounded(
            &storage.owner,
            storage.limits.deadline,
            Some(&shutdown),
            step,
        )
        .await
        {
            Ok((_, true)) => return,
            Ok((moved, false)) => {
                m.upgrade_rows_moved.inc_by(moved);
                said = SaidOnce::default();
                // The flushes go first: one step at a time.
                tokio::task::yield_now().await;
            }
            Err(Bounded::Cancelled) => return,
            Err(Bounded::Failed(err)) => {
                left = None;
                let detail = err.to_string();
                said.log("upgrade step failed, retrying", &err.cause(), &detail);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
}

/// Applies migrations, retrying while PostgreSQL is unreachable. False if shutdown came first.
pub async fn migrate_with_retry(
    pool: &Pool,
    health: &Health,
    shutdown: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::new(Duration::from_secs(10));
    // A refused certificate or password fails every attempt the same way.
    let mut said = SaidOnce::default();
    loop {
        match store::migrate(pool).await {
            Ok(_) => {
                health.pass(POSTGRES_CHECK);
                return true;
            }
            Err(err) => {
                let detail = err.to_string();
                health.fail(POSTGRES_CHECK, detail.clone());
                said.log(
                    "cannot migrate the database yet, retrying",
                    &err.cause(),
                    &detail,
                );
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Runs every source's [`Part::maintain`](crate::part::Part::maintain) every
/// [`MAINTENANCE_EVERY`], outside the flushes; a failed round is logged and tried again at
/// the next.
pub async fn maintain_sources(store: Store, max_lateness: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for source in Source::ALL {
            let part = source.part();
            let round = async {
                let cx = Maintenance {
                    pool: store.pool(),
                    watermark: store.low_watermark(source).await?,
                    max_lateness,
                };
                part.maintain(&cx).await
            };
            // A stop does not wait for a database that stopped answering.
            let done = tokio::select! {
                () = shutdown.cancelled() => return,
                done = round => done,
            };
            if let Err(err) = done {
                tracing::warn!(%err, ?source, "source maintenance failed (retried later)");
            }
        }
    }
}

/// Keeps the `postgres` check true to reality while there is nothing to flush. While flushes
/// fail, a ping that gets through does not make PostgreSQL healthy: the flush's verdict stands.
pub async fn ping_postgres(
    store: Store,
    health: Health,
    failing: Failing,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A stop does not wait for a database that stopped answering.
        let pinged = tokio::select! {
            () = shutdown.cancelled() => return,
            pinged = store.ping(Duration::from_secs(4)) => pinged,
        };
        match pinged {
            Ok(()) if failing.get() => {}
            Ok(()) => health.pass(POSTGRES_CHECK),
            Err(err) => health.fail(POSTGRES_CHECK, err.to_string()),
        }
    }
}
