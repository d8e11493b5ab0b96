//! Offsets the processor cannot read: what `ON_DATA_LOSS` does about them (docs/contracts.md,
//! "Configuration" and "Tables"; the design is in docs/architecture.md, "When the log lost
//! records").
//!
//! The stored offset of a partition must lie within the partition's log, `[low, high]` (its
//! low and high watermarks). It does not when the broker lost data, the topic was deleted and
//! recreated, a fresh broker was pointed at an old database (stored > high), or retention
//! removed records before they were read (stored < low). Inside a batch, an offset may also be
//! missing (N+1 never delivered after N). None of that is ever skipped silently: with `fail`
//! (the default, Spark's `failOnDataLoss=true`) the processor writes nothing and exits with
//! [`EXIT_CODE`]; with `continue` it resumes where the log has records and records the gap in
//! `stream_gaps`, in the same transaction as the first batch after it.
//!
//! The decisions here are pure functions of offsets, unit-tested below.

use chrono::{DateTime, Utc};

/// The process's exit status when it stopped on data loss (`fail`).
pub const EXIT_CODE: u8 = 3;

/// `ON_DATA_LOSS`: what to do when offsets the processor should read are gone.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDataLoss {
    /// Write nothing, say so in one error line, set /readyz to 503 and exit with status 3.
    #[default]
    Fail,
    /// Resume where the log has records, record the gap in `stream_gaps`, and go on.
    Continue,
}

/// Why offsets were skipped (the `reason` column of `stream_gaps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// The stored offset is past the log's end: the broker lost records, or the topic was
    /// recreated. Reading resumes at the log's start, so `to_offset < from_offset`.
    BeyondLogEnd,
    /// The stored offset is before the log's start: retention removed records before they
    /// were read. Reading resumes at the log's start.
    BeforeLogStart,
    /// Offsets `[from, to)` were never delivered between two records (compaction, retention,
    /// or transaction markers on a transactionally written topic).
    MissingInLog,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::BeyondLogEnd => "offset_beyond_log_end",
            GapReason::BeforeLogStart => "offset_before_log_start",
            GapReason::MissingInLog => "offsets_missing_in_log",
        }
    }
}

/// Offsets of one partition that will never be read: the processor expected `from_offset`
/// next and reads `to_offset` next instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub partition: i32,
    pub from_offset: i64,
    pub to_offset: i64,
    pub reason: GapReason,
    pub detected_at: DateTime<Utc>,
}

/// Where a stored offset stands against its partition's log `[low, high]`: `None` when it is
/// inside (reading resumes there), else the gap to skip. `stored == high` is inside: nothing
/// to read yet.
pub fn check_stored(
    partition: i32,
    stored: i64,
    low: i64,
    high: i64,
    now: DateTime<Utc>,
) -> Option<Gap> {
    let reason = if stored > high {
        GapReason::BeyondLogEnd
    } else if stored < low {
        GapReason::BeforeLogStart
    } else {
        return None;
    };
    Some(Gap {
        partition,
        from_offset: stored,
        to_offset: low,
        reason,
        detected_at: now,
    })
}

/// A record at `offset` arrived where `expected` was the next offset: `None` when it is the
/// one expected, else the offsets in between that were never delivered. (A record before
/// `expected` was fetched before a seek and is not looked at.)
pub fn check_next(partition: i32, expected: i64, offset: i64, now: DateTime<Utc>) -> Option<Gap> {
    (offset > expected).then_some(Gap {
        partition,
        from_offset: expected,
        to_offset: offset,
        reason: GapReason::MissingInLog,
        detected_at: now,
    })
}

/// The processor stopped because offsets it should read are gone (`ON_DATA_LOSS=fail`). Its
/// text is the one error line the operator sees; `main` maps it to [`EXIT_CODE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "data loss on topic {topic} partition {partition}: {what}; nothing was written and the \
     stored offset is unchanged. {advice}"
)]
pub struct DataLoss {
    pub topic: String,
    pub partition: i32,
    pub what: String,
    pub advice: &'static str,
}

impl DataLoss {
    /// The stored offset lies outside the partition's log `[low, high]` (see [`check_stored`]).
    pub fn outside_log(topic: &str, gap: &Gap, low: i64, high: i64) -> DataLoss {
        let what = match gap.reason {
            GapReason::BeyondLogEnd => format!(
                "stored offset {} is beyond the log's range [{low}, {high}) (the broker lost \
                 records, or the topic was deleted and recreated)",
                gap.from_offset
            ),
            _ => format!(
                "stored offset {} is before the log's range [{low}, {high}) (records {}..{} \
                 were removed, by retention or otherwise, before they were read)",
                gap.from_offset,
                gap.from_offset,
                low - 1
            ),
        };
        DataLoss {
            topic: topic.to_owned(),
            partition: gap.partition,
            what,
            advice: "Set ON_DATA_LOSS=continue to resume at the log's start and record the gap \
                     in stream_gaps",
        }
    }

    /// Offsets between two delivered records are missing (see [`check_next`]). `stored` is
    /// the partition's stored offset, `log` its range if the broker said.
    pub fn missing(topic: &str, gap: &Gap, stored: i64, log: Option<(i64, i64)>) -> DataLoss {
        let range = match log {
            Some((low, high)) => format!("[{low}, {high})"),
            None => "unknown".to_owned(),
        };
        DataLoss {
            topic: topic.to_owned(),
            partition: gap.partition,
            what: format!(
                "offsets {}..{} were never delivered (the next record after offset {} was \
                 {}); stored offset {stored}, the log's range {range}",
                gap.from_offset,
                gap.to_offset - 1,
                gap.from_offset - 1,
                gap.to_offset
            ),
            advice: "A compacted topic, or one written by a transactional producer, has offsets \
                     without records: run it with ON_DATA_LOSS=continue (each gap is recorded in \
                     stream_gaps)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH
    }

    #[test]
    fn a_stored_offset_inside_the_log_resumes_there() {
        for stored in [0, 5, 10] {
            assert_eq!(check_stored(0, stored, 0, 10, now()), None, "{stored}");
        }
        assert_eq!(check_stored(0, 7, 7, 7, now()), None, "an empty log at 7");
    }

    #[test]
    fn a_stored_offset_past_the_end_resumes_at_the_start_of_the_new_log() {
        // 20,000 read, the broker wiped, 5,000 new records at 0..5000.
        let gap = check_stored(2, 20_000, 0, 5_000, now()).expect("a gap");
        assert_eq!(gap.reason, GapReason::BeyondLogEnd);
        assert_eq!((gap.from_offset, gap.to_offset), (20_000, 0));
        assert_eq!(gap.partition, 2);
        assert_eq!(
            check_stored(0, 11, 0, 10, now()).map(|g| g.reason),
            Some(GapReason::BeyondLogEnd),
            "one past the end is beyond it"
        );
    }

    #[test]
    fn a_stored_offset_before_the_start_resumes_at_the_low_watermark() {
        // Retention removed 0..100 while the processor had read only 40.
        let gap = check_stored(0, 40, 100, 250, now()).expect("a gap");
        assert_eq!(gap.reason, GapReason::BeforeLogStart);
        assert_eq!((gap.from_offset, gap.to_offset), (40, 100));
    }

    #[test]
    fn a_record_after_the_expected_offset_leaves_a_gap() {
        assert_eq!(check_next(0, 10, 10, now()), None);
        assert_eq!(check_next(0, 10, 9, now()), None, "fetched before a seek");
        let gap = check_next(1, 10, 13, now()).expect("a gap");
        assert_eq!((gap.from_offset, gap.to_offset), (10, 13));
        assert_eq!(gap.reason, GapReason::MissingInLog);
    }

    #[test]
    fn the_error_line_names_topic_partition_offset_range_and_data_loss() {
        let gap = check_stored(1, 20_000, 0, 5_000, now()).expect("a gap");
        let line = DataLoss::outside_log("events", &gap, 0, 5_000).to_string();
        for needle in [
            "data loss",
            "topic events",
            "partition 1",
            "stored offset 20000",
            "[0, 5000)",
        ] {
            assert!(line.contains(needle), "{needle:?} missing from {line}");
        }
        assert!(!line.contains('\n'), "one line");
        let gap = check_next(0, 10, 13, now()).expect("a gap");
        let line = DataLoss::missing("events", &gap, 4, Some((0, 20))).to_string();
        assert!(
            line.contains("stored offset 4, the log's range [0, 20)"),
            "{line}"
        );
        assert!(
            line.contains("offsets 10..12 were never delivered"),
            "{line}"
        );
        assert!(
            line.contains("data loss on topic events partition 0"),
            "{line}"
        );
    }
}
