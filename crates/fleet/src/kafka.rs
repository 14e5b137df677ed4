//! Kafka clients: configuration from the environment, connectivity tracking for the health
//! checks, and the idempotent "ensure topics" step every service runs at start.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

mod producer;
pub use producer::{AckContext, AsyncProducer, Outgoing, PolledProducer};

/// Name of the health check that tracks broker connectivity.
pub const KAFKA_CHECK: &str = "kafka";

/// Our own `KAFKA_*` settings, which are not librdkafka properties.
const OWN_SETTINGS: &[&str] = &[
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_TOPIC_PARTITIONS",
    "KAFKA_TOPIC_REPLICATION_FACTOR",
];

/// Maps `KAFKA_SECURITY_PROTOCOL=ssl` to `("security.protocol", "ssl")` for every variable
/// that starts with `KAFKA_` and is not one of our own settings. librdkafka property names use
/// dots only, so `_` always maps to `.`.
pub fn passthrough_properties(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut props: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with("KAFKA_") && !OWN_SETTINGS.contains(&name.as_str()))
        .map(|(name, value)| {
            let property = name["KAFKA_".len()..]
                .to_ascii_lowercase()
                .replace('_', ".");
            (property, value)
        })
        .filter(|(property, _)| !property.is_empty())
        .collect();
    props.sort();
    props
}

/// Base client configuration: bootstrap servers, statistics every second (they drive the
/// connectivity check and lag gauges), then every `KAFKA_*` passthrough property, which wins.
pub fn client_config(bootstrap_servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap_servers)
        .set("statistics.interval.ms", "1000");
    for (property, value) in passthrough_properties(std::env::vars()) {
        config.set(property, value);
    }
    config
}

/// `defaults` overlaid by `base`: a service's own defaults (idempotence, session timeout…)
/// yield to whatever the operator set, including through the `KAFKA_*` passthrough.
/// `base` is cloned, never read back through `config_map()`: rdkafka sanitizes secrets there,
/// so a copy made from it would authenticate with the placeholder instead of the password.
pub fn with_defaults(base: &ClientConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = base.clone();
    for (key, value) in defaults {
        if config.get(key).is_none() {
            config.set(*key, *value);
        }
    }
    config
}

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

/// A client context that only feeds a [`BrokerWatch`]: the metadata reader of [`ensure_topics`]
/// (private: nothing else needs a client that only watches).
#[derive(Debug, Clone)]
struct WatchedContext {
    watch: BrokerWatch,
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

/// Exponential backoff for outage retries: 100 ms doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at 100 ms, caps at `max`.
    pub fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(100),
            max,
        }
    }

    /// The delay to wait now; doubles the next one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}

/// Why the fleet's topics could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// A Kafka client could not be created (a bad `KAFKA_*` property).
    #[error("Kafka client: {0}")]
    Client(#[from] KafkaError),
    /// The broker refused to create a topic: the settings ask for what it cannot give.
    #[error(
        "Kafka refused to create topic {topic} with {partitions} partitions and replication \
         factor {replication} (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR): {code}"
    )]
    Refused {
        /// The topic.
        topic: String,
        /// Partitions asked for.
        partitions: i32,
        /// Replication factor asked for.
        replication: i32,
        /// The broker's answer.
        code: RDKafkaErrorCode,
    },
    /// The CreateTopics request itself failed.
    #[error("Kafka CreateTopics for {topics:?} failed: {error}")]
    Request {
        /// The topics asked for.
        topics: Vec<String>,
        /// What failed.
        error: KafkaError,
    },
}

/// Creates those of `topics` that do not exist with CreateTopics (existing ones are left as
/// they are, so a second start changes nothing). Reading the cluster's metadata is retried
/// with backoff while Kafka is unreachable or refuses us; `watch` hears the cause (health,
/// one log line). A refusal to create a topic is an error: the service stops with one line.
/// A broker that never answers CreateTopics (librdkafka's mock cluster behind `devbroker`)
/// gets a warning and the service relies on the topics existing. Returns `Ok(false)` if
/// `shutdown` fired first.
pub async fn ensure_topics(
    config: &ClientConfig,
    watch: &BrokerWatch,
    topics: &[&str],
    partitions: i32,
    replication: i32,
    shutdown: &CancellationToken,
) -> Result<bool, TopicsError> {
    // Metadata is read through a producer that nobody sends on: polling it serves librdkafka's
    // main queue, where connection errors (a refused certificate, a wrong password) and
    // statistics reach the watch. The admin client's own queue carries only admin results.
    let context = WatchedContext {
        watch: watch.clone(),
    };
    let reader: std::sync::Arc<BaseProducer<WatchedContext>> =
        std::sync::Arc::new(config.create_with_context(context)?);
    let mut backoff = Backoff::new(Duration::from_secs(10));
    let mut waited = false;
    let existing = loop {
        let client = reader.clone();
        let metadata = tokio::task::spawn_blocking(move || {
            let names = client
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .iter()
                        .map(|t| t.name().to_string())
                        .collect::<Vec<_>>()
                });
            // Serves every event queued meanwhile (one poll call with no wait serves one).
            client.poll(Duration::from_millis(100));
            names
        });
        // A metadata request to an unreachable broker blocks for its 5 s timeout: a stop does
        // not wait for it (the blocking task ends on its own).
        let metadata = tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            metadata = metadata => metadata,
        };
        match metadata {
            Ok(Ok(names)) => break names,
            // The cause (refused, unreachable) reaches the watch through the context; this
            // says once what the service is waiting for.
            Ok(Err(err)) if !waited => {
                tracing::warn!(%err, "waiting for Kafka metadata before creating topics");
                waited = true;
            }
            Ok(Err(err)) => tracing::debug!(%err, "Kafka metadata not readable yet"),
            Err(err) => tracing::warn!(%err, "metadata task failed, retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(false),
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    };
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let missing: Vec<NewTopic<'_>> = topics
        .iter()
        .filter(|t| !existing.iter().any(|e| e == *t))
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication)))
        .collect();
    if missing.is_empty() {
        return Ok(true);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = tokio::time::timeout(
        Duration::from_secs(15),
        admin.create_topics(&missing, &options),
    )
    .await;
    let names: Vec<String> = missing.iter().map(|t| t.name.to_string()).collect();
    match created {
        Ok(Ok(results)) => {
            for result in results {
                match result {
                    Ok(topic) => tracing::info!(%topic, partitions, replication, "topic created"),
                    // Another instance created it between our metadata read and now.
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        return Err(TopicsError::Refused {
                            topic,
                            partitions,
                            replication,
                            code,
                        });
                    }
                }
            }
        }
        Ok(Err(error)) => {
            return Err(TopicsError::Request {
                topics: names,
                error,
            });
        }
        Err(_) => tracing::warn!(
            topics = ?names,
            "broker did not answer CreateTopics; relying on the topics existing"
        ),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn kafka_prefixed_variables_become_librdkafka_properties() {
        let props = passthrough_properties(vars(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("KAFKA_SSL_CA_LOCATION", "/etc/ca.pem"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_BOOTSTRAP_SERVERS", "ignored:9092"),
            ("KAFKA_TOPIC_PARTITIONS", "12"),
            ("KAFKA_", "empty"),
            ("PATH", "/usr/bin"),
        ]));
        assert_eq!(
            props,
            vars(&[
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("security.protocol", "sasl_ssl"),
                ("ssl.ca.location", "/etc/ca.pem"),
            ])
        );
    }

    #[test]
    fn defaults_yield_to_the_operator_and_secrets_survive_the_copy() {
        let mut base = ClientConfig::new();
        base.set("sasl.password", "s3cret")
            .set("ssl.key.password", "k3y")
            .set("linger.ms", "50");
        let config = with_defaults(&base, &[("linger.ms", "5"), ("enable.idempotence", "true")]);
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.key.password"), Some("k3y"));
        assert_eq!(
            config.get("linger.ms"),
            Some("50"),
            "the operator's value wins"
        );
        assert_eq!(config.get("enable.idempotence"), Some("true"));
    }

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

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
