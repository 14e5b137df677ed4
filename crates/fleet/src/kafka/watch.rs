//! Whether the service can reach Kafka: [`BrokerWatch`] hears librdkafka's statistics, errors
//! and logs from every client of the service and keeps the `kafka` health check true to them,
//! logging a cause once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::ProducerContext;
use rdkafka::statistics::Statistics;

use crate::health::Health;

/// Name of the health check that tracks broker connectivity.
pub const KAFKA_CHECK: &str = "kafka";

/// Tracks whether the client can reach a broker, from librdkafka statistics and global errors,
/// and mirrors it into the `kafka` health check. librdkafka retries a refused connection every
/// few seconds and reports each attempt: the watch logs a cause once, when it first appears,
/// and again only after a connection was up in between (no log flood from a wrong password).
#[derive(Debug, Clone)]
pub struct BrokerWatch {
    health: Health,
    /// The cause last logged; `None` once a broker connection is up.
    logged: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    /// Each client's last verdict (connected or not) and when it came.
    reports: std::sync::Arc<std::sync::Mutex<HashMap<String, (bool, Instant)>>>,
}

/// How long a client's statistics count: three of librdkafka's one-second intervals.
pub const REPORT_WINDOW: Duration = Duration::from_secs(3);

impl BrokerWatch {
    /// Registers the `kafka` readiness check on `health`.
    pub fn new(health: Health) -> Self {
        health.register(KAFKA_CHECK, true);
        Self {
            health,
            logged: Default::default(),
            reports: Default::default(),
        }
    }

    /// Statistics arrive every `statistics.interval.ms`, from each client of the service (its
    /// consumer, its producers) on its own schedule. The service is connected while any of
    /// them reported a broker `UP` within [`REPORT_WINDOW`]: a producer still connecting, or an
    /// idle one (librdkafka connects sparsely), must not fail a service whose consumer is up,
    /// and a client gone (the start-up metadata reader) stops counting once its report ages.
    pub fn on_stats(&self, stats: &Statistics) {
        let brokers = stats
            .brokers
            .values()
            .map(|b| (b.state.as_str(), b.source.as_str()));
        let Some(up) = connectivity(brokers) else {
            return;
        };
        let now = Instant::now();
        let any_up = {
            let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
            reports.insert(stats.name.clone(), (up, now));
            reports.retain(|_, (_, at)| now.duration_since(*at) <= REPORT_WINDOW);
            reports.values().any(|(up, _)| *up)
        };
        if any_up {
            self.health.pass(KAFKA_CHECK);
            if let Some(cause) = self.lock().take() {
                tracing::info!(after = %cause, "Kafka connection up");
            }
        } else if self.lock().is_none() {
            self.health.fail(KAFKA_CHECK, "no broker connection is up");
        }
    }

    /// librdkafka reports client-wide errors here; it keeps retrying on its own.
    pub fn on_error(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let cause = match code {
            Some(RDKafkaErrorCode::AllBrokersDown) => "all brokers down".to_string(),
            // A transient drop (a broker restarting): librdkafka reconnects by itself.
            Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                tracing::debug!(%reason, "Kafka transport failure, reconnecting");
                return;
            }
            _ => steady_cause(reason),
        };
        // A refused handshake (TLS, SASL) names why in /readyz; "all brokers down" must not
        // overwrite it, since it follows every refused attempt.
        let mut logged = self.lock();
        let keep_detail = code == Some(RDKafkaErrorCode::AllBrokersDown) && logged.is_some();
        if !keep_detail {
            self.health.fail(KAFKA_CHECK, cause.clone());
        }
        if logged.as_deref() == Some(cause.as_str()) || keep_detail {
            return;
        }
        match code {
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL) => {
                tracing::error!(%cause, "Kafka refuses this client; retrying");
            }
            _ => tracing::warn!(%cause, "Kafka unreachable; retrying"),
        }
        *logged = Some(cause);
    }

    /// librdkafka's own log lines, into tracing at their level, except the failure of a
    /// connection (facility `FAIL`): librdkafka logs one on every retry and also reports it
    /// through [`BrokerWatch::on_error`], which logs a cause once; here it is debug.
    pub fn on_log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        use RDKafkaLogLevel as L;
        match level {
            _ if facility == "FAIL" => tracing::debug!(target: "librdkafka", facility, "{message}"),
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}");
            }
            L::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            L::Notice | L::Info => tracing::info!(target: "librdkafka", facility, "{message}"),
            L::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A poisoned lock only means a panicking logger: the cause itself is still sound.
        self.logged.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// librdkafka's error reason without its per-attempt parts: the broker prefix
/// (`sasl_ssl://127.0.0.1:9093/bootstrap: `) and the `(after 12ms in state …)` suffix, so one
/// cause reads the same on every retry.
fn steady_cause(reason: &str) -> String {
    let reason = reason
        .split_once("/bootstrap: ")
        .or_else(|| {
            reason
                .split_once(": ")
                .filter(|(head, _)| head.contains("://"))
        })
        .map_or(reason, |(_, rest)| rest);
    let reason = reason.split(" (after ").next().unwrap_or(reason);
    reason.trim().to_string()
}

/// What a client's brokers `(state, source)` say of its connection, librdkafka's internal
/// pseudo broker aside: `Some(true)` when one is `UP`; `None` when every one is still `INIT`
/// (never needed: librdkafka connects sparsely, and an idle producer drops even its bootstrap
/// connection once it has learned the cluster) or none is listed; `Some(false)` otherwise
/// (connecting, handshaking, refused, down).
pub fn connectivity<'a>(brokers: impl Iterator<Item = (&'a str, &'a str)>) -> Option<bool> {
    let mut seen = false;
    let mut idle = true;
    for (state, _) in brokers.filter(|(_, source)| *source != "internal") {
        if state == "UP" {
            return Some(true);
        }
        seen = true;
        idle &= state == "INIT";
    }
    (seen && !idle).then_some(false)
}

/// A client context that only feeds a [`BrokerWatch`]: the metadata reader of
/// [`ensure_topics`](super::ensure_topics) (nothing else needs a client that only watches).
#[derive(Debug, Clone)]
pub(super) struct WatchedContext {
    pub(super) watch: BrokerWatch,
}

impl ClientContext for WatchedContext {
    fn stats(&self, statistics: Statistics) {
        self.watch.on_stats(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.on_error(&error, reason);
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.watch.on_log(level, fac, log_message);
    }
}

/// Only to read metadata: nothing is ever sent, so no delivery is ever reported.
impl ProducerContext for WatchedContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_stays_the_reason_through_all_brokers_down_and_its_retries() {
        let health = Health::new(&prometheus::Registry::new()).unwrap();
        let watch = BrokerWatch::new(health.clone());
        let refused = "ssl://127.0.0.1:9/bootstrap: SSL handshake failed: certificate verify \
                       failed (after 2ms in state SSL_HANDSHAKE)";
        watch.on_error(&KafkaError::Global(RDKafkaErrorCode::SSL), refused);
        watch.on_error(
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        let reason = health.readiness().unwrap_err();
        assert!(reason.contains("certificate verify failed"), "{reason}");
        assert_eq!(
            watch.lock().as_deref(),
            Some("SSL handshake failed: certificate verify failed"),
            "logged once, as a steady cause"
        );
        // The next attempt's reason differs only in its timing: still the same cause.
        watch.on_error(
            &KafkaError::Global(RDKafkaErrorCode::SSL),
            &refused.replace("2ms", "9ms"),
        );
        let reason = health.readiness().unwrap_err();
        assert!(reason.contains("certificate verify failed"), "{reason}");
    }

    /// Statistics of client `name` whose one broker is in `state`.
    fn stats(name: &str, state: &str) -> Statistics {
        let broker = rdkafka::statistics::Broker {
            state: state.into(),
            source: "learned".into(),
            ..Default::default()
        };
        Statistics {
            name: name.into(),
            brokers: [("b".to_string(), broker)].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn one_client_still_connecting_does_not_fail_a_service_whose_other_client_is_up() {
        let health = Health::new(&prometheus::Registry::new()).unwrap();
        let watch = BrokerWatch::new(health.clone());
        watch.on_stats(&stats("consumer-1", "UP"));
        watch.on_stats(&stats("producer-2", "CONNECT"));
        assert!(health.readiness().is_ok(), "{:?}", health.readiness());
        // Every client down: the service is not connected.
        watch.on_stats(&stats("consumer-1", "DOWN"));
        let reason = health.readiness().unwrap_err();
        assert!(reason.contains("no broker connection is up"), "{reason}");
        watch.on_stats(&stats("producer-2", "UP"));
        assert!(health.readiness().is_ok());
    }

    #[test]
    fn a_client_is_connected_by_any_broker_up_and_idle_when_none_was_needed() {
        let up = [
            ("INIT", "learned"),
            ("UP", "configured"),
            ("UP", "internal"),
        ];
        assert_eq!(connectivity(up.into_iter()), Some(true));
        let idle = [("INIT", "learned"), ("INIT", "internal")];
        assert_eq!(connectivity(idle.into_iter()), None, "an idle producer");
        let down = [("INIT", "learned"), ("DOWN", "configured")];
        assert_eq!(connectivity(down.into_iter()), Some(false));
        let refused = [("SSL_HANDSHAKE", "configured")];
        assert_eq!(connectivity(refused.into_iter()), Some(false));
        let internal_only = [("UP", "internal")];
        assert_eq!(connectivity(internal_only.into_iter()), None);
    }

    #[test]
    fn a_retried_cause_reads_the_same_on_every_attempt() {
        let first = "sasl_ssl://127.0.0.1:40211/bootstrap: SASL authentication error: \
                     Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism SCRAM-SHA-512 (after 3ms in state AUTH_REQ)";
        let again = first.replace("3ms", "41ms");
        assert_eq!(steady_cause(first), steady_cause(&again));
        assert_eq!(
            steady_cause(first),
            "SASL authentication error: Authentication failed during authentication due to \
             invalid credentials with SASL mechanism SCRAM-SHA-512"
        );
        assert_eq!(
            steady_cause(
                "ssl://127.0.0.1:1/1: SSL handshake failed (after 0ms in state SSL_HANDSHAKE)"
            ),
            "SSL handshake failed"
        );
        assert_eq!(steady_cause("plain words"), "plain words");
    }
}
