//! The topics the aggregator consumes and what each one carries. Every consumed partition is
//! named by a [`Tp`]: its [`Source`] and partition number.

/// What a consumed topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Phone calls from `call-simulator`.
    Calls,
    /// Host samples from `host-metrics`.
    Hosts,
    /// Check results from `web-prober`.
    Probes,
}

impl Source {
    /// Every source, in a fixed order.
    pub const ALL: [Source; 3] = [Self::Calls, Self::Hosts, Self::Probes];
}

/// A consumed partition.
pub type Tp = (Source, i32);

/// The topic name of each source (configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    calls: String,
    hosts: String,
    probes: String,
}

impl Topics {
    /// Names for every source; they must differ, or a message's source would be ambiguous.
    pub fn new(calls: String, hosts: String, probes: String) -> Result<Self, String> {
        let named = [
            ("CALLS_TOPIC", &calls),
            ("HOST_METRICS_TOPIC", &hosts),
            ("PROBES_TOPIC", &probes),
        ];
        for (i, (a, x)) in named.iter().enumerate() {
            if let Some((b, _)) = named[i + 1..].iter().find(|(_, y)| y == x) {
                return Err(format!("{a} and {b} must differ, both are `{x}`"));
            }
        }
        Ok(Self {
            calls,
            hosts,
            probes,
        })
    }

    /// The topic of `source`.
    pub fn name(&self, source: Source) -> &str {
        match source {
            Source::Calls => &self.calls,
            Source::Hosts => &self.hosts,
            Source::Probes => &self.probes,
        }
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
        let topics = Topics::new("c".into(), "h".into(), "p".into()).unwrap();
        for source in Source::ALL {
            assert_eq!(topics.source_of(topics.name(source)), Some(source));
        }
        assert_eq!(topics.source_of("other"), None);
        assert_eq!(topics.names(), ["c", "h", "p"]);
    }

    #[test]
    fn equal_names_are_rejected() {
        let err = Topics::new("x".into(), "x".into(), "p".into()).unwrap_err();
        assert!(
            err.contains("HOST_METRICS_TOPIC") && err.contains("`x`"),
            "{err}"
        );
        let err = Topics::new("c".into(), "p".into(), "p".into()).unwrap_err();
        assert!(err.contains("PROBES_TOPIC"), "{err}");
    }
}
