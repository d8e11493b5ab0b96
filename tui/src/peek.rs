//! `spine-tui peek --num N`: the newest N records of the topic as JSON lines, then exit, as
//! `rpk topic consume --num N` does in the cluster (Debian's kcat cannot talk to the local
//! broker). Like the tail it only `assign()`s and never commits.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use spine_core::event::parse_event;

use crate::config::PeekArgs;
use crate::sources::topic::{consumer, throwaway_group};

/// One line of output: rpk's fields, plus why the record is malformed if it is.
#[derive(Debug, Serialize)]
pub struct PeekRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (the record's create or log-append time), if it has one.
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
}

/// Reads the newest `args.num` records (across partitions, by timestamp) and writes them,
/// oldest first, one JSON object per line. Returns how many were written.
pub fn peek(args: &PeekArgs, out: &mut impl Write) -> anyhow::Result<usize> {
    let records = newest(
        &args.kafka.bootstrap,
        &args.kafka.topic,
        args.num as usize,
        Duration::from_secs(args.timeout_secs),
    )?;
    for r in &records {
        serde_json::to_writer(&mut *out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(records.len())
}

pub fn newest(
    bootstrap: &str,
    topic: &str,
    num: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<PeekRecord>> {
    let deadline = Instant::now() + timeout;
    let consumer =
        consumer(bootstrap, &throwaway_group(), true).context("creating the Kafka client")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| {
            anyhow::anyhow!(consumer
                .context()
                .take_error()
                .unwrap_or_else(|| e.to_string()))
        })
        .with_context(|| format!("cannot reach the broker at {bootstrap}"))?;
    let partitions: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
            t.partitions().iter().map(|p| p.id()).collect()
        }
        Some(t)
            if t.error().map(RDKafkaErrorCode::from).is_some_and(|c| {
                !matches!(
                    c,
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                )
            }) =>
        {
            bail!(
                "topic {topic} on {bootstrap}: {:?}",
                t.error().map(RDKafkaErrorCode::from)
            )
        }
        _ => bail!("topic {topic} does not exist on {bootstrap}"),
    };

    // Each partition's last `num` records: the newest `num` of the topic are among them.
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, deadline.saturating_duration_since(Instant::now()))
            .with_context(|| format!("reading the offsets of {topic}/{p}"))?;
        let start = (high - num as i64).max(low).max(0);
        if start < high {
            tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
            ends.insert(p, high);
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer.assign(&tpl)?;
    let mut done = BTreeMap::new();
    while done.len() < ends.len() {
        if Instant::now() >= deadline {
            bail!(
                "timed out reading {topic} from {bootstrap}: {} of {} partitions read to their end",
                done.len(),
                ends.len()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let Some(&end) = ends.get(&m.partition()) else {
                    continue;
                };
                if m.offset() >= end {
                    done.insert(m.partition(), ());
                    continue;
                }
                if m.offset() + 1 >= end {
                    done.insert(m.partition(), ());
                }
                let malformed = parse_event(m.payload().unwrap_or_default())
                    .err()
                    .map(|e| e.to_string());
                records.push(PeekRecord {
                    topic: topic.to_owned(),
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: match m.timestamp() {
                        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
                        Timestamp::NotAvailable => None,
                    },
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    value: m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
                    malformed,
                });
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                done.insert(p, ());
            }
            Some(Err(e)) => tracing::debug!(error = %e, "consume error"),
            None => {}
        }
    }
    records.sort_by_key(|r| (r.timestamp, r.partition, r.offset));
    let skip = records.len().saturating_sub(num);
    records.drain(..skip);
    Ok(records)
}
