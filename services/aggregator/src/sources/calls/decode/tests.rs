use super::*;

const MAX: usize = 64 * 1024;

fn ok(key: Option<&str>, payload: &str) -> Call<'static> {
    into_owned(decode_call(key.map(str::as_bytes), Some(payload.as_bytes()), MAX).unwrap())
}

fn err(key: Option<&str>, payload: &[u8]) -> Invalid {
    decode_call(key.map(str::as_bytes), Some(payload), MAX).unwrap_err()
}

#[test]
fn the_current_schema_decodes_with_millisecond_precision() {
    let call = ok(
        Some("00411111111"),
        r#"{"schema_version":1,"call_id":"67e55044-10b1-426f-9247-bb680e5fe0c8",
            "caller":"00411111111","callee":"00412222222",
            "start_time":"2026-11-23T10:00:00.250Z","duration_secs":95.125,"extra":true}"#,
    );
    assert_eq!(call.caller, "00411111111");
    assert_eq!(call.callee, "00412222222");
    assert_eq!(call.start_ms, 1_795_428_000_250);
    assert_eq!(call.duration_ms, 95_125);
    assert!(call.call_id.is_some());
}

#[test]
fn what_the_simulator_writes_decodes_to_the_same_values() {
    let event = fleet::events::CallEvent {
        schema_version: 1,
        call_id: Uuid::from_u128(1),
        caller: "00410000001".into(),
        callee: "00410000002".into(),
        start_time: chrono::DateTime::from_timestamp_millis(1_700_000_000_001).unwrap(),
        duration_secs: 0.001,
    };
    let json = serde_json::to_string(&event).unwrap();
    let call = ok(None, &json);
    assert_eq!((call.start_ms, call.duration_ms), (1_700_000_000_001, 1));
    assert_eq!(call.call_id, Some(Uuid::from_u128(1)));
}

#[test]
fn legacy_format_a_takes_the_caller_from_the_kafka_key() {
    let call = ok(
        Some("00413333333"),
        r#"{"called_phone_number":"00414444444","start_call_epoch_time":1637000000,"call_duration":95}"#,
    );
    assert_eq!(call.caller, "00413333333");
    assert_eq!(call.callee, "00414444444");
    assert_eq!(
        (call.start_ms, call.duration_ms),
        (1_637_000_000_000, 95_000)
    );
    assert_eq!(call.call_id, None);
}

#[test]
fn legacy_format_b_carries_key_and_value() {
    let call = ok(
        None,
        r#"{"key":"00415555555","value":{"called_phone_number":"00416666666","start_call_epoch_time":1637000001,"call_duration":12}}"#,
    );
    assert_eq!(call.caller, "00415555555");
    assert_eq!(
        (call.start_ms, call.duration_ms),
        (1_637_000_001_000, 12_000)
    );
}

#[test]
fn legacy_format_c_is_a_json_string_holding_format_a() {
    let call = ok(
        Some("00417777777"),
        r#""{\"called_phone_number\":\"00418888888\",\"start_call_epoch_time\":1637000002,\"call_duration\":7}""#,
    );
    assert_eq!(call.caller, "00417777777");
    assert_eq!(call.callee, "00418888888");
    assert_eq!(call.duration_ms, 7_000);
}

#[test]
fn every_kind_of_bad_input_gets_its_reason() {
    let legacy = |d: &str| {
        format!(
            r#"{{"called_phone_number":"1","start_call_epoch_time":1637000000,"call_duration":{d}}}"#
        )
    };
    assert_eq!(decode_call(None, None, MAX).unwrap_err(), Invalid::Empty);
    assert_eq!(err(None, b""), Invalid::Empty);
    assert_eq!(err(None, b"\xff\xfe garbage"), Invalid::NotJson);
    assert_eq!(err(None, b"{\"schema_version\":1,"), Invalid::NotJson);
    assert_eq!(err(None, b"42"), Invalid::WrongType);
    assert_eq!(
        err(None, br#"{"schema_version":"one"}"#),
        Invalid::WrongType
    );
    assert_eq!(
        err(Some("k"), legacy(r#""95""#).as_bytes()),
        Invalid::WrongType
    );
    assert_eq!(
        err(None, br#"{"schema_version":1,"caller":"1"}"#),
        Invalid::MissingField
    );
    assert_eq!(
        err(None, legacy("95").as_bytes()),
        Invalid::MissingField,
        "no key, no caller"
    );
    assert_eq!(
        err(Some("k"), br#"{"call_duration":5}"#),
        Invalid::MissingField
    );
    assert_eq!(
        err(None, br#"{"schema_version":9}"#),
        Invalid::UnsupportedVersion
    );
    assert_eq!(
        err(Some("k"), legacy("-1").as_bytes()),
        Invalid::InvalidDuration
    );
    assert_eq!(
        err(Some("k"), legacy("86401").as_bytes()),
        Invalid::InvalidDuration
    );
    assert_eq!(
        err(Some("k"), legacy("1e400").as_bytes()),
        Invalid::NotJson,
        "serde_json rejects overflow"
    );
    assert_eq!(
        err(
            Some("k"),
            br#"{"called_phone_number":"1","start_call_epoch_time":-5,"call_duration":1}"#
        ),
        Invalid::OutOfRange
    );
    let v1_bad_time = br#"{"schema_version":1,"call_id":"67e55044-10b1-426f-9247-bb680e5fe0c8","caller":"1","callee":"2","start_time":"yesterday","duration_secs":1}"#;
    assert_eq!(err(None, v1_bad_time), Invalid::OutOfRange);
    let big = vec![b' '; MAX + 1];
    assert_eq!(err(None, &big), Invalid::Oversize);
}

#[test]
fn zero_duration_is_valid_but_nan_is_not() {
    assert_eq!(duration_ms(0.0), Ok(0));
    assert_eq!(duration_ms(f64::NAN), Err(Invalid::InvalidDuration));
    assert_eq!(duration_ms(f64::INFINITY), Err(Invalid::InvalidDuration));
    assert_eq!(duration_ms(86_400.0), Ok(86_400_000));
}

#[test]
fn strings_are_borrowed_from_the_message_unless_they_hold_escapes() {
    let payload = br#"{"schema_version":1,"call_id":"7d6f0b5e-3f7a-4c1e-9d2a-1b2c3d4e5f60",
        "caller":"00411234567","callee":"0041\u0037654321",
        "start_time":"2026-11-23T10:00:00.000Z","duration_secs":1.5}"#;
    let call = decode_call(None, Some(payload), 1 << 16).unwrap();
    assert!(matches!(call.caller, Cow::Borrowed("00411234567")));
    assert!(matches!(&call.callee, Cow::Owned(s) if s == "00417654321"));
    let legacy = br#"{"key":"00411111111","value":{"called_phone_number":"00412222222",
        "start_call_epoch_time":1637000000,"call_duration":95}}"#;
    let call = decode_call(None, Some(legacy), 1 << 16).unwrap();
    assert!(matches!(call.caller, Cow::Borrowed("00411111111")));
    assert!(matches!(call.callee, Cow::Borrowed("00412222222")));
}

#[test]
fn a_nul_character_is_an_invalid_value_not_a_stuck_flush() {
    let payload = br#"{"called_phone_number":"0041\u00001","start_call_epoch_time":1637000000,"call_duration":5}"#;
    assert_eq!(
        decode_call(Some(b"00411111111"), Some(payload), 65_536).map(|_| ()),
        Err(Invalid::InvalidValue)
    );
}

#[test]
fn times_in_another_rfc_3339_form_decode_and_out_of_range_ones_do_not() {
    let chrono_ms = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    };
    for other in [
        "2026-12-01T10:00:00.123Z",
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:00:00.1234Z",
        "2026-12-01T11:00:00.000+01:00",
        "2026-12-01t10:00:00.000z",
    ] {
        assert_eq!(start_ms(other), Ok(chrono_ms(other)), "{other}");
    }
    for bad in [
        "2026-02-30T10:00:00.000Z",
        "2026-12-01T24:00:00.000Z",
        "yesterday",
    ] {
        assert_eq!(start_ms(bad), Err(Invalid::OutOfRange), "{bad}");
    }
}
