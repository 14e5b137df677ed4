//! Kernel text files (`/proc/loadavg`, `/proc/meminfo`, `/proc/uptime`): [`read`] is the edge,
//! each collector's `parse_*` is pure and tested on the files in `fixtures/`.

use std::fmt;
use std::str::FromStr;

/// Why a kernel file's text was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A field the format always has is not there.
    Missing(&'static str),
    /// A field is there but is not a number.
    NotANumber { field: &'static str, text: String },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(field) => write!(f, "no {field}"),
            Self::NotANumber { field, text } => write!(f, "{field} is not a number: {text:?}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a kernel file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be read (`/proc` not mounted, not Linux).
    Io {
        path: &'static str,
        source: std::io::Error,
    },
    /// It was read but not understood.
    Parse {
        path: &'static str,
        source: ParseError,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "cannot read {path}: {source}"),
            Self::Parse { path, source } => write!(f, "cannot parse {path}: {source}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Parse { source, .. } => Some(source),
        }
    }
}

/// Reads the kernel file at `path` and parses it with `parse`.
pub fn read<T>(
    path: &'static str,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<T, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io { path, source })?;
    parse(&text).map_err(|source| ReadError::Parse { path, source })
}

/// `text` of `field` as a number; `None` is a missing field.
pub fn number<T: FromStr>(field: &'static str, text: Option<&str>) -> Result<T, ParseError> {
    let text = text.ok_or(ParseError::Missing(field))?;
    text.parse().map_err(|_| ParseError::NotANumber {
        field,
        text: text.to_string(),
    })
}

/// A collector's failing reads, logged once per run of failures, not at every sample.
#[derive(Debug, Default)]
pub struct Failures {
    failing: bool,
}

impl Failures {
    /// The value read, or `None` after logging the error (if the previous read succeeded).
    pub fn check<T>(&mut self, result: Result<T, ReadError>) -> Option<T> {
        match result {
            Ok(value) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!("reading the host works again");
                }
                Some(value)
            }
            Err(err) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(%err, "cannot read the host");
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_an_error_that_names_it() {
        let err = read("/proc/no-such-file", |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("/proc/no-such-file"), "{err}");
    }

    #[test]
    fn numbers_name_the_field_that_is_missing_or_wrong() {
        assert_eq!(number::<u64>("MemTotal", Some("42")), Ok(42));
        assert_eq!(
            number::<u64>("MemTotal", None),
            Err(ParseError::Missing("MemTotal"))
        );
        assert_eq!(
            number::<f64>("load1", Some("x")).unwrap_err().to_string(),
            r#"load1 is not a number: "x""#
        );
    }
}
