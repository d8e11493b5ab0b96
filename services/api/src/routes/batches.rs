//! `GET /batches?limit=`: the processor's recent micro-batches with their offset ranges and
//! rates, where each partition stands against the live end of its log, whether the processor
//! is alive and keeping up, and the gaps it skipped in the last day (docs/contracts.md,
//! "HTTP API").

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::cache::Answer;
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

const BATCH_COLUMNS: &str = "
SELECT batch_id, consumer_group, topic, started_at, finished_at, input_rows, events_inserted,
       duplicates, orders_upserted, stale_skipped, dead_lettered, fetch_ms, write_ms, total_ms,
       max_event_time, max_broker_timestamp,
       round(extract(epoch FROM finished_at - max_broker_timestamp)::numeric, 3)::float8,
       round(input_rate::numeric, 1)::float8,
       CASE WHEN fetch_ms + write_ms > 0
            THEN round((input_rows / ((fetch_ms + write_ms) / 1000.0))::numeric, 1)::float8 END,
       queued_ms, commit_ms
  FROM stream_batches";

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

/// Which batches [`load`] reads.
#[derive(Debug, Clone, Copy)]
pub enum Select {
    /// The newest `n`, newest first (`GET /batches`).
    Newest(i64),
    /// Ids `from..=to`, oldest first (the stream's events).
    Range(i64, i64),
}

/// The batches `select` names, each with its offset ranges (two statements).
pub async fn load(
    client: &impl GenericClient,
    select: Select,
) -> Result<Vec<Batch>, tokio_postgres::Error> {
    let rows = match select {
        Select::Newest(limit) => {
            let sql = format!("{BATCH_COLUMNS} ORDER BY batch_id DESC LIMIT $1");
            client.query(&sql, &[&limit]).await?
        }
        Select::Range(from, to) => {
            let sql = format!("{BATCH_COLUMNS} WHERE batch_id BETWEEN $1 AND $2 ORDER BY batch_id");
            client.query(&sql, &[&from, &to]).await?
        }
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let mut ranges: BTreeMap<i64, Vec<BatchPartition>> = BTreeMap::new();
    for r in client.query(RANGES, &[&ids]).await? {
        ranges.entry(r.get(0)).or_default().push(BatchPartition {
            partition: r.get(1),
            start_offset: r.get(2),
            end_offset: r.get(3),
        });
    }
    Ok(rows
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
        .collect())
}

/// Where every group stands in every partition, against the live end of the log, and the
/// processor's state: what changes with time even when no batch commits (the `"partitions"`
/// and `"processor"` of `/batches`, and the stream's `status` event). Three statements.
pub async fn standing(
    app: &AppState,
    client: &impl GenericClient,
) -> Result<(Vec<PartitionState>, Processor), tokio_postgres::Error> {
    let live = match &app.live_ends {
        Some(l) => l.get().await.map(|ends| (l.topic(), ends)),
        None => None,
    };
    let partitions: Vec<PartitionState> = client
        .query(OFFSETS, &[])
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
    let lags: Vec<i64> = partitions.iter().filter_map(|p| p.lag).collect();
    let lag_records = (!lags.is_empty()).then(|| lags.iter().sum());
    let processor = processor(client, lag_records).await?;
    Ok((partitions, processor))
}

/// The body of `/batches`: the batch list (kept per batch, see [`crate::cache`]) and what is
/// computed for each request (`partitions`, `gaps`, `processor`: they change with time).
pub async fn batches(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["limit"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let client = app.pool.get().await?;
    let key = super::normalized("/batches", &[("limit", Some(limit.to_string()))]);
    let compute = || async {
        app.metrics.queries("batches", 2);
        let list = load(&**client, Select::Newest(limit)).await?;
        let as_of = list.first().map_or(0, |b| b.batch_id);
        let as_of_at = list.first().map(|b| b.finished_at);
        let body = serde_json::to_vec(&list).map_err(|_| ApiError::Internal)?;
        Ok::<_, ApiError>(Answer::new(body, as_of, as_of_at))
    };
    let mut list = super::answer(&app, "/batches", key, compute()).await?;
    app.metrics.queries("batches", 4);
    let (partitions, processor) = standing(&app, &**client).await?;
    // The kept list is as of the newest batch the listener has heard of, which can be a moment
    // behind the commit the processor's state was just read after: one answer must not say
    // `running` since a batch that its list lacks.
    if processor.last_batch_at > list.as_of_batch_at {
        list = Arc::new(compute().await?);
    }
    let gaps: Vec<Gap> = client
        .query(GAPS, &[&MAX_GAPS])
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
    let rest = serde_json::to_vec(&Rest {
        partitions: &partitions,
        gaps: &gaps,
        processor: &processor,
    })
    .map_err(|_| ApiError::Internal)?;
    // {"batches": <kept list>, "partitions": …, "gaps": …, "processor": …}
    let mut body = Vec::with_capacity(list.body.len() + rest.len() + 16);
    body.extend_from_slice(b"{\"batches\":");
    body.extend_from_slice(&list.body);
    body.push(b',');
    body.extend_from_slice(&rest[1..]);
    // The tag hashes the body actually sent: the processor's state and ages change without a
    // new batch, and a client must never keep a stale `state` on a 304.
    Ok(Answer::new(body, list.as_of_batch, None).respond(&headers))
}

/// What `/batches` computes per request, serialized after the kept batch list.
#[derive(Serialize)]
struct Rest<'a> {
    partitions: &'a [PartitionState],
    gaps: &'a [Gap],
    processor: &'a Processor,
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
