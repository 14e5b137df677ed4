//! Integration tests of the aggregator against a real PostgreSQL server and a real
//! Apache Kafka broker: the run's (`TEST_KAFKA_BOOTSTRAP_SERVERS`), or one of the test's own
//! where the test kills or secures it. Every test gets its own database, topics and consumer
//! group.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod alerts;
mod bad_input;
mod broker_outage;
mod exactly_once;
mod fleet;
mod helpers;
mod hosts;
mod lag;
mod lateness;
mod membership;
mod offsets;
mod outages;
mod postgres_tls;
mod probes;
mod refused;
mod roles;
mod security;
mod settings;
mod stalls;
mod storage;
mod tracing;
