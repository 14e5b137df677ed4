//! What every source's decoder shares: the closed set of reasons a message is rejected
//! ([`Invalid`], the `reason` label and dead-letter header), and the checks common to every
//! event (its time within bounds, text PostgreSQL can store, serde's errors classified). Each
//! source's own decoder lives in its folder under [`crate::sources`].

/// Events further in the future than this are `out_of_range` (clock skew allowance).
pub const MAX_FUTURE_MS: i64 = 300_000;

/// Why a message was rejected: a closed set, used as the `reason` metric label and DLQ header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// Larger than `AGG_MAX_MESSAGE_BYTES`.
    Oversize,
    /// No payload (a tombstone) or an empty one.
    Empty,
    /// Not parseable as JSON.
    NotJson,
    /// JSON, but a field (or the whole message) has the wrong type.
    WrongType,
    /// A required field (or the caller key of a legacy message) is missing.
    MissingField,
    /// A `schema_version` this release does not know.
    UnsupportedVersion,
    /// Negative, non-finite or absurdly long duration.
    InvalidDuration,
    /// Start time unparseable, too old or too far in the future.
    OutOfRange,
    /// A value the tables cannot hold: an empty or overlong name, a sample without values, a
    /// NUL character in a text (PostgreSQL rejects it, and one such message would stop every
    /// flush).
    InvalidValue,
    /// Valid to the decoder, but PostgreSQL refused to store it for its data (an overflow, a
    /// constraint): isolated by the flush, dead-lettered with the SQLSTATE.
    RejectedByDatabase,
}

impl Invalid {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [Invalid; 10] = [
        Self::Oversize,
        Self::Empty,
        Self::NotJson,
        Self::WrongType,
        Self::MissingField,
        Self::UnsupportedVersion,
        Self::InvalidDuration,
        Self::OutOfRange,
        Self::InvalidValue,
        Self::RejectedByDatabase,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Oversize => "oversize",
            Self::Empty => "empty",
            Self::NotJson => "not_json",
            Self::WrongType => "wrong_type",
            Self::MissingField => "missing_field",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidDuration => "invalid_duration",
            Self::OutOfRange => "out_of_range",
            Self::InvalidValue => "invalid_value",
            Self::RejectedByDatabase => "rejected_by_database",
        }
    }
}

/// Rejects text PostgreSQL cannot store (a NUL character, which JSON can carry as `\u0000`).
pub(crate) fn no_nul(text: &str) -> Result<(), Invalid> {
    if text.contains('\0') {
        Err(Invalid::InvalidValue)
    } else {
        Ok(())
    }
}

/// serde's error as a reason: a wrong type, or not JSON at all.
pub(crate) fn classify(err: serde_json::Error) -> Invalid {
    match err.classify() {
        serde_json::error::Category::Data => Invalid::WrongType,
        _ => Invalid::NotJson,
    }
}

/// Event-time bounds: not older than the partition's `watermark_ms` (the latest event time read
/// from it) by more than `max_lateness_ms`, nor than the clock by more than `retention_ms`
/// (`AGG_RETENTION_RAW_DAYS`: its partition is dropped, or about to be), and not more than
/// [`MAX_FUTURE_MS`] ahead of the clock. Lateness is the stream's own, so a backlog replayed
/// days later is judged as it was live.
pub fn check_time(
    time_ms: i64,
    now_ms: i64,
    watermark_ms: i64,
    max_lateness_ms: i64,
    retention_ms: i64,
) -> Result<(), Invalid> {
    if time_ms < watermark_ms.saturating_sub(max_lateness_ms)
        || time_ms < now_ms.saturating_sub(retention_ms)
        || time_ms > now_ms + MAX_FUTURE_MS
    {
        Err(Invalid::OutOfRange)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_bounds_are_inclusive_of_the_limits() {
        let now = 1_000_000_000_000;
        let lateness = 86_400_000;
        let forever = i64::MAX;
        let check = |time, watermark| check_time(time, now, watermark, lateness, forever);
        // Late is relative to the watermark, however far behind the clock it is.
        let watermark = now - 2 * lateness;
        assert!(check(watermark - lateness, watermark).is_ok());
        assert_eq!(
            check(watermark - lateness - 1, watermark),
            Err(Invalid::OutOfRange)
        );
        assert!(check(now + MAX_FUTURE_MS, watermark).is_ok());
        assert_eq!(
            check(now + MAX_FUTURE_MS + 1, watermark),
            Err(Invalid::OutOfRange)
        );
        // A partition never read: nothing is late yet, but nothing past the retention either.
        assert!(check(0, i64::MIN).is_ok());
        let retention = 7 * lateness;
        assert!(check_time(now - retention, now, i64::MIN, lateness, retention).is_ok());
        assert_eq!(
            check_time(now - retention - 1, now, i64::MIN, lateness, retention),
            Err(Invalid::OutOfRange)
        );
    }

    #[test]
    fn reasons_have_distinct_label_values() {
        let mut labels: Vec<_> = Invalid::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Invalid::ALL.len());
    }
}
