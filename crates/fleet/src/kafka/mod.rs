//! Kafka clients, one file per concept: [`config`] (the settings every client starts from,
//! with the `KAFKA_*` passthrough), [`watch`] (broker connectivity for the `kafka` health
//! check), [`topics`] (the "ensure topics" step at start), [`producer`] (the producers).

mod config;
mod producer;
mod topics;
mod watch;

pub use config::{client_config, passthrough_properties, with_defaults};
pub use producer::{AckContext, AsyncProducer, Outgoing, PolledProducer};
pub use topics::{TopicsError, ensure_topics};
pub use watch::{BrokerWatch, KAFKA_CHECK, REPORT_WINDOW, connectivity};
