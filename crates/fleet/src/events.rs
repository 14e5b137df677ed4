//! Wire types: what producers publish and the aggregator decodes. Every message carries a
//! `schema_version` so that consumers can reject what they do not understand instead of
//! misreading it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Schema version of [`CallEvent`] written by this release.
pub const CALL_SCHEMA_VERSION: u32 = 1;
/// Schema version of [`HostSample`] written by this release.
pub const HOST_SCHEMA_VERSION: u32 = 1;

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

/// One sample of a host, as published on the host-metrics topic (keyed by `host`): every value
/// taken at `time`, each with its unit. Per-device values (a core, a mount, an interface) carry
/// the device; host-wide values have none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// Always [`HOST_SCHEMA_VERSION`] for messages written by this release.
    pub schema_version: u32,
    /// The host's id (`HOST_ID`, by default its hostname).
    pub host: String,
    /// When the sample was taken (UTC, RFC 3339 with milliseconds).
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    /// The values.
    pub metrics: Vec<HostValue>,
}

/// One value of a [`HostSample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostValue {
    /// What was measured, e.g. `cpu_usage`, `memory_available`, `network_receive_rate`.
    pub metric: String,
    /// The core, mount point, block device or interface; absent for host-wide values.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    /// The value, always finite.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
}

/// Units of host values: base units, as Prometheus uses them, except CPU and memory usage in
/// percent, as the demo this replaces reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Percent,
    Bytes,
    BytesPerSecond,
    Packets,
    PacketsPerSecond,
    Hertz,
    Seconds,
    /// Load average: runnable and uninterruptible tasks.
    Tasks,
    /// A plain count (processes, cores).
    Count,
}

impl Unit {
    /// The name used on the wire and in the `unit` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Percent => "percent",
            Self::Bytes => "bytes",
            Self::BytesPerSecond => "bytes_per_second",
            Self::Packets => "packets",
            Self::PacketsPerSecond => "packets_per_second",
            Self::Hertz => "hertz",
            Self::Seconds => "seconds",
            Self::Tasks => "tasks",
            Self::Count => "count",
        }
    }
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

    #[test]
    fn host_sample_round_trips_and_omits_empty_devices() {
        let sample = HostSample {
            schema_version: HOST_SCHEMA_VERSION,
            host: "web-1".into(),
            time: DateTime::from_timestamp_millis(1_700_000_000_000).unwrap(),
            metrics: vec![
                HostValue {
                    metric: "cpu_usage".into(),
                    device: String::new(),
                    value: 12.5,
                    unit: Unit::Percent,
                },
                HostValue {
                    metric: "network_receive_rate".into(),
                    device: "eth0".into(),
                    value: 1024.0,
                    unit: Unit::BytesPerSecond,
                },
            ],
        };
        let json = serde_json::to_string(&sample).unwrap();
        assert!(
            json.contains(r#"{"metric":"cpu_usage","value":12.5,"unit":"percent"}"#),
            "{json}"
        );
        assert!(json.contains(r#""unit":"bytes_per_second""#), "{json}");
        assert_eq!(serde_json::from_str::<HostSample>(&json).unwrap(), sample);
    }
}
