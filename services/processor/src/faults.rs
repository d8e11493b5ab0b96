//! Fault injection for the exactly-once tests: abort the process at a chosen point of the Nth
//! batch (or pause before writing it, or while it holds the batch lock), then check that a restart loses and repeats nothing.
//!
//! Why a runtime value and not a `test-hooks` cargo feature: those tests run the real
//! `spine-processor` binary that `cargo build --workspace --bins` produced, the same build a
//! user runs, so a feature would have to be on in every build anyway. Instead the hook is
//! built once, from the hidden `SPINE_CRASH_AT` setting ([`CrashPoint`]), handed to the
//! [`sink::Writer`](crate::sink::Writer) that owns it, and consulted at four named points.
//! Without the setting every point is a no-op, and no production signature carries a test
//! concern (the batch count the points refer to is kept here, not by the loop).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::CrashPoint;

/// Where the process is to fail, if anywhere, and how many batches it has cut so far.
#[derive(Debug, Default)]
pub struct FaultPoints {
    at: Option<CrashPoint>,
    batches: AtomicU64,
}

impl FaultPoints {
    /// Points that never fire.
    pub fn none() -> FaultPoints {
        FaultPoints::default()
    }

    pub fn new(at: Option<CrashPoint>) -> FaultPoints {
        FaultPoints {
            at,
            batches: AtomicU64::new(0),
        }
    }

    /// A new batch was cut and is about to be written (once per batch, not per retry): counts
    /// it, and with `pause-before-write:N` sleeps 5 s before the Nth, so a test can freeze
    /// the process there. `describe` says which offsets the batch covers.
    pub fn batch_cut(&self, describe: impl FnOnce() -> String) {
        let n = self.batches.fetch_add(1, Ordering::Relaxed) + 1;
        if self.at == Some(CrashPoint::PauseBeforeWrite(n)) {
            eprintln!(
                "spine-processor: test hook: pausing before writing batch {n} ({})",
                describe()
            );
            std::thread::sleep(Duration::from_secs(5));
        }
    }

    /// Inside the batch's transaction, holding `LOCK TABLE stream_batches` (taken in the first
    /// round trip, with the upsert after it when every event is new): with
    /// `pause-holding-lock:N`, sleeps 5 s in the Nth batch while holding the lock every other
    /// writer needs, so a test can freeze the process there (SIGSTOP).
    pub fn holding_lock(&self) {
        let n = self.batches.load(Ordering::Relaxed);
        if self.at == Some(CrashPoint::PauseHoldingLock(n)) {
            eprintln!(
                "spine-processor: test hook: pausing while holding the batch lock in batch {n}"
            );
            std::thread::sleep(Duration::from_secs(5));
        }
    }

    /// Inside the batch's transaction, every statement done, COMMIT not sent.
    pub fn before_commit(&self) {
        self.crash_if(CrashPoint::BeforeCommit, "before-commit");
    }

    /// The batch's transaction committed; nothing else done yet.
    pub fn after_commit(&self) {
        self.crash_if(CrashPoint::AfterCommit, "after-commit");
    }

    fn crash_if(&self, point: fn(u64) -> CrashPoint, name: &str) {
        let n = self.batches.load(Ordering::Relaxed);
        if self.at == Some(point(n)) {
            eprintln!("spine-processor: test hook: aborting {name} of batch {n}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_refer_to_the_batch_last_cut() {
        let f = FaultPoints::new(Some(CrashPoint::AfterCommit(3)));
        for _ in 0..2 {
            f.batch_cut(String::new);
            f.before_commit();
            f.after_commit(); // batches 1 and 2: no abort
        }
        assert_eq!(f.batches.load(Ordering::Relaxed), 2);
        f.batch_cut(String::new);
        f.before_commit(); // batch 3, the other point: no abort
    }
}
