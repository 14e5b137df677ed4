//! The PostgreSQL edge: connection pool (with TLS), migrations, stored offsets, and the flush
//! transaction that makes the aggregator's effect exactly-once.
//!
//! **Guarantee.** A flush writes, in one transaction, the call window deltas, the long calls,
//! the totals, the host samples (each host and sample time once, however many messages carried
//! it: `host_samples_seen`) and their window deltas, and the next offset of every
//! partition (of every topic) the batch covers. The offsets are fenced: a
//! partition's row advances only if it still holds the value this aggregator started the batch
//! from, so a zombie (an instance that lost the partition in a rebalance it has not seen yet)
//! cannot commit a batch another instance has also read; its transaction rolls back and it
//! re-reads the stored offsets. Dead letters are produced before the transaction that moves
//! past them, so they are delivered at least once.

mod alerts;
mod connect;
mod migrate;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use fleet::events::HostSample;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

pub use alerts::AlertStore;
pub use connect::connect_pool;
pub use migrate::migrate;

use crate::batch::{Batch, HostWindow, HostWindowKey, host_windows_of};
use crate::topics::{Source, Topics, Tp};

/// Errors of the store. `Fenced` is not an outage: another instance owns the data now.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("offsets moved under us (partition reassigned): batch discarded")]
    Fenced,
    #[error("postgres: {}", chain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("postgres pool: {}", chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// `err` and each of its sources not already in the text: tokio-postgres and deadpool keep
/// the reason in the source ("error performing TLS handshake" alone does not say that the
/// certificate failed verification, nor why).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// All-time totals after a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub calls: i64,
    pub duration_ms: i64,
    pub long_calls: i64,
}

/// Rows a flush wrote, per table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    pub windows: u64,
    pub long_calls: u64,
    pub offsets: u64,
    pub system_metrics: u64,
    pub host_windows: u64,
    pub probe_results: u64,
    pub probe_windows: u64,
    /// Host samples not stored: already stored from an earlier message (not a table).
    pub duplicate_host_samples: u64,
}

impl Written {
    /// The tables a flush writes: the `table` label values of `aggregator_rows_written_total`.
    pub const TABLES: [&'static str; 7] = [
        "call_stats_1m",
        "long_calls",
        "consumer_offsets",
        "system_metrics",
        "host_metrics_1m",
        "probe_results",
        "probe_stats_1m",
    ];

    /// Rows per table, in [`Self::TABLES`] order.
    pub fn by_table(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let rows = [
            self.windows,
            self.long_calls,
            self.offsets,
            self.system_metrics,
            self.host_windows,
            self.probe_results,
            self.probe_windows,
        ];
        Self::TABLES.into_iter().zip(rows)
    }
}

/// Which consumer group and topics a store serves.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    group: String,
    topics: Topics,
    window_secs: i32,
}

const FENCED_OFFSETS: &str = "
WITH input AS (
    SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[])
        AS i(topic, partition, expected, next_offset)
)
INSERT INTO consumer_offsets AS o (group_id, topic, partition, next_offset)
SELECT $1, topic, partition, next_offset FROM input
ON CONFLICT (group_id, topic, partition) DO UPDATE
    SET next_offset = EXCLUDED.next_offset, updated_at = now()
    WHERE o.next_offset =
        (SELECT expected FROM input WHERE input.topic = o.topic AND input.partition = o.partition)";

const LOAD_OFFSETS: &str = "
SELECT o.topic, o.partition, o.next_offset
FROM consumer_offsets o
JOIN unnest($2::text[], $3::int[]) AS i(topic, partition)
    ON o.topic = i.topic AND o.partition = i.partition
WHERE o.group_id = $1";

const CLAIM_HOST_SAMPLES: &str = "
INSERT INTO host_samples_seen (host, time)
SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING time, host";

const PRUNE_HOST_SAMPLES_SEEN: &str = "DELETE FROM host_samples_seen WHERE time < $1";

const COPY_SYSTEM_METRICS: &str =
    "COPY system_metrics (time, host, metric, device, value, unit) FROM STDIN BINARY";

const COPY_PROBE_RESULTS: &str = "COPY probe_results \
    (time, url, method, result, status, response_time_seconds, dns_seconds, connect_seconds, \
     tls_seconds, ttfb_seconds, transfer_seconds, body_bytes, regex_match, redirects, \
     tls_version, cert_not_after, error) FROM STDIN BINARY";

const UPSERT_PROBE_WINDOWS: &str = "
INSERT INTO probe_stats_1m AS s
    (url, window_start, window_secs, checks, ok, timeouts, dns_errors, connect_errors, tls_errors,
     http_status_errors, regex_mismatches, body_errors,
     latency_sum_seconds, latency_min_seconds, latency_max_seconds)
SELECT u, to_timestamp(w), $1, c, o, t, d, ce, te, he, re, be, su, mi, ma
FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
            $13::float8[], $14::float8[], $15::float8[])
    AS x(u, w, c, o, t, d, ce, te, he, re, be, su, mi, ma)
ON CONFLICT (url, window_start, window_secs) DO UPDATE SET
    checks = s.checks + EXCLUDED.checks,
    ok = s.ok + EXCLUDED.ok,
    timeouts = s.timeouts + EXCLUDED.timeouts,
    dns_errors = s.dns_errors + EXCLUDED.dns_errors,
    connect_errors = s.connect_errors + EXCLUDED.connect_errors,
    tls_errors = s.tls_errors + EXCLUDED.tls_errors,
    http_status_errors = s.http_status_errors + EXCLUDED.http_status_errors,
    regex_mismatches = s.regex_mismatches + EXCLUDED.regex_mismatches,
    body_errors = s.body_errors + EXCLUDED.body_errors,
    latency_sum_seconds = s.latency_sum_seconds + EXCLUDED.latency_sum_seconds,
    latency_min_seconds = LEAST(s.latency_min_seconds, EXCLUDED.latency_min_seconds),
    latency_max_seconds = GREATEST(s.latency_max_seconds, EXCLUDED.latency_max_seconds),
    updated_at = now()";

const UPSERT_HOST_WINDOWS: &str = "
INSERT INTO host_metrics_1m AS s
    (host, metric, device, window_start, window_secs, unit, samples, sum, min, max, last_time, last)
SELECT h, m, d, to_timestamp(w), $1, u, n, su, mi, ma, to_timestamp(lt / 1000.0), l
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
            $8::float8[], $9::float8[], $10::float8[], $11::bigint[], $12::float8[])
    AS t(h, m, d, w, u, n, su, mi, ma, lt, l)
ON CONFLICT (host, metric, device, window_start, window_secs) DO UPDATE SET
    samples = s.samples + EXCLUDED.samples,
    sum = s.sum + EXCLUDED.sum,
    min = LEAST(s.min, EXCLUDED.min),
    max = GREATEST(s.max, EXCLUDED.max),
    last = CASE WHEN EXCLUDED.last_time >= s.last_time THEN EXCLUDED.last ELSE s.last END,
    unit = CASE WHEN EXCLUDED.last_time >= s.last_time THEN EXCLUDED.unit ELSE s.unit END,
    last_time = GREATEST(s.last_time, EXCLUDED.last_time),
    updated_at = now()";

const UPSERT_WINDOWS: &str = "
INSERT INTO call_stats_1m AS s
    (window_start, window_secs, calls, duration_sum_ms, duration_min_ms, duration_max_ms, long_calls)
SELECT to_timestamp(w), $1, c, su, mi, ma, l
FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
    AS t(w, c, su, mi, ma, l)
ON CONFLICT (window_start, window_secs) DO UPDATE SET
    calls = s.calls + EXCLUDED.calls,
    duration_sum_ms = s.duration_sum_ms + EXCLUDED.duration_sum_ms,
    duration_min_ms = LEAST(s.duration_min_ms, EXCLUDED.duration_min_ms),
    duration_max_ms = GREATEST(s.duration_max_ms, EXCLUDED.duration_max_ms),
    long_calls = s.long_calls + EXCLUDED.long_calls,
    updated_at = now()";

const COPY_LONG_CALLS: &str = "COPY long_calls \
    (topic, partition, kafka_offset, call_id, caller, callee, start_time, duration_ms) \
    FROM STDIN BINARY";

const ADD_TOTALS: &str = "UPDATE call_totals SET calls = calls + $1, \
    duration_ms = duration_ms + $2, long_calls = long_calls + $3 \
    RETURNING calls, duration_ms, long_calls";

impl Store {
    /// A store for `group` consuming `topics`, aggregating in windows of `window_secs`.
    pub fn new(pool: Pool, group: String, topics: Topics, window_secs: i32) -> Self {
        Self {
            pool,
            group,
            topics,
            window_secs,
        }
    }

    /// The stored next offsets of `partitions`; partitions never flushed are absent.
    pub async fn load_offsets(&self, partitions: &[Tp]) -> Result<HashMap<Tp, i64>, StoreError> {
        let client = self.pool.get().await?;
        let names: Vec<&str> = partitions
            .iter()
            .map(|(s, _)| self.topics.name(*s))
            .collect();
        let numbers: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        let rows = client
            .query(LOAD_OFFSETS, &[&self.group, &names, &numbers])
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let source = self.topics.source_of(r.get(0))?;
                Some(((source, r.get::<_, i32>(1)), r.get(2)))
            })
            .collect())
    }

    /// Forgets which host samples older than `before` were stored: copies that old are
    /// rejected as late before they reach a flush. Returns how many keys went.
    pub async fn prune_host_samples_seen(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute(PRUNE_HOST_SAMPLES_SEEN, &[&before]).await?)
    }

    /// The all-time totals.
    pub async fn load_totals(&self) -> Result<Totals, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT calls, duration_ms, long_calls FROM call_totals",
                &[],
            )
            .await?;
        Ok(Totals {
            calls: row.get(0),
            duration_ms: row.get(1),
            long_calls: row.get(2),
        })
    }

    /// Writes `batch` in one transaction (see the module docs). The totals are `None` when the
    /// batch held no call.
    pub async fn flush(&self, batch: &Batch) -> Result<(Option<Totals>, Written), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Safe for the guarantee: data and offsets commit together, so a server crash that
        // loses the last commits loses both, and the batch is re-read from Kafka. Not waiting
        // for the WAL flush lets the next flush start sooner.
        tx.batch_execute("SET LOCAL synchronous_commit TO off")
            .await?;
        let mut written = Written::default();

        // Fence first: a stale batch fails before it writes anything.
        let names: Vec<&str> = batch
            .progress
            .iter()
            .map(|p| self.topics.name(p.source))
            .collect();
        let partitions: Vec<i32> = batch.progress.iter().map(|p| p.partition).collect();
        let expected: Vec<i64> = batch.progress.iter().map(|p| p.expected).collect();
        let next: Vec<i64> = batch.progress.iter().map(|p| p.next).collect();
        let stmt = tx.prepare_cached(FENCED_OFFSETS).await?;
        let moved = tx
            .execute(&stmt, &[&self.group, &names, &partitions, &expected, &next])
            .await?;
        if moved != partitions.len() as u64 {
            return Err(StoreError::Fenced); // dropping `tx` rolls back
        }
        written.offsets = moved;

        let windows = batch.sorted_windows();
        if !windows.is_empty() {
            let column = |f: fn(&crate::batch::WindowDelta) -> i64| -> Vec<i64> {
                windows.iter().map(|(_, w)| f(w)).collect()
            };
            let starts: Vec<i64> = windows.iter().map(|(s, _)| *s).collect();
            let stmt = tx.prepare_cached(UPSERT_WINDOWS).await?;
            written.windows = tx
                .execute(
                    &stmt,
                    &[
                        &self.window_secs,
                        &starts,
                        &column(|w| w.calls),
                        &column(|w| w.duration_sum_ms),
                        &column(|w| w.duration_min_ms),
                        &column(|w| w.duration_max_ms),
                        &column(|w| w.long_calls),
                    ],
                )
                .await?;
        }

        if !batch.long_calls.is_empty() {
            let sink = tx.copy_in(COPY_LONG_CALLS).await?;
            let types = [
                Type::TEXT,
                Type::INT4,
                Type::INT8,
                Type::UUID,
                Type::TEXT,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::INT8,
            ];
            let writer = BinaryCopyInWriter::new(sink, &types);
            pin_mut!(writer);
            let topic = self.topics.name(Source::Calls);
            for call in &batch.long_calls {
                let start = DateTime::from_timestamp_millis(call.start_ms).unwrap_or_default();
                writer
                    .as_mut()
                    .write(&[
                        &topic,
                        &call.partition,
                        &call.offset,
                        &call.call_id,
                        &call.caller,
                        &call.callee,
                        &start,
                        &call.duration_ms,
                    ])
                    .await?;
            }
            written.long_calls = writer.finish().await?;
        }

        let totals = if batch.calls > 0 {
            let stmt = tx.prepare_cached(ADD_TOTALS).await?;
            let long = batch.long_calls.len() as i64;
            let row = tx
                .query_one(&stmt, &[&(batch.calls as i64), &batch.duration_ms, &long])
                .await?;
            Some(Totals {
                calls: row.get(0),
                duration_ms: row.get(1),
                long_calls: row.get(2),
            })
        } else {
            None
        };

        if !batch.host_samples.is_empty() {
            let kept = claim_host_samples(&tx, &batch.host_samples).await?;
            written.duplicate_host_samples = (batch.host_samples.len() - kept.len()) as u64;
            written.system_metrics = copy_host_samples(&tx, &kept).await?;
            written.host_windows = if kept.len() == batch.host_samples.len() {
                self.upsert_host_windows(&tx, batch.sorted_host_windows())
                    .await?
            } else {
                // Some were duplicates: the batch's windows counted them.
                let windows = host_windows_of(i64::from(self.window_secs), kept.iter().copied());
                self.upsert_host_windows(&tx, windows.iter().map(|(k, w)| (k, w)).collect())
                    .await?
            };
        }
        if !batch.probe_results.is_empty() {
            written.probe_results = copy_probe_results(&tx, batch).await?;
            written.probe_windows = self.upsert_probe_windows(&tx, batch).await?;
        }
        tx.commit().await?;
        Ok((totals, written))
    }

    /// Upserts host window deltas, given in key order.
    async fn upsert_host_windows(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        windows: Vec<(&HostWindowKey, &HostWindow)>,
    ) -> Result<u64, StoreError> {
        let hosts: Vec<&str> = windows.iter().map(|(k, _)| k.host.as_str()).collect();
        let metrics: Vec<&str> = windows.iter().map(|(k, _)| k.metric.as_str()).collect();
        let devices: Vec<&str> = windows.iter().map(|(k, _)| k.device.as_str()).collect();
        let starts: Vec<i64> = windows.iter().map(|(k, _)| k.window).collect();
        let units: Vec<&str> = windows.iter().map(|(_, w)| w.unit.as_str()).collect();
        let samples: Vec<i64> = windows.iter().map(|(_, w)| w.samples).collect();
        let sums: Vec<f64> = windows.iter().map(|(_, w)| w.sum).collect();
        let mins: Vec<f64> = windows.iter().map(|(_, w)| w.min).collect();
        let maxs: Vec<f64> = windows.iter().map(|(_, w)| w.max).collect();
        let last_ms: Vec<i64> = windows.iter().map(|(_, w)| w.last_ms).collect();
        let lasts: Vec<f64> = windows.iter().map(|(_, w)| w.last).collect();
        let stmt = tx.prepare_cached(UPSERT_HOST_WINDOWS).await?;
        Ok(tx
            .execute(
                &stmt,
                &[
                    &self.window_secs,
                    &hosts,
                    &metrics,
                    &devices,
                    &starts,
                    &units,
                    &samples,
                    &sums,
                    &mins,
                    &maxs,
                    &last_ms,
                    &lasts,
                ],
            )
            .await?)
    }

    async fn upsert_probe_windows(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        batch: &Batch,
    ) -> Result<u64, StoreError> {
        use fleet::events::ProbeOutcome as O;
        let windows = batch.sorted_probe_windows();
        let urls: Vec<&str> = windows.iter().map(|(k, _)| k.0.as_str()).collect();
        let starts: Vec<i64> = windows.iter().map(|(k, _)| k.1).collect();
        let checks: Vec<i64> = windows.iter().map(|(_, w)| w.checks).collect();
        let by = |o: O| -> Vec<i64> { windows.iter().map(|(_, w)| w.count(o)).collect() };
        let sums: Vec<f64> = windows.iter().map(|(_, w)| w.latency_sum).collect();
        let mins: Vec<f64> = windows.iter().map(|(_, w)| w.latency_min).collect();
        let maxs: Vec<f64> = windows.iter().map(|(_, w)| w.latency_max).collect();
        let stmt = tx.prepare_cached(UPSERT_PROBE_WINDOWS).await?;
        Ok(tx
            .execute(
                &stmt,
                &[
                    &self.window_secs,
                    &urls,
                    &starts,
                    &checks,
                    &by(O::Ok),
                    &by(O::Timeout),
                    &by(O::DnsError),
                    &by(O::ConnectError),
                    &by(O::TlsError),
                    &by(O::HttpStatus),
                    &by(O::RegexMismatch),
                    &by(O::BodyError),
                    &sums,
                    &mins,
                    &maxs,
                ],
            )
            .await?)
    }

    /// A cheap round trip, for the health check while idle.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get().await?.simple_query("SELECT 1").await?;
        Ok(())
    }
}

/// The host samples of a batch whose (host, time) this transaction could claim, in order:
/// each sample is stored once, however many messages carried it.
async fn claim_host_samples<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    samples: &'a [HostSample],
) -> Result<Vec<&'a HostSample>, StoreError> {
    // In key order, as every flush locks rows, so that two flushes cannot deadlock.
    let mut keys: Vec<(DateTime<Utc>, &str)> =
        samples.iter().map(|s| (s.time, s.host.as_str())).collect();
    keys.sort_unstable();
    let (times, hosts): (Vec<DateTime<Utc>>, Vec<&str>) = keys.into_iter().unzip();
    let stmt = tx.prepare_cached(CLAIM_HOST_SAMPLES).await?;
    let claimed: HashSet<(String, i64)> = tx
        .query(&stmt, &[&hosts, &times])
        .await?
        .iter()
        .map(|row| {
            let time: DateTime<Utc> = row.get(0);
            (row.get::<_, String>(1), time.timestamp_micros())
        })
        .collect();
    // PostgreSQL keeps microseconds; a key claimed once keeps only its first sample.
    let mut taken = HashSet::new();
    Ok(samples
        .iter()
        .filter(|s| {
            let key = (s.host.clone(), s.time.timestamp_micros());
            claimed.contains(&key) && taken.insert(key)
        })
        .collect())
}

/// Every value of every sample, one row each, by binary COPY.
async fn copy_host_samples(
    tx: &deadpool_postgres::Transaction<'_>,
    samples: &[&HostSample],
) -> Result<u64, StoreError> {
    let sink = tx.copy_in(COPY_SYSTEM_METRICS).await?;
    let types = [
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::FLOAT8,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for sample in samples {
        for v in &sample.metrics {
            writer
                .as_mut()
                .write(&[
                    &sample.time,
                    &sample.host,
                    &v.metric,
                    &v.device,
                    &v.value,
                    &v.unit.as_str(),
                ])
                .await?;
        }
    }
    Ok(writer.finish().await?)
}

/// Every check result, one row each, by binary COPY.
async fn copy_probe_results(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Batch,
) -> Result<u64, StoreError> {
    let sink = tx.copy_in(COPY_PROBE_RESULTS).await?;
    let types = [
        Type::TIMESTAMPTZ,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::FLOAT8,
        Type::INT8,
        Type::BOOL,
        Type::INT4,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for r in &batch.probe_results {
        let p = &r.phases;
        let status = r.status.map(i32::from);
        let body_bytes = i64::try_from(r.body_bytes).unwrap_or(i64::MAX);
        let redirects = i32::try_from(r.redirects).unwrap_or(i32::MAX);
        let tls_version = r.tls.as_ref().map(|t| t.version.as_str());
        let not_after = r.tls.as_ref().map(|t| t.cert_not_after);
        writer
            .as_mut()
            .write(&[
                &r.time,
                &r.url,
                &r.method,
                &r.result.as_str(),
                &status,
                &p.total_seconds,
                &p.dns_seconds,
                &p.connect_seconds,
                &p.tls_seconds,
                &p.ttfb_seconds,
                &p.transfer_seconds,
                &body_bytes,
                &r.regex_match,
                &redirects,
                &tls_version,
                &not_after,
                &r.error,
            ])
            .await?;
    }
    Ok(writer.finish().await?)
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("inner reason")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("outer: inner reason")]
    struct SaysItAlready(#[source] Inner);

    #[test]
    fn each_source_is_said_once() {
        assert_eq!(chain(&Outer(Inner)), "outer: inner reason");
        assert_eq!(chain(&SaysItAlready(Inner)), "outer: inner reason");
    }
}
