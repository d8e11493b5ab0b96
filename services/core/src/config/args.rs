//! The argument groups the binaries flatten into their own: where the broker is, how to log,
//! where the operations listener listens. (Postgres' group is in [`super::postgres`].)

use std::net::SocketAddr;

use clap::{ArgAction, Args, ValueEnum};

use super::kafka::{parse_kafka_properties, parse_kafka_property, KafkaProperties, KafkaProperty};
use super::parsers::{parse_bootstrap, parse_log_filter, parse_socket_addr, parse_topic};

/// Where the Kafka-API broker is, which topic carries the events, and the librdkafka client
/// properties of every Kafka client (SASL, TLS: see [`super::kafka`]).
#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka-API bootstrap servers, host:port[,host:port...]
    #[arg(
        short = 'b',
        long = "kafka-bootstrap",
        visible_alias = "brokers",
        env = "KAFKA_BOOTSTRAP",
        default_value = "localhost:9092",
        value_parser = parse_bootstrap
    )]
    pub bootstrap: String,

    /// The topic of order events
    #[arg(short = 't', long, env = "TOPIC", default_value = "events", value_parser = parse_topic)]
    pub topic: String,

    /// A librdkafka client property for every Kafka client, e.g. -X security.protocol=SASL_SSL
    /// (repeatable; wins over KAFKA_PROPERTIES)
    #[arg(
        short = 'X',
        long = "kafka-property",
        value_name = "KEY=VALUE",
        action = ArgAction::Append,
        hide_env_values = true,
        value_parser = parse_kafka_property
    )]
    pub property: Vec<KafkaProperty>,

    /// librdkafka client properties, key=value[,key=value...]
    #[arg(
        long = "kafka-properties",
        env = "KAFKA_PROPERTIES",
        value_name = "KEY=VALUE,...",
        hide_env_values = true,
        value_parser = parse_kafka_properties
    )]
    pub properties: Option<KafkaProperties>,
}

impl KafkaArgs {
    /// Every client property: `KAFKA_PROPERTIES`' then each `-X` (a later key wins). Each
    /// binary applies them to every Kafka client it makes
    /// ([`KafkaProperties::client_config`] with the `kafka` feature).
    pub fn client_properties(&self) -> KafkaProperties {
        KafkaProperties::new(
            self.properties
                .iter()
                .flat_map(KafkaProperties::iter)
                .chain(&self.property)
                .cloned(),
        )
    }
}

/// Logging: `RUST_LOG` filter and `LOG_FORMAT`.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log filter, as tracing's EnvFilter reads it (e.g. info,spine_processor=debug)
    #[arg(long = "rust-log", env = "RUST_LOG", default_value = "info", value_parser = parse_log_filter)]
    pub filter: String,

    /// Log line format
    #[arg(
        long = "log-format",
        env = "LOG_FORMAT",
        default_value = "text",
        value_enum
    )]
    pub format: LogFormat,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The `/metrics` + `/healthz` listener of the producer and the processor.
#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Address of the /metrics, /healthz and /readyz listener (port 0 picks a free one)
    #[arg(long = "metrics-addr", env = "METRICS_ADDR", default_value = "0.0.0.0:9100", value_parser = parse_socket_addr)]
    pub addr: SocketAddr,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    #[command(name = "spine-test")]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
    }

    /// The declared default of the argument read from `env`. Reading the declaration rather
    /// than parsing means a variable set where the tests run cannot change the outcome.
    pub(crate) fn default_of(command: &clap::Command, env: &str) -> Option<String> {
        let arg = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == env))?;
        arg.get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let command = Cli::command();
        let default_of = |env| default_of(&command, env);
        assert_eq!(
            default_of("KAFKA_BOOTSTRAP").as_deref(),
            Some("localhost:9092")
        );
        assert_eq!(default_of("TOPIC").as_deref(), Some("events"));
        assert_eq!(default_of("METRICS_ADDR").as_deref(), Some("0.0.0.0:9100"));
        assert_eq!(default_of("RUST_LOG").as_deref(), Some("info"));
        assert_eq!(default_of("LOG_FORMAT").as_deref(), Some("text"));
    }

    #[test]
    fn flags_set_every_field() {
        let cli = Cli::try_parse_from([
            "spine-test",
            "--brokers",
            "b:1",
            "--topic",
            "t",
            "--rust-log",
            "debug",
            "--log-format",
            "json",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .expect("parses");
        assert_eq!(cli.kafka.bootstrap, "b:1");
        assert_eq!(cli.kafka.topic, "t");
        assert_eq!(cli.log.filter, "debug");
        assert_eq!(cli.log.format, LogFormat::Json);
        assert_eq!(cli.metrics.addr.port(), 0);
        assert!(cli.kafka.client_properties().is_empty());
    }

    #[test]
    fn kafka_properties_come_from_the_variable_and_each_x_in_order() {
        let cli = Cli::try_parse_from([
            "spine-test",
            "-b",
            "h:1",
            "-t",
            "t1",
            "--kafka-properties",
            "security.protocol=SASL_SSL,sasl.password=from-env",
            "-X",
            "sasl.password=hunter2",
            "-X",
            "sasl.username=spine",
        ])
        .expect("parses");
        assert_eq!(
            (cli.kafka.bootstrap.as_str(), cli.kafka.topic.as_str()),
            ("h:1", "t1")
        );
        let props = cli.kafka.client_properties();
        let pairs: Vec<(&str, &str)> = props.iter().map(|p| (p.key(), p.expose())).collect();
        assert_eq!(
            pairs,
            [
                ("security.protocol", "SASL_SSL"),
                ("sasl.password", "from-env"),
                ("sasl.password", "hunter2"),
                ("sasl.username", "spine"),
            ]
        );
        let shown = format!("{cli:?} {props}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("from-env"),
            "{shown}"
        );
        assert!(shown.contains("sasl.username=spine"), "{shown}");
    }

    #[test]
    fn a_malformed_kafka_property_is_a_one_line_error_without_its_value() {
        let command = Cli::command();
        for (args, expected) in [
            (
                vec![
                    "spine-test",
                    "--kafka-properties",
                    "security.protocol=SSL,sasl.passwordhunter2",
                ],
                "invalid KAFKA_PROPERTIES (--kafka-properties): entry 2: expected key=value",
            ),
            (
                vec!["spine-test", "-X", "sasl.passwordhunter2"],
                "invalid --kafka-property: expected key=value",
            ),
        ] {
            let err = Cli::try_parse_from(&args).expect_err("invalid");
            let line = crate::config::one_line_error(&err, &command);
            assert!(line.starts_with(expected), "{line}");
            assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");
        }
    }
}
