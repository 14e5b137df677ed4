//! The check results' SQL: every result copied into `probe_results`, the window statistics
//! added into `probe_stats_1m` and `probe_stats_1h`.

use std::sync::LazyLock;

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::Probes;
use crate::db::StoreError;
use crate::metrics::Metrics;
use crate::part::{Write, Written};
use crate::rollup::{Rollup, written};

/// The tables a flush of check results writes.
pub(super) const TABLES: [&str; 3] = ["probe_results", "probe_stats_1m", "probe_stats_1h"];

const COPY_PROBE_RESULTS: &str = "COPY probe_results \
    (time, url, method, result, status, response_time_seconds, dns_seconds, connect_seconds, \
     tls_seconds, ttfb_seconds, transfer_seconds, body_bytes, regex_match, redirects, \
     tls_version, cert_not_after, error) FROM STDIN BINARY";

/// How check windows merge into `probe_stats_1m` and `probe_stats_1h`.
pub(super) const ROLLUP: Rollup = Rollup {
    minutes: "probe_stats_1m",
    hours: "probe_stats_1h",
    columns: "url, window_start, window_secs, checks, ok, timeouts, dns_errors, connect_errors, \
              tls_errors, http_status_errors, regex_mismatches, body_errors, \
              latency_sum_seconds, latency_min_seconds, latency_max_seconds",
    key: "url, window_start, window_secs",
    merge: "checks = s.checks + EXCLUDED.checks, \
            ok = s.ok + EXCLUDED.ok, \
            timeouts = s.timeouts + EXCLUDED.timeouts, \
            dns_errors = s.dns_errors + EXCLUDED.dns_errors, \
            connect_errors = s.connect_errors + EXCLUDED.connect_errors, \
            tls_errors = s.tls_errors + EXCLUDED.tls_errors, \
            http_status_errors = s.http_status_errors + EXCLUDED.http_status_errors, \
            regex_mismatches = s.regex_mismatches + EXCLUDED.regex_mismatches, \
            body_errors = s.body_errors + EXCLUDED.body_errors, \
            latency_sum_seconds = s.latency_sum_seconds + EXCLUDED.latency_sum_seconds, \
            latency_min_seconds = LEAST(s.latency_min_seconds, EXCLUDED.latency_min_seconds), \
            latency_max_seconds = GREATEST(s.latency_max_seconds, EXCLUDED.latency_max_seconds)",
    hourly: concat!(
        "url, date_bin('1 hour', window_start, timestamptz 'epoch'), 3600, sum(checks), sum(ok), ",
        "sum(timeouts), sum(dns_errors), sum(connect_errors), sum(tls_errors), ",
        "sum(http_status_errors), sum(regex_mismatches), sum(body_errors), ",
        "sum(latency_sum_seconds), min(latency_min_seconds), max(latency_max_seconds)"
    ),
    hourly_key: "1, 2",
};

/// A batch's check windows, as rows of [`ROLLUP`]'s columns.
const WINDOW_ROWS: &str = "
SELECT u AS url, to_timestamp(w) AS window_start, $1::int AS window_secs, c AS checks, o AS ok,
       t AS timeouts, d AS dns_errors, ce AS connect_errors, te AS tls_errors,
       he AS http_status_errors, re AS regex_mismatches, be AS body_errors,
       su AS latency_sum_seconds, mi AS latency_min_seconds, ma AS latency_max_seconds
FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[],
            $13::float8[], $14::float8[], $15::float8[])
    AS x(u, w, c, o, t, d, ce, te, he, re, be, su, mi, ma)";

static UPSERT_PROBE_WINDOWS: LazyLock<String> =
    LazyLock::new(|| ROLLUP.upsert(WINDOW_ROWS, "true", "true"));

/// Writes the check results of a batch (see the module docs).
pub(super) async fn write(probes: &Probes, to: &Write<'_>) -> Result<Written, StoreError> {
    let (mut results, mut windows) = (0, (0, 0));
    if !probes.results.is_empty() {
        results = copy_results(probes, to).await?;
        windows = upsert_windows(probes, to).await?;
    }
    let stored = probes.results.len() as u64;
    Ok(Written {
        rows: vec![
            (TABLES[0], results),
            (TABLES[1], windows.0),
            (TABLES[2], windows.1),
        ],
        committed: Box::new(move |m: &Metrics| m.probe_results.inc_by(stored)),
    })
}

/// Rows written to the minutes and the hours.
async fn upsert_windows(probes: &Probes, to: &Write<'_>) -> Result<(u64, u64), StoreError> {
    use fleet::events::ProbeOutcome as O;
    let windows = probes.sorted_windows();
    let urls: Vec<&str> = windows.iter().map(|(k, _)| k.0.as_str()).collect();
    let starts: Vec<i64> = windows.iter().map(|(k, _)| k.1).collect();
    let checks: Vec<i64> = windows.iter().map(|(_, w)| w.checks).collect();
    let by = |o: O| -> Vec<i64> { windows.iter().map(|(_, w)| w.count(o)).collect() };
    let sums: Vec<f64> = windows.iter().map(|(_, w)| w.latency_sum).collect();
    let mins: Vec<f64> = windows.iter().map(|(_, w)| w.latency_min).collect();
    let maxs: Vec<f64> = windows.iter().map(|(_, w)| w.latency_max).collect();
    let stmt = to.tx.prepare_cached(&UPSERT_PROBE_WINDOWS).await?;
    let row = (to.tx)
        .query_one(
            &stmt,
            &[
                &to.window_secs,
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
        .await?;
    Ok(written(&row))
}

/// Every check result, one row each, by binary COPY.
async fn copy_results(probes: &Probes, to: &Write<'_>) -> Result<u64, StoreError> {
    let sink = to.tx.copy_in(COPY_PROBE_RESULTS).await?;
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
    for r in &probes.results {
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
