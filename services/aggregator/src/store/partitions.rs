//! Time partitions (migration 0009): which exist, making the missing ones before a write, and
//! the retention tiers that drop them. Every table that grows with the stream is partitioned
//! by time with no default partition, so a row needs a partition made for its time:
//! maintenance makes them [`AHEAD`], and a flush whose events fall outside what is known to
//! exist makes theirs first ([`Partitions::ensure`]), so a maintenance that fell behind never
//! fails a flush or dead-letters an event.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use prometheus::IntCounter;

use crate::db::StoreError;

/// How far past the clock maintenance makes partitions: the furthest future event time the
/// decoders accept ([`crate::decode::MAX_FUTURE_MS`]), and two days of maintenance that did
/// not run before a flush has to make one itself.
pub const AHEAD: Duration = Duration::from_secs(2 * 86_400);

/// The time-partitioned tables: what migration 0009 lists in `fleet_partitioned`.
pub const PARTITIONED: [&str; 10] = [
    "long_calls",
    "system_metrics",
    "probe_results",
    "call_stats_1m",
    "host_metrics_1m",
    "probe_stats_1m",
    "alerts",
    "call_stats_1h",
    "host_metrics_1h",
    "probe_stats_1h",
];

/// A retention tier: the tables it drops, by age of their partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// One row per event (`long_calls`, `system_metrics`, `probe_results`), daily partitions.
    Raw,
    /// The `AGG_WINDOW_SECS` windows (`*_1m`), daily partitions.
    Minutes,
    /// The hourly rollups (`*_1h`) and `alerts`, monthly partitions.
    Hours,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Self::Raw, Self::Minutes, Self::Hours];

    /// The `tier` of `fleet_partitioned`, and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Minutes => "1m",
            Self::Hours => "1h",
        }
    }
}

/// How long each tier keeps its partitions; `None` keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Option<Duration>,
    pub minutes: Option<Duration>,
    pub hours: Option<Duration>,
}

impl Retention {
    /// Nothing is ever dropped.
    pub const FOREVER: Retention = Retention {
        raw: None,
        minutes: None,
        hours: None,
    };

    pub fn keep(&self, tier: Tier) -> Option<Duration> {
        match tier {
            Tier::Raw => self.raw,
            Tier::Minutes => self.minutes,
            Tier::Hours => self.hours,
        }
    }

    /// What `tier` keeps at `now`: rows at or after the cutoff. A partition is dropped once
    /// its upper bound is at or before it (wholly older), so every row within is kept.
    pub fn cutoff(&self, tier: Tier, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let keep = chrono::Duration::from_std(self.keep(tier)?).ok()?;
        now.checked_sub_signed(keep)
    }
}

/// The partitions known to exist for every table of a width, shared by the flushes, the
/// alert inserts and maintenance. Known from the catalog as of the last refresh: one another
/// instance dropped since fails the write ("no partition of relation"), which then forgets
/// what it knew ([`Partitions::forget`]) and makes it again on the retry.
#[derive(Debug, Clone)]
pub struct Partitions {
    known: Arc<Mutex<Known>>,
    created: IntCounter,
}

/// Lower bounds (seconds since the epoch) of the partitions every table of the width has.
#[derive(Debug, Default)]
struct Known {
    days: BTreeSet<i64>,
    months: BTreeSet<i64>,
}

const MAKE: &str = "SELECT fleet_create_partitions($1, $2)";

// A bound is known when every table of its width has a partition there.
const COVERED: &str = "
SELECT width, extract(epoch FROM lower)::bigint FROM fleet_partitions AS p
GROUP BY width, lower
HAVING count(*) = (SELECT count(*) FROM fleet_partitioned AS f WHERE f.width = p.width)";

impl Partitions {
    /// `created` counts the partitions made.
    pub fn new(created: IntCounter) -> Self {
        Self {
            known: Arc::default(),
            created,
        }
    }

    /// Makes the partitions of every table covering `[lo, hi]` that are not known to exist,
    /// in a transaction of their own (before the write that needs them, never inside it: the
    /// flush would hold the parent's lock until it commits). Returns how many were made.
    pub async fn ensure(
        &self,
        client: &tokio_postgres::Client,
        lo: DateTime<Utc>,
        hi: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if self.covers(lo, hi) {
            return Ok(0);
        }
        let made: i32 = client.query_one(MAKE, &[&lo, &hi]).await?.get(0);
        let made = u64::try_from(made).unwrap_or(0);
        self.created.inc_by(made);
        if made > 0 {
            tracing::info!(made, %lo, %hi, "partitions made");
        }
        self.refresh(client).await?;
        Ok(made)
    }

    /// Reads which partitions exist from the catalog.
    pub async fn refresh(&self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        let mut known = Known::default();
        for row in client.query(COVERED, &[]).await? {
            let (width, lower): (&str, i64) = (row.get(0), row.get(1));
            match width {
                "day" => known.days.insert(lower),
                _ => known.months.insert(lower),
            };
        }
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = known;
        Ok(())
    }

    /// `written`, having forgotten what it knew if the write found a partition missing (one
    /// another instance dropped since): the next [`Partitions::ensure`] makes it again.
    pub fn noticed<T>(&self, written: Result<T, StoreError>) -> Result<T, StoreError> {
        if written.as_ref().is_err_and(StoreError::missing_partition) {
            self.forget();
        }
        written
    }

    fn forget(&self) {
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Known::default();
    }

    fn covers(&self, lo: DateTime<Utc>, hi: DateTime<Utc>) -> bool {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let (days, months) = needed(lo, hi);
        days.iter().all(|d| known.days.contains(d))
            && months.iter().all(|m| known.months.contains(m))
    }
}

/// The lower bounds of the day and month partitions (UTC, seconds since the epoch) that
/// `[lo, hi]` touches.
fn needed(lo: DateTime<Utc>, hi: DateTime<Utc>) -> (Vec<i64>, Vec<i64>) {
    const DAY: i64 = 86_400;
    let (first, last) = (
        lo.timestamp().div_euclid(DAY),
        hi.timestamp().div_euclid(DAY),
    );
    let days = (first..=last).map(|d| d * DAY).collect();
    let month_of = |t: DateTime<Utc>| NaiveDate::from_ymd_opt(t.year(), t.month(), 1);
    let mut months = Vec::new();
    let (mut month, end) = (month_of(lo), month_of(hi));
    while let Some(m) = month.filter(|m| Some(*m) <= end) {
        months.push(
            m.and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp()),
        );
        month = m.checked_add_months(Months::new(1));
    }
    (days, months)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_span_needs_every_day_and_month_it_touches() {
        let (days, months) = needed(at("2026-12-30T23:59:00Z"), at("2027-01-01T00:00:00Z"));
        let day = |d: &str| at(&format!("{d}T00:00:00Z")).timestamp();
        assert_eq!(
            days,
            [day("2026-12-30"), day("2026-12-31"), day("2027-01-01")]
        );
        assert_eq!(months, [day("2026-12-01"), day("2027-01-01")]);
        let (days, months) = needed(at("2026-12-06T10:00:00Z"), at("2026-12-06T10:00:00Z"));
        assert_eq!((days.len(), months.len()), (1, 1));
    }

    #[test]
    fn retention_keeps_what_is_younger_than_the_cutoff_and_forever_keeps_all() {
        let retention = Retention {
            raw: Some(Duration::from_secs(7 * 86_400)),
            minutes: Some(Duration::from_secs(35 * 86_400)),
            hours: None,
        };
        let now = at("2026-12-06T12:00:00Z");
        assert_eq!(
            retention.cutoff(Tier::Raw, now),
            Some(at("2026-11-29T12:00:00Z"))
        );
        assert_eq!(
            retention.cutoff(Tier::Minutes, now),
            Some(at("2026-11-01T12:00:00Z"))
        );
        assert_eq!(retention.cutoff(Tier::Hours, now), None);
        assert_eq!(Retention::FOREVER.cutoff(Tier::Raw, now), None);
    }

    #[test]
    fn a_known_partition_needs_no_round_trip_and_forgetting_asks_again() {
        let partitions = Partitions::new(IntCounter::new("x", "x").unwrap());
        let (lo, hi) = (at("2026-12-06T10:00:00Z"), at("2026-12-06T11:00:00Z"));
        assert!(!partitions.covers(lo, hi));
        {
            let mut known = partitions.known.lock().unwrap();
            known.days.insert(at("2026-12-06T00:00:00Z").timestamp());
            known.months.insert(at("2026-12-01T00:00:00Z").timestamp());
        }
        assert!(partitions.covers(lo, hi));
        assert!(!partitions.covers(lo, at("2026-12-07T00:00:00Z")));
        partitions.forget();
        assert!(!partitions.covers(lo, hi));
    }
}
