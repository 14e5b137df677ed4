//! The check results' SQL: every result copied into `probe_results`, the window statistics
//! added into `probe_stats_1m`.

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::Probes;
use crate::db::StoreError;
use crate::metrics::Metrics;
use crate::part::{Write, Written};

/// The tables a flush of check results writes.
pub(super) const TABLES: [&str; 2] = ["probe_results", "probe_stats_1m"];

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

/// Writes the check results of a batch (see the module docs).
pub(super) async fn write(probes: &Probes, to: &Write<'_>) -> Result<Written, StoreError> {
    let (mut results, mut windows) = (0, 0);
    if !probes.results.is_empty() {
        results = copy_results(probes, to).await?;
        windows = upsert_windows(probes, to).await?;
    }
    let stored = probes.results.len() as u64;
    Ok(Written {
        rows: vec![(TABLES[0], results), (TABLES[1], windows)],
        committed: Box::new(move |m: &Metrics| m.probe_results.inc_by(stored)),
    })
}

async fn upsert_windows(probes: &Probes, to: &Write<'_>) -> Result<u64, StoreError> {
    use fleet::events::ProbeOutcome as O;
    let windows = probes.sorted_windows();
    let urls: Vec<&str> = windows.iter().map(|(k, _)| k.0.as_str()).collect();
    let starts: Vec<i64> = windows.iter().map(|(k, _)| k.1).collect();
    let checks: Vec<i64> = windows.iter().map(|(_, w)| w.checks).collect();
    let by = |o: O| -> Vec<i64> { windows.iter().map(|(_, w)| w.count(o)).collect() };
    let sums: Vec<f64> = windows.iter().map(|(_, w)| w.latency_sum).collect();
    let mins: Vec<f64> = windows.iter().map(|(_, w)| w.latency_min).collect();
    let maxs: Vec<f64> = windows.iter().map(|(_, w)| w.latency_max).collect();
    let stmt = to.tx.prepare_cached(UPSERT_PROBE_WINDOWS).await?;
    Ok(to
        .tx
        .execute(
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
        .await?)
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
