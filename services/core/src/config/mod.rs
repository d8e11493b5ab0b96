//! Configuration shared by the binaries: every variable of the contract
//! (docs/contracts.md, "Configuration"), each also a `--flag`, with start-up errors that fit
//! on one line and never print a secret.
//!
//! - [`secret`]: [`Secret`], a value that prints as `***`;
//! - [`args`]: the argument groups the binaries flatten ([`KafkaArgs`], [`LogArgs`],
//!   [`MetricsArgs`]) and, with the `postgres` feature, [`postgres`]'s `PostgresArgs`;
//! - [`kafka`]: librdkafka client properties (`-X`, `KAFKA_PROPERTIES`), secrets never printed;
//! - [`parsers`]: the value parsers, whose errors say what was expected;
//! - [`errors`]: [`parse_or_exit`] and the clap-error rewriting behind it.

pub mod args;
pub mod errors;
pub mod kafka;
pub mod parsers;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod secret;

pub use args::{KafkaArgs, LogArgs, LogFormat, MetricsArgs};
pub use errors::{one_line_error, parse_or_exit};
pub use kafka::{parse_kafka_properties, parse_kafka_property, KafkaProperties, KafkaProperty};
pub use parsers::{
    parse_bootstrap, parse_log_filter, parse_non_empty, parse_port, parse_socket_addr, parse_topic,
    parse_u64_in,
};
#[cfg(feature = "postgres")]
pub use postgres::{describe_pg_config, parse_database_url, DatabaseUrl, PostgresArgs};
pub use secret::Secret;
