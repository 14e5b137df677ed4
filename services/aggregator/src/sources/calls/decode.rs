//! Decoding of call messages: the current schema (v1) and the three formats of the Python demo
//! this service replaces, so their producers can be pointed at it unchanged:
//!
//! - (a) `{"called_phone_number":"0041…","start_call_epoch_time":1637000000,"call_duration":95}`
//!   with the caller as the Kafka key;
//! - (b) `{"key":"<caller>","value":{…fields of (a)…}}`;
//! - (c) a JSON string whose content is (a).
//!
//! Pure functions: bytes in, a [`Call`] or an [`Invalid`] reason out.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::decode::{Invalid, classify, no_nul};

/// The longest call we believe (24 h); anything longer is `invalid_duration`.
pub const MAX_CALL_DURATION_MS: i64 = 86_400_000;

/// A decoded, validated call. Borrows from the message where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<'a> {
    /// Present in schema v1; legacy formats have none.
    pub call_id: Option<Uuid>,
    pub caller: Cow<'a, str>,
    pub callee: Cow<'a, str>,
    /// Start time, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// Duration in milliseconds, `0..=MAX_CALL_DURATION_MS`.
    pub duration_ms: i64,
}

/// Every field any supported format may carry; unknown fields are ignored so producers can add
/// fields without breaking older aggregators.
#[derive(Debug, Deserialize)]
struct Raw<'a> {
    schema_version: Option<u32>,
    call_id: Option<Uuid>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    caller: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    callee: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    start_time: Option<Cow<'a, str>>,
    duration_secs: Option<f64>,
    // Legacy (a).
    #[serde(borrow, default, deserialize_with = "borrowed")]
    called_phone_number: Option<Cow<'a, str>>,
    start_call_epoch_time: Option<f64>,
    call_duration: Option<f64>,
    // Legacy (b) wrapper.
    #[serde(borrow, default, deserialize_with = "borrowed")]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<Box<Raw<'a>>>,
}

/// `Option<Cow<str>>` that borrows from the message unless the string has escapes. serde's
/// `#[serde(borrow)]` only borrows for a bare `Cow<str>`; inside an `Option` every string was
/// copied into a new `String` (a malloc and free per field per message on the hot path).
fn borrowed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

/// Decodes one message. `key` is the Kafka key (the caller, for legacy format (a)).
pub fn decode_call<'a>(
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    max_bytes: usize,
) -> Result<Call<'a>, Invalid> {
    let payload = payload.filter(|p| !p.is_empty()).ok_or(Invalid::Empty)?;
    if payload.len() > max_bytes {
        return Err(Invalid::Oversize);
    }
    let key = key
        .and_then(|k| std::str::from_utf8(k).ok())
        .map(Cow::Borrowed);
    // Format (c): the message is a JSON string holding a JSON document.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'"') {
        let inner: String = serde_json::from_slice(payload).map_err(classify)?;
        let raw: Raw<'_> = serde_json::from_str(&inner).map_err(classify)?;
        return from_raw(raw, key).and_then(storable).map(into_owned);
    }
    let raw: Raw<'a> = serde_json::from_slice(payload).map_err(classify)?;
    from_raw(raw, key).and_then(storable)
}

fn storable(call: Call<'_>) -> Result<Call<'_>, Invalid> {
    no_nul(&call.caller)?;
    no_nul(&call.callee)?;
    Ok(call)
}

fn into_owned(call: Call<'_>) -> Call<'static> {
    Call {
        caller: Cow::Owned(call.caller.into_owned()),
        callee: Cow::Owned(call.callee.into_owned()),
        ..call
    }
}

fn from_raw<'a>(raw: Raw<'a>, key: Option<Cow<'a, str>>) -> Result<Call<'a>, Invalid> {
    match raw.schema_version {
        Some(1) => {
            let start = raw.start_time.ok_or(Invalid::MissingField)?;
            let call = Call {
                call_id: Some(raw.call_id.ok_or(Invalid::MissingField)?),
                caller: raw.caller.ok_or(Invalid::MissingField)?,
                callee: raw.callee.ok_or(Invalid::MissingField)?,
                start_ms: start_ms(&start)?,
                duration_ms: duration_ms(raw.duration_secs.ok_or(Invalid::MissingField)?)?,
            };
            Ok(call)
        }
        Some(_) => Err(Invalid::UnsupportedVersion),
        None => match raw.value {
            // Format (b): the caller travels inside the message.
            Some(inner) => from_legacy(*inner, raw.key.or(key)),
            None => from_legacy(raw, key),
        },
    }
}

fn from_legacy<'a>(raw: Raw<'a>, caller: Option<Cow<'a, str>>) -> Result<Call<'a>, Invalid> {
    let epoch = raw.start_call_epoch_time.ok_or(Invalid::MissingField)?;
    if !(0.0..=1e11).contains(&epoch) {
        return Err(Invalid::OutOfRange);
    }
    Ok(Call {
        call_id: None,
        callee: raw.called_phone_number.ok_or(Invalid::MissingField)?,
        caller: caller.ok_or(Invalid::MissingField)?,
        start_ms: (epoch * 1000.0).round() as i64,
        duration_ms: duration_ms(raw.call_duration.ok_or(Invalid::MissingField)?)?,
    })
}

/// Milliseconds since the epoch of an RFC 3339 time ([`fleet::events::wire_time::parse`]: the
/// wire form by a fast path, any other by chrono).
pub fn start_ms(text: &str) -> Result<i64, Invalid> {
    fleet::events::wire_time::parse(text)
        .map(|t| t.timestamp_millis())
        .ok_or(Invalid::OutOfRange)
}

fn duration_ms(secs: f64) -> Result<i64, Invalid> {
    let ms = (secs * 1000.0).round();
    if secs.is_finite() && (0.0..=MAX_CALL_DURATION_MS as f64).contains(&ms) {
        Ok(ms as i64)
    } else {
        Err(Invalid::InvalidDuration)
    }
}

#[cfg(test)]
mod tests;
