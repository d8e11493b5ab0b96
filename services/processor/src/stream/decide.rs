//! The poll loop's two decisions, as pure functions of what the loop knows: no IO and no
//! clock reads (the loop passes `now` in), so every case is a unit test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What the loop does with its batch on this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStep {
    /// Write the batch now.
    Cut,
    /// The trigger is due but nothing arrived since the last batch: wait for the next trigger
    /// (as Spark does) instead of writing an empty batch.
    SkipTrigger,
    /// Keep polling records into the batch.
    Fill,
}

/// How much one batch may take: it is full when either bound is reached (`MAX_BATCH_ROWS`,
/// `MAX_BATCH_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchBounds {
    pub max_rows: usize,
    /// Key and payload bytes as read. The record that reaches the bound is in the batch, so a
    /// batch can exceed it by at most one record.
    pub max_bytes: usize,
}

/// What a batch has taken so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Records (0 = empty).
    pub rows: usize,
    /// Their key and payload bytes, as read.
    pub bytes: usize,
}

impl BatchBounds {
    pub fn full(&self, taken: Taken) -> bool {
        taken.rows >= self.max_rows || taken.bytes >= self.max_bytes
    }
}

/// When to cut a batch. `taken` is what the batch holds so far, `due` whether the trigger
/// time has come, and `drained` whether the last poll found nothing more already fetched. A
/// batch is cut when it is full (either bound), or when the trigger is due and what had
/// arrived by then has been taken (so one trigger's batch holds everything fetched up to it).
pub fn batch_step(taken: Taken, bounds: BatchBounds, due: bool, drained: bool) -> BatchStep {
    if taken.rows == 0 {
        if due {
            BatchStep::SkipTrigger
        } else {
            BatchStep::Fill
        }
    } else if bounds.full(taken) || (due && drained) {
        BatchStep::Cut
    } else {
        BatchStep::Fill
    }
}

/// How often a member whose own partitions are done asks Postgres about the others'.
pub const ASK_OTHERS_EVERY: Duration = Duration::from_secs(1);

/// Where a `--available-now` run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvailableNow {
    /// Every partition has reached its target: the run is over.
    Done,
    /// This member's own partitions are done; these are pending but not ours (another
    /// member's, or nobody's yet): done when the group's stored offsets of them reached their
    /// targets, which only Postgres knows.
    AskPostgres(Vec<i32>),
    /// Not yet: a batch is in progress, one of our partitions has records left to read, or
    /// Postgres was asked less than [`ASK_OTHERS_EVERY`] ago.
    NotYet,
}

/// What [`available_now`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The end of every partition of the topic when the run started.
    pub targets: &'a BTreeMap<i32, i64>,
    /// The next offset of every partition this member owns.
    pub positions: &'a BTreeMap<i32, i64>,
    /// Owned partitions whose end the last poll reached (nothing more to read in them now).
    pub at_eof: &'a BTreeSet<i32>,
    /// Whether the loop holds no unwritten records.
    pub batch_empty: bool,
}

/// When `--available-now` is done. `last_asked` is when Postgres was last asked about other
/// members' partitions (the caller records it when it acts on [`AvailableNow::AskPostgres`]).
pub fn available_now(progress: &Progress<'_>, now: Instant, last_asked: Instant) -> AvailableNow {
    if !progress.batch_empty {
        return AvailableNow::NotYet;
    }
    let pending: Vec<i32> = progress
        .targets
        .iter()
        .filter(|(p, target)| match progress.positions.get(p) {
            Some(pos) => pos < target && !progress.at_eof.contains(p),
            None => true,
        })
        .map(|(&p, _)| p)
        .collect();
    if pending.is_empty() {
        return AvailableNow::Done;
    }
    let ours_pending = pending.iter().any(|p| progress.positions.contains_key(p));
    if ours_pending || now.duration_since(last_asked) <= ASK_OTHERS_EVERY {
        return AvailableNow::NotYet;
    }
    AvailableNow::AskPostgres(pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// `rows` records of 100 bytes each against `max_rows` and 16 MiB.
    fn rows_step(rows: usize, max_rows: usize, due: bool, drained: bool) -> BatchStep {
        let bounds = BatchBounds {
            max_rows,
            max_bytes: 16 * MIB,
        };
        batch_step(
            Taken {
                rows,
                bytes: rows * 100,
            },
            bounds,
            due,
            drained,
        )
    }

    fn bytes_step(rows: usize, bytes: usize, due: bool, drained: bool) -> BatchStep {
        let bounds = BatchBounds {
            max_rows: 50_000,
            max_bytes: 16 * MIB,
        };
        batch_step(Taken { rows, bytes }, bounds, due, drained)
    }

    #[test]
    fn a_batch_full_of_bytes_is_cut_before_the_trigger() {
        assert_eq!(bytes_step(17, 16 * MIB, false, false), BatchStep::Cut);
        assert_eq!(
            bytes_step(1, 20 * MIB, false, false),
            BatchStep::Cut,
            "one big record"
        );
        assert_eq!(bytes_step(17, 16 * MIB - 1, false, false), BatchStep::Fill);
        assert_eq!(bytes_step(0, 0, false, false), BatchStep::Fill);
    }

    #[test]
    fn whichever_bound_is_reached_first_cuts() {
        let bounds = BatchBounds {
            max_rows: 10,
            max_bytes: 1000,
        };
        let step = |rows, bytes| batch_step(Taken { rows, bytes }, bounds, false, false);
        assert_eq!(step(10, 10), BatchStep::Cut, "rows first");
        assert_eq!(step(2, 1000), BatchStep::Cut, "bytes first");
        assert_eq!(step(9, 999), BatchStep::Fill);
    }

    #[test]
    fn a_full_batch_is_cut_before_the_trigger() {
        assert_eq!(rows_step(500, 500, false, false), BatchStep::Cut);
        assert_eq!(rows_step(501, 500, false, false), BatchStep::Cut);
        assert_eq!(rows_step(499, 500, false, false), BatchStep::Fill);
    }

    #[test]
    fn a_due_trigger_cuts_once_what_was_fetched_is_drained() {
        assert_eq!(rows_step(10, 500, true, true), BatchStep::Cut);
    }

    #[test]
    fn a_due_trigger_keeps_taking_records_until_drained() {
        assert_eq!(rows_step(10, 500, true, false), BatchStep::Fill);
    }

    #[test]
    fn a_drained_batch_waits_for_its_trigger() {
        assert_eq!(rows_step(10, 500, false, true), BatchStep::Fill);
    }

    #[test]
    fn an_empty_batch_is_never_cut() {
        assert_eq!(rows_step(0, 500, true, true), BatchStep::SkipTrigger);
        assert_eq!(rows_step(0, 500, true, false), BatchStep::SkipTrigger);
        assert_eq!(rows_step(0, 500, false, true), BatchStep::Fill);
        assert_eq!(rows_step(0, 1, false, false), BatchStep::Fill);
    }

    fn map(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    fn set(ps: &[i32]) -> BTreeSet<i32> {
        ps.iter().copied().collect()
    }

    /// `targets` 0@10 1@20; returns the decision with `last_asked` long ago.
    fn decide(positions: &[(i32, i64)], at_eof: &[i32], batch_empty: bool) -> AvailableNow {
        let (targets, positions, at_eof) = (map(&[(0, 10), (1, 20)]), map(positions), set(at_eof));
        let now = Instant::now() + Duration::from_secs(60);
        let progress = Progress {
            targets: &targets,
            positions: &positions,
            at_eof: &at_eof,
            batch_empty,
        };
        available_now(&progress, now, now - Duration::from_secs(60))
    }

    #[test]
    fn done_when_every_own_partition_reached_its_target() {
        assert_eq!(decide(&[(0, 10), (1, 20)], &[], true), AvailableNow::Done);
        assert_eq!(
            decide(&[(0, 12), (1, 25)], &[], true),
            AvailableNow::Done,
            "past the target (written by another member meanwhile) is done too"
        );
    }

    #[test]
    fn an_own_partition_at_its_end_is_done_below_its_target() {
        // librdkafka's end-of-partition for an owned partition means nothing more to read
        // there, whatever the position says.
        assert_eq!(decide(&[(0, 7), (1, 20)], &[0], true), AvailableNow::Done);
    }

    #[test]
    fn not_done_while_an_own_partition_has_records_left() {
        assert_eq!(decide(&[(0, 7), (1, 20)], &[], true), AvailableNow::NotYet);
        assert_eq!(
            decide(&[(0, 7)], &[], true),
            AvailableNow::NotYet,
            "Postgres is not asked about partition 1 while ours are pending"
        );
    }

    #[test]
    fn not_done_while_a_batch_is_unwritten() {
        assert_eq!(
            decide(&[(0, 10), (1, 20)], &[], false),
            AvailableNow::NotYet
        );
    }

    #[test]
    fn others_partitions_are_checked_in_postgres() {
        assert_eq!(
            decide(&[(0, 10)], &[], true),
            AvailableNow::AskPostgres(vec![1])
        );
        assert_eq!(
            decide(&[], &[], true),
            AvailableNow::AskPostgres(vec![0, 1]),
            "a member with no partitions waits for the group"
        );
    }

    #[test]
    fn postgres_is_asked_at_most_once_a_second() {
        let (targets, positions, at_eof) = (map(&[(0, 10), (1, 20)]), map(&[(0, 10)]), set(&[]));
        let progress = Progress {
            targets: &targets,
            positions: &positions,
            at_eof: &at_eof,
            batch_empty: true,
        };
        let asked = Instant::now();
        assert_eq!(
            available_now(&progress, asked + Duration::from_millis(500), asked),
            AvailableNow::NotYet
        );
        assert_eq!(
            available_now(&progress, asked + ASK_OTHERS_EVERY, asked),
            AvailableNow::NotYet
        );
        assert_eq!(
            available_now(&progress, asked + Duration::from_millis(1001), asked),
            AvailableNow::AskPostgres(vec![1])
        );
    }
}
