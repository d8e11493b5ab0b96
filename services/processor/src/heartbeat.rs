//! The replica's heartbeat row in `processor_heartbeats` (docs/contracts.md, "Tables"): who it
//! is, which partitions it owns, its trigger interval, and when it was last alive, so that
//! `GET /batches` can tell a processor that is idle from one that is gone.
//!
//! Written by a task of its own on the async runtime, never by the poll thread, each time in a
//! tiny transaction of its own: a slow batch write does not delay it, and it does not delay a
//! batch. Every trigger interval, but at least every 5 s and at most every second. The row is
//! deleted when the processor stops cleanly; rows older than a day (replicas that were killed)
//! are deleted by whichever replica beats.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use spine_core::throttle::Throttle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How often the row is written for a trigger interval: the interval, within 1 s to 5 s.
pub fn period(trigger: Duration) -> Duration {
    trigger.clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// `hostname-pid`, with a sequence number for a second replica in the same process (tests).
pub fn replica_id() -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    let id = format!("{host}-{}", std::process::id());
    match SEQUENCE.fetch_add(1, Ordering::Relaxed) {
        0 => id,
        n => format!("{id}-{}", n + 1),
    }
}

const BEAT: &str = "
INSERT INTO processor_heartbeats (replica_id, consumer_group, topic, assigned_partitions,
                                  trigger_interval_ms, started_at, heartbeat_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (replica_id) DO UPDATE
   SET consumer_group = EXCLUDED.consumer_group, topic = EXCLUDED.topic,
       assigned_partitions = EXCLUDED.assigned_partitions,
       trigger_interval_ms = EXCLUDED.trigger_interval_ms, heartbeat_at = now()";

const FORGET_OLD: &str =
    "DELETE FROM processor_heartbeats WHERE heartbeat_at < now() - interval '1 day'";

const FORGET_ME: &str = "DELETE FROM processor_heartbeats WHERE replica_id = $1";

/// Who beats, for what.
#[derive(Debug, Clone)]
pub struct Identity {
    pub replica_id: String,
    pub consumer_group: String,
    pub topic: String,
    pub trigger: Duration,
    pub started_at: DateTime<Utc>,
}

/// Beats until `stop` is cancelled, then deletes the row. `assigned` follows the partitions
/// the consumer owns (the rebalance callback publishes them).
pub async fn run(
    pool: Pool,
    me: Identity,
    mut assigned: watch::Receiver<Vec<i32>>,
    stop: CancellationToken,
) {
    let errors = Throttle::default();
    let trigger_ms = i64::try_from(me.trigger.as_millis()).unwrap_or(i64::MAX);
    let mut ticker = tokio::time::interval(period(me.trigger));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut forgot_old_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // A new assignment shows at once, not a period later.
            changed = assigned.changed() => if changed.is_err() { break },
            _ = stop.cancelled() => break,
        }
        let partitions = assigned.borrow_and_update().clone();
        let forget_old = forgot_old_at.is_none_or(|at| at.elapsed() > Duration::from_secs(3600));
        let beat = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute(
                    BEAT,
                    &[
                        &me.replica_id,
                        &me.consumer_group,
                        &me.topic,
                        &partitions,
                        &trigger_ms,
                        &me.started_at,
                    ],
                )
                .await
                .map_err(|e| e.to_string())?;
            if forget_old {
                client
                    .execute(FORGET_OLD, &[])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        };
        match tokio::time::timeout(Duration::from_secs(5), beat).await {
            Ok(Ok(())) => {
                if forget_old {
                    forgot_old_at = Some(Instant::now());
                }
            }
            Ok(Err(e)) => {
                if errors.allow(&e) {
                    warn!(error = %e, "cannot write the heartbeat (retrying every beat)");
                }
            }
            Err(_) => {
                if errors.allow("timed out") {
                    warn!("writing the heartbeat timed out (retrying every beat)");
                }
            }
        }
    }
    let forget = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client
            .execute(FORGET_ME, &[&me.replica_id])
            .await
            .map_err(|e| e.to_string())
    };
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), forget).await {
        warn!(error = %e, "cannot delete the heartbeat row; it ages out");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_follows_the_trigger_within_one_to_five_seconds() {
        assert_eq!(period(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(period(Duration::from_millis(200)), Duration::from_secs(1));
        assert_eq!(period(Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(period(Duration::from_secs(60)), Duration::from_secs(5));
    }

    #[test]
    fn replica_ids_in_one_process_differ() {
        let (a, b) = (replica_id(), replica_id());
        assert_ne!(a, b);
        assert!(a.contains(&std::process::id().to_string()), "{a}");
    }
}
