//! The `"processor"` object of `GET /batches` (docs/contracts.md, "HTTP API"): is the processor
//! alive, is it keeping up, how fresh is what it wrote. Ages are measured on Postgres' clock,
//! the clock that stamped the batches and the heartbeats.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

/// What the processor is doing, by the rule of [`state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Batches are being committed.
    Running,
    /// Alive (heartbeats) with nothing to do: no records waiting, no recent batch.
    Idle,
    /// Records are waiting and no batch has committed for longer than the threshold.
    Stalled,
    /// Nothing says the processor is alive: no recent heartbeat.
    Down,
}

/// The trigger interval assumed when no replica has said its own.
pub const DEFAULT_TRIGGER_MS: i64 = 5000;

/// How long without a batch (or a heartbeat) is too long: three trigger intervals, but never
/// less than 15 s.
pub fn threshold_s(trigger_ms: Option<i64>) -> f64 {
    let trigger_s = trigger_ms.unwrap_or(DEFAULT_TRIGGER_MS) as f64 / 1000.0;
    (3.0 * trigger_s).max(15.0)
}

/// The state rule, in order:
/// 1. `stalled`: records are waiting (`waiting`: some partition's lag > 0) and no batch
///    committed within the threshold, whatever the heartbeats say;
/// 2. `down`: no heartbeat within the threshold (or none at all);
/// 3. `running`: a batch committed within the threshold;
/// 4. `idle`: otherwise.
pub fn state(
    waiting: bool,
    last_batch_age_s: Option<f64>,
    freshest_heartbeat_age_s: Option<f64>,
    trigger_ms: Option<i64>,
) -> State {
    let t = threshold_s(trigger_ms);
    let recent_batch = last_batch_age_s.is_some_and(|age| age <= t);
    if waiting && !recent_batch {
        State::Stalled
    } else if !freshest_heartbeat_age_s.is_some_and(|age| age <= t) {
        State::Down
    } else if recent_batch {
        State::Running
    } else {
        State::Idle
    }
}

#[derive(Debug, Serialize)]
pub struct Replica {
    pub replica_id: String,
    pub assigned_partitions: Vec<i32>,
    #[serde(serialize_with = "super::rfc3339")]
    pub heartbeat_at: DateTime<Utc>,
    pub heartbeat_age_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Processor {
    pub state: State,
    #[serde(serialize_with = "super::rfc3339_opt")]
    pub last_batch_at: Option<DateTime<Utc>>,
    pub last_batch_age_s: Option<f64>,
    pub trigger_interval_ms: Option<i64>,
    pub lag_records: Option<i64>,
    pub event_time_lag_s: Option<f64>,
    pub replicas: Vec<Replica>,
}

/// The newest batch, and the newest event time written by the last 100 batches (replicas
/// write their own batches; a late event never makes the figure look fresher).
const RECENT: &str = "
WITH recent AS (
    SELECT finished_at, max_event_time FROM stream_batches ORDER BY batch_id DESC LIMIT 100
)
SELECT max(finished_at),
       round(extract(epoch FROM now() - max(finished_at))::numeric, 3)::float8,
       round(extract(epoch FROM now() - max(max_event_time))::numeric, 3)::float8
  FROM recent";

const HEARTBEATS: &str = "
SELECT replica_id, assigned_partitions, heartbeat_at,
       round(extract(epoch FROM now() - heartbeat_at)::numeric, 3)::float8, trigger_interval_ms
  FROM processor_heartbeats ORDER BY heartbeat_at DESC, replica_id";

/// Reads the batches and heartbeats and applies the state rule. `lag_records` is the sum of
/// the partitions' lag (`None` when no partition's lag is known).
pub async fn processor(
    client: &impl GenericClient,
    lag_records: Option<i64>,
) -> Result<Processor, tokio_postgres::Error> {
    let recent = client.query_one(RECENT, &[]).await?;
    let last_batch_at: Option<DateTime<Utc>> = recent.get(0);
    let last_batch_age_s: Option<f64> = recent.get(1);
    let event_time_lag_s: Option<f64> = recent.get(2);
    let beats = client.query(HEARTBEATS, &[]).await?;
    let freshest = beats.first();
    let trigger_interval_ms: Option<i64> = freshest.map(|r| r.get(4));
    let freshest_age: Option<f64> = freshest.map(|r| r.get(3));
    let replicas = beats
        .iter()
        .map(|r| Replica {
            replica_id: r.get(0),
            assigned_partitions: r.get(1),
            heartbeat_at: r.get(2),
            heartbeat_age_s: r.get(3),
        })
        .collect();
    Ok(Processor {
        state: state(
            lag_records.is_some_and(|lag| lag > 0),
            last_batch_age_s,
            freshest_age,
            trigger_interval_ms,
        ),
        last_batch_at,
        last_batch_age_s,
        trigger_interval_ms,
        lag_records,
        event_time_lag_s,
        replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_is_three_triggers_but_at_least_15_s() {
        assert_eq!(threshold_s(None), 15.0);
        assert_eq!(threshold_s(Some(200)), 15.0);
        assert_eq!(threshold_s(Some(10_000)), 30.0);
    }

    #[test]
    fn each_state_by_the_rule() {
        let trigger = Some(5000);
        // Waiting records and an old (or no) batch: stalled, even with fresh heartbeats.
        assert_eq!(state(true, Some(16.0), Some(0.5), trigger), State::Stalled);
        assert_eq!(state(true, None, Some(0.5), trigger), State::Stalled);
        assert_eq!(state(true, Some(99.0), None, trigger), State::Stalled);
        // Waiting records but a recent batch: it is keeping at it.
        assert_eq!(state(true, Some(2.0), Some(0.5), trigger), State::Running);
        // Nothing waiting: the heartbeat decides between down and alive.
        assert_eq!(state(false, Some(2.0), None, trigger), State::Down);
        assert_eq!(state(false, Some(2.0), Some(15.5), trigger), State::Down);
        assert_eq!(state(false, Some(2.0), Some(1.0), trigger), State::Running);
        assert_eq!(state(false, Some(60.0), Some(1.0), trigger), State::Idle);
        assert_eq!(state(false, None, Some(1.0), trigger), State::Idle);
        // A slow trigger widens the threshold.
        assert_eq!(
            state(true, Some(25.0), Some(1.0), Some(10_000)),
            State::Running
        );
    }

    #[test]
    fn states_serialize_as_lowercase_words() {
        let words: Vec<String> = [State::Running, State::Idle, State::Stalled, State::Down]
            .iter()
            .map(|s| serde_json::to_string(s).expect("serializes"))
            .collect();
        assert_eq!(
            words,
            ["\"running\"", "\"idle\"", "\"stalled\"", "\"down\""]
        );
    }
}
