//! The calls' SQL: window deltas added into `call_stats_1m` and `call_stats_1h`, long calls copied into
//! `long_calls`, and the all-time totals in `call_totals`.

use std::sync::LazyLock;

use chrono::DateTime;
use deadpool_postgres::Pool;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::{Calls, WindowDelta};
use crate::db::StoreError;
use crate::metrics::Metrics;
use crate::part::{Write, Written};
use crate::rollup::{Rollup, written};

/// The tables a flush of calls writes.
pub(super) const TABLES: [&str; 3] = ["call_stats_1m", "call_stats_1h", "long_calls"];

/// How call windows merge into `call_stats_1m` and `call_stats_1h`.
pub(super) const ROLLUP: Rollup = Rollup {
    minutes: "call_stats_1m",
    hours: "call_stats_1h",
    columns: "window_start, window_secs, calls, duration_sum_ms, duration_min_ms, \
              duration_max_ms, long_calls",
    key: "window_start, window_secs",
    merge: "calls = s.calls + EXCLUDED.calls, \
            duration_sum_ms = s.duration_sum_ms + EXCLUDED.duration_sum_ms, \
            duration_min_ms = LEAST(s.duration_min_ms, EXCLUDED.duration_min_ms), \
            duration_max_ms = GREATEST(s.duration_max_ms, EXCLUDED.duration_max_ms), \
            long_calls = s.long_calls + EXCLUDED.long_calls",
    hourly: concat!(
        "date_bin('1 hour', window_start, timestamptz 'epoch'), 3600, sum(calls), ",
        "sum(duration_sum_ms), min(duration_min_ms), max(duration_max_ms), sum(long_calls)"
    ),
    hourly_key: "1",
};

/// A batch's call windows, as rows of [`ROLLUP`]'s columns.
const WINDOW_ROWS: &str = "
SELECT to_timestamp(w) AS window_start, $1::int AS window_secs, c AS calls,
       su AS duration_sum_ms, mi AS duration_min_ms, ma AS duration_max_ms, l AS long_calls
FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])
    AS t(w, c, su, mi, ma, l)";

static UPSERT_WINDOWS: LazyLock<String> =
    LazyLock::new(|| ROLLUP.upsert(WINDOW_ROWS, "true", "true"));

const COPY_LONG_CALLS: &str = "COPY long_calls \
    (topic, topic_id, partition, kafka_offset, call_id, caller, callee, start_time, duration_ms) \
    FROM STDIN BINARY";

const ADD_TOTALS: &str = "UPDATE call_totals SET calls = calls + $1, \
    duration_ms = duration_ms + $2, long_calls = long_calls + $3 \
    RETURNING calls, duration_ms, long_calls";

const LOAD_TOTALS: &str = "SELECT calls, duration_ms, long_calls FROM call_totals";

/// All-time totals of the calls in PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Totals {
    calls: i64,
    duration_ms: i64,
    long_calls: i64,
}

impl Totals {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            calls: row.get(0),
            duration_ms: row.get(1),
            long_calls: row.get(2),
        }
    }

    /// The `aggregator_stored_*` gauges.
    fn show(self, m: &Metrics) {
        m.stored_calls.set(self.calls);
        m.stored_call_duration_seconds
            .set(self.duration_ms as f64 / 1000.0);
        m.stored_long_calls.set(self.long_calls);
    }
}

/// Sets the `aggregator_stored_*` gauges from the stored totals, at start.
pub(super) async fn restore_totals(pool: &Pool, metrics: &Metrics) -> Result<(), StoreError> {
    let row = pool.get().await?.query_one(LOAD_TOTALS, &[]).await?;
    Totals::from_row(&row).show(metrics);
    Ok(())
}

/// Writes the calls of a batch (see the module docs).
pub(super) async fn write(calls: &Calls, to: &Write<'_>) -> Result<Written, StoreError> {
    let windows = upsert_windows(calls, to).await?;
    let long_calls = copy_long_calls(calls, to).await?;
    let totals = if calls.calls > 0 {
        let stmt = to.tx.prepare_cached(ADD_TOTALS).await?;
        let long = calls.long_calls.len() as i64;
        let row = (to.tx)
            .query_one(&stmt, &[&(calls.calls as i64), &calls.duration_ms, &long])
            .await?;
        Some(Totals::from_row(&row))
    } else {
        None
    };
    let (count, duration_ms, long) = (calls.calls, calls.duration_ms, calls.long_calls.len());
    let durations = calls.durations_ms.clone();
    Ok(Written {
        rows: vec![
            (TABLES[0], windows.0),
            (TABLES[1], windows.1),
            (TABLES[2], long_calls),
        ],
        committed: Box::new(move |m: &Metrics| {
            for duration_ms in durations {
                m.call_duration.observe(duration_ms as f64 / 1000.0);
            }
            m.calls.inc_by(count);
            m.call_duration_seconds_total
                .inc_by(duration_ms as f64 / 1000.0);
            m.long_calls.inc_by(long as u64);
            if let Some(totals) = totals {
                totals.show(m);
            }
        }),
    })
}

/// Rows written to the minutes and to the hours.
async fn upsert_windows(calls: &Calls, to: &Write<'_>) -> Result<(u64, u64), StoreError> {
    let windows = calls.sorted_windows();
    if windows.is_empty() {
        return Ok((0, 0));
    }
    let column =
        |f: fn(&WindowDelta) -> i64| -> Vec<i64> { windows.iter().map(|(_, w)| f(w)).collect() };
    let starts: Vec<i64> = windows.iter().map(|(s, _)| *s).collect();
    let stmt = to.tx.prepare_cached(&UPSERT_WINDOWS).await?;
    let row = (to.tx)
        .query_one(
            &stmt,
            &[
                &to.window_secs,
                &starts,
                &column(|w| w.calls),
                &column(|w| w.duration_sum_ms),
                &column(|w| w.duration_min_ms),
                &column(|w| w.duration_max_ms),
                &column(|w| w.long_calls),
            ],
        )
        .await?;
    Ok(written(&row))
}

async fn copy_long_calls(calls: &Calls, to: &Write<'_>) -> Result<u64, StoreError> {
    if calls.long_calls.is_empty() {
        return Ok(0);
    }
    let sink = to.tx.copy_in(COPY_LONG_CALLS).await?;
    let types = [
        Type::TEXT,
        Type::INT8,
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
    let topic = to.topic;
    for call in &calls.long_calls {
        let start = DateTime::from_timestamp_millis(call.start_ms).unwrap_or_default();
        writer
            .as_mut()
            .write(&[
                &topic,
                &call.topic_id,
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
    Ok(writer.finish().await?)
}
