//! Decoding of host samples (`host-metrics`, schema v1). Values are checked one by one: a
//! sample is stored whole or rejected whole, never in part.

use chrono::{DateTime, Utc};
use fleet::events::{HostSample, HostValue, Unit};
use serde::Deserialize;

use crate::decode::{Invalid, classify, no_nul};

/// Longest host id (a DNS name).
const MAX_HOST_LEN: usize = 253;
/// The largest magnitude of a host value: no measurement comes near it (a zettabyte is 1e21
/// bytes), and the sums of the windows stay finite in float8 (whose limit is 1.8e308) for
/// any number of values it could add.
pub const MAX_ABS_VALUE: f64 = 1e100;
/// Longest metric or device name.
const MAX_NAME_LEN: usize = 255;
/// Most values in one sample (a large host has a few hundred).
pub const MAX_VALUES: usize = 10_000;

/// Every field optional, so that a missing one is `missing_field` and not `wrong_type`.
#[derive(Debug, Deserialize)]
struct Raw {
    schema_version: Option<u32>,
    host: Option<String>,
    time: Option<String>,
    metrics: Option<Vec<RawValue>>,
}

#[derive(Debug, Deserialize)]
struct RawValue {
    metric: Option<String>,
    #[serde(default)]
    device: String,
    value: Option<f64>,
    unit: Option<Unit>,
}

/// Decodes and validates one host message.
pub fn decode_host(payload: Option<&[u8]>, max_bytes: usize) -> Result<HostSample, Invalid> {
    let payload = payload.filter(|p| !p.is_empty()).ok_or(Invalid::Empty)?;
    if payload.len() > max_bytes {
        return Err(Invalid::Oversize);
    }
    let raw: Raw = serde_json::from_slice(payload).map_err(classify)?;
    match raw.schema_version {
        Some(1) => {}
        Some(_) => return Err(Invalid::UnsupportedVersion),
        None => return Err(Invalid::MissingField),
    }
    let host = raw.host.ok_or(Invalid::MissingField)?;
    let time = raw.time.ok_or(Invalid::MissingField)?;
    let time: DateTime<Utc> = DateTime::parse_from_rfc3339(&time)
        .map_err(|_| Invalid::OutOfRange)?
        .with_timezone(&Utc);
    let raw_values = raw.metrics.ok_or(Invalid::MissingField)?;
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return Err(Invalid::InvalidValue);
    }
    no_nul(&host)?;
    if raw_values.is_empty() || raw_values.len() > MAX_VALUES {
        return Err(Invalid::InvalidValue);
    }
    let mut metrics = Vec::with_capacity(raw_values.len());
    for v in raw_values {
        let metric = v.metric.ok_or(Invalid::MissingField)?;
        let value = v.value.ok_or(Invalid::MissingField)?;
        let unit = v.unit.ok_or(Invalid::MissingField)?;
        if metric.is_empty() || metric.len() > MAX_NAME_LEN || v.device.len() > MAX_NAME_LEN {
            return Err(Invalid::InvalidValue);
        }
        no_nul(&metric)?;
        no_nul(&v.device)?;
        // JSON cannot carry NaN or infinities, but a huge exponent parses to infinity; and a
        // finite value near float8's limit overflows the window's sum once added to another.
        if !value.is_finite() || value.abs() > MAX_ABS_VALUE {
            return Err(Invalid::InvalidValue);
        }
        metrics.push(HostValue {
            metric,
            device: v.device,
            value,
            unit,
        });
    }
    Ok(HostSample {
        schema_version: 1,
        host,
        time,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;

    fn decode(json: &str) -> Result<HostSample, Invalid> {
        decode_host(Some(json.as_bytes()), MAX)
    }

    #[test]
    fn a_v1_sample_decodes_with_devices_and_units() {
        let sample = decode(
            r#"{"schema_version":1,"host":"h1","time":"2026-11-23T10:00:00.250Z","metrics":[
                {"metric":"cpu_usage","value":12.5,"unit":"percent"},
                {"metric":"network_receive_bytes","device":"eth0","value":1e9,"unit":"bytes"}]}"#,
        )
        .unwrap();
        assert_eq!(sample.host, "h1");
        assert_eq!(sample.time.timestamp_millis(), 1_795_428_000_250);
        assert_eq!(sample.metrics.len(), 2);
        assert_eq!(sample.metrics[0].device, "");
        assert_eq!(sample.metrics[1].device, "eth0");
        assert_eq!(sample.metrics[1].unit, Unit::Bytes);
    }

    #[test]
    fn each_defect_has_its_reason() {
        let ok_value = r#"{"metric":"m","value":1,"unit":"count"}"#;
        let with = |host: &str, values: &str| {
            format!(
                r#"{{"schema_version":1,"host":{host},"time":"2026-11-23T10:00:00Z","metrics":[{values}]}}"#
            )
        };
        let cases = [
            ("".to_string(), Invalid::Empty),
            ("{".to_string(), Invalid::NotJson),
            ("[1]".to_string(), Invalid::WrongType),
            (r#"{"host":"h"}"#.to_string(), Invalid::MissingField),
            (
                r#"{"schema_version":2,"host":"h"}"#.to_string(),
                Invalid::UnsupportedVersion,
            ),
            (with("\"\"", ok_value), Invalid::InvalidValue),
            (with("\"h\"", ""), Invalid::InvalidValue),
            (with("7", ok_value), Invalid::WrongType),
            (
                with("\"h\"", r#"{"metric":"m","value":1e999,"unit":"count"}"#),
                Invalid::NotJson,
            ),
            (
                with("\"h\"", r#"{"metric":"","value":1,"unit":"count"}"#),
                Invalid::InvalidValue,
            ),
            (
                with("\"h\"", r#"{"metric":"m","value":1,"unit":"furlongs"}"#),
                Invalid::WrongType,
            ),
            (
                with("\"h\"", r#"{"metric":"m","unit":"count"}"#),
                Invalid::MissingField,
            ),
            (
                with(
                    "\"h\"",
                    r#"{"metric":"m","device":"eth\u0000","value":1,"unit":"count"}"#,
                ),
                Invalid::InvalidValue,
            ),
            (with("\"h\\u0000\"", ok_value), Invalid::InvalidValue),
            // Two of these in one window would overflow its sum in PostgreSQL.
            (
                with("\"h\"", r#"{"metric":"m","value":1.7e308,"unit":"count"}"#),
                Invalid::InvalidValue,
            ),
            (
                with("\"h\"", r#"{"metric":"m","value":-1e101,"unit":"count"}"#),
                Invalid::InvalidValue,
            ),
            (
                r#"{"schema_version":1,"host":"h","time":"yesterday","metrics":[]}"#.to_string(),
                Invalid::OutOfRange,
            ),
        ];
        for (json, reason) in cases {
            assert_eq!(decode(&json).map(|_| ()), Err(reason), "{json}");
        }
    }

    #[test]
    fn oversize_and_absent_payloads_are_rejected_before_parsing() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100));
        assert_eq!(
            decode_host(Some(big.as_bytes()), 64).map(|_| ()),
            Err(Invalid::Oversize)
        );
        assert_eq!(decode_host(None, MAX).map(|_| ()), Err(Invalid::Empty));
    }

    #[test]
    fn what_the_producer_writes_decodes_unchanged() {
        let sample = HostSample {
            schema_version: 1,
            host: "db-2".into(),
            time: DateTime::from_timestamp_millis(1_763_892_000_000).unwrap(),
            metrics: vec![HostValue {
                metric: "load_1".into(),
                device: String::new(),
                value: 0.75,
                unit: Unit::Tasks,
            }],
        };
        let json = serde_json::to_vec(&sample).unwrap();
        assert_eq!(decode_host(Some(&json), MAX).unwrap(), sample);
    }
}
