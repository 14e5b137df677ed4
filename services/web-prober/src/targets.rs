//! The targets file, parsed and validated (pure). Two forms:
//!
//! - **lines**, as the original demo read them: one URL per line, optionally followed by
//!   whitespace and a regex the body must match; `#` starts a comment;
//! - **YAML** (a `.yaml`/`.yml` file, or any file whose first meaningful line is `targets:`):
//!
//! ```yaml
//! defaults:            # optional; every field below can be set per target
//!   interval_secs: 30
//! targets:
//!   - url: https://example.com/health
//!     regex: '"status":\s*"ok"'
//!     method: GET
//!     expect_status: [200, 204]   # or ranges as strings: ["2xx", "301"]
//!     headers: { Authorization: "Bearer x" }
//!     interval_secs: 10
//!     timeout_secs: 5
//!     insecure_skip_verify: false # accept any certificate (self-signed test servers)
//! ```
//!
//! An invalid file is rejected whole with a message naming the line or target.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

/// What applies when a target does not say (from the environment).
#[derive(Debug, Clone)]
pub struct Defaults {
    pub interval: Duration,
    pub timeout: Duration,
    /// `PROBE_REGEX`; `None` when empty.
    pub regex: Option<Regex>,
}

/// One validated target.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: url::Url,
    pub method: http::Method,
    pub regex: Option<Regex>,
    pub expect_status: StatusSet,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub insecure_skip_verify: bool,
}

impl PartialEq for Target {
    /// Targets are equal when they would be checked the same way (a reload restarts only
    /// the targets that changed).
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.method == other.method
            && self.regex.as_ref().map(Regex::as_str) == other.regex.as_ref().map(Regex::as_str)
            && self.expect_status == other.expect_status
            && self.headers == other.headers
            && self.interval == other.interval
            && self.timeout == other.timeout
            && self.insecure_skip_verify == other.insecure_skip_verify
    }
}

/// Accepted status codes: inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// 2xx, as blackbox_exporter expects by default.
    pub fn success() -> Self {
        Self(vec![(200, 299)])
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }

    fn parse(items: &[StatusItem]) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in items {
            let range = match item {
                StatusItem::Code(code) => (*code, *code),
                StatusItem::Text(text) => match text.strip_suffix("xx") {
                    Some(class) => {
                        let c: u16 = class
                            .parse()
                            .ok()
                            .filter(|c| (1..=5).contains(c))
                            .ok_or_else(|| format!("bad status class `{text}`"))?;
                        (c * 100, c * 100 + 99)
                    }
                    None => {
                        let code: u16 = text.parse().map_err(|_| format!("bad status `{text}`"))?;
                        (code, code)
                    }
                },
            };
            if !(100..=599).contains(&range.0) || !(100..=599).contains(&range.1) {
                return Err(format!("status {item:?} is not an HTTP status"));
            }
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err("expect_status is empty".into());
        }
        Ok(Self(ranges))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum StatusItem {
    Code(u16),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: Option<String>,
    regex: Option<String>,
    method: Option<String>,
    expect_status: Option<Vec<StatusItem>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    interval_secs: Option<f64>,
    timeout_secs: Option<f64>,
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawTarget,
    targets: Vec<RawTarget>,
}

/// Parses a targets file. `yaml` selects the form; see the module docs.
pub fn parse(text: &str, yaml: bool, defaults: &Defaults) -> Result<Vec<Target>, String> {
    let targets = if yaml || looks_like_yaml(text) {
        parse_yaml(text, defaults)?
    } else {
        parse_lines(text, defaults)?
    };
    // One entry per URL: results, metrics and tables are keyed by it.
    let mut seen = HashSet::new();
    for t in &targets {
        if !seen.insert(t.url.as_str().to_string()) {
            return Err(format!("{} is listed twice", t.url));
        }
    }
    Ok(targets)
}

fn looks_like_yaml(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("targets:") || l.starts_with("defaults:"))
}

fn parse_lines(text: &str, defaults: &Defaults) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (url, regex) = match line.split_once(char::is_whitespace) {
            Some((url, rest)) => (url, Some(rest.trim().to_string())),
            None => (line, None),
        };
        let raw = RawTarget {
            url: Some(url.to_string()),
            regex,
            ..RawTarget::default()
        };
        targets.push(
            build(raw, &RawTarget::default(), defaults)
                .map_err(|e| format!("line {}: {e}", n + 1))?,
        );
    }
    Ok(targets)
}

fn parse_yaml(text: &str, defaults: &Defaults) -> Result<Vec<Target>, String> {
    let file: RawFile = serde_norway::from_str(text).map_err(|e| format!("YAML: {e}"))?;
    file.targets
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let name = raw.url.clone().unwrap_or_default();
            build(raw, &file.defaults, defaults)
                .map_err(|e| format!("target {} ({name}): {e}", i + 1))
        })
        .collect()
}

fn seconds(value: Option<f64>, fallback: Duration, what: &str) -> Result<Duration, String> {
    match value {
        None => Ok(fallback),
        Some(v) if v.is_finite() && (0.001..=86_400.0).contains(&v) => {
            Ok(Duration::from_secs_f64(v))
        }
        Some(v) => Err(format!("{what} must be between 0.001 and 86400, got {v}")),
    }
}

fn build(raw: RawTarget, file: &RawTarget, defaults: &Defaults) -> Result<Target, String> {
    let url_text = raw.url.ok_or("no url")?;
    let url = url::Url::parse(&url_text).map_err(|e| format!("bad url `{url_text}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url_text}` is not an http(s) URL with a host"));
    }
    let method_text = raw
        .method
        .or_else(|| file.method.clone())
        .unwrap_or_else(|| "GET".into());
    let method = http::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("bad method `{method_text}`"))?;
    let head = method == http::Method::HEAD;
    let regex = match raw.regex.or_else(|| file.regex.clone()) {
        Some(r) if r.is_empty() => None,
        Some(_) if head => return Err("a HEAD request has no body to match a regex".into()),
        Some(r) => Some(Regex::new(&r).map_err(|e| format!("bad regex `{r}`: {e}"))?),
        // PROBE_REGEX is for bodies; HEAD answers have none.
        None if head => None,
        None => defaults.regex.clone(),
    };
    let expect_status = match raw.expect_status.as_ref().or(file.expect_status.as_ref()) {
        Some(items) => StatusSet::parse(items)?,
        None => StatusSet::success(),
    };
    let mut headers = Vec::new();
    for (k, v) in file.headers.iter().chain(&raw.headers) {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("bad header name `{k}`"))?;
        let value =
            http::HeaderValue::from_str(v).map_err(|_| format!("bad value for header `{k}`"))?;
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
    }
    let interval = seconds(
        raw.interval_secs.or(file.interval_secs),
        defaults.interval,
        "interval_secs",
    )?;
    let timeout = seconds(
        raw.timeout_secs.or(file.timeout_secs),
        defaults.timeout,
        "timeout_secs",
    )?;
    Ok(Target {
        url,
        method,
        regex,
        expect_status,
        headers,
        interval,
        timeout,
        insecure_skip_verify: raw
            .insecure_skip_verify
            .or(file.insecure_skip_verify)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(15),
            regex: None,
        }
    }

    #[test]
    fn the_original_line_format_with_optional_regexes_and_comments() {
        let text = "# sites\nhttps://example.com\n\n  http://a.test/health   \"ok\":\\s*true  \n";
        let t = parse(text, false, &defaults()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].url.as_str(), "https://example.com/");
        assert!(t[0].regex.is_none());
        assert_eq!(t[1].regex.as_ref().unwrap().as_str(), "\"ok\":\\s*true");
        assert_eq!(t[1].method, http::Method::GET);
        assert_eq!(t[1].interval, Duration::from_secs(60));
        assert!(t[1].expect_status.contains(204) && !t[1].expect_status.contains(301));
    }

    #[test]
    fn probe_regex_applies_when_a_target_has_none_and_empty_disables_it() {
        let d = Defaults {
            regex: Some(Regex::new("Welcome").unwrap()),
            ..defaults()
        };
        let t = parse("http://a.test\nhttp://b.test/ other", false, &d).unwrap();
        assert_eq!(t[0].regex.as_ref().unwrap().as_str(), "Welcome");
        assert_eq!(t[1].regex.as_ref().unwrap().as_str(), "other");
        let y = parse(
            "targets:\n  - url: http://c.test\n    regex: ''\n",
            true,
            &d,
        )
        .unwrap();
        assert!(y[0].regex.is_none());
    }

    #[test]
    fn the_yaml_form_with_defaults_and_per_target_settings() {
        let text = r#"
defaults:
  interval_secs: 30
  headers: { User-Agent: fleetpulse }
targets:
  - url: https://example.com/api
    method: head
    expect_status: [200, "3xx"]
    headers: { Authorization: "Bearer t" }
    timeout_secs: 2.5
    insecure_skip_verify: true
  - url: http://b.test
    interval_secs: 5
"#;
        let t = parse(text, false, &defaults()).unwrap();
        assert_eq!(t[0].method, http::Method::HEAD);
        assert!(t[0].expect_status.contains(200) && t[0].expect_status.contains(302));
        assert!(!t[0].expect_status.contains(201));
        assert_eq!(t[0].headers.len(), 2);
        assert_eq!(t[0].interval, Duration::from_secs(30));
        assert_eq!(t[0].timeout, Duration::from_millis(2500));
        assert!(t[0].insecure_skip_verify);
        assert_eq!(t[1].interval, Duration::from_secs(5));
        assert_eq!(t[1].timeout, Duration::from_secs(15));
        assert!(!t[1].insecure_skip_verify);
    }

    #[test]
    fn every_mistake_is_named() {
        let cases = [
            ("ftp://x.test", false, "line 1"),
            ("http://ok.test\nnot a url", false, "line 2"),
            ("http://x.test (unclosed", false, "bad regex"),
            ("http://x.test\nhttp://x.test", false, "listed twice"),
            (
                "targets:\n  - url: http://x.test\n  - url: http://x.test\n    method: HEAD\n",
                true,
                "listed twice",
            ),
            (
                "targets:\n  - url: http://x.test\n    method: HEAD\n    regex: ok\n",
                true,
                "HEAD",
            ),
            (
                "targets:\n  - url: http://x.test\n    interval_secs: 0\n",
                true,
                "interval_secs",
            ),
            (
                "targets:\n  - url: http://x.test\n    expect_status: [\"9xx\"]\n",
                true,
                "9xx",
            ),
            (
                "targets:\n  - url: http://x.test\n    colour: red\n",
                true,
                "YAML",
            ),
            ("targets:\n  - regex: x\n", true, "no url"),
            (
                "targets:\n  - url: http://x.test\n    method: \"GE T\"\n",
                true,
                "bad method",
            ),
        ];
        for (text, yaml, needle) in cases {
            let err = parse(text, yaml, &defaults()).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn equality_ignores_nothing_that_changes_a_check() {
        let a = parse("http://a.test x", false, &defaults()).unwrap();
        let b = parse("http://a.test x", false, &defaults()).unwrap();
        let c = parse("http://a.test y", false, &defaults()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
