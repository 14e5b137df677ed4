//! Prometheus' text exposition format (0.0.4), read as the tests read `/metrics`: the samples
//! as `{name, labels, value}`, found by a selector written as the series is,
//! `name{label="value",...}`, whatever the order of its labels.
//!
//! One parser for every Rust test (the Python benchmark tools keep theirs,
//! `scripts/lib/procstat.py`). It is strict where a lenient one would hide a defect of the
//! exposition: a line it cannot read, or a series twice, is an error naming the line.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// One sample line: a series and its value (the timestamp, if any, is dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name, suffix included (`_total`, `_bucket`, `_sum`).
    pub name: String,
    /// The labels, by name.
    pub labels: BTreeMap<String, String>,
    /// The value: `NaN`, `+Inf` and `-Inf` included.
    pub value: f64,
}

/// Every sample of one exposition, in its order.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    samples: Vec<Sample>,
}

/// A line the parser cannot read, or a series exposed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based, as an editor counts.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// The line itself.
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {:?}", self.line, self.reason, self.text)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Scrape, ParseError> {
    let mut samples = Vec::new();
    let mut seen = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let error = |reason: String| ParseError {
            line: index + 1,
            reason,
            text: line.to_string(),
        };
        let trimmed = line.trim();
        // `# HELP`, `# TYPE` and any other comment carry no sample.
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let sample = sample_line(trimmed).map_err(error)?;
        if !seen.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(error("a series exposed twice".into()));
        }
        samples.push(sample);
    }
    Ok(Scrape { samples })
}

impl Scrape {
    /// The value of the series `selector` names: `name` or `name{label="value",...}` with
    /// exactly that series' labels, in any order. `None` when no sample has them.
    ///
    /// Panics on a selector that does not read as a series: that is the test's mistake.
    pub fn value(&self, selector: &str) -> Option<f64> {
        let (name, labels) = series(selector.trim())
            .ok()
            .filter(|(_, rest)| rest.is_empty())
            .map(|(series, _)| series)
            .unwrap_or_else(|| panic!("not a series selector: {selector:?}"));
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == labels)
            .map(|s| s.value)
    }

    /// Every sample, in the exposition's order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

/// `series value [timestamp]`.
fn sample_line(line: &str) -> Result<Sample, String> {
    let ((name, labels), rest) = series(line)?;
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = parse_value(value).ok_or_else(|| format!("value {value:?} is not a number"))?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("timestamp {timestamp:?} is not whole milliseconds"))?;
    }
    if fields.next().is_some() {
        return Err("more than a value and a timestamp after the series".into());
    }
    if !rest.starts_with([' ', '\t']) {
        return Err("no blank between the series and its value".into());
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

type Series = (String, BTreeMap<String, String>);

/// The series at the start of `text` (a name, then labels in braces, if any), and what follows.
fn series(text: &str) -> Result<(Series, &str), String> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    let name = &text[..end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("{name:?} is not a metric name"));
    }
    let mut rest = &text[end..];
    let mut labels = BTreeMap::new();
    if let Some(inside) = rest.trim_start().strip_prefix('{') {
        rest = label_set(inside, &mut labels)?;
    }
    Ok(((name.to_string(), labels), rest))
}

/// Reads `a="x",b="y"}` (a trailing comma allowed) into `labels`; returns what follows `}`.
fn label_set<'a>(
    mut text: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        let name = &text[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("a label name expected at {text:?}"));
        }
        let after_name = text[end..].trim_start();
        let quoted = after_name
            .strip_prefix('=')
            .map(str::trim_start)
            .and_then(|t| t.strip_prefix('"'))
            .ok_or_else(|| format!("label {name}: =\"value\" expected"))?;
        let (value, after) = quoted_value(quoted)
            .ok_or_else(|| format!("label {name}: unterminated or bad escape"))?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        text = after.trim_start();
        if let Some(after_comma) = text.strip_prefix(',') {
            text = after_comma;
        } else if !text.starts_with('}') {
            return Err(format!("after label {name}: , or }} expected"));
        }
    }
}

/// A label value after its opening quote, unescaped (`\\`, `\"`, `\n`), and what follows
/// its closing quote.
fn quoted_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => match chars.next()?.1 {
                '\\' => value.push('\\'),
                '"' => value.push('"'),
                'n' => value.push('\n'),
                _ => return None,
            },
            c => value.push(c),
        }
    }
    None
}

/// Go's `ParseFloat` as the format uses it: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        // Rust would also take "inf", "infinity" and "nan" in any case: not this format's.
        _ if text
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            None
        }
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the `prometheus` crate's `TextEncoder` writes it, with a few things it never writes
    /// but the format allows: a timestamp, blanks around labels, a trailing comma, escapes.
    const FIXTURE: &str = r#"# HELP aggregator_invalid_events_total Messages that could not be decoded, by reason.
# TYPE aggregator_invalid_events_total counter
aggregator_invalid_events_total{reason="not_json",topic="calls-1"} 2
aggregator_invalid_events_total{reason="oversize",topic="calls-1"} 1
# HELP health_status 1 when every check passes.
# TYPE health_status gauge
health_status 1
# TYPE aggregator_flush_seconds histogram
aggregator_flush_seconds_bucket{le="0.005"} 0
aggregator_flush_seconds_bucket{le="+Inf"} 7
aggregator_flush_seconds_sum 0.123
aggregator_flush_seconds_count 7
process_start_time_seconds 1.7e9
web_prober_target_success{target="http://127.0.0.1:8080/a?b=\"c\"\\d"} 0 1700000000000
odd_spacing{ b = "2" , a = "1", }	-Inf
not_a_number NaN

"#;

    fn fixture() -> Scrape {
        parse(FIXTURE).unwrap()
    }

    #[test]
    fn every_sample_line_is_read_and_comments_are_skipped() {
        let scrape = fixture();
        let names: Vec<&str> = scrape.samples().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "aggregator_invalid_events_total",
                "aggregator_invalid_events_total",
                "health_status",
                "aggregator_flush_seconds_bucket",
                "aggregator_flush_seconds_bucket",
                "aggregator_flush_seconds_sum",
                "aggregator_flush_seconds_count",
                "process_start_time_seconds",
                "web_prober_target_success",
                "odd_spacing",
                "not_a_number",
            ]
        );
        let first = &scrape.samples()[0];
        assert_eq!(first.labels["reason"], "not_json");
        assert_eq!(first.labels["topic"], "calls-1");
        assert_eq!(first.value, 2.0);
    }

    #[test]
    fn a_selector_finds_its_series_whatever_the_order_of_its_labels() {
        let scrape = fixture();
        let written = r#"aggregator_invalid_events_total{reason="oversize",topic="calls-1"}"#;
        let swapped = r#"aggregator_invalid_events_total{topic="calls-1",reason="oversize"}"#;
        assert_eq!(scrape.value(written), Some(1.0));
        assert_eq!(scrape.value(swapped), Some(1.0));
        assert_eq!(scrape.value("health_status"), Some(1.0));
        assert_eq!(scrape.value("process_start_time_seconds"), Some(1.7e9));
        assert_eq!(scrape.value("aggregator_flush_seconds_sum"), Some(0.123));
        assert_eq!(
            scrape.value(r#"aggregator_flush_seconds_bucket{le="+Inf"}"#),
            Some(7.0)
        );
        assert_eq!(
            scrape.value(r#"odd_spacing{a="1",b="2"}"#),
            Some(f64::NEG_INFINITY)
        );
        assert!(scrape.value("not_a_number").unwrap().is_nan());
    }

    #[test]
    fn a_selector_matches_the_whole_label_set_only() {
        let scrape = fixture();
        // A subset, a superset, another value, another name: no match.
        for selector in [
            r#"aggregator_invalid_events_total{reason="oversize"}"#,
            "aggregator_invalid_events_total",
            r#"aggregator_invalid_events_total{reason="oversize",topic="calls-1",x="y"}"#,
            r#"aggregator_invalid_events_total{reason="oversize",topic="calls-2"}"#,
            r#"health_status{service="a"}"#,
            "health",
            "health_status_total",
        ] {
            assert_eq!(scrape.value(selector), None, "{selector}");
        }
    }

    #[test]
    fn escaped_label_values_are_read_unescaped_and_a_timestamp_is_dropped() {
        let scrape = fixture();
        let url = r#"http://127.0.0.1:8080/a?b="c"\d"#;
        let sample = scrape
            .samples()
            .iter()
            .find(|s| s.name == "web_prober_target_success")
            .unwrap();
        assert_eq!(sample.labels["target"], url);
        assert_eq!(sample.value, 0.0);
        let selector = r#"web_prober_target_success{target="http://127.0.0.1:8080/a?b=\"c\"\\d"}"#;
        assert_eq!(scrape.value(selector), Some(0.0));
    }

    #[test]
    fn a_line_it_cannot_read_is_an_error_naming_it() {
        for (text, line) in [
            ("a 1\nb\n", 2),
            ("a one\n", 1),
            ("a inf\n", 1),
            ("a 1 2.5\n", 1),
            ("a 1 2 3\n", 1),
            ("# c\n\na{b=\"1\" 1\n", 3),
            ("a{b=1} 1\n", 1),
            ("a{b=\"1\nc 2\n", 1),
            ("a{b=\"\\x\"} 1\n", 1),
            ("a{b=\"1\",b=\"2\"} 1\n", 1),
            ("a{b=\"1\"}1\n", 1),
            ("1a 1\n", 1),
            ("{b=\"1\"} 1\n", 1),
            ("a{b=\"1\"} 1\na{b=\"1\"} 2\n", 2),
        ] {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
        }
    }

    #[test]
    fn an_empty_exposition_has_no_samples() {
        assert!(parse("").unwrap().samples().is_empty());
        assert!(
            parse("# HELP x y\n# TYPE x counter\n")
                .unwrap()
                .samples()
                .is_empty()
        );
    }

    #[test]
    #[should_panic(expected = "not a series selector")]
    fn a_malformed_selector_is_the_tests_mistake() {
        fixture().value(r#"health_status{service=}"#);
    }
}
