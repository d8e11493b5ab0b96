//! Notices partitions that no member of the group is processing.
//!
//! A consumer group hands every partition to a live member, and that member moves the stored
//! offset whenever there is something to read. Some brokers get this wrong: Tansu 0.6 drops a
//! member that died without leaving (SIGKILL) but does not start a new rebalance, so its
//! partitions stay with nobody and the survivors are never told. The symptom is visible from
//! any member: a partition it does not own has records waiting (its end is past its stored
//! offset) and the stored offset has not moved for a while. Re-joining the group forces the
//! rebalance the broker skipped. On a healthy broker this never fires (an owner commits), and
//! repeated firing backs off, so a merely slow owner costs at most an occasional rebalance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a partition with records waiting may go without its stored offset moving.
/// Longer than a session timeout (6 s) plus a join, so a dead member is gone by then.
pub const STALL_AFTER: Duration = Duration::from_secs(10);
/// How often members compare notes (reads Postgres and the partitions' ends).
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct StallWatch {
    /// partition -> (stored offset last seen, when it last changed)
    seen: BTreeMap<i32, (i64, Instant)>,
    /// No re-join before this instant (backs off while re-joining does not help).
    quiet_until: Instant,
    backoff: Duration,
}

impl StallWatch {
    pub fn new(now: Instant) -> StallWatch {
        StallWatch {
            seen: BTreeMap::new(),
            quiet_until: now + STALL_AFTER,
            backoff: STALL_AFTER,
        }
    }

    /// The assignment changed (a rebalance, or the re-join this watch asked for): give the
    /// new owners time to start. A backoff already running is kept: the re-join it follows
    /// resets the watch too, and must not cut it short.
    pub fn reset(&mut self, now: Instant) {
        self.seen.clear();
        self.quiet_until = self.quiet_until.max(now + STALL_AFTER);
    }

    /// Feeds what was observed for the partitions this member does NOT own: their stored
    /// offsets and ends. Returns the stalled partitions when it is time to re-join.
    pub fn observe(&mut self, now: Instant, others: &BTreeMap<i32, (i64, i64)>) -> Vec<i32> {
        self.seen.retain(|p, _| others.contains_key(p));
        let mut stalled = Vec::new();
        let mut waiting = false;
        for (&p, &(stored, end)) in others {
            let entry = self.seen.entry(p).or_insert((stored, now));
            if entry.0 != stored {
                *entry = (stored, now);
            }
            waiting |= end > stored;
            if end > stored && now.duration_since(entry.1) >= STALL_AFTER {
                stalled.push(p);
            }
        }
        if !waiting {
            // Every other partition is caught up: a stall later is a new one.
            self.backoff = STALL_AFTER;
        }
        if stalled.is_empty() {
            return stalled;
        }
        if now < self.quiet_until {
            return Vec::new();
        }
        self.quiet_until = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn others(list: &[(i32, i64, i64)]) -> BTreeMap<i32, (i64, i64)> {
        list.iter().map(|&(p, s, e)| (p, (s, e))).collect()
    }

    /// A fraction of STALL_AFTER, so the tests follow the constant.
    fn part(n: u32, of: u32) -> Duration {
        STALL_AFTER * n / of
    }

    #[test]
    fn a_partition_with_waiting_records_and_no_progress_is_stalled() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        assert!(w.observe(t0, &others(&[(1, 10, 50)])).is_empty());
        assert!(w
            .observe(t0 + part(2, 3), &others(&[(1, 10, 50)]))
            .is_empty());
        assert_eq!(
            w.observe(t0 + STALL_AFTER, &others(&[(1, 10, 50)])),
            vec![1]
        );
    }

    #[test]
    fn progress_or_an_idle_partition_is_not_stalled() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        w.observe(t0, &others(&[(1, 10, 50), (2, 7, 7)]));
        // Partition 1 moves; partition 2 has nothing to read.
        let later = t0 + STALL_AFTER;
        assert!(w
            .observe(later, &others(&[(1, 20, 60), (2, 7, 7)]))
            .is_empty());
        assert!(w
            .observe(later + part(2, 3), &others(&[(1, 30, 60), (2, 7, 7)]))
            .is_empty());
    }

    #[test]
    fn re_joining_backs_off_while_it_does_not_help() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        let stuck = others(&[(0, 0, 9)]);
        w.observe(t0, &stuck);
        let first = t0 + STALL_AFTER;
        assert_eq!(w.observe(first, &stuck), vec![0]);
        // Right after a re-join nothing fires, however long it stays stuck, until the backoff.
        assert!(w.observe(first + part(1, 3), &stuck).is_empty());
        assert_eq!(w.observe(first + STALL_AFTER, &stuck), vec![0]);
        assert!(
            w.observe(first + STALL_AFTER * 2, &stuck).is_empty(),
            "now twice as far apart"
        );
        assert_eq!(w.observe(first + STALL_AFTER * 4, &stuck), vec![0]);
    }

    #[test]
    fn the_reset_after_a_re_join_keeps_the_backoff() {
        // As the loop does it: every firing re-joins the group, and the re-join (and the
        // assignment it brings) resets the watch.
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        let stuck = others(&[(0, 0, 9)]);
        w.observe(t0, &stuck);
        let first = t0 + STALL_AFTER;
        assert_eq!(w.observe(first, &stuck), vec![0]);
        w.reset(first);
        w.observe(first, &stuck);
        let second = first + STALL_AFTER;
        assert_eq!(w.observe(second, &stuck), vec![0]);
        w.reset(second);
        w.observe(second, &stuck);
        // The backoff is now twice STALL_AFTER: the reset must not bring the next one closer.
        assert!(
            w.observe(second + STALL_AFTER, &stuck).is_empty(),
            "re-joined again only STALL_AFTER after the last re-join"
        );
        assert!(w.observe(second + part(19, 10), &stuck).is_empty());
        assert_eq!(w.observe(second + STALL_AFTER * 2, &stuck), vec![0]);
    }

    #[test]
    fn a_new_assignment_gets_time_to_start() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        w.observe(t0, &others(&[(0, 0, 9)]));
        let t1 = t0 + part(9, 10);
        w.reset(t1);
        assert!(w
            .observe(t1 + part(1, 10), &others(&[(0, 0, 9)]))
            .is_empty());
        assert!(w.observe(t1 + part(2, 3), &others(&[(0, 0, 9)])).is_empty());
        assert_eq!(w.observe(t1 + part(11, 10), &others(&[(0, 0, 9)])), vec![0]);
    }
}
