//! The stall check (see [`crate::watchdog`]) on a thread of its own. It asks the broker
//! (metadata, each partition's end) and Postgres (stored offsets), and either can hang for
//! seconds when degraded; on the poll thread that delayed every batch and, past
//! `max.poll.interval.ms`, cost the member its partitions. Here the poll loop only publishes
//! what it owns and picks up a verdict when there is one.

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Instant;

use rdkafka::consumer::BaseConsumer;

use super::offsets::check_stalled;
use super::{lock, StreamContext};
use crate::watchdog::{StallWatch, CHECK_EVERY};

/// What the poll loop and the checker share.
#[derive(Debug, Default)]
pub(super) struct StallShared {
    /// The loop's assignment generation and the partitions it owns.
    owned: Mutex<(u64, BTreeSet<i32>)>,
    /// Stalled partitions found while the loop owned that generation, not yet acted on.
    verdict: Mutex<Option<(u64, Vec<i32>)>>,
}

impl StallShared {
    /// The loop adopted a new assignment.
    pub fn owned(&self, generation: u64, partitions: impl IntoIterator<Item = i32>) {
        *lock(&self.owned) = (generation, partitions.into_iter().collect());
    }

    /// The partitions to act on, if the checker found some while the loop was at
    /// `generation` (a verdict about an older assignment is dropped).
    pub fn take_verdict(&self, generation: u64) -> Option<Vec<i32>> {
        match lock(&self.verdict).take() {
            Some((g, stalled)) if g == generation => Some(stalled),
            _ => None,
        }
    }
}

/// The checker: every [`CHECK_EVERY`] until `stop` is dropped (or sent to), feeds the watch
/// with the partitions the loop does not own.
pub(super) fn checker(
    consumer: &BaseConsumer<StreamContext>,
    topic: &str,
    shared: &StallShared,
    stop: Receiver<()>,
) {
    let mut watch = StallWatch::new(Instant::now());
    let mut generation = 0;
    loop {
        match stop.recv_timeout(CHECK_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let (now_generation, owned) = lock(&shared.owned).clone();
        if now_generation != generation {
            // A new assignment (a rebalance, or the re-join a verdict caused).
            watch.reset(Instant::now());
            generation = now_generation;
        }
        let stalled = check_stalled(consumer, topic, &owned, &mut watch);
        if !stalled.is_empty() {
            *lock(&shared.verdict) = Some((generation, stalled));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_about_an_older_assignment_is_dropped() {
        let shared = StallShared::default();
        shared.owned(4, [0, 1]);
        *lock(&shared.verdict) = Some((3, vec![2]));
        assert_eq!(shared.take_verdict(4), None);
        *lock(&shared.verdict) = Some((4, vec![2]));
        assert_eq!(shared.take_verdict(4), Some(vec![2]));
        assert_eq!(shared.take_verdict(4), None, "taken once");
    }
}
