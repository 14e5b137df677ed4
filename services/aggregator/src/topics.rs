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

    /// A distinct name per source.
    fn distinct() -> [String; Source::ALL.len()] {
        Source::ALL.map(|s| format!("{s:?}").to_lowercase())
    }

    #[test]
    fn names_and_sources_map_both_ways() {
        let topics = Topics::new(distinct()).unwrap();
        for source in Source::ALL {
            assert_eq!(topics.source_of(topics.name(source)), Some(source));
        }
        assert_eq!(topics.source_of("other"), None);
        assert_eq!(topics.names(), distinct());
    }

    #[test]
    fn equal_names_are_rejected() {
        let mut names = distinct();
        names[1] = names[0].clone();
        let err = Topics::new(names.clone()).unwrap_err();
        let (second, name) = (Source::ALL[1].setting(), &names[0]);
        assert!(
            err.contains(second) && err.contains(&format!("`{name}`")),
            "{err}"
        );
        let mut names = distinct();
        names[2] = names[1].clone();
        let err = Topics::new(names).unwrap_err();
        assert!(err.contains(Source::ALL[2].setting()), "{err}");
    }
}
