//! The topic each source is read from (configuration). Every consumed partition is named by a
//! [`Tp`](crate::sources::Tp): its [`Source`] and partition number.

use crate::sources::Source;

/// The topic name of each source (configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// In [`Source::ALL`] order.
    names: [String; Source::ALL.len()],
}

impl Topics {
    /// Names for every source; they must differ, or a message's source would be ambiguous.
    /// `names` in [`Source::ALL`] order.
    pub fn new(names: [String; Source::ALL.len()]) -> Result<Self, String> {
        for (i, x) in names.iter().enumerate() {
            if let Some(j) = (i + 1..names.len()).find(|j| names[*j] == *x) {
                let (a, b) = (Source::ALL[i].setting(), Source::ALL[j].setting());
                return Err(format!("{a} and {b} must differ, both are `{x}`"));
            }
        }
        Ok(Self { names })
    }

    /// The topic of `source`.
    pub fn name(&self, source: Source) -> &str {
        &self.names[source as usize]
    }

    /// The source a topic carries; `None` for a topic we did not subscribe to.
    pub fn source_of(&self, topic: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| self.name(*s) == topic)
    }

    /// Every topic name, in [`Source::ALL`] order.
    pub fn names(&self) -> Vec<&str> {
        Source::ALL.iter().map(|s| self.name(*s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sources_map_both_ways() {
        let topics = Topics::new(["c".into(), "h".into(), "p".into()]).unwrap();
        for source in Source::ALL {
            assert_eq!(topics.source_of(topics.name(source)), Some(source));
        }
        assert_eq!(topics.source_of("other"), None);
        assert_eq!(topics.names(), ["c", "h", "p"]);
    }

    #[test]
    fn equal_names_are_rejected() {
        let err = Topics::new(["x".into(), "x".into(), "p".into()]).unwrap_err();
        assert!(
            err.contains("HOST_METRICS_TOPIC") && err.contains("`x`"),
            "{err}"
        );
        let err = Topics::new(["c".into(), "p".into(), "p".into()]).unwrap_err();
        assert!(err.contains("PROBES_TOPIC"), "{err}");
    }
}
