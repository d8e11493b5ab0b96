//! `spine-api`'s configuration (SPEC.md's table).

use std::net::SocketAddr;

use clap::Parser;
use spine_core::config::{KafkaArgs, LogArgs, PostgresArgs};

/// Serves the live orders view: JSON routes, a live HTML page, and metrics.
#[derive(Parser, Debug, Clone)]
#[command(name = "spine-api", version)]
pub struct ApiArgs {
    #[command(flatten)]
    pub postgres: PostgresArgs,

    // The broker and topic whose partition ends `GET /batches` measures lag against.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address to listen on (port 0 picks a free one)
    #[arg(long = "api-addr", env = "API_ADDR", default_value = "0.0.0.0:8000",
          value_parser = |s: &str| s.trim().parse::<SocketAddr>().map_err(|_| "expected ip:port, e.g. 0.0.0.0:8000".to_string()))]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub log: LogArgs,
}
