//! librdkafka client properties for every Kafka client of a binary: `-X key=value`
//! (repeatable) and `KAFKA_PROPERTIES` (`key=value,…`), so SASL and TLS clusters work
//! (docs/contracts.md, "Configuration"). Values of secret-looking keys are held as [`Secret`]s
//! and never printed.

use std::fmt;

use super::secret::Secret;

/// Keys whose values are never printed: any key containing one of these.
const SENSITIVE: &[&str] = &["password", "secret", "key.pem", "oauthbearer.config"];

/// One `key=value` librdkafka property.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaProperty {
    key: String,
    value: Secret,
}

impl KafkaProperty {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value, for the one place that needs it (the client's configuration).
    pub fn expose(&self) -> &str {
        self.value.expose()
    }

    /// Whether the value is never printed (its key holds `password`, `secret`, ...).
    pub fn is_sensitive(&self) -> bool {
        let key = self.key.to_ascii_lowercase();
        SENSITIVE.iter().any(|s| key.contains(s))
    }
}

/// `key=value`, or `key=***` for a sensitive key.
impl fmt::Display for KafkaProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_sensitive() {
            write!(f, "{}={}", self.key, self.value)
        } else {
            write!(f, "{}={}", self.key, self.value.expose())
        }
    }
}

impl fmt::Debug for KafkaProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// The properties of every client a binary makes, in the order given (a later key wins).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(Vec<KafkaProperty>);

impl KafkaProperties {
    pub fn new(properties: impl IntoIterator<Item = KafkaProperty>) -> KafkaProperties {
        KafkaProperties(properties.into_iter().collect())
    }

    pub fn iter(&self) -> impl Iterator<Item = &KafkaProperty> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A client configuration holding these properties. The caller's own `set`s come after
    /// them and win: a binary's settings that its guarantees rest on (`enable.auto.commit`,
    /// `enable.idempotence`, ...) cannot be turned off by a property.
    #[cfg(feature = "kafka")]
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        for p in &self.0 {
            config.set(p.key.as_str(), p.expose());
        }
        config
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// `key=value,…` joined by commas, secrets as `***`.
impl fmt::Display for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

const EXPECTED: &str =
    "expected key=value, a librdkafka property such as security.protocol=SASL_SSL";

/// One `-X key=value`. The error never holds the value.
pub fn parse_kafka_property(s: &str) -> Result<KafkaProperty, String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("{EXPECTED} (no '=')"));
    };
    let key = key.trim();
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "{EXPECTED} (the key must be letters, digits, '.', '_' or '-')"
        ));
    }
    Ok(KafkaProperty {
        key: key.to_owned(),
        value: Secret::new(value.trim()),
    })
}

/// `KAFKA_PROPERTIES`: `key=value` entries separated by commas (an empty entry is skipped; a
/// value holding a comma needs `-X`). The error names the entry by its position, never its
/// value.
pub fn parse_kafka_properties(s: &str) -> Result<KafkaProperties, String> {
    let mut properties = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let property = parse_kafka_property(entry).map_err(|e| {
            format!(
                "entry {}: {e}; separate entries with ',' and pass a value holding a comma with -X",
                i + 1
            )
        })?;
        properties.push(property);
    }
    Ok(KafkaProperties(properties))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_in_order_and_secrets_never_print() {
        let p = parse_kafka_properties(
            "security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-256,sasl.username=spine,sasl.password=hunter2=x,,ssl.ca.location=/etc/ca.pem",
        )
        .expect("valid");
        let pairs: Vec<(&str, &str)> = p.iter().map(|p| (p.key(), p.expose())).collect();
        assert_eq!(
            pairs,
            [
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("sasl.username", "spine"),
                ("sasl.password", "hunter2=x"),
                ("ssl.ca.location", "/etc/ca.pem"),
            ]
        );
        let shown = format!("{p} {p:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sasl.password=***"), "{shown}");
        assert!(shown.contains("sasl.username=spine"), "{shown}");
        for key in [
            "sasl.password",
            "SASL.PASSWORD",
            "ssl.key.password",
            "sasl.oauthbearer.client.secret",
            "ssl.key.pem",
        ] {
            let p = parse_kafka_property(&format!("{key}=hunter2")).expect("valid");
            assert!(p.is_sensitive(), "{key}");
            assert_eq!(format!("{p} {p:?}"), format!("{key}=*** \"{key}=***\""));
        }
        assert!(!parse_kafka_property("sasl.username=u")
            .expect("valid")
            .is_sensitive());
    }

    #[test]
    fn a_malformed_entry_is_named_by_position_without_its_value() {
        let e = parse_kafka_properties("security.protocol=SASL_SSL,sasl.passwordhunter2")
            .expect_err("no '='");
        assert!(e.starts_with("entry 2: expected key=value"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse_kafka_property("=x").expect_err("no key");
        assert!(e.contains("the key must be"), "{e}");
        let e = parse_kafka_property("sasl password=hunter2").expect_err("a space");
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(
            parse_kafka_properties("").expect("empty"),
            KafkaProperties::default()
        );
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn the_client_configuration_holds_every_property() {
        let p = parse_kafka_properties("security.protocol=SASL_PLAINTEXT,sasl.password=hunter2")
            .expect("valid");
        let config = p.client_config();
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("security.protocol"), Some("SASL_PLAINTEXT"));
    }
}
