//! The argument groups the binaries flatten into their own: where the broker is, how to log,
//! where the operations listener listens. (Postgres' group is in [`super::postgres`].)

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

use super::parsers::{parse_bootstrap, parse_log_filter, parse_socket_addr, parse_topic};

/// Where the Kafka-API broker is and which topic carries the events.
#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka-API bootstrap servers, host:port[,host:port...]
    #[arg(
        long = "kafka-bootstrap",
        visible_alias = "brokers",
        env = "KAFKA_BOOTSTRAP",
        default_value = "localhost:9092",
        value_parser = parse_bootstrap
    )]
    pub bootstrap: String,

    /// The topic of order events
    #[arg(long, env = "TOPIC", default_value = "events", value_parser = parse_topic)]
    pub topic: String,
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
    }
}
