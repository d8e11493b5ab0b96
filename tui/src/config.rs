//! `spine-tui`'s command line: `SPINE_API`, `KAFKA_BOOTSTRAP`, `TOPIC`, `KAFKA_PROPERTIES`
//! (docs/contracts.md, "Configuration"), and `peek`'s kcat/rpk flags (docs/contracts.md,
//! "spine-tui").

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
    /// Print records of the topic as JSON lines, as kcat and rpk do: by default the newest 5
    /// (oldest of them first), then exit
    Peek(PeekArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct PeekArgs {
    /// How many records [default: the newest 5; with --offset, every record to the end; with
    /// --follow, no limit]
    #[arg(long, short = 'n',
          value_parser = |s: &str| parse_u64_in(s, 1, 1_000_000, "a number of records"))]
    pub num: Option<u64>,

    /// Only this partition
    #[arg(long, short = 'p', allow_negative_numbers = true, value_parser = parse_partition)]
    pub partition: Option<i32>,

    /// Where each partition starts: beginning, end, an offset, -N (its last N) or @<ms timestamp>
    #[arg(long, short = 'o', allow_hyphen_values = true, value_parser = parse_start)]
    pub offset: Option<Start>,

    /// Keep printing records as they arrive, until Ctrl-C
    #[arg(long, short = 'f')]
    pub follow: bool,

    /// Give up after this many seconds if the broker does not answer
    #[arg(long = "timeout-secs", default_value = "15",
          value_parser = |s: &str| parse_u64_in(s, 1, 3600, "a number of seconds"))]
    pub timeout_secs: u64,

    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Where `peek --offset` starts each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Its first record (`beginning`).
    Beginning,
    /// After its last record (`end`): only new records, with `--follow`.
    End,
    /// This offset (clamped to the records the partition holds).
    Offset(i64),
    /// Its last N records (`-N`).
    Last(i64),
    /// The first record at or after this time (`@<milliseconds since the epoch>`), as the
    /// broker answers `ListOffsets` by timestamp.
    Time(i64),
}

fn parse_start(s: &str) -> Result<Start, String> {
    let expected = "expected beginning, end, an offset, -N (the last N) or @<ms timestamp>";
    let s = s.trim();
    match s {
        "beginning" | "start" | "oldest" | "earliest" => return Ok(Start::Beginning),
        "end" | "newest" | "latest" => return Ok(Start::End),
        _ => {}
    }
    let number = |t: &str| t.parse::<i64>().ok().filter(|n| *n >= 0);
    if let Some(ms) = s.strip_prefix('@') {
        return number(ms)
            .map(Start::Time)
            .ok_or_else(|| expected.to_owned());
    }
    if let Some(n) = s.strip_prefix('-') {
        return number(n)
            .filter(|n| *n > 0)
            .map(Start::Last)
            .ok_or_else(|| expected.to_owned());
    }
    number(s)
        .map(Start::Offset)
        .ok_or_else(|| expected.to_owned())
}

fn parse_partition(s: &str) -> Result<i32, String> {
    match s.trim().parse::<i32>() {
        Ok(p) if p >= 0 => Ok(p),
        _ => Err("expected a partition number, 0 or more".into()),
    }
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
        // Client properties given before `peek` come first; its own are applied after them.
        let mut property = self.kafka.property.clone();
        property.append(&mut peek.kafka.property);
        peek.kafka.property = property;
        if peek.kafka.properties.is_none() {
            peek.kafka.properties = self.kafka.properties.clone();
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
            (Some(7), "h:1", "t1")
        );
        let a = parse(&["spine-tui", "--brokers", "h:1", "peek", "--brokers", "h:2"]);
        let Some(Command::Peek(p)) = a.command else {
            panic!("peek")
        };
        assert_eq!((p.num, p.kafka.bootstrap.as_str()), (None, "h:2"));
    }

    #[test]
    fn peek_takes_kcat_s_and_rpk_s_flags() {
        let peek = |args: &[&str]| {
            let mut all = vec!["spine-tui", "-X", "sasl.username=u", "peek"];
            all.extend(args);
            match parse(&all).command {
                Some(Command::Peek(p)) => p,
                None => panic!("peek"),
            }
        };
        let p = peek(&[
            "-p",
            "0",
            "-o",
            "beginning",
            "-n",
            "3",
            "-b",
            "h:9",
            "-t",
            "t9",
            "-f",
        ]);
        assert_eq!(
            (p.partition, p.offset, p.num, p.follow),
            (Some(0), Some(Start::Beginning), Some(3), true)
        );
        assert_eq!(
            (p.kafka.bootstrap.as_str(), p.kafka.topic.as_str()),
            ("h:9", "t9")
        );
        for (given, start) in [
            ("end", Start::End),
            ("42", Start::Offset(42)),
            ("-5", Start::Last(5)),
            ("@1700000000000", Start::Time(1_700_000_000_000)),
        ] {
            assert_eq!(peek(&["-o", given]).offset, Some(start), "{given}");
        }
        assert_eq!(peek(&["--offset=-5"]).offset, Some(Start::Last(5)));
        let p = peek(&["-X", "sasl.password=hunter2"]);
        let props = p.kafka.client_properties().to_string();
        assert_eq!(props, "sasl.username=u,sasl.password=***");
        let p = peek(&[]);
        assert_eq!(
            (p.partition, p.offset, p.num, p.follow),
            (None, None, None, false)
        );
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        let command = TuiArgs::command();
        for (args, expected) in [
            (vec!["spine-tui", "--api", "localhost:8000"], "invalid SPINE_API (--api) \"localhost:8000\": expected an http:// URL"),
            (vec!["spine-tui", "--api", "https://x"], "invalid SPINE_API (--api) \"https://x\": expected an http:// URL (spine-tui speaks plain HTTP"),
            (vec!["spine-tui", "peek", "--num", "0"], "invalid --num \"0\": expected a number of records from 1"),
            (vec!["spine-tui", "peek", "-o", "-0"], "invalid --offset \"-0\": expected beginning, end, an offset, -N"),
            (vec!["spine-tui", "peek", "-o", "yesterday"], "invalid --offset \"yesterday\": expected beginning"),
            (vec!["spine-tui", "peek", "-o", "@x"], "invalid --offset \"@x\": expected"),
            (vec!["spine-tui", "peek", "-p", "-1"], "invalid --partition \"-1\": expected a partition number"),
            (vec!["spine-tui", "peek", "-X", "sasl.password"], "invalid --kafka-property: expected key=value"),
        ] {
            let err = TuiArgs::try_parse_from(&args).expect_err("invalid");
            let sub = command.find_subcommand("peek").cloned();
            let msg = spine_core::config::one_line_error(&err, if args.contains(&"peek") { sub.as_ref().unwrap_or(&command) } else { &command });
            assert!(msg.starts_with(expected), "{msg}");
        }
    }
}
