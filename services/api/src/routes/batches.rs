//! `GET /batches?limit=`: the processor's recent micro-batches with their offset ranges and
//! rates, where each partition stands against the live end of its log, whether the processor
//! is alive and keeping up, and the gaps it skipped in the last day (docs/contracts.md,
//! "HTTP API").

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

use super::processor::{processor, Processor};

#[derive(Debug, Serialize)]
pub struct BatchPartition {
    pub partition: i32,
    pub start_offset: i64,
    pub end_offset: i64,
}

#[derive(Debug, Serialize)]
pub struct Batch {
    pub batch_id: i64,
    pub consumer_group: String,
    pub topic: String,
    #[serde(serialize_with = "super::rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "super::rfc3339")]
    pub finished_at: DateTime<Utc>,
    pub input_rows: i32,
    pub events_inserted: i32,
    pub duplicates: i32,
    pub orders_upserted: i32,
    pub stale_skipped: i32,
    pub dead_lettered: i32,
    pub fetch_ms: f64,
    pub write_ms: f64,
    pub total_ms: f64,
    pub partitions: Vec<BatchPartition>,
    /// The newest event_time among the events this batch wrote.
    #[serde(serialize_with = "super::rfc3339_opt")]
    pub max_event_time: Option<DateTime<Utc>>,
    /// The newest broker (record) timestamp among the records it read.
    #[serde(serialize_with = "super::rfc3339_opt")]
    pub max_broker_timestamp: Option<DateTime<Utc>>,
    /// finished_at - max_broker_timestamp, in seconds.
    pub commit_lag_s: Option<f64>,
    /// Records/s that arrived on the topic since the previous batch.
    pub input_rate: Option<f64>,
    /// input_rows / (fetch_ms + write_ms), in records/s.
    pub process_rate: Option<f64>,
    /// From the newest record's broker timestamp to the start of the write, in ms.
    pub queued_ms: Option<f64>,
    /// The COMMIT round trip, in ms (`null` until the writer's next batch records it).
    pub commit_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct PartitionState {
    pub consumer_group: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    /// The log's end: the broker's own figure when it answers, else the one stored with the
    /// offsets at the last commit.
    pub high_watermark: Option<i64>,
    /// `"broker"` or `"stored"`.
    pub high_watermark_source: &'static str,
    /// high_watermark - next_offset; `null` when either is unknown or they contradict.
    pub lag: Option<i64>,
    /// Why `lag` is `null` although both figures are known (a stored offset ahead of the log).
    pub lag_error: Option<String>,
    #[serde(serialize_with = "super::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// Offsets the processor skipped because their records were gone (`ON_DATA_LOSS=continue`).
#[derive(Debug, Serialize)]
pub struct Gap {
    pub consumer_group: String,
    pub topic: String,
    pub partition: i32,
    pub from_offset: i64,
    pub to_offset: i64,
    #[serde(serialize_with = "super::rfc3339")]
    pub detected_at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct BatchesResponse {
    pub batches: Vec<Batch>,
    pub partitions: Vec<PartitionState>,
    /// The gaps of the last 24 hours, newest first.
    pub gaps: Vec<Gap>,
    pub processor: Processor,
}

/// A partition's lag, never clamped: an offset ahead of the log's end is an error to show,
/// not a lag of 0.
pub fn lag(next_offset: i64, high_watermark: Option<i64>) -> (Option<i64>, Option<String>) {
    match high_watermark {
        None => (None, None),
        Some(end) if next_offset > end => (
            None,
            Some(format!(
                "stored offset {next_offset} is ahead of the log's end {end}"
            )),
        ),
        Some(end) => (Some(end - next_offset), None),
    }
}

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 500;

const BATCHES: &str = "
SELECT batch_id, consumer_group, topic, started_at, finished_at, input_rows, events_inserted,
       duplicates, orders_upserted, stale_skipped, dead_lettered, fetch_ms, write_ms, total_ms,
       max_event_time, max_broker_timestamp,
       round(extract(epoch FROM finished_at - max_broker_timestamp)::numeric, 3)::float8,
       round(input_rate::numeric, 1)::float8,
       CASE WHEN fetch_ms + write_ms > 0
            THEN round((input_rows / ((fetch_ms + write_ms) / 1000.0))::numeric, 1)::float8 END,
       queued_ms, commit_ms
  FROM stream_batches ORDER BY batch_id DESC LIMIT $1";

const RANGES: &str = "
SELECT batch_id, kafka_partition, start_offset, end_offset
  FROM stream_batch_partitions WHERE batch_id = ANY($1) ORDER BY batch_id, kafka_partition";

const OFFSETS: &str = "
SELECT consumer_group, topic, kafka_partition, next_offset, high_watermark, updated_at
  FROM stream_offsets ORDER BY consumer_group, topic, kafka_partition";

/// At most this many gaps are listed (a topic read with ON_DATA_LOSS=continue may have many).
pub const MAX_GAPS: i64 = 1000;

const GAPS: &str = "
SELECT consumer_group, topic, kafka_partition, from_offset, to_offset, detected_at, reason
  FROM stream_gaps WHERE detected_at > now() - interval '1 day'
 ORDER BY detected_at DESC, id DESC LIMIT $1";

pub async fn batches(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<BatchesResponse>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["limit"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;

    let client = app.pool.get().await?;
    let (batches, offsets) = (
        client.prepare_cached(BATCHES).await?,
        client.prepare_cached(OFFSETS).await?,
    );
    let rows = client.query(&batches, &[&limit]).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let ranges_stmt = client.prepare_cached(RANGES).await?;
    let mut ranges: BTreeMap<i64, Vec<BatchPartition>> = BTreeMap::new();
    for r in client.query(&ranges_stmt, &[&ids]).await? {
        ranges.entry(r.get(0)).or_default().push(BatchPartition {
            partition: r.get(1),
            start_offset: r.get(2),
            end_offset: r.get(3),
        });
    }
    let batches = rows
        .iter()
        .map(|r| {
            let batch_id: i64 = r.get(0);
            Batch {
                batch_id,
                consumer_group: r.get(1),
                topic: r.get(2),
                started_at: r.get(3),
                finished_at: r.get(4),
                input_rows: r.get(5),
                events_inserted: r.get(6),
                duplicates: r.get(7),
                orders_upserted: r.get(8),
                stale_skipped: r.get(9),
                dead_lettered: r.get(10),
                fetch_ms: r.get(11),
                write_ms: r.get(12),
                total_ms: r.get(13),
                partitions: ranges.remove(&batch_id).unwrap_or_default(),
                max_event_time: r.get(14),
                max_broker_timestamp: r.get(15),
                commit_lag_s: r.get(16),
                input_rate: r.get(17),
                process_rate: r.get(18),
                queued_ms: r.get(19),
                commit_ms: r.get(20),
            }
        })
        .collect();
    let live = match &app.live_ends {
        Some(l) => l.get().await.map(|ends| (l.topic(), ends)),
        None => None,
    };
    let partitions: Vec<PartitionState> = client
        .query(&offsets, &[])
        .await?
        .iter()
        .map(|r| {
            let topic: String = r.get(1);
            let partition: i32 = r.get(2);
            let next_offset: i64 = r.get(3);
            let live_end = live
                .as_ref()
                .filter(|(t, _)| *t == topic)
                .and_then(|(_, ends)| ends.get(&partition).copied());
            let (high_watermark, high_watermark_source) = match live_end {
                Some(end) => (Some(end), "broker"),
                None => (r.get(4), "stored"),
            };
            let (lag, lag_error) = lag(next_offset, high_watermark);
            PartitionState {
                consumer_group: r.get(0),
                topic,
                partition,
                next_offset,
                high_watermark,
                high_watermark_source,
                lag,
                lag_error,
                updated_at: r.get(5),
            }
        })
        .collect();
    let gaps_stmt = client.prepare_cached(GAPS).await?;
    let gaps = client
        .query(&gaps_stmt, &[&MAX_GAPS])
        .await?
        .iter()
        .map(|r| Gap {
            consumer_group: r.get(0),
            topic: r.get(1),
            partition: r.get(2),
            from_offset: r.get(3),
            to_offset: r.get(4),
            detected_at: r.get(5),
            reason: r.get(6),
        })
        .collect();
    let lags: Vec<i64> = partitions.iter().filter_map(|p| p.lag).collect();
    let lag_records = (!lags.is_empty()).then(|| lags.iter().sum());
    let processor = processor(&**client, lag_records).await?;
    Ok(Json(BatchesResponse {
        batches,
        partitions,
        gaps,
        processor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_never_clamped() {
        assert_eq!(lag(5, Some(8)), (Some(3), None));
        assert_eq!(lag(8, Some(8)), (Some(0), None));
        assert_eq!(lag(0, None), (None, None));
        assert_eq!(
            lag(940, Some(931)),
            (
                None,
                Some("stored offset 940 is ahead of the log's end 931".into())
            )
        );
    }
}
