//! Integration tests of the aggregator against a real PostgreSQL server and a real
//! Kafka-protocol broker (librdkafka's mock cluster, one per test). Every test gets its own
//! database, topics and consumer group.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod alerts;
mod bad_input;
mod exactly_once;
mod helpers;
mod hosts;
mod outages;
mod probes;
mod tracing;
