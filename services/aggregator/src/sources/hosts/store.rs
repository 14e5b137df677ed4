//! The host samples' SQL: each (host, time) claimed once in `host_samples_seen`, the values of
//! the claimed samples copied into `system_metrics`, their window deltas added into
//! `host_metrics_1m` and `host_metrics_1h`.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use fleet::events::HostSample;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::{HostWindow, HostWindowKey, Hosts, windows_of};
use crate::db::StoreError;
use crate::metrics::Metrics;
use crate::part::{Write, Written};
use crate::rollup::{Rollup, written};

/// The tables a flush of host samples writes.
pub(super) const TABLES: [&str; 3] = ["system_metrics", "host_metrics_1m", "host_metrics_1h"];

const CLAIM_HOST_SAMPLES: &str = "
INSERT INTO host_samples_seen (host, time)
SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING time, host";

const PRUNE_HOST_SAMPLES_SEEN: &str = "DELETE FROM host_samples_seen WHERE time < $1";

const COPY_SYSTEM_METRICS: &str =
    "COPY system_metrics (time, host, metric, device, value, unit) FROM STDIN BINARY";

/// How host windows merge into `host_metrics_1m` and `host_metrics_1h`: `last` (and its unit)
/// is the value with the latest time.
pub(super) const ROLLUP: Rollup = Rollup {
    minutes: "host_metrics_1m",
    hours: "host_metrics_1h",
    columns: "host, metric, device, window_start, window_secs, unit, samples, sum, min, max, \
              last_time, last",
    key: "host, metric, device, window_start, window_secs",
    merge: "samples = s.samples + EXCLUDED.samples, \
            sum = s.sum + EXCLUDED.sum, \
            min = LEAST(s.min, EXCLUDED.min), \
            max = GREATEST(s.max, EXCLUDED.max), \
            last = CASE WHEN EXCLUDED.last_time >= s.last_time THEN EXCLUDED.last ELSE s.last END, \
            unit = CASE WHEN EXCLUDED.last_time >= s.last_time THEN EXCLUDED.unit ELSE s.unit END, \
            last_time = GREATEST(s.last_time, EXCLUDED.last_time)",
    hourly: concat!(
        "host, metric, device, date_bin('1 hour', window_start, timestamptz 'epoch'), 3600, ",
        "(array_agg(unit ORDER BY last_time DESC))[1], sum(samples), sum(sum), min(min), ",
        "max(max), max(last_time), (array_agg(last ORDER BY last_time DESC))[1]"
    ),
    hourly_key: "1, 2, 3, 4",
};

/// A batch's host windows, as rows of [`ROLLUP`]'s columns.
const WINDOW_ROWS: &str = "
SELECT h AS host, m AS metric, d AS device, to_timestamp(w) AS window_start,
       $1::int AS window_secs, u AS unit, n AS samples, su AS sum, mi AS min, ma AS max,
       to_timestamp(lt / 1000.0) AS last_time, l AS last
FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
            $8::float8[], $9::float8[], $10::float8[], $11::bigint[], $12::float8[])
    AS t(h, m, d, w, u, n, su, mi, ma, lt, l)";

static UPSERT_HOST_WINDOWS: LazyLock<String> =
    LazyLock::new(|| ROLLUP.upsert(WINDOW_ROWS, "true", "true"));

/// Writes the host samples of a batch (see the module docs).
pub(super) async fn write(hosts: &Hosts, to: &Write<'_>) -> Result<Written, StoreError> {
    let (mut values, mut windows, mut duplicates) = (0, (0, 0), 0);
    if !hosts.samples.is_empty() {
        let kept = claim_host_samples(to.tx, &hosts.samples).await?;
        duplicates = (hosts.samples.len() - kept.len()) as u64;
        values = copy_host_samples(to.tx, &kept).await?;
        windows = if duplicates == 0 {
            upsert_windows(to, hosts.sorted_windows()).await?
        } else {
            // Some were duplicates: the batch's windows counted them.
            let kept = windows_of(i64::from(to.window_secs), kept.iter().copied());
            upsert_windows(to, kept.iter().map(|(k, w)| (k, w)).collect()).await?
        };
    }
    let stored = hosts.samples.len() as u64 - duplicates;
    Ok(Written {
        rows: vec![
            (TABLES[0], values),
            (TABLES[1], windows.0),
            (TABLES[2], windows.1),
        ],
        committed: Box::new(move |m: &Metrics| {
            m.host_samples.inc_by(stored);
            m.duplicate_host_samples.inc_by(duplicates);
        }),
    })
}

/// Forgets which host samples older than `before` were stored: copies that old are rejected as
/// late before they reach a flush. Returns how many keys went.
pub(super) async fn prune_seen(pool: &Pool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    Ok(client.execute(PRUNE_HOST_SAMPLES_SEEN, &[&before]).await?)
}

/// Upserts host window deltas, given in key order; rows written to the minutes and the hours.
async fn upsert_windows(
    to: &Write<'_>,
    windows: Vec<(&HostWindowKey, &HostWindow)>,
) -> Result<(u64, u64), StoreError> {
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
    let stmt = to.tx.prepare_cached(&UPSERT_HOST_WINDOWS).await?;
    let row = (to.tx)
        .query_one(
            &stmt,
            &[
                &to.window_secs,
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
        .await?;
    Ok(written(&row))
}

/// The host samples of a batch whose (host, time) this transaction could claim, in order:
/// each sample is stored once, however many messages carried it.
async fn claim_host_samples<'a>(
    tx: &Transaction<'_>,
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
    tx: &Transaction<'_>,
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
