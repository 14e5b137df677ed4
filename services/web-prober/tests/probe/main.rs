//! web-prober against real local servers (plain TCP servers that speak HTTP/1.1, and one with
//! TLS and a self-signed certificate whose expiry the test sets) and a real Kafka-protocol
//! broker (the run's Apache Kafka).

#![allow(clippy::unwrap_used)]

mod app;
mod checks;
mod servers;
mod startup;
