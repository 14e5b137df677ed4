//! The settings every Kafka client of a service starts from: the bootstrap servers, statistics
//! (they drive the connectivity check and lag gauges) and every `KAFKA_*` variable passed
//! through to librdkafka as a property, which wins over a service's own defaults.

use rdkafka::config::ClientConfig;

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
}
