//! A window table and its hourly twin (`*_1m`, `*_1h`, the same columns): the one statement
//! that merges window rows into both. The flush writes a batch's windows with it, and the
//! in-place upgrade moves the previous schema's windows with it, so that the minutes and the
//! hours are folded the same way wherever the rows come from: sums and counts add, minima and
//! maxima fold, `last` keeps the value with the latest time. An hour is the sum of the windows
//! that start in it, exact at every commit.

/// How a source's window rows merge into its minutes and hours (SQL fragments).
#[derive(Debug)]
pub struct Rollup {
    /// The window table (`AGG_WINDOW_SECS` windows).
    pub minutes: &'static str,
    /// Its hourly twin.
    pub hours: &'static str,
    /// The columns written, in order (not `updated_at`).
    pub columns: &'static str,
    /// The primary key: the conflict target, and the order rows are locked in (two flushes
    /// lock rows in one order, so they cannot deadlock).
    pub key: &'static str,
    /// The `SET` list merging `EXCLUDED` into the stored row `s`.
    pub merge: &'static str,
    /// The select list folding rows `d` of `columns` into hours, in `columns` order; the first
    /// columns up to the hour are the group.
    pub hourly: &'static str,
    /// The `GROUP BY` (and `ORDER BY`) list of `hourly`: the key with the hour.
    pub hourly_key: &'static str,
}

/// The hour an hourly row is keyed by, from a row's `window_start`.
pub const HOUR: &str = "date_bin('1 hour', window_start, timestamptz 'epoch')";

impl Rollup {
    /// `rows`: a query (`SELECT` or `DELETE ... RETURNING`) giving rows of `columns` by name.
    /// Windows whose start passes `minutes_from` go to the minutes, the hours of those passing
    /// `hours_from` to the hours (SQL conditions on `window_start`, e.g. the retention). The
    /// statement returns the rows written to each: (minutes, hours).
    pub fn upsert(&self, rows: &str, minutes_from: &str, hours_from: &str) -> String {
        let Self {
            minutes,
            hours,
            columns,
            key,
            merge,
            hourly,
            hourly_key,
        } = self;
        format!(
            "WITH d AS ({rows}),
m AS (
    INSERT INTO {minutes} AS s ({columns})
    SELECT {columns} FROM d WHERE {minutes_from} ORDER BY {key}
    ON CONFLICT ({key}) DO UPDATE SET {merge}, updated_at = now()
    RETURNING 1
), h AS (
    INSERT INTO {hours} AS s ({columns})
    SELECT {hourly} FROM d WHERE {hours_from} GROUP BY {hourly_key} ORDER BY {hourly_key}
    ON CONFLICT ({key}) DO UPDATE SET {merge}, updated_at = now()
    RETURNING 1
)
SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM h)"
        )
    }
}

/// What an [`Rollup::upsert`] statement returned: rows written to (minutes, hours).
pub fn written(row: &tokio_postgres::Row) -> (u64, u64) {
    let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    (count(0), count(1))
}
