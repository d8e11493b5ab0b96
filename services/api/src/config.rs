//! `spine-api`'s configuration (docs/contracts.md, "Configuration").
//!
//! The API reads with a role of its own: `POSTGRES_API_USER` / `POSTGRES_API_PASSWORD` (host,
//! port and database from the `POSTGRES_*` values or `DATABASE_URL`), or one
//! `API_DATABASE_URL`. When neither is set it falls back to the writer's `POSTGRES_*` /
//! `DATABASE_URL` with a warning, so existing setups keep working; its sessions are read-only
//! either way.

use std::net::SocketAddr;
use std::str::FromStr;

use clap::Parser;
use spine_core::config::{
    describe_pg_config, parse_socket_addr, DatabaseUrl, KafkaArgs, LogArgs, PostgresArgs, Secret,
};

/// Serves the live orders view: JSON routes, a live HTML page, and metrics.
#[derive(Parser, Debug, Clone)]
#[command(name = "spine-api", version)]
pub struct ApiArgs {
    #[command(flatten)]
    pub postgres: PostgresArgs,

    #[command(flatten)]
    pub reader: ReaderArgs,

    // The broker and topic whose partition ends `GET /batches` measures lag against.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Address to listen on (port 0 picks a free one)
    #[arg(long = "api-addr", env = "API_ADDR", default_value = "0.0.0.0:8000",
          value_parser = parse_socket_addr)]
    pub addr: SocketAddr,

    /// At most this many GET /stream subscribers at once; one more gets a 503
    #[arg(long = "api-stream-max-subscribers", env = "API_STREAM_MAX_SUBSCRIBERS",
          default_value_t = crate::push::DEFAULT_MAX_SUBSCRIBERS,
          value_parser = crate::push::parse_max_subscribers)]
    pub stream_max_subscribers: usize,

    #[command(flatten)]
    pub log: LogArgs,
}

/// The API's own, read-only Postgres role.
#[derive(clap::Args, Clone)]
pub struct ReaderArgs {
    /// Postgres role the API reads as (a member of spine_reader); unset: the writer's POSTGRES_USER
    #[arg(long = "postgres-api-user", env = "POSTGRES_API_USER", value_parser = parse_role)]
    pub api_user: Option<String>,

    /// Password of POSTGRES_API_USER (never printed)
    #[arg(
        long = "postgres-api-password",
        env = "POSTGRES_API_PASSWORD",
        hide_env_values = true
    )]
    pub api_password: Option<Secret>,

    /// A postgres:// URL or key=value string for the API's role; overrides POSTGRES_API_USER
    #[arg(long = "api-database-url", env = "API_DATABASE_URL", hide_env_values = true,
          value_parser = parse_url)]
    pub api_database_url: Option<DatabaseUrl>,
}

impl std::fmt::Debug for ReaderArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderArgs")
            .field("api_user", &self.api_user)
            .field("api_password", &self.api_password.as_ref().map(|_| "***"))
            .field(
                "api_database_url",
                &self.api_database_url.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// Whose role the API's sessions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `POSTGRES_API_USER` or `API_DATABASE_URL`.
    Reader,
    /// Neither was set: the writer's `POSTGRES_USER` / `DATABASE_URL` (still read-only sessions).
    Writer,
}

impl ApiArgs {
    /// The connection configuration of the API's sessions, `application_name` = `spine-api`.
    /// Errors are one line naming the variables.
    pub fn pg_config(&self) -> Result<(tokio_postgres::Config, Role), String> {
        let base = self.postgres.pg_config(crate::APPLICATION_NAME);
        if let Some(url) = &self.reader.api_database_url {
            let mut c = url.0.clone();
            c.application_name(crate::APPLICATION_NAME);
            return Ok((c, Role::Reader));
        }
        match (&self.reader.api_user, &self.reader.api_password) {
            (None, None) => Ok((base, Role::Writer)),
            (None, Some(_)) => Err(
                "POSTGRES_API_PASSWORD (--postgres-api-password) is set but POSTGRES_API_USER is not: set both, or API_DATABASE_URL".into(),
            ),
            (Some(user), password) => {
                // Where from the writer's settings; who from the API's own, never the writer's
                // password.
                let mut c = tokio_postgres::Config::new();
                for host in base.get_hosts() {
                    match host {
                        tokio_postgres::config::Host::Tcp(h) => c.host(h),
                        tokio_postgres::config::Host::Unix(p) => c.host_path(p),
                    };
                }
                for port in base.get_ports() {
                    c.port(*port);
                }
                if let Some(db) = base.get_dbname() {
                    c.dbname(db);
                }
                c.user(user).application_name(crate::APPLICATION_NAME);
                if let Some(p) = password {
                    c.password(p.expose());
                }
                Ok((c, Role::Reader))
            }
        }
    }

    /// `user@host:port/db` of the API's sessions, for log lines.
    pub fn describe(&self) -> String {
        self.pg_config()
            .map(|(c, _)| describe_pg_config(&c))
            .unwrap_or_else(|e| e)
    }
}

fn parse_role(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 63 {
        Err("expected a Postgres role name of 1 to 63 characters".into())
    } else {
        Ok(s.to_owned())
    }
}

fn parse_url(s: &str) -> Result<DatabaseUrl, String> {
    // tokio-postgres' parse errors never echo the input, so they are safe to show.
    tokio_postgres::Config::from_str(s.trim())
        .map(DatabaseUrl)
        .map_err(|e| format!("expected a postgres:// URL or key=value string ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ApiArgs {
        let mut argv = vec![
            "spine-api",
            "--postgres-host",
            "db.example",
            "--postgres-port",
            "6543",
            "--postgres-db",
            "platform",
            "--postgres-user",
            "writer",
            "--postgres-password",
            "writer-secret",
        ];
        argv.extend_from_slice(args);
        ApiArgs::try_parse_from(argv).expect("valid")
    }

    #[test]
    fn the_api_role_takes_where_from_the_writer_and_who_from_its_own_settings() {
        let (c, role) = parse(&[
            "--postgres-api-user",
            "spine_api",
            "--postgres-api-password",
            "reader-secret",
        ])
        .pg_config()
        .expect("config");
        assert_eq!(role, Role::Reader);
        assert_eq!(c.get_user(), Some("spine_api"));
        assert_eq!(c.get_password(), Some(&b"reader-secret"[..]));
        assert_eq!(c.get_dbname(), Some("platform"));
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_application_name(), Some("spine-api"));

        // Without a password of its own, the writer's is never sent.
        let (c, _) = parse(&["--postgres-api-user", "spine_api"])
            .pg_config()
            .expect("config");
        assert_eq!(c.get_password(), None);
    }

    #[test]
    fn api_database_url_overrides_and_unset_falls_back_to_the_writer() {
        let (c, role) = parse(&[
            "--api-database-url",
            "postgres://r:pw@h:1/d",
            "--postgres-api-user",
            "x",
        ])
        .pg_config()
        .expect("config");
        assert_eq!((c.get_user(), role), (Some("r"), Role::Reader));
        assert_eq!(c.get_application_name(), Some("spine-api"));
        let (c, role) = parse(&[]).pg_config().expect("config");
        assert_eq!((c.get_user(), role), (Some("writer"), Role::Writer));
    }

    #[test]
    fn a_password_without_a_user_is_a_one_line_error() {
        let e = parse(&["--postgres-api-password", "reader-secret"])
            .pg_config()
            .expect_err("needs a user");
        assert!(
            e.contains("POSTGRES_API_USER") && !e.contains("reader-secret") && !e.contains('\n'),
            "{e}"
        );
        assert!(
            !format!("{:?}", parse(&["--postgres-api-password", "reader-secret"]))
                .contains("reader-secret")
        );
    }
}
