//! The work on PostgreSQL beside the consume loop, each a task of the service runner that a
//! stop ends at once: the migrations at start, retried while PostgreSQL is unreachable; the
//! ping that keeps the `postgres` check true while there is nothing to flush; every source's
//! periodic maintenance.

use std::time::Duration;

use deadpool_postgres::Pool;
use fleet::health::Health;
use fleet::retry::{Backoff, SaidOnce};
use tokio_util::sync::CancellationToken;

use crate::flush::{Failing, POSTGRES_CHECK};
use crate::part::{MAINTENANCE_EVERY, Maintenance};
use crate::sources::Source;
use crate::store::{self, Store};

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
