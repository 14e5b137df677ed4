//! The kinds of event the aggregator consumes, one folder each: [`calls`], [`hosts`],
//! [`probes`]. A source owns its decoder, its part of the [`Batch`](crate::batch::Batch), its
//! SQL and its tables, and its hooks (start-up, periodic maintenance), behind one interface,
//! [`Part`](crate::part::Part); the core calls every source alike.
//!
//! Registering a source is one entry of the `sources!` registry below: its variant of
//! [`Source`], its part's type, and its topic setting (field, variable, default, help), which
//! `Config` flattens in. docs/architecture.md lists everything a new source touches.

pub mod calls;
pub mod hosts;
pub mod probes;

use fleet::events::topics;

use crate::part::Part;

/// Declares the registry: [`Source`], [`Source::ALL`], each source's topic setting and empty
/// part, and [`TopicSettings`] (the settings `Config` flattens in).
macro_rules! sources {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident($part:ty): $field:ident, $env:literal = $default:expr, $help:literal;
    )*) => {
        /// What a consumed topic carries.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Source {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Source {
            /// Every source, in a fixed order (the order of the topic settings and of the flush).
            pub const ALL: [Source; [$(Source::$variant),*].len()] = [$(Source::$variant),*];

            /// The setting that names its topic.
            pub fn setting(self) -> &'static str {
                match self {
                    $(Self::$variant => $env,)*
                }
            }

            /// An empty part of a batch for its messages.
            pub fn part(self) -> Box<dyn Part> {
                match self {
                    $(Self::$variant => Box::<$part>::default(),)*
                }
            }
        }

        /// The topic each source is read from.
        #[derive(Debug, Clone, clap::Args)]
        pub struct TopicSettings {
            $(
                #[doc = $help]
                #[arg(long, env = $env, default_value = $default)]
                pub $field: String,
            )*
        }

        impl TopicSettings {
            /// The topic names, in [`Source::ALL`] order.
            pub fn names(&self) -> [String; Source::ALL.len()] {
                [$(self.$field.clone()),*]
            }
        }
    };
}

// The registry: adding a source is a folder beside these and one entry here.
sources! {
    /// Phone calls from `call-simulator`.
    Calls(calls::Calls): calls_topic, "CALLS_TOPIC" = topics::CALLS, "Topic of the calls.";
    /// Host samples from `host-metrics`.
    Hosts(hosts::Hosts): host_metrics_topic, "HOST_METRICS_TOPIC" = topics::HOST_METRICS,
        "Topic of the host samples.";
    /// Check results from `web-prober`.
    Probes(probes::Probes): probes_topic, "PROBES_TOPIC" = topics::WEB_PROBES,
        "Topic of the web check results.";
}

/// A consumed partition.
pub type Tp = (Source, i32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_has_its_own_setting_and_tables() {
        let mut settings: Vec<_> = Source::ALL.iter().map(|s| s.setting()).collect();
        settings.sort_unstable();
        settings.dedup();
        assert_eq!(settings.len(), Source::ALL.len());
        let mut tables: Vec<_> = Source::ALL.iter().flat_map(|s| s.part().tables()).collect();
        let all = tables.len();
        tables.sort_unstable();
        tables.dedup();
        assert_eq!(tables.len(), all, "a table written by two sources");
    }
}
