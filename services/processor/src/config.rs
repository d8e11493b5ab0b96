//! `spine-processor`'s configuration (docs/contracts.md, "Configuration").

use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use spine_core::config::{parse_u64_in, KafkaArgs, LogArgs, MetricsArgs, PostgresArgs};

use crate::gaps::OnDataLoss;

/// Reads order events from the topic in micro-batches and writes each batch to Postgres in
/// one transaction, offsets included: exactly once, restartable at any instant.
#[derive(Parser, Debug, Clone)]
#[command(name = "spine-processor", version)]
pub struct ProcessorArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Consumer group shared by the processor's replicas
    #[arg(long = "consumer-group", env = "CONSUMER_GROUP", default_value = "stream-processor", value_parser = parse_group)]
    pub consumer_group: String,

    /// Milliseconds between micro-batches; 0 = the next batch as soon as the last is written
    #[arg(long = "trigger-interval-ms", env = "TRIGGER_INTERVAL_MS", default_value = "5000",
          value_parser = |s: &str| parse_u64_in(s, 0, 86_400_000, "a whole number of milliseconds"))]
    pub trigger_interval_ms: u64,

    /// The most records one micro-batch takes
    #[arg(long = "max-batch-rows", env = "MAX_BATCH_ROWS", default_value = "50000",
          value_parser = |s: &str| parse_u64_in(s, 1, 10_000_000, "a whole number of rows"))]
    pub max_batch_rows: u64,

    /// The most bytes (record keys and values, as read) one micro-batch takes; a batch is cut
    /// when either this or MAX_BATCH_ROWS is reached
    #[arg(long = "max-batch-bytes", env = "MAX_BATCH_BYTES", default_value = "16777216",
          value_parser = |s: &str| parse_u64_in(s, 1024, MAX_BATCH_BYTES_LIMIT, "a whole number of bytes"))]
    pub max_batch_bytes: u64,

    /// What to do when offsets to read are gone (the broker lost records, the topic was
    /// recreated, retention removed unread records): fail (write nothing, exit 3) or continue
    /// (resume where the log has records and record the gap in stream_gaps)
    #[arg(long = "on-data-loss", env = "ON_DATA_LOSS", value_enum, default_value_t = OnDataLoss::Fail)]
    pub on_data_loss: OnDataLoss,

    /// Process everything up to the end of the topic as seen at start, then exit 0 (as Spark's
    /// Trigger.AvailableNow)
    #[arg(long = "available-now")]
    pub available_now: bool,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    #[command(flatten)]
    pub log: LogArgs,

    /// Test hook: abort at a point of the Nth batch (before-commit:N, after-commit:N), or pause
    /// 5 s before writing it (pause-before-write:N) or while holding the batch lock
    /// (pause-holding-lock:N)
    #[arg(long = "crash-at", env = "SPINE_CRASH_AT", hide = true)]
    pub crash_at: Option<CrashPoint>,
}

/// The largest `MAX_BATCH_BYTES` accepted (512 MiB): far below what one Postgres statement
/// can carry (1 GiB).
pub const MAX_BATCH_BYTES_LIMIT: u64 = 512 * 1024 * 1024;

impl ProcessorArgs {
    pub fn trigger_interval(&self) -> Duration {
        Duration::from_millis(self.trigger_interval_ms)
    }
}

fn parse_group(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 255 {
        Err("expected a consumer group name of 1 to 255 characters".into())
    } else {
        Ok(s.to_owned())
    }
}

/// Where the crash test hook aborts the process (SIGKILL-like: no cleanup runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Inside the Nth batch's transaction, after every statement, before COMMIT.
    BeforeCommit(u64),
    /// Right after the Nth batch committed, before anything else.
    AfterCommit(u64),
    /// Not a crash: sleep 5 s after cutting the Nth batch, before writing it, so a test can
    /// freeze the process there (SIGSTOP) and let another replica take over.
    PauseBeforeWrite(u64),
    /// Not a crash: sleep 5 s inside the Nth batch's transaction, after taking the batch lock
    /// (`LOCK TABLE stream_batches`) and before COMMIT, so a test can freeze the process while
    /// it holds the lock every other writer needs.
    PauseHoldingLock(u64),
}

impl FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || {
            "expected before-commit:N, after-commit:N, pause-before-write:N or pause-holding-lock:N"
                .to_string()
        };
        let (point, n) = s.split_once(':').ok_or_else(expected)?;
        let n: u64 = n.parse().map_err(|_| expected())?;
        match point {
            "before-commit" => Ok(CrashPoint::BeforeCommit(n)),
            "after-commit" => Ok(CrashPoint::AfterCommit(n)),
            "pause-before-write" => Ok(CrashPoint::PauseBeforeWrite(n)),
            "pause-holding-lock" => Ok(CrashPoint::PauseHoldingLock(n)),
            _ => Err(expected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use spine_core::config::one_line_error;

    fn error_of(args: &[&str]) -> String {
        let err = ProcessorArgs::try_parse_from(args).expect_err("should fail");
        one_line_error(&err, &ProcessorArgs::command())
    }

    #[test]
    fn max_batch_bytes_defaults_to_16_mib_and_a_bad_one_is_one_line() {
        let arg = ProcessorArgs::command()
            .get_arguments()
            .find(|a| a.get_long() == Some("max-batch-bytes"))
            .map(|a| a.get_default_values()[0].to_string_lossy().into_owned());
        assert_eq!(arg.as_deref(), Some("16777216"));
        for bad in ["12", "1GB", "536870913"] {
            let e = error_of(&["spine-processor", "--max-batch-bytes", bad]);
            assert!(
                e.starts_with("invalid MAX_BATCH_BYTES (--max-batch-bytes)")
                    && e.contains("expected a whole number of bytes from 1024 to 536870912")
                    && !e.contains('\n'),
                "{e}"
            );
        }
        let ok = ProcessorArgs::try_parse_from(["spine-processor", "--max-batch-bytes", "1024"]);
        assert_eq!(ok.expect("valid").max_batch_bytes, 1024);
    }
}
