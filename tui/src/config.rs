//! `spine-tui`'s command line: `SPINE_API`, `KAFKA_BOOTSTRAP`, `TOPIC` (docs/contracts.md,
//! "Configuration").

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, Parser, Subcommand};
use spine_core::config::{parse_u64_in, KafkaArgs, LogArgs};

/// The terminal observer of the whole spine: the topic's newest events, the live orders, the
/// per-tenant stats and the processor's micro-batches, in split panes.
#[derive(Parser, Debug, Clone)]
#[command(name = "spine-tui", version)]
pub struct TuiArgs {
    /// Base URL of spine-api (http only)
    #[arg(long = "api", env = "SPINE_API", default_value = "http://localhost:8000", value_parser = parse_api_url)]
    pub api: String,

    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub log: LogArgs,

    /// Where the UI writes its log (never to the screen) [default: spine-tui.log in the temp directory]
    #[arg(long = "log-file")]
    pub log_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Print the newest N records of the topic as JSON lines (oldest of them first) and exit
    Peek(PeekArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct PeekArgs {
    /// How many records
    #[arg(long, short = 'n', default_value = "5",
          value_parser = |s: &str| parse_u64_in(s, 1, 1_000_000, "a number of records"))]
    pub num: u64,

    /// Give up after this many seconds if the broker does not answer
    #[arg(long = "timeout-secs", default_value = "15",
          value_parser = |s: &str| parse_u64_in(s, 1, 3600, "a number of seconds"))]
    pub timeout_secs: u64,

    #[command(flatten)]
    pub kafka: KafkaArgs,
}

impl TuiArgs {
    /// Parses the command line, failing in one line on a bad value. `--brokers`/`--topic` may
    /// come before or after `peek`: given only before it, they still apply to it.
    pub fn parse_or_exit() -> TuiArgs {
        let mut args: TuiArgs = spine_core::config::parse_or_exit();
        // Parsing succeeded above, so it succeeds again; this time for where values came from.
        if let Ok(matches) = TuiArgs::command().try_get_matches() {
            args.inherit_kafka_args(&matches);
        }
        args
    }

    fn inherit_kafka_args(&mut self, matches: &ArgMatches) {
        let Some(Command::Peek(peek)) = &mut self.command else {
            return;
        };
        let Some(sub) = matches.subcommand_matches("peek") else {
            return;
        };
        let explicit = |m: &ArgMatches, id: &str| {
            matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
            )
        };
        if explicit(matches, "bootstrap") && !explicit(sub, "bootstrap") {
            peek.kafka.bootstrap = self.kafka.bootstrap.clone();
        }
        if explicit(matches, "topic") && !explicit(sub, "topic") {
            peek.kafka.topic = self.kafka.topic.clone();
        }
    }

    pub fn log_file(&self) -> PathBuf {
        self.log_file
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("spine-tui.log"))
    }
}

/// `http://host[:port][/prefix]`, kept without a trailing slash.
fn parse_api_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let url = reqwest::Url::parse(s)
        .map_err(|_| "expected an http:// URL, e.g. http://localhost:8000".to_string())?;
    match url.scheme() {
        "http" if url.host().is_some() => Ok(s.trim_end_matches('/').to_owned()),
        "https" => Err("expected an http:// URL (spine-tui speaks plain HTTP; reach a cluster through kubectl port-forward)".into()),
        _ => Err("expected an http:// URL, e.g. http://localhost:8000".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> TuiArgs {
        let matches = TuiArgs::command()
            .try_get_matches_from(args)
            .expect("valid");
        let mut parsed = TuiArgs::try_parse_from(args).expect("valid");
        parsed.inherit_kafka_args(&matches);
        parsed
    }

    #[test]
    fn defaults_and_variables_match_the_spec() {
        let command = TuiArgs::command();
        let arg = |env: &str| {
            command
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == env))
                .map(|a| {
                    (
                        a.get_long().unwrap_or_default().to_owned(),
                        a.get_default_values()[0].to_string_lossy().into_owned(),
                    )
                })
        };
        assert_eq!(
            arg("SPINE_API"),
            Some(("api".into(), "http://localhost:8000".into()))
        );
        assert_eq!(
            arg("KAFKA_BOOTSTRAP"),
            Some(("kafka-bootstrap".into(), "localhost:9092".into()))
        );
        assert_eq!(arg("TOPIC"), Some(("topic".into(), "events".into())));
    }

    #[test]
    fn the_issue_s_flags() {
        let a = parse(&[
            "spine-tui",
            "--api",
            "http://localhost:8000/",
            "--brokers",
            "127.0.0.1:19092",
            "--topic",
            "t1",
        ]);
        assert_eq!(a.api, "http://localhost:8000");
        assert_eq!(a.kafka.bootstrap, "127.0.0.1:19092");
        assert_eq!(a.kafka.topic, "t1");
        assert!(a.command.is_none());
    }

    #[test]
    fn peek_takes_broker_flags_before_or_after_it() {
        let a = parse(&[
            "spine-tui",
            "--brokers",
            "h:1",
            "--topic",
            "t1",
            "peek",
            "--num",
            "7",
        ]);
        let Some(Command::Peek(p)) = a.command else {
            panic!("peek")
        };
        assert_eq!(
            (p.num, p.kafka.bootstrap.as_str(), p.kafka.topic.as_str()),
            (7, "h:1", "t1")
        );
        let a = parse(&["spine-tui", "--brokers", "h:1", "peek", "--brokers", "h:2"]);
        let Some(Command::Peek(p)) = a.command else {
            panic!("peek")
        };
        assert_eq!((p.num, p.kafka.bootstrap.as_str()), (5, "h:2"));
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let command = TuiArgs::command();
        for (args, expected) in [
            (vec!["spine-tui", "--api", "localhost:8000"], "invalid SPINE_API (--api) \"localhost:8000\": expected an http:// URL"),
            (vec!["spine-tui", "--api", "https://x"], "invalid SPINE_API (--api) \"https://x\": expected an http:// URL (spine-tui speaks plain HTTP"),
            (vec!["spine-tui", "peek", "--num", "0"], "invalid --num \"0\": expected a number of records from 1"),
        ] {
            let err = TuiArgs::try_parse_from(&args).expect_err("invalid");
            let sub = command.find_subcommand("peek").cloned();
            let msg = spine_core::config::one_line_error(&err, if args.contains(&"peek") { sub.as_ref().unwrap_or(&command) } else { &command });
            assert!(msg.starts_with(expected), "{msg}");
        }
    }
}
