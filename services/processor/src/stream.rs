//! The Kafka side: a consumer-group member that seeks to the offsets stored in Postgres on
//! every assignment, cuts micro-batches on the trigger, and hands each to the sink.
//!
//! It runs on a thread of its own: librdkafka calls the rebalance callback from `poll`, and
//! the callback must read Postgres before the partitions start fetching, so it blocks on the
//! async pool from there (`Handle::block_on`), which is only allowed outside the runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_postgres::Pool;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use serde::Deserialize;
use spine_core::ops::Readiness;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::batch::Batch;
use crate::config::CrashPoint;
use crate::metrics::Metrics;
use crate::sink::{self, Committed, SinkError, Target};
use crate::watchdog::{self, StallWatch};

/// What the loop needs to know.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub bootstrap: String,
    pub topic: String,
    pub consumer_group: String,
    pub trigger: Duration,
    pub max_batch_rows: usize,
    pub available_now: bool,
    pub crash_at: Option<CrashPoint>,
}

/// Totals of one run, returned when the loop ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub batches: u64,
    pub input_rows: u64,
    pub events_inserted: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
}

/// What the rebalance callback hands to the loop.
#[derive(Default)]
struct Assignment {
    /// The stored offset of every partition this member owns.
    positions: BTreeMap<i32, i64>,
    /// Bumped on every assignment or revocation, so the loop notices and drops its batch.
    generation: u64,
}

pub struct StreamContext {
    rt: Handle,
    pool: Pool,
    topic: String,
    consumer_group: String,
    shutdown: CancellationToken,
    assignment: Mutex<Assignment>,
    high_watermarks: Mutex<BTreeMap<i32, i64>>,
    last_error: Mutex<Option<(String, Instant)>>,
}

/// The part of librdkafka's statistics JSON we read: each partition's end offset.
#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    topics: BTreeMap<String, StatsTopic>,
}
#[derive(Deserialize)]
struct StatsTopic {
    #[serde(default)]
    partitions: BTreeMap<i32, StatsPartition>,
}
#[derive(Deserialize)]
struct StatsPartition {
    hi_offset: i64,
}

impl ClientContext for StreamContext {
    fn stats_raw(&self, raw: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(raw) else {
            return;
        };
        if let Some(topic) = stats.topics.get(&self.topic) {
            let mut hw = lock(&self.high_watermarks);
            for (&p, part) in &topic.partitions {
                if p >= 0 && part.hi_offset >= 0 {
                    hw.insert(p, part.hi_offset);
                }
            }
        }
    }

    /// librdkafka reports every failed reconnect; say it once per distinct error and then at
    /// most every 30 s, as a warning (it retries by itself; nothing is lost meanwhile).
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            return; // reaching the end of a partition is news only to --available-now
        }
        let text = format!("{error}: {reason}");
        let mut last = lock(&self.last_error);
        let repeat =
            matches!(&*last, Some((t, at)) if *t == text && at.elapsed() < Duration::from_secs(30));
        if !repeat {
            warn!(error = %text, "kafka client error (retrying)");
            *last = Some((text, Instant::now()));
        }
    }
}

impl ConsumerContext for StreamContext {
    /// Assign at the offsets stored in Postgres, never Kafka's committed ones: they are the
    /// ones written in the same transaction as the data.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<i32> = tpl
                    .elements_for_topic(&self.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                let Some(offsets) = self.load_offsets_retrying(&partitions) else {
                    // Shutting down: take nothing.
                    let _ = consumer.assign(&TopicPartitionList::new());
                    return;
                };
                for (&p, &offset) in &offsets {
                    let _ = tpl.set_partition_offset(&self.topic, p, Offset::Offset(offset));
                }
                if let Err(e) = consumer.assign(tpl) {
                    warn!(error = %e, "assigning partitions failed");
                }
                info!(
                    partitions = %format_offsets(&offsets),
                    "partitions assigned, resuming from the offsets stored in Postgres"
                );
                let mut a = lock(&self.assignment);
                a.positions = offsets;
                a.generation += 1;
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let _ = consumer.unassign();
                let mut a = lock(&self.assignment);
                info!(partitions = ?a.positions.keys().collect::<Vec<_>>(), "partitions revoked");
                a.positions.clear();
                a.generation += 1;
            }
            other => {
                warn!(error = ?other, "rebalance failed; dropping the assignment");
                let _ = consumer.unassign();
                let mut a = lock(&self.assignment);
                a.positions.clear();
                a.generation += 1;
            }
        }
    }
}

impl StreamContext {
    /// The stored offsets of `partitions` (with `init`, rows are created at 0 for partitions
    /// the group has never read), read from this thread through the async pool.
    fn stored_offsets(&self, partitions: &[i32], init: bool) -> Result<BTreeMap<i32, i64>, String> {
        self.rt.block_on(async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            let (g, t) = (&self.consumer_group, &self.topic);
            let stored = if init {
                sink::load_or_init_offsets(&**client, g, t, partitions).await
            } else {
                sink::load_offsets(&**client, g, t, partitions).await
            };
            stored.map_err(|e| e.to_string())
        })
    }

    fn load_offsets_retrying(&self, partitions: &[i32]) -> Option<BTreeMap<i32, i64>> {
        let mut backoff = Backoff::new();
        loop {
            match self.stored_offsets(partitions, true) {
                Ok(offsets) => return Some(offsets),
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.peek().as_millis() as u64, "cannot read stored offsets");
                    if !backoff.sleep(&self.shutdown) {
                        return None;
                    }
                }
            }
        }
    }

    fn high_watermarks(&self) -> BTreeMap<i32, i64> {
        lock(&self.high_watermarks).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Exponential backoff from 100 ms to 10 s that wakes up early on shutdown.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }
    fn peek(&self) -> Duration {
        self.0
    }
    /// Sleeps; false when shutdown was requested meanwhile.
    fn sleep(&mut self, shutdown: &CancellationToken) -> bool {
        let deadline = Instant::now() + self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(10));
        while Instant::now() < deadline {
            if shutdown.is_cancelled() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(deadline - Instant::now()));
        }
        !shutdown.is_cancelled()
    }
}

fn format_offsets(offsets: &BTreeMap<i32, i64>) -> String {
    offsets
        .iter()
        .map(|(p, o)| format!("{p}@{o}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn create_consumer(
    cfg: &LoopConfig,
    pool: Pool,
    shutdown: CancellationToken,
) -> anyhow::Result<BaseConsumer<StreamContext>> {
    let context = StreamContext {
        rt: Handle::current(),
        pool,
        topic: cfg.topic.clone(),
        consumer_group: cfg.consumer_group.clone(),
        shutdown,
        assignment: Mutex::new(Assignment::default()),
        high_watermarks: Mutex::new(BTreeMap::new()),
        last_error: Mutex::new(None),
    };
    ClientConfig::new()
        .set("bootstrap.servers", &cfg.bootstrap)
        .set("group.id", &cfg.consumer_group)
        .set("client.id", "spine-processor")
        // Offsets live in Postgres; Kafka's copy is only committed for tools to show lag.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "1000")
        // A replica killed with SIGKILL holds its partitions until its session expires: keep
        // that short (6 s is the brokers' default minimum).
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500")
        .set(
            "enable.partition.eof",
            if cfg.available_now { "true" } else { "false" },
        )
        .create_with_context(context)
        .context("creating the Kafka consumer")
}

/// The loop: poll, cut a batch on the trigger (or when it is full), write it, repeat, until
/// shutdown (or, with `available_now`, until the topic's end as seen at start is written).
pub fn run(
    consumer: &BaseConsumer<StreamContext>,
    cfg: &LoopConfig,
    metrics: &Metrics,
    readiness: &Readiness,
) -> anyhow::Result<Summary> {
    let ctx = consumer.context();
    consumer
        .subscribe(&[&cfg.topic])
        .with_context(|| format!("subscribing to topic {}", cfg.topic))?;
    info!(topic = %cfg.topic, group = %cfg.consumer_group, trigger_ms = cfg.trigger.as_millis() as u64,
          max_batch_rows = cfg.max_batch_rows, available_now = cfg.available_now, "stream started");

    let mut summary = Summary::default();
    let mut batch = Batch::default();
    let mut generation = 0u64;
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut next_trigger = Instant::now() + cfg.trigger;
    let mut drained = false;
    let mut batch_number = 0u64;
    // --available-now: the end of every partition of the topic when the run started. The run
    // is over when the group's stored offsets reach them all, whichever member wrote them.
    let targets: BTreeMap<i32, i64> = if cfg.available_now {
        let t = topic_end_offsets(consumer, &cfg.topic)?;
        info!(targets = %format_offsets(&t), "available-now: processing up to these offsets");
        t
    } else {
        BTreeMap::new()
    };
    let mut others_checked_at = Instant::now();
    let mut at_eof: BTreeSet<i32> = BTreeSet::new();
    let started = Instant::now();
    let mut stall_watch = StallWatch::new(Instant::now());
    let mut stall_checked_at = Instant::now();
    readiness.set(true);

    loop {
        if ctx.shutdown.is_cancelled() {
            info!("stopping: shutdown requested");
            break;
        }

        // Adopt what the last rebalance decided. A batch in progress is dropped: it may hold
        // records of partitions this member no longer owns, and it was never written.
        {
            let a = lock(&ctx.assignment);
            if a.generation != generation {
                generation = a.generation;
                positions = a.positions.clone();
                drop(a);
                stall_watch.reset(Instant::now());
                batch = Batch::default();
                drained = false;
                at_eof.clear();
            }
        }

        let now = Instant::now();
        let due = now >= next_trigger;
        if !batch.is_empty() && (batch.input_rows() >= cfg.max_batch_rows || (due && drained)) {
            batch_number += 1;
            let outcome = commit(
                consumer,
                cfg,
                metrics,
                readiness,
                &mut batch,
                &mut positions,
                batch_number,
            )?;
            if let Some(c) = outcome {
                summary.batches += 1;
                summary.input_rows += c.input_rows as u64;
                summary.events_inserted += c.events_inserted as u64;
                summary.duplicates += c.duplicates as u64;
                summary.dead_lettered += c.dead_lettered as u64;
            }
            batch = Batch::default();
            drained = false;
            next_trigger = now + cfg.trigger;
            continue;
        }
        if due && batch.is_empty() {
            // Nothing arrived by this trigger: wait for the next one, as Spark does.
            next_trigger = now + cfg.trigger;
        }

        if cfg.available_now && batch.is_empty() {
            let pending: Vec<i32> = targets
                .iter()
                .filter(|(p, target)| match positions.get(p) {
                    Some(pos) => pos < target && !at_eof.contains(p),
                    None => true,
                })
                .map(|(&p, _)| p)
                .collect();
            // Our own partitions are done; the rest are another member's (or nobody's yet):
            // ask Postgres, at most once a second.
            let done = pending.is_empty()
                || (pending.iter().all(|p| !positions.contains_key(p))
                    && others_checked_at.elapsed() > Duration::from_secs(1)
                    && {
                        others_checked_at = Instant::now();
                        stored_offsets_reached(ctx, &pending, &targets)
                    });
            if done {
                info!(
                    batches = summary.batches,
                    rows = summary.input_rows,
                    seconds = started.elapsed().as_secs_f64(),
                    "available-now: caught up, exiting"
                );
                break;
            }
        }

        if stall_checked_at.elapsed() >= watchdog::CHECK_EVERY {
            stall_checked_at = Instant::now();
            let stalled = check_stalled(consumer, cfg, &positions, &mut stall_watch);
            if !stalled.is_empty() {
                warn!(partitions = ?stalled,
                      "partitions owned by no live member have records waiting (a broker that did \
                       not rebalance after a member died); re-joining the group");
                consumer.unsubscribe();
                consumer
                    .subscribe(&[&cfg.topic])
                    .with_context(|| format!("re-subscribing to topic {}", cfg.topic))?;
                stall_watch.reset(Instant::now());
            }
        }

        let timeout = if !batch.is_empty() && due {
            Duration::ZERO // drain what is already fetched, then cut the batch
        } else if cfg.trigger.is_zero() {
            Duration::from_millis(100)
        } else {
            next_trigger
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(100))
        };
        let poll_started = Instant::now();
        match consumer.poll(timeout) {
            None => drained = true,
            Some(Ok(msg)) => {
                // A batch's fetch time is the time spent taking its records off the client
                // and parsing them, not the time spent waiting for them to be produced.
                let handling = if timeout.is_zero() {
                    poll_started
                } else {
                    Instant::now()
                };
                drained = false;
                let p = msg.partition();
                let Some(&position) = positions.get(&p) else {
                    continue; // not (or no longer) ours
                };
                let expected = batch.next_offset(p).unwrap_or(position);
                if msg.topic() != cfg.topic || msg.offset() < expected {
                    continue; // fetched before a seek; already covered
                }
                at_eof.remove(&p);
                batch.push(p, msg.offset(), position, msg.key(), msg.payload());
                batch.fetch_time += handling.elapsed();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_eof.insert(p);
                drained = true;
            }
            Some(Err(e)) => {
                debug!(error = %e, "poll error (librdkafka retries by itself)");
            }
        }
    }

    // A last synchronous commit of what Postgres holds, so Kafka tools show the final lag.
    commit_to_kafka(consumer, &cfg.topic, &positions, CommitMode::Sync);
    readiness.set(false);
    Ok(summary)
}

/// Feeds the stall watchdog with the partitions this member does not own: their stored offsets
/// (Postgres) and ends (the broker). Errors mean "no opinion this time".
fn check_stalled(
    consumer: &BaseConsumer<StreamContext>,
    cfg: &LoopConfig,
    owned: &BTreeMap<i32, i64>,
    watch: &mut StallWatch,
) -> Vec<i32> {
    let ctx = consumer.context();
    let Ok(metadata) = consumer.fetch_metadata(Some(&cfg.topic), Duration::from_secs(5)) else {
        return Vec::new();
    };
    let others: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == cfg.topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .filter(|p| !owned.contains_key(p))
        .collect();
    if others.is_empty() {
        return Vec::new();
    }
    let Ok(stored) = ctx.stored_offsets(&others, false) else {
        return Vec::new();
    };
    let mut observed = BTreeMap::new();
    for p in others {
        let Ok((_, end)) = consumer.fetch_watermarks(&cfg.topic, p, Duration::from_secs(5)) else {
            return Vec::new();
        };
        observed.insert(p, (stored.get(&p).copied().unwrap_or(0), end));
    }
    watch.observe(Instant::now(), &observed)
}

/// Whether the group's stored offsets of `partitions` have reached `targets`.
fn stored_offsets_reached(
    ctx: &StreamContext,
    partitions: &[i32],
    targets: &BTreeMap<i32, i64>,
) -> bool {
    match ctx.stored_offsets(partitions, false) {
        Ok(stored) => partitions.iter().all(|p| {
            stored
                .get(p)
                .is_some_and(|s| targets.get(p).is_some_and(|t| s >= t))
        }),
        Err(e) => {
            debug!(error = %e, "cannot read stored offsets");
            false
        }
    }
}

/// The end offset of every partition of `topic` now (a broker round trip per partition).
fn topic_end_offsets(
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

fn commit_to_kafka(
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

/// Writes `batch`, retrying transient failures. `None` when nothing was committed (the batch
/// was abandoned for shutdown, or everything in it had been written by another writer).
fn commit(
    consumer: &BaseConsumer<StreamContext>,
    cfg: &LoopConfig,
    metrics: &Metrics,
    readiness: &Readiness,
    batch: &mut Batch,
    positions: &mut BTreeMap<i32, i64>,
    batch_number: u64,
) -> anyhow::Result<Option<Committed>> {
    let ctx = consumer.context();
    if cfg.crash_at == Some(CrashPoint::PauseBeforeWrite(batch_number)) {
        eprintln!(
            "spine-processor: test hook: pausing before writing batch {batch_number} ({})",
            format_ranges(batch)
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    let high_watermarks = ctx.high_watermarks();
    let mut backoff = Backoff::new();
    loop {
        let target = Target {
            consumer_group: &cfg.consumer_group,
            topic: &cfg.topic,
            high_watermarks: &high_watermarks,
        };
        let result = ctx.rt.block_on(async {
            let mut client = ctx
                .pool
                .get()
                .await
                .map_err(|e| SinkError::Unavailable(e.to_string()))?;
            sink::write(&mut client, batch, &target, cfg.crash_at, batch_number).await
        });
        match result {
            Ok(committed) => {
                readiness.set(true);
                for (&p, r) in &batch.ranges {
                    positions.insert(p, r.end);
                }
                commit_to_kafka(consumer, &cfg.topic, positions, CommitMode::Async);
                let total = batch.fetch_time + committed.write_time;
                metrics.record(&committed, total.as_secs_f64());
                for (&p, &pos) in positions.iter() {
                    if let Some(&hw) = high_watermarks.get(&p) {
                        metrics
                            .lag
                            .with_label_values(&[&p.to_string()])
                            .set((hw - pos).max(0));
                    }
                }
                info!(
                    batch_id = committed.batch_id,
                    input_rows = committed.input_rows,
                    inserted = committed.events_inserted,
                    duplicates = committed.duplicates,
                    upserted = committed.orders_upserted,
                    stale = committed.stale_skipped,
                    dead_lettered = committed.dead_lettered,
                    offsets = %format_ranges(batch),
                    fetch_ms = batch.fetch_time.as_millis() as u64,
                    write_ms = committed.write_time.as_millis() as u64,
                    rows_per_sec = (committed.input_rows as f64 / total.as_secs_f64().max(1e-6)) as u64,
                    "batch committed"
                );
                return Ok(Some(committed));
            }
            Err(SinkError::Fenced) => {
                metrics.fenced.inc();
                let partitions: Vec<i32> = batch.ranges.keys().copied().collect();
                let stored = loop {
                    match ctx.stored_offsets(&partitions, false) {
                        Ok(stored) => break stored,
                        Err(e) => {
                            warn!(error = %e, "cannot read stored offsets after a fenced write");
                            if !backoff.sleep(&ctx.shutdown) {
                                return Ok(None);
                            }
                        }
                    }
                };
                for (p, range) in batch.ranges.clone() {
                    match stored.get(&p) {
                        Some(&s) if s >= range.start => {
                            if s != range.start {
                                warn!(partition = p, ours = range.start, stored = s,
                                      "another writer committed this partition ahead of us; skipping what it wrote");
                            }
                            batch.advance_partition(p, s);
                            positions.insert(p, s);
                        }
                        other => {
                            // The stored offset went backwards or vanished: someone reset it.
                            // Start over from a fresh assignment.
                            warn!(partition = p, ours = range.start, stored = ?other,
                                  "stored offset moved backwards; re-joining the group to re-read it");
                            consumer.unsubscribe();
                            consumer.subscribe(&[&cfg.topic])?;
                            positions.clear();
                            return Ok(None);
                        }
                    }
                }
                if batch.is_empty() {
                    return Ok(None);
                }
            }
            Err(e) if e.is_transient() => {
                readiness.set(false);
                metrics.write_retries.inc();
                warn!(error = %e, retry_in_ms = backoff.peek().as_millis() as u64,
                      "batch write failed; retrying the same batch (offsets unchanged)");
                if !backoff.sleep(&ctx.shutdown) {
                    warn!("shutdown during retries: abandoning the uncommitted batch; it will be re-read");
                    return Ok(None);
                }
            }
            Err(e) => {
                return Err(anyhow::anyhow!(e).context(
                    "writing a batch failed with a non-transient error; nothing was committed",
                ));
            }
        }
    }
}

fn format_ranges(batch: &Batch) -> String {
    batch
        .ranges
        .iter()
        .map(|(p, r)| format!("{p}:[{},{})", r.start, r.end))
        .collect::<Vec<_>>()
        .join(" ")
}
