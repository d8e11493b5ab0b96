//! `spine-tui peek`: records of the topic as JSON lines, with kcat's and rpk's flags
//! (docs/contracts.md, "spine-tui"): `-n/--num`, `-p/--partition`, `-o/--offset`
//! (`beginning`, `end`, an offset, `-N`, `@<ms timestamp>`), `-f/--follow`, `-b/--brokers`,
//! `-t/--topic`, `-X key=value`. Debian's kcat cannot talk to the local broker; this can. Like
//! the tail it only `assign()`s and never commits.
//!
//! Without `--offset` it prints the newest `--num` (5) records of the topic, oldest of them
//! first (by timestamp, across partitions). With `--offset` each partition is read from there,
//! records printed as they arrive (in offset order within a partition), until every partition's
//! end as it was at start, or `--num` records. With `--follow` it keeps printing new records
//! until Ctrl-C (or `--num`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;
use spine_core::event::parse_event;

use crate::config::{PeekArgs, Start};
use crate::sources::topic::{consumer, throwaway_group, TailContext};

/// The newest records printed when neither `--num` nor `--offset` is given.
pub const DEFAULT_NUM: u64 = 5;

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

impl PeekRecord {
    fn of(m: &BorrowedMessage<'_>) -> PeekRecord {
        PeekRecord {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: match m.timestamp() {
                Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
                Timestamp::NotAvailable => None,
            },
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            malformed: parse_event(m.payload().unwrap_or_default())
                .err()
                .map(|e| e.to_string()),
        }
    }
}

/// Where the reading stands: the client, the topic, and what it was asked.
struct Reader<'a> {
    consumer: BaseConsumer<TailContext>,
    args: &'a PeekArgs,
    timeout: Duration,
}

/// Runs `peek` as `args` say, writing one JSON object per line to `out`. Returns how many
/// records it wrote (with `--follow` it only returns on an error or after `--num`).
pub fn peek(args: &PeekArgs, out: &mut impl Write) -> anyhow::Result<usize> {
    let bootstrap = &args.kafka.bootstrap;
    let reader = Reader {
        consumer: consumer(
            bootstrap,
            &args.kafka.client_properties(),
            &throwaway_group(),
            true,
        )
        .context("creating the Kafka client")?,
        args,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let partitions = reader.partitions()?;
    let mut ends = BTreeMap::new();
    let mut starts = TopicPartitionList::new();
    let topic = &args.kafka.topic;
    let newest = args.offset.is_none();
    let num = args.num.or(newest.then_some(DEFAULT_NUM));
    for &p in &partitions {
        let (low, high) = reader
            .consumer
            .fetch_watermarks(topic, p, reader.timeout)
            .with_context(|| format!("reading the offsets of {topic}/{p}"))?;
        let start = match args.offset {
            // Each partition's last `num`: the newest `num` of the topic are among them.
            None => high - num.unwrap_or(DEFAULT_NUM) as i64,
            Some(Start::Beginning) => low,
            Some(Start::End) => high,
            Some(Start::Offset(o)) => o,
            Some(Start::Last(n)) => high - n,
            Some(Start::Time(ms)) => reader.offset_at(p, ms)?.unwrap_or(high),
        }
        .clamp(low.max(0), high.max(0));
        starts.add_partition_offset(topic, p, Offset::Offset(start))?;
        ends.insert(p, (start, high));
    }
    reader.consumer.assign(&starts)?;

    let mut printer = Printer {
        out,
        written: 0,
        num,
        flush: args.follow,
    };
    if newest {
        // Records past the ends (they arrived meanwhile) are kept for --follow.
        let (mut records, mut later) = (Vec::new(), Vec::new());
        reader.stream(&ends, false, &mut |r, in_range| {
            if in_range { &mut records } else { &mut later }.push(r);
            Ok(false)
        })?;
        records.sort_by_key(|r| (r.timestamp, r.partition, r.offset));
        records.drain(
            ..records
                .len()
                .saturating_sub(num.unwrap_or(DEFAULT_NUM) as usize),
        );
        for r in &records {
            printer.print(r)?;
        }
        printer.out.flush()?;
        if !args.follow {
            return Ok(printer.written);
        }
        // Then whatever arrives, however many.
        printer.num = None;
        later.sort_by_key(|r| (r.partition, r.offset));
        for r in &later {
            printer.print(r)?;
        }
        reader.stream(&BTreeMap::new(), true, &mut |r, _| printer.print(&r))?;
    } else {
        reader.stream(&ends, args.follow, &mut |r, in_range| {
            if in_range {
                printer.print(&r)
            } else {
                Ok(false)
            }
        })?;
    }
    printer.out.flush()?;
    Ok(printer.written)
}

/// Writes records as JSON lines and counts them.
struct Printer<'a, W: Write> {
    out: &'a mut W,
    written: usize,
    num: Option<u64>,
    /// Flush each line (following: a reader sees each record as it arrives).
    flush: bool,
}

impl<W: Write> Printer<'_, W> {
    /// Writes `r`; true once `num` records are written.
    fn print(&mut self, r: &PeekRecord) -> anyhow::Result<bool> {
        serde_json::to_writer(&mut *self.out, r)?;
        self.out.write_all(b"\n")?;
        if self.flush {
            self.out.flush()?;
        }
        self.written += 1;
        Ok(self.num.is_some_and(|n| self.written as u64 >= n))
    }
}

impl Reader<'_> {
    fn topic(&self) -> &str {
        &self.args.kafka.topic
    }

    /// The partitions to read: the topic's, or the one `--partition` names.
    fn partitions(&self) -> anyhow::Result<Vec<i32>> {
        let (topic, bootstrap) = (self.topic(), &self.args.kafka.bootstrap);
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(|e| {
                anyhow::anyhow!(self
                    .consumer
                    .context()
                    .take_error()
                    .unwrap_or_else(|| e.to_string()))
            })
            .with_context(|| format!("cannot reach the broker at {bootstrap}"))?;
        let all: Vec<i32> = match metadata.topics().iter().find(|t| t.name() == topic) {
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
        match self.args.partition {
            None => Ok(all),
            Some(p) if all.contains(&p) => Ok(vec![p]),
            Some(p) => bail!(
                "partition {p} does not exist in topic {topic} (it has {} partitions, 0 to {})",
                all.len(),
                all.len() - 1
            ),
        }
    }

    /// The offset of the first record of `partition` at or after `ms`, as the broker answers
    /// (`None`: no such record). The local broker (Tansu 0.6) answers 0 whatever the time.
    fn offset_at(&self, partition: i32, ms: i64) -> anyhow::Result<Option<i64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(self.topic(), partition, Offset::Offset(ms))?;
        let found = self
            .consumer
            .offsets_for_times(tpl, self.timeout)
            .with_context(|| format!("looking up {}/{partition} at {ms} ms", self.topic()))?;
        Ok(found
            .find_partition(self.topic(), partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            }))
    }

    /// Hands each record to `each` as it arrives, with whether it is within `ranges`
    /// (partition → [start, end)), until `each` says stop or, unless following, every
    /// partition of `ranges` reached its end. Following, it only ends on an error or when
    /// `each` says stop. Gives up when the broker sends nothing for `--timeout-secs` while
    /// records are still due.
    fn stream(
        &self,
        ranges: &BTreeMap<i32, (i64, i64)>,
        follow: bool,
        each: &mut dyn FnMut(PeekRecord, bool) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let mut pending: BTreeSet<i32> = ranges
            .iter()
            .filter(|(_, (start, end))| start < end)
            .map(|(&p, _)| p)
            .collect();
        let mut last_progress = Instant::now();
        while follow || !pending.is_empty() {
            if !follow && last_progress.elapsed() >= self.timeout {
                bail!(
                    "timed out reading {} from {}: {} of {} partitions read to their end",
                    self.topic(),
                    self.args.kafka.bootstrap,
                    ranges.len() - pending.len(),
                    ranges.len()
                );
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    let end = ranges.get(&m.partition()).map_or(i64::MAX, |r| r.1);
                    let in_range = follow || m.offset() < end;
                    if m.offset() + 1 >= end {
                        pending.remove(&m.partition());
                    }
                    if each(PeekRecord::of(&m), in_range)? {
                        return Ok(());
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    pending.remove(&p);
                }
                Some(Err(e)) => tracing::debug!(error = %e, "consume error"),
                None => {}
            }
        }
        Ok(())
    }
}
