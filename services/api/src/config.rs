//! `spine-api`'s configuration (docs/contracts.md, "Configuration").

use std::net::SocketAddr;

use clap::Parser;
use spine_core::config::{parse_socket_addr, LogArgs, PostgresArgs};

/// Serves the live orders view: JSON routes, a live HTML page, and metrics.
#[derive(Parser, Debug, Clone)]
#[command(name = "spine-api", version)]
pub struct ApiArgs {
    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Address to listen on (port 0 picks a free one)
    #[arg(long = "api-addr", env = "API_ADDR", default_value = "0.0.0.0:8000",
          value_parser = parse_socket_addr)]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub log: LogArgs,
}
