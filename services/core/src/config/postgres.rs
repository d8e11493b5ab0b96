//! How to reach Postgres: [`PostgresArgs`] (the five `POSTGRES_*` values or one
//! `DATABASE_URL`), and printing where we connect without the password.

use std::fmt;
use std::str::FromStr;

use clap::Args;

use super::parsers::{parse_non_empty, parse_port};
use super::Secret;

/// How to reach Postgres: either the five `POSTGRES_*` values or one `DATABASE_URL`.
#[derive(Args, Clone)]
pub struct PostgresArgs {
    /// Postgres host
    #[arg(long = "postgres-host", env = "POSTGRES_HOST", default_value = "localhost", value_parser = parse_non_empty)]
    pub host: String,

    /// Postgres port
    #[arg(long = "postgres-port", env = "POSTGRES_PORT", default_value = "5432", value_parser = parse_port)]
    pub port: u16,

    /// Postgres database
    #[arg(long = "postgres-db", env = "POSTGRES_DB", default_value = "platform", value_parser = parse_non_empty)]
    pub db: String,

    /// Postgres user
    #[arg(long = "postgres-user", env = "POSTGRES_USER", default_value = "platform", value_parser = parse_non_empty)]
    pub user: String,

    /// Postgres password (never printed)
    #[arg(
        long = "postgres-password",
        env = "POSTGRES_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,

    /// A postgres:// URL or key=value string; overrides the five POSTGRES_* values when set
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: Option<DatabaseUrl>,
}

impl fmt::Debug for PostgresArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresArgs")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database_url", &self.database_url.as_ref().map(|_| "***"))
            .finish()
    }
}

impl PostgresArgs {
    /// The connection configuration, with `application_name` set so `pg_stat_activity` shows
    /// which spine binary holds a connection.
    pub fn pg_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut config = match &self.database_url {
            Some(url) => url.0.clone(),
            None => {
                let mut c = tokio_postgres::Config::new();
                c.host(&self.host)
                    .port(self.port)
                    .dbname(&self.db)
                    .user(&self.user);
                if let Some(password) = &self.password {
                    c.password(password.expose());
                }
                c
            }
        };
        config.application_name(application_name);
        config
    }

    /// Where we connect, for log lines: never includes the password.
    pub fn describe(&self) -> String {
        describe_pg_config(&self.pg_config(""))
    }
}

/// `user@host:port/db` of a connection config, without any secret.
pub fn describe_pg_config(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        port,
        config.get_dbname().unwrap_or("?")
    )
}

/// A parsed `DATABASE_URL`. Holds a password, so it prints as `***`.
#[derive(Clone)]
pub struct DatabaseUrl(pub tokio_postgres::Config);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl(***)")
    }
}

/// A `DATABASE_URL`: a `postgres://` URL or a libpq `key=value` string.
pub fn parse_database_url(s: &str) -> Result<DatabaseUrl, String> {
    // tokio-postgres' own parse errors never echo the input, so they are safe to show.
    tokio_postgres::Config::from_str(s.trim())
        .map(DatabaseUrl)
        .map_err(|e| format!("expected a postgres:// URL or key=value string ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::args::tests::default_of;
    use crate::config::one_line_error;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    #[command(name = "spine-test")]
    struct Cli {
        #[command(flatten)]
        pg: PostgresArgs,
    }

    fn error_of(args: &[&str]) -> String {
        let err = Cli::try_parse_from(args).expect_err("should fail");
        one_line_error(&err, &Cli::command())
    }

    #[test]
    fn defaults_match_the_contract() {
        let command = Cli::command();
        let default_of = |env| default_of(&command, env);
        assert_eq!(default_of("POSTGRES_HOST").as_deref(), Some("localhost"));
        assert_eq!(default_of("POSTGRES_PORT").as_deref(), Some("5432"));
        assert_eq!(default_of("POSTGRES_DB").as_deref(), Some("platform"));
        assert_eq!(default_of("POSTGRES_USER").as_deref(), Some("platform"));
        assert_eq!(default_of("POSTGRES_PASSWORD"), None);
        assert_eq!(default_of("DATABASE_URL"), None);
    }

    #[test]
    fn a_bad_port_fails_in_one_line_naming_the_variable() {
        let msg = error_of(&["spine-test", "--postgres-port", "99999"]);
        assert!(
            msg.starts_with("invalid POSTGRES_PORT (--postgres-port) \"99999\": expected a port"),
            "{msg}"
        );
    }

    #[test]
    fn secrets_never_print() {
        let msg = error_of(&[
            "spine-test",
            "--database-url",
            "postgres://u:hunter2@h:notaport/db",
        ]);
        assert!(
            msg.starts_with("invalid DATABASE_URL (--database-url): expected"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");

        let cli =
            Cli::try_parse_from(["spine-test", "--postgres-password", "hunter2"]).expect("parses");
        assert!(!format!("{:?}", cli.pg).contains("hunter2"));
        assert!(!cli.pg.describe().contains("hunter2"));
        assert_eq!(cli.pg.describe(), "platform@localhost:5432/platform");
    }

    #[test]
    fn database_url_overrides_the_five_values() {
        let cli = Cli::try_parse_from([
            "spine-test",
            "--postgres-host",
            "ignored",
            "--database-url",
            "postgres://alice:pw@db.example:6543/orders",
        ])
        .expect("parses");
        assert_eq!(cli.pg.describe(), "alice@db.example:6543/orders");
    }
}
