//! The consumer's context: what librdkafka calls back into. The rebalance callback assigns
//! partitions at the offsets stored in Postgres and tells the loop; the statistics callback
//! keeps each partition's end offset; the error callback logs, rate-limited.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use deadpool_postgres::Pool;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use serde::Deserialize;
use spine_core::backoff::Backoff;
use spine_core::throttle::Throttle;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{format_offsets, lock, LoopConfig};
use crate::gaps::{self, DataLoss, Gap, OnDataLoss};
use crate::sink;

/// What the rebalance callback hands to the loop.
#[derive(Debug, Default)]
pub(super) struct Assignment {
    /// The stored offset of every partition this member owns.
    pub positions: BTreeMap<i32, i64>,
    /// Bumped on every assignment or revocation, so the loop notices and drops its batch.
    pub generation: u64,
    /// The last assignment librdkafka refused, not yet handled by the loop.
    pub failed: Option<String>,
    /// Assignments refused in a row (0 after one that worked).
    pub failures_in_a_row: u32,
    /// `ON_DATA_LOSS=continue`: partitions whose stored offset lay outside their log, resumed
    /// at the log's start (their `positions` are the gap's end); the gap is written with the
    /// first batch after it.
    pub gaps: BTreeMap<i32, Gap>,
    /// `ON_DATA_LOSS=fail`: the stored offset of a partition lies outside its log. Nothing
    /// was assigned; the loop stops with this error.
    pub data_loss: Option<DataLoss>,
}

impl Assignment {
    /// The partitions were assigned at these stored offsets.
    pub fn assigned(&mut self, offsets: BTreeMap<i32, i64>) {
        self.gaps.clear();
        self.positions = offsets;
        self.generation += 1;
        self.failed = None;
        self.failures_in_a_row = 0;
    }

    /// librdkafka refused the assignment: this member reads nothing until the loop re-joins
    /// the group, so no position may be kept.
    pub fn assign_failed(&mut self, error: String) {
        self.positions.clear();
        self.generation += 1;
        self.failed = Some(error);
        self.failures_in_a_row += 1;
    }

    /// The partitions were assigned after gaps (`ON_DATA_LOSS=continue`): `offsets` are where
    /// reading resumes.
    pub fn assigned_after_gaps(&mut self, offsets: BTreeMap<i32, i64>, gaps: BTreeMap<i32, Gap>) {
        self.assigned(offsets);
        self.gaps = gaps;
    }

    /// A stored offset lies outside its log and `ON_DATA_LOSS=fail`: nothing was assigned.
    pub fn lost(&mut self, loss: DataLoss) {
        self.positions.clear();
        self.gaps.clear();
        self.generation += 1;
        self.data_loss = Some(loss);
    }

    /// The partitions were taken away (revoked, or the rebalance failed).
    pub fn dropped(&mut self) {
        self.gaps.clear();
        self.positions.clear();
        self.generation += 1;
    }
}

pub struct StreamContext {
    pub(super) rt: Handle,
    pub(super) pool: Pool,
    /// The batches' own connections, made and driven on the stream thread's runtime (see
    /// [`create_consumer_with_writer`]).
    pub(super) write_pool: Pool,
    topic: String,
    consumer_group: String,
    on_data_loss: OnDataLoss,
    pub(super) shutdown: CancellationToken,
    pub(super) assignment: Mutex<Assignment>,
    high_watermarks: Mutex<BTreeMap<i32, i64>>,
    errors: Throttle,
    /// The partitions this member owns, for the heartbeat (see [`crate::heartbeat`]).
    assigned: watch::Sender<Vec<i32>>,
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
                    // A log's end only moves forward; a committed batch may have seen it
                    // further on than these statistics did (`saw_end`).
                    let known = hw.entry(p).or_insert(part.hi_offset);
                    *known = (*known).max(part.hi_offset);
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
        if self.errors.allow(&text) {
            warn!(error = %text, "kafka client error (retrying)");
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
                let Some(start) = self.start_retrying(consumer, &partitions) else {
                    // Shutting down: take nothing.
                    let _ = consumer.assign(&TopicPartitionList::new());
                    return;
                };
                let (offsets, gaps) = match self.decide_start(start) {
                    Ok(decided) => decided,
                    Err(loss) => {
                        // ON_DATA_LOSS=fail: read nothing; the loop stops.
                        let _ = consumer.assign(&TopicPartitionList::new());
                        lock(&self.assignment).lost(loss);
                        self.assigned.send_replace(Vec::new());
                        return;
                    }
                };
                for (&p, &offset) in &offsets {
                    let _ = tpl.set_partition_offset(&self.topic, p, Offset::Offset(offset));
                }
                match consumer.assign(tpl) {
                    Ok(()) => {
                        info!(
                            partitions = %format_offsets(&offsets),
                            "partitions assigned, resuming from the offsets stored in Postgres (or, after a gap, the log's start)"
                        );
                        let partitions = offsets.keys().copied().collect();
                        lock(&self.assignment).assigned_after_gaps(offsets, gaps);
                        self.assigned.send_replace(partitions);
                    }
                    Err(e) => {
                        error!(error = %e, partitions = %format_offsets(&offsets),
                               "assigning partitions failed; none are taken");
                        lock(&self.assignment).assign_failed(e.to_string());
                        self.assigned.send_replace(Vec::new());
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let _ = consumer.unassign();
                let mut a = lock(&self.assignment);
                info!(partitions = ?a.positions.keys().collect::<Vec<_>>(), "partitions revoked");
                a.dropped();
                self.assigned.send_replace(Vec::new());
            }
            other => {
                warn!(error = ?other, "rebalance failed; dropping the assignment");
                let _ = consumer.unassign();
                lock(&self.assignment).dropped();
                self.assigned.send_replace(Vec::new());
            }
        }
    }
}

impl StreamContext {
    /// The stored offsets of `partitions` (with `init`, rows are created at 0 for partitions
    /// the group has never read), read from this thread through the async pool.
    pub(super) fn stored_offsets(
        &self,
        partitions: &[i32],
        init: bool,
    ) -> Result<BTreeMap<i32, i64>, String> {
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

    /// [`StreamContext::stored_offsets`] (without creating rows), given up after `within`.
    pub(super) fn stored_offsets_within(
        &self,
        partitions: &[i32],
        within: Duration,
    ) -> Result<BTreeMap<i32, i64>, String> {
        self.rt.block_on(async {
            let read = async {
                let client = self.pool.get().await.map_err(|e| e.to_string())?;
                sink::load_offsets(&**client, &self.consumer_group, &self.topic, partitions)
                    .await
                    .map_err(|e| e.to_string())
            };
            tokio::time::timeout(within, read)
                .await
                .map_err(|_| format!("no answer from Postgres within {within:?}"))?
        })
    }

    /// Each partition's log `[low, high]` (the broker) and stored offset (Postgres; a
    /// partition the group never read starts at `low`), retried until both answer or shutdown.
    fn start_retrying(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: &[i32],
    ) -> Option<Vec<PartitionStart>> {
        let mut backoff = retry_backoff();
        loop {
            match self.start(consumer, partitions) {
                Ok(start) => return Some(start),
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.peek().as_millis() as u64,
                          "cannot read stored offsets or the partitions' logs");
                    if !backoff.wait_blocking(&self.shutdown) {
                        return None;
                    }
                }
            }
        }
    }

    fn start(
        &self,
        consumer: &BaseConsumer<Self>,
        partitions: &[i32],
    ) -> Result<Vec<PartitionStart>, String> {
        let mut logs = BTreeMap::new();
        for &p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, p, WATERMARKS_TIMEOUT)
                .map_err(|e| format!("reading the log range of {}/{p}: {e}", self.topic))?;
            logs.insert(p, (low.max(0), high.max(0)));
        }
        let lows = logs.iter().map(|(&p, &(low, _))| (p, low)).collect();
        let stored = self.rt.block_on(async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            let (g, t) = (&self.consumer_group, &self.topic);
            sink::load_or_init_offsets_at(&**client, g, t, &lows)
                .await
                .map_err(|e| e.to_string())
        })?;
        Ok(logs
            .into_iter()
            .filter_map(|(p, (low, high))| {
                stored.get(&p).map(|&stored| PartitionStart {
                    partition: p,
                    stored,
                    low,
                    high,
                })
            })
            .collect())
    }

    /// Where each partition is read from: its stored offset, or with `ON_DATA_LOSS=continue`
    /// the log's start after a gap (returned too). With `fail`, the first partition whose
    /// stored offset lies outside its log is the error.
    #[allow(clippy::type_complexity)]
    fn decide_start(
        &self,
        start: Vec<PartitionStart>,
    ) -> Result<(BTreeMap<i32, i64>, BTreeMap<i32, Gap>), DataLoss> {
        let mut offsets = BTreeMap::new();
        let mut gaps = BTreeMap::new();
        for s in start {
            let Some(gap) = gaps::check_stored(s.partition, s.stored, s.low, s.high, Utc::now())
            else {
                offsets.insert(s.partition, s.stored);
                continue;
            };
            if self.on_data_loss == OnDataLoss::Fail {
                return Err(DataLoss::outside_log(&self.topic, &gap, s.low, s.high));
            }
            warn!(topic = %self.topic, partition = s.partition, stored_offset = s.stored,
                  log_start = s.low, log_end = s.high, reason = gap.reason.as_str(),
                  "data loss: the stored offset lies outside the partition's log; \
                   ON_DATA_LOSS=continue resumes at the log's start and records the gap");
            offsets.insert(s.partition, gap.to_offset);
            gaps.insert(s.partition, gap);
        }
        Ok((offsets, gaps))
    }

    pub(super) fn high_watermarks(&self) -> BTreeMap<i32, i64> {
        lock(&self.high_watermarks).clone()
    }

    /// A committed batch read up to `end` in `partition`: the partition's end is at least
    /// there, even if the statistics have not said so yet (so lag is never negative from a
    /// stale view).
    pub(super) fn saw_end(&self, partition: i32, end: i64) {
        let mut hw = lock(&self.high_watermarks);
        let known = hw.entry(partition).or_insert(end);
        *known = (*known).max(end);
    }

    /// Follows the partitions this member owns (empty while it owns none).
    pub fn assigned_partitions(&self) -> watch::Receiver<Vec<i32>> {
        self.assigned.subscribe()
    }
}

/// How long one partition's log range may take to read at assignment (then retried).
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition at assignment: its stored offset and its log `[low, high]`.
struct PartitionStart {
    partition: i32,
    stored: i64,
    low: i64,
    high: i64,
}

/// The stream thread's retries (reading offsets, writing a batch): 100 ms doubling to 10 s.
pub(super) fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
}

/// The most one fetch request brings back (librdkafka's `fetch.max.bytes`; a single record
/// bigger than this still comes, alone). Compressed bytes: the producer's lz4 packs time-ordered
/// event ids tighter, so a fetch of 8 MiB decompressed into more records than before, and the
/// drain's peak RSS rose to 88–93 MiB; at 4 MiB it is 81–84 MiB and the drain no slower
/// (docs/benchmarks.md).
const FETCH_MAX_BYTES: usize = 4 * 1024 * 1024;

/// The shortest a fetch may wait at the broker for records (`fetch.wait.max.ms`) when the
/// trigger is shorter: a broker that holds a fetch until its wait is over (the local broker
/// does) delays every record by up to this much, and a shorter wait costs a fetch request
/// (and, with `TRIGGER_INTERVAL_MS=0`, a batch) more often.
const FETCH_WAIT_MIN_MS: u128 = 30;

/// librdkafka's default `fetch.wait.max.ms`, kept for triggers at least this long.
const FETCH_WAIT_MAX_MS: u128 = 500;

/// librdkafka's pre-fetch and fetch wait, unless `-X` sets them. The pre-fetch is bounded so
/// that a flood of big records cannot outgrow memory (its defaults queue 64 MiB and fetch
/// 50 MB at a time): the local queue holds about one batch's worth (`MAX_BATCH_BYTES`, at
/// least 1 MiB, in KiB), and a fetch at most [`FETCH_MAX_BYTES`]. The queue may be overshot by
/// one partition's fetch (1 MiB, or one record when bigger). Draining a backlog, that queue is
/// what has the next batch's records at hand while one is written: a smaller one (4 MiB) made
/// the drain half as fast again for no gain in peak memory (which the sink's statement chunks
/// bound). A fetch waits at the broker no longer than the trigger (between
/// [`FETCH_WAIT_MIN_MS`] and [`FETCH_WAIT_MAX_MS`]): a broker that holds a fetch for its whole
/// wait would otherwise delay every record by up to that wait.
fn consumer_settings(max_batch_bytes: usize, trigger: Duration) -> [(&'static str, String); 3] {
    let queue_kib = (max_batch_bytes / 1024).clamp(1024, 2_097_151);
    let fetch_wait_ms = trigger
        .as_millis()
        .clamp(FETCH_WAIT_MIN_MS, FETCH_WAIT_MAX_MS);
    [
        ("queued.max.messages.kbytes", queue_kib.to_string()),
        ("fetch.max.bytes", FETCH_MAX_BYTES.to_string()),
        ("fetch.wait.max.ms", fetch_wait_ms.to_string()),
    ]
}

/// The consumer, writing its batches through `pool` too (see [`create_consumer_with_writer`]).
pub fn create_consumer(
    cfg: &LoopConfig,
    pool: Pool,
    shutdown: CancellationToken,
) -> anyhow::Result<BaseConsumer<StreamContext>> {
    create_consumer_with_writer(cfg, pool.clone(), pool, shutdown)
}

/// The consumer. `pool` serves the rebalance callback, the stall checker and the heartbeat
/// (on the caller's runtime); `write_pool` only the batch writes. Given a pool of its own, the
/// stream thread makes its connections on a single-threaded runtime of its own and drives them
/// itself while it waits for a batch's round trips: an answer from Postgres then wakes no other
/// thread (with many small batches, as with `TRIGGER_INTERVAL_MS=0`, those wake-ups were a
/// good part of the processor's CPU).
pub fn create_consumer_with_writer(
    cfg: &LoopConfig,
    pool: Pool,
    write_pool: Pool,
    shutdown: CancellationToken,
) -> anyhow::Result<BaseConsumer<StreamContext>> {
    let context = StreamContext {
        rt: Handle::current(),
        pool,
        write_pool,
        topic: cfg.topic.clone(),
        consumer_group: cfg.consumer_group.clone(),
        on_data_loss: cfg.on_data_loss,
        shutdown,
        assignment: Mutex::new(Assignment::default()),
        high_watermarks: Mutex::new(BTreeMap::new()),
        errors: Throttle::default(),
        assigned: watch::Sender::new(Vec::new()),
    };
    let mut config = cfg.kafka_properties.client_config(); // -X, KAFKA_PROPERTIES
    for (key, value) in consumer_settings(cfg.max_batch_bytes, cfg.trigger) {
        if config.get(key).is_none() {
            config.set(key, value); // unless -X sets them
        }
    }
    config // the settings below win
        .set("bootstrap.servers", &cfg.bootstrap)
        .set("group.id", &cfg.consumer_group)
        .set("client.id", "spine-processor")
        // Offsets live in Postgres; Kafka's copy is only committed for tools to show lag.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Never rewind on its own: an offset outside the log is data loss, which the
        // processor decides about itself (ON_DATA_LOSS); the fetch then reports an error.
        .set("auto.offset.reset", "error")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(max_batch_bytes: usize, trigger_ms: u64, key: &str) -> String {
        consumer_settings(max_batch_bytes, Duration::from_millis(trigger_ms))
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{key} is not set"))
    }

    #[test]
    fn the_prefetch_queue_holds_about_one_batch() {
        let kib = |bytes| setting(bytes, 5000, "queued.max.messages.kbytes");
        assert_eq!(kib(16 * 1024 * 1024), "16384");
        assert_eq!(kib(2048), "1024", "at least 1 MiB");
        assert_eq!(setting(0, 5000, "fetch.max.bytes"), "4194304");
    }

    #[test]
    fn a_fetch_waits_at_the_broker_no_longer_than_the_trigger() {
        let wait = |trigger_ms| setting(16 << 20, trigger_ms, "fetch.wait.max.ms");
        assert_eq!(wait(0), "30", "TRIGGER_INTERVAL_MS=0: the floor");
        assert_eq!(wait(120), "120");
        assert_eq!(
            wait(5000),
            "500",
            "the default trigger: librdkafka's default"
        );
    }

    #[test]
    fn a_refused_assignment_keeps_no_positions_and_is_reported() {
        let mut a = Assignment::default();
        a.assigned(BTreeMap::from([(0, 5), (1, 9)]));
        assert_eq!(a.generation, 1);
        a.dropped();
        a.assign_failed("Local: Erroneous state".into());
        assert!(a.positions.is_empty(), "nothing was assigned");
        assert_eq!(a.generation, 3, "the loop drops its batch");
        assert_eq!(a.failed.as_deref(), Some("Local: Erroneous state"));
        a.assign_failed("again".into());
        assert_eq!(a.failures_in_a_row, 2);
        a.assigned(BTreeMap::from([(0, 5)]));
        assert_eq!((a.failed, a.failures_in_a_row), (None, 0));
        assert_eq!(a.positions, BTreeMap::from([(0, 5)]));
    }
}
