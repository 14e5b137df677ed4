//! Decoding of web check results (`web-prober`, schema v1).

use fleet::events::ProbeResult;
use serde::Deserialize;

use crate::decode::{Invalid, classify, no_nul};

/// Longest URL stored.
const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Deserialize)]
struct Head {
    schema_version: Option<u32>,
}

/// Decodes and validates one result.
pub fn decode_probe(payload: Option<&[u8]>, max_bytes: usize) -> Result<ProbeResult, Invalid> {
    let payload = payload.filter(|p| !p.is_empty()).ok_or(Invalid::Empty)?;
    if payload.len() > max_bytes {
        return Err(Invalid::Oversize);
    }
    let head: Head = serde_json::from_slice(payload).map_err(classify)?;
    match head.schema_version {
        Some(1) => {}
        Some(_) => return Err(Invalid::UnsupportedVersion),
        None => return Err(Invalid::MissingField),
    }
    let r: ProbeResult = serde_json::from_slice(payload).map_err(|e| {
        // serde reports a missing field as a data error; keep the reasons apart.
        if e.to_string().starts_with("missing field") {
            Invalid::MissingField
        } else {
            classify(e)
        }
    })?;
    let phases_ok = r
        .phases
        .values()
        .into_iter()
        .flatten()
        .all(|s| s.is_finite() && (0.0..=86_400.0).contains(&s));
    let status_ok = r.status.is_none_or(|s| (100..=599).contains(&s));
    if r.url.is_empty()
        || r.url.len() > MAX_URL_LEN
        || r.method.is_empty()
        || r.method.len() > 16
        || !phases_ok
        || !status_ok
    {
        return Err(Invalid::InvalidValue);
    }
    no_nul(&r.url)?;
    no_nul(&r.method)?;
    no_nul(r.error.as_deref().unwrap_or_default())?;
    no_nul(r.tls.as_ref().map_or("", |t| t.version.as_str()))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use fleet::events::{Phases, ProbeOutcome, TlsInfo};

    use super::*;

    fn result() -> ProbeResult {
        ProbeResult {
            schema_version: 1,
            url: "https://example.com/".into(),
            method: "GET".into(),
            time: DateTime::from_timestamp_millis(1_795_428_000_000).unwrap(),
            result: ProbeOutcome::Ok,
            status: Some(200),
            phases: Phases {
                dns_seconds: Some(0.001),
                connect_seconds: Some(0.002),
                tls_seconds: Some(0.01),
                ttfb_seconds: Some(0.05),
                transfer_seconds: Some(0.001),
                total_seconds: 0.065,
            },
            body_bytes: 1234,
            regex_match: Some(true),
            redirects: 0,
            tls: Some(TlsInfo {
                version: "TLSv1.3".into(),
                cert_not_after: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            }),
            error: None,
        }
    }

    #[test]
    fn what_the_prober_writes_decodes_unchanged() {
        let json = serde_json::to_vec(&result()).unwrap();
        assert_eq!(decode_probe(Some(&json), 65_536).unwrap(), result());
    }

    #[test]
    fn each_defect_has_its_reason() {
        let mut bad_status = result();
        bad_status.status = Some(42);
        let mut negative = result();
        negative.phases.ttfb_seconds = Some(-1.0);
        let mut no_url = result();
        no_url.url.clear();
        let mut nul = result();
        nul.error = Some("bad\0byte".into());
        let encode = |r: &ProbeResult| serde_json::to_string(r).unwrap();
        let cases = [
            (encode(&bad_status), Invalid::InvalidValue),
            (encode(&negative), Invalid::InvalidValue),
            (encode(&no_url), Invalid::InvalidValue),
            (encode(&nul), Invalid::InvalidValue),
            (
                r#"{"schema_version":1,"url":"x"}"#.to_string(),
                Invalid::MissingField,
            ),
            (
                r#"{"schema_version":3}"#.to_string(),
                Invalid::UnsupportedVersion,
            ),
            (r#"{"url":"x"}"#.to_string(), Invalid::MissingField),
            ("nope".to_string(), Invalid::NotJson),
            (
                encode(&result()).replace(r#""result":"ok""#, r#""result":"fine""#),
                Invalid::WrongType,
            ),
        ];
        for (json, reason) in cases {
            assert_eq!(
                decode_probe(Some(json.as_bytes()), 65_536).map(|_| ()),
                Err(reason),
                "{json}"
            );
        }
        assert_eq!(decode_probe(None, 10).map(|_| ()), Err(Invalid::Empty));
    }
}
