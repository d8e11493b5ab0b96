//! Offsets as the loop sees them: the group's stored offsets (Postgres, the real ones), the
//! partitions' ends (the broker), the copy committed to Kafka for tools to show lag, and the
//! stall check that compares the first two for partitions nobody seems to process.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::debug;

use super::StreamContext;
use crate::watchdog::StallWatch;

/// Feeds the stall watchdog with the partitions this member does not own: their stored offsets
/// (Postgres) and ends (the broker). Errors, and answers slower than 5 s, mean "no opinion
/// this time". Runs on the stall checker's thread ([`super::stall`]), never the poll loop's.
pub(super) fn check_stalled(
    consumer: &BaseConsumer<StreamContext>,
    topic: &str,
    owned: &BTreeSet<i32>,
    watch: &mut StallWatch,
) -> Vec<i32> {
    let ctx = consumer.context();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return Vec::new();
    };
    let others: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .filter(|p| !owned.contains(p))
        .collect();
    if others.is_empty() {
        return Vec::new();
    }
    let Ok(stored) = ctx.stored_offsets_within(&others, Duration::from_secs(5)) else {
        return Vec::new();
    };
    let mut observed = BTreeMap::new();
    for p in others {
        let Ok((_, end)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) else {
            return Vec::new();
        };
        observed.insert(p, (stored.get(&p).copied().unwrap_or(0), end));
    }
    watch.observe(Instant::now(), &observed)
}

/// Whether the group's stored offsets of `partitions` have reached `targets`. A stored offset
/// past its partition's end now is not "reached" but data loss, which the partition's owner
/// reports (see [`crate::gaps`]): never a reason to call the run done.
pub(super) fn stored_offsets_reached(
    consumer: &BaseConsumer<StreamContext>,
    topic: &str,
    partitions: &[i32],
    targets: &BTreeMap<i32, i64>,
) -> bool {
    let stored = match consumer.context().stored_offsets(partitions, false) {
        Ok(stored) => stored,
        Err(e) => {
            debug!(error = %e, "cannot read stored offsets");
            return false;
        }
    };
    partitions.iter().all(|p| {
        let (Some(&s), Some(&t)) = (stored.get(p), targets.get(p)) else {
            return false;
        };
        s == t
            || (s > t
                && consumer
                    .fetch_watermarks(topic, *p, Duration::from_secs(5))
                    .is_ok_and(|(_, high)| s <= high))
    })
}

/// The end offset of every partition of `topic` now (a broker round trip per partition).
pub(super) fn topic_end_offsets(
    consumer: &BaseConsumer<StreamContext>,
    topic: &str,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .with_context(|| format!("reading the metadata of topic {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        anyhow::bail!("topic {topic} does not exist (or has no partitions)");
    }
    partitions
        .into_iter()
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .map(|(_, high)| (p, high))
                .with_context(|| format!("reading the end offset of {topic}/{p}"))
        })
        .collect()
}

/// Commits `offsets` to the consumer group in Kafka. Only for tools that show lag: Postgres
/// holds the offsets that count, so a failure is logged at debug level and otherwise ignored.
pub(super) fn commit_to_kafka(
    consumer: &BaseConsumer<StreamContext>,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
    mode: CommitMode,
) {
    if offsets.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (&p, &o) in offsets {
        let _ = tpl.add_partition_offset(topic, p, Offset::Offset(o));
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        debug!(error = %e, "committing offsets to the consumer group failed (Postgres holds the real ones)");
    }
}
