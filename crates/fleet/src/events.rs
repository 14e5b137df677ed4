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
/// Schema version of [`ProbeResult`] written by this release.
pub const PROBE_SCHEMA_VERSION: u32 = 1;

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

impl HostSample {
    /// The value of `metric` for `device` (`""`: host-wide), if the sample has one.
    pub fn value(&self, metric: &str, device: &str) -> Option<&HostValue> {
        self.metrics
            .iter()
            .find(|v| v.metric == metric && v.device == device)
    }
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

/// One check of one website, as published on the web-probes topic (keyed by `url`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Always [`PROBE_SCHEMA_VERSION`] for messages written by this release.
    pub schema_version: u32,
    /// The target as configured.
    pub url: String,
    /// HTTP method used.
    pub method: String,
    /// When the check started (UTC, RFC 3339 with milliseconds).
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    /// What happened.
    pub result: ProbeOutcome,
    /// HTTP status of the last response; absent when there was no response.
    pub status: Option<u16>,
    /// Phase durations of this check only (summed over redirects); a phase that did not
    /// happen is absent.
    pub phases: Phases,
    /// Body bytes read from the last response.
    pub body_bytes: u64,
    /// Whether the body matched the target's regex; absent when there was none to apply.
    pub regex_match: Option<bool>,
    /// Redirects followed.
    pub redirects: u32,
    /// TLS details of the last https connection.
    pub tls: Option<TlsInfo>,
    /// What went wrong, for humans; absent when `result` is `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The closed set of check results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    Ok,
    Timeout,
    DnsError,
    ConnectError,
    TlsError,
    /// A response whose status is not one of the expected ones.
    HttpStatus,
    RegexMismatch,
    /// The body could not be read, or exceeded the size limit.
    BodyError,
}

impl ProbeOutcome {
    /// Every result, for pre-registering metric label values.
    pub const ALL: [ProbeOutcome; 8] = [
        Self::Ok,
        Self::Timeout,
        Self::DnsError,
        Self::ConnectError,
        Self::TlsError,
        Self::HttpStatus,
        Self::RegexMismatch,
        Self::BodyError,
    ];

    /// The name used on the wire, in the database and as a label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Timeout => "timeout",
            Self::DnsError => "dns_error",
            Self::ConnectError => "connect_error",
            Self::TlsError => "tls_error",
            Self::HttpStatus => "http_status",
            Self::RegexMismatch => "regex_mismatch",
            Self::BodyError => "body_error",
        }
    }
}

/// Phase durations in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// Name resolution.
    pub dns_seconds: Option<f64>,
    /// TCP connection.
    pub connect_seconds: Option<f64>,
    /// TLS handshake.
    pub tls_seconds: Option<f64>,
    /// Request sent until the first byte of the response (server processing).
    pub ttfb_seconds: Option<f64>,
    /// First byte until the end of the body.
    pub transfer_seconds: Option<f64>,
    /// The whole check.
    pub total_seconds: f64,
}

impl Phases {
    /// Phase names, in the order of [`Self::values`] and of a check.
    pub const NAMES: [&'static str; 6] = ["dns", "connect", "tls", "ttfb", "transfer", "total"];

    /// Every phase, `None` where it did not happen (`total` always did).
    pub fn values(&self) -> [Option<f64>; 6] {
        [
            self.dns_seconds,
            self.connect_seconds,
            self.tls_seconds,
            self.ttfb_seconds,
            self.transfer_seconds,
            Some(self.total_seconds),
        ]
    }
}

/// TLS details of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// When the server's certificate expires.
    #[serde(with = "rfc3339_millis")]
    pub cert_not_after: DateTime<Utc>,
}

mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        match super::wire_time::format(t) {
            Some(text) => s.serialize_str(std::str::from_utf8(&text).unwrap_or_default()),
            None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = <&str>::deserialize(d)?;
        super::wire_time::parse(s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

/// The wire form of event times, `YYYY-MM-DDTHH:MM:SS.mmmZ`, written and read by fixed-layout
/// fast paths: chrono's formatter and parser are general (a `String` and a format walk per
/// call), and these sit on every message the simulator sends and the aggregator decodes. Times
/// outside years 0–9999, or text in another RFC 3339 form, are `None`: the caller falls back
/// to chrono.
pub mod wire_time {
    use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

    const LAYOUT: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    /// `NaiveDate::from_ymd(1970, 1, 1).num_days_from_ce()`.
    const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

    /// `t` in the wire form, truncated to milliseconds.
    pub fn format(t: &DateTime<Utc>) -> Option<[u8; 24]> {
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = *LAYOUT;
        let mut put = |at: usize, value: u32, digits: u32| {
            for i in 0..digits {
                out[at + i as usize] = b'0' + (value / 10_u32.pow(digits - 1 - i) % 10) as u8;
            }
        };
        put(0, year, 4);
        put(5, t.month(), 2);
        put(8, t.day(), 2);
        put(11, t.hour(), 2);
        put(14, t.minute(), 2);
        put(17, t.second(), 2);
        // A leap second's nanoseconds run past 1e9: it stays in its second, as chrono writes it.
        put(20, (t.nanosecond() / 1_000_000).min(999), 3);
        Some(out)
    }

    /// An RFC 3339 time: the wire form by the fast path, any other (offsets, other
    /// precisions, a leap second) by chrono's parser; `None` when it is none.
    pub fn parse(text: &str) -> Option<DateTime<Utc>> {
        match parse_millis(text.as_bytes()) {
            Some(ms) => DateTime::from_timestamp_millis(ms),
            None => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// Milliseconds since the epoch of text in the wire form, every field in range.
    pub fn parse_millis(b: &[u8]) -> Option<i64> {
        if b.len() != LAYOUT.len() {
            return None;
        }
        for (&c, &want) in b.iter().zip(LAYOUT) {
            let fits = if want == b'd' {
                c.is_ascii_digit()
            } else {
                c == want
            };
            if !fits {
                return None;
            }
        }
        let num = |from: usize, to: usize| {
            b[from..to]
                .iter()
                .fold(0_i64, |n, &c| n * 10 + i64::from(c - b'0'))
        };
        let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let year = i32::try_from(num(0, 4)).ok()?;
        let date = NaiveDate::from_ymd_opt(year, num(5, 7) as u32, num(8, 10) as u32)?;
        let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
        Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + num(20, 23))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_time_fast_paths_agree_with_chrono() {
        let chrono_ms = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_millis()
        };
        // Every week from before the epoch to past 2100, at times of day that move.
        let mut t = DateTime::parse_from_rfc3339("1969-12-30T23:59:59.999Z")
            .unwrap()
            .with_timezone(&Utc);
        let end = DateTime::parse_from_rfc3339("2101-01-02T00:00:00.000Z").unwrap();
        let mut checked = 0;
        while t < end {
            let want = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let text = wire_time::format(&t).unwrap();
            assert_eq!(std::str::from_utf8(&text).unwrap(), want);
            assert_eq!(
                wire_time::parse_millis(&text),
                Some(chrono_ms(&want)),
                "{want}"
            );
            t += chrono::TimeDelta::milliseconds(86_400_000 * 7 + 3_723_456);
            checked += 1;
        }
        assert!(checked > 6_000);
        for leap_day in ["2024-02-29T12:00:00.000Z", "2000-02-29T00:00:00.001Z"] {
            let parsed = wire_time::parse_millis(leap_day.as_bytes());
            assert_eq!(parsed, Some(chrono_ms(leap_day)), "{leap_day}");
        }
        // Another RFC 3339 form, or a field out of range: not the fast path's.
        for other in [
            "2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00.1234Z",
            "2026-12-01T11:00:00.000+01:00",
            "2026-12-01t10:00:00.000z",
            "2026-02-30T10:00:00.000Z",
            "2026-13-01T10:00:00.000Z",
            "2026-12-01T24:00:00.000Z",
            "2026-12-01T10:60:00.000Z",
            "2026-12-01T10:00:60.000Z",
            "2026-12-0xT10:00:00.000Z",
        ] {
            assert_eq!(wire_time::parse_millis(other.as_bytes()), None, "{other}");
        }
        // Year 10000 has no four-digit form: chrono's writer takes it.
        let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(wire_time::format(&far), None);
    }

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
