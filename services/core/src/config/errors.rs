//! Parsing the command line and environment with start-up errors that fit on one line: clap's
//! errors rewritten to name the variable, its flag and what was expected, never a secret.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

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
    use crate::config::{parse_u64_in, KafkaArgs, LogArgs, MetricsArgs, Secret};
    use clap::CommandFactory;

    #[derive(Parser, Debug)]
    #[command(name = "spine-test")]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        metrics: MetricsArgs,
        #[arg(long = "trigger-interval-ms", env = "SPINE_TEST_TRIGGER", default_value = "5000",
              value_parser = |s: &str| parse_u64_in(s, 0, 3_600_000, "a whole number of milliseconds"))]
        trigger: u64,
        #[arg(long = "token", env = "SPINE_TEST_TOKEN", hide_env_values = true,
              value_parser = |s: &str| if s.len() < 8 { Err("expected at least 8 characters") } else { Ok(Secret::new(s)) })]
        token: Option<Secret>,
    }

    fn error_of(args: &[&str]) -> String {
        let err = Cli::try_parse_from(args).expect_err("should fail");
        one_line_error(&err, &Cli::command())
    }

    #[test]
    fn bad_values_fail_in_one_line_naming_the_variable() {
        let msg = error_of(&["spine-test", "--trigger-interval-ms", "abc"]);
        assert_eq!(
            msg,
            "invalid SPINE_TEST_TRIGGER (--trigger-interval-ms) \"abc\": expected a whole number of milliseconds from 0 to 3600000"
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
        let msg = error_of(&["spine-test", "--metrics-addr", "nowhere"]);
        assert_eq!(
            msg,
            "invalid METRICS_ADDR (--metrics-addr) \"nowhere\": expected ip:port, e.g. 0.0.0.0:8000"
        );
    }

    #[test]
    fn hidden_values_are_left_out_and_long_ones_cut() {
        let msg = error_of(&["spine-test", "--token", "hunter2"]);
        assert_eq!(
            msg,
            "invalid SPINE_TEST_TOKEN (--token): expected at least 8 characters"
        );
        let long = "x".repeat(200);
        let msg = error_of(&["spine-test", "--topic", &format!("{long} ")]);
        assert!(msg.contains(&format!("\"{}…\"", "x".repeat(80))), "{msg}");
    }

    #[test]
    fn other_clap_errors_keep_their_first_line() {
        let msg = error_of(&["spine-test", "--no-such-flag"]);
        assert!(
            msg.starts_with("unexpected argument '--no-such-flag'"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
