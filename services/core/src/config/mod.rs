//! Configuration shared by the binaries: every variable of SPEC.md's table, each also a
//! `--flag`, with start-up errors that fit on one line and never print a secret.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, ValueEnum};

/// A value that must never reach a log line or an error message (a password, or a URL that may
/// hold one). `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (the connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

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

// ----- value parsers: each error says what was expected, in words a user can act on -----

fn parse_non_empty(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        Err("expected a non-empty value".into())
    } else {
        Ok(s.to_owned())
    }
}

fn parse_bootstrap(s: &str) -> Result<String, String> {
    let expected = "expected host:port[,host:port...]";
    let s = s.trim();
    if s.is_empty() {
        return Err(expected.into());
    }
    for server in s.split(',') {
        let server = server.trim();
        let server = server.split_once("://").map_or(server, |(_, rest)| rest);
        let Some((host, port)) = server.rsplit_once(':') else {
            return Err(expected.into());
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(expected.into());
        }
    }
    Ok(s.to_owned())
}

/// Kafka's own rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`.
fn parse_topic(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected a Kafka topic name: 1 to 249 of letters, digits, '.', '_' or '-'".into())
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("expected a port number from 1 to 65535".into()),
    }
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected ip:port, e.g. 0.0.0.0:9100".into())
}

fn parse_database_url(s: &str) -> Result<DatabaseUrl, String> {
    // tokio-postgres' own parse errors never echo the input, so they are safe to show.
    tokio_postgres::Config::from_str(s.trim())
        .map(DatabaseUrl)
        .map_err(|e| format!("expected a postgres:// URL or key=value string ({e})"))
}

fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| {
            format!("expected a tracing filter such as info or spine_processor=debug ({e})")
        })
}

/// A whole number within `min..=max`, for counts and durations.
pub fn parse_u64_in(s: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected {what} from {min} to {max}")),
    }
}

// ----- parsing with one-line errors -----

/// Parses the command line and environment. On a bad value, prints ONE line naming the
/// variable (and its flag) and what was expected, then exits with status 2. `--help` and
/// `--version` print as usual.
pub fn parse_or_exit<T: Parser>() -> T {
    match T::try_parse() {
        Ok(parsed) => parsed,
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
            _ => {
                let command = T::command();
                eprintln!("{}: {}", command.get_name(), one_line_error(&err, &command));
                std::process::exit(2);
            }
        },
    }
}

/// Turns a clap error into one line: `invalid TRIGGER_INTERVAL_MS (--trigger-interval-ms)
/// "abc": expected ...`. The value is left out for arguments whose values are hidden
/// (passwords, URLs).
pub fn one_line_error(err: &clap::Error, command: &clap::Command) -> String {
    let flag = err.get(ContextKind::InvalidArg).and_then(|v| match v {
        ContextValue::String(s) => Some(s.clone()),
        _ => None,
    });
    let arg = flag.as_deref().and_then(|flag| {
        let long = flag.split_whitespace().next()?.trim_start_matches("--");
        command.get_arguments().find(|a| a.get_long() == Some(long))
    });
    match (err.kind(), arg) {
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some(arg)) => {
            let long = arg.get_long().unwrap_or_default();
            let name = match arg.get_env() {
                Some(env) => format!("{} (--{long})", env.to_string_lossy()),
                None => format!("--{long}"),
            };
            let value = match err.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) if !arg.is_hide_env_values_set() => {
                    format!(" {:?}", truncate(v, 80))
                }
                _ => String::new(),
            };
            let reason = std::error::Error::source(err)
                .map(|e| e.to_string())
                .or_else(|| {
                    let values: Vec<String> = arg
                        .get_possible_values()
                        .iter()
                        .map(|v| v.get_name().to_owned())
                        .collect();
                    (!values.is_empty()).then(|| format!("expected one of {}", values.join(", ")))
                })
                .unwrap_or_else(|| "invalid value".into());
            format!("invalid {name}{value}: {reason}")
        }
        _ => {
            // Other clap errors (unknown flag, missing value): keep clap's first line.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            first.trim_start_matches("error: ").to_string()
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max_chars).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(Parser, Debug)]
    #[command(name = "spine-test")]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        pg: PostgresArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
        #[arg(long = "trigger-interval-ms", env = "SPINE_TEST_TRIGGER", default_value = "5000",
              value_parser = |s: &str| parse_u64_in(s, 0, 3_600_000, "a whole number of milliseconds"))]
        trigger: u64,
    }

    fn error_of(args: &[&str]) -> String {
        let err = Cli::try_parse_from(args).expect_err("should fail");
        one_line_error(&err, &Cli::command())
    }

    #[test]
    fn defaults_match_the_spec() {
        // Read the declared defaults rather than parsing, so a variable set in the environment
        // of whoever runs the tests cannot change the outcome.
        let command = Cli::command();
        let default_of = |env: &str| -> Option<String> {
            let arg = command
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == env))?;
            arg.get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned())
        };
        assert_eq!(
            default_of("KAFKA_BOOTSTRAP").as_deref(),
            Some("localhost:9092")
        );
        assert_eq!(default_of("TOPIC").as_deref(), Some("events"));
        assert_eq!(default_of("POSTGRES_HOST").as_deref(), Some("localhost"));
        assert_eq!(default_of("POSTGRES_PORT").as_deref(), Some("5432"));
        assert_eq!(default_of("POSTGRES_DB").as_deref(), Some("platform"));
        assert_eq!(default_of("POSTGRES_USER").as_deref(), Some("platform"));
        assert_eq!(default_of("POSTGRES_PASSWORD"), None);
        assert_eq!(default_of("DATABASE_URL"), None);
        assert_eq!(default_of("METRICS_ADDR").as_deref(), Some("0.0.0.0:9100"));
        assert_eq!(default_of("RUST_LOG").as_deref(), Some("info"));
        assert_eq!(default_of("LOG_FORMAT").as_deref(), Some("text"));
    }

    #[test]
    fn bad_values_fail_in_one_line_naming_the_variable() {
        let msg = error_of(&["spine-test", "--trigger-interval-ms", "abc"]);
        assert_eq!(
            msg,
            "invalid SPINE_TEST_TRIGGER (--trigger-interval-ms) \"abc\": expected a whole number of milliseconds from 0 to 3600000"
        );
        let msg = error_of(&["spine-test", "--postgres-port", "99999"]);
        assert!(
            msg.starts_with("invalid POSTGRES_PORT (--postgres-port) \"99999\": expected a port"),
            "{msg}"
        );
        let msg = error_of(&["spine-test", "--log-format", "xml"]);
        assert!(
            msg.starts_with("invalid LOG_FORMAT (--log-format) \"xml\""),
            "{msg}"
        );
        assert!(msg.contains("text") && msg.contains("json"), "{msg}");
        let msg = error_of(&["spine-test", "--kafka-bootstrap", "nohostport"]);
        assert!(msg.starts_with("invalid KAFKA_BOOTSTRAP"), "{msg}");
        let msg = error_of(&["spine-test", "--topic", "bad topic"]);
        assert!(msg.starts_with("invalid TOPIC"), "{msg}");
        assert!(!msg.contains('\n'));
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
