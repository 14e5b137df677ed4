//! Wire types: what producers publish and the aggregator decodes. Every message carries a
//! `schema_version` so that consumers can reject what they do not understand instead of
//! misreading it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Schema version of [`CallEvent`] written by this release.
pub const CALL_SCHEMA_VERSION: u32 = 1;

/// Default topic names; each is overridable by its service's settings.
pub mod topics {
    /// Phone calls from `call-simulator`.
    pub const CALLS: &str = "calls";
    /// Samples from `host-metrics`.
    pub const HOST_METRICS: &str = "host-metrics";
    /// Checks from `web-prober`.
    pub const WEB_PROBES: &str = "web-probes";
    /// Messages the aggregator could not use, unchanged, with headers saying why.
    pub const DLQ: &str = "fleet-dlq";
}

/// One phone call, as published on the calls topic (keyed by `caller`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    /// Always [`CALL_SCHEMA_VERSION`] for messages written by this release.
    pub schema_version: u32,
    /// Unique id of the call.
    pub call_id: Uuid,
    /// Calling number, `0041` + 7 digits.
    pub caller: String,
    /// Called number, `0041` + 7 digits.
    pub callee: String,
    /// When the call started (UTC, RFC 3339 with milliseconds).
    #[serde(with = "rfc3339_millis")]
    pub start_time: DateTime<Utc>,
    /// Duration in seconds, millisecond resolution, never zero.
    pub duration_secs: f64,
}

mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <&str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_event_round_trips_through_json_with_millisecond_times() {
        let event = CallEvent {
            schema_version: CALL_SCHEMA_VERSION,
            call_id: Uuid::from_u128(7),
            caller: "00411234567".into(),
            callee: "00417654321".into(),
            start_time: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            duration_secs: 95.25,
        };
        let json = serde_json::to_string(&event).unwrap();
        assert!(
            json.contains(r#""start_time":"2023-11-14T22:13:20.123Z""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<CallEvent>(&json).unwrap(), event);
    }
}
