//! The poll loop: poll, cut a batch on the trigger (or when it is full), write it, repeat.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use spine_core::ops::Readiness;
use tracing::{debug, info, warn};

use super::decide::{self, AvailableNow, BatchStep, Progress, Taken};
use super::offsets::{commit_to_kafka, stored_offsets_reached, topic_end_offsets};
use super::rates::InputRate;
use super::stall::{self, StallShared};
use super::{format_offsets, lock, LoopConfig, StreamContext, Summary};
use crate::batch::Batch;
use crate::faults::FaultPoints;
use crate::gaps::{self, DataLoss, Gap, OnDataLoss};
use crate::metrics::Metrics;
use crate::sink::Writer;

/// Refused partition assignments in a row after which the loop stops with an error.
const MAX_ASSIGN_FAILURES: u32 = 3;

/// Everything the loop works with: what it was given, and what it keeps between turns.
pub(super) struct LoopState<'a> {
    pub consumer: &'a BaseConsumer<StreamContext>,
    pub cfg: &'a LoopConfig,
    pub metrics: &'a Metrics,
    pub readiness: &'a Readiness,
    /// The assignment generation last adopted (see `Assignment`).
    generation: u64,
    /// The next offset to write of every partition this member owns: the stored offset at
    /// assignment, moved on by every committed batch.
    pub positions: BTreeMap<i32, i64>,
    /// The records taken since the last commit.
    pub batch: Batch,
    /// `ON_DATA_LOSS=continue`: gaps found at assignment, each to be written with the first
    /// batch that reads its partition (see [`crate::gaps`]).
    pending_gaps: BTreeMap<i32, Gap>,
    /// The assignment generation at which a fetch out of range last made the loop re-join
    /// (one re-join per assignment, however many partitions report it).
    range_rejoin: Option<u64>,
    /// Writes each batch; owns the test hooks (see [`crate::faults`]).
    pub writer: Writer,
    /// Where the batch writes run: this thread's own runtime, which drives their connections
    /// only while a write waits for them (see [`super::create_consumer_with_writer`]).
    pub write_rt: tokio::runtime::Runtime,
    /// When the next trigger fires.
    next_trigger: Instant,
    /// Whether the last poll found nothing already fetched.
    drained: bool,
    /// `--available-now`: the end of every partition of the topic when the run started. The
    /// run is over when the group's stored offsets reach them all, whichever member wrote them.
    targets: BTreeMap<i32, i64>,
    /// `--available-now`: owned partitions whose end the last poll reached.
    at_eof: BTreeSet<i32>,
    /// `--available-now`: when Postgres was last asked about other members' partitions.
    others_asked_at: Instant,
    started: Instant,
    /// Where the stall checker (its own thread) learns what this member owns, and leaves its
    /// verdicts.
    stall: &'a StallShared,
    /// Each batch's input rate, measured from one cut to the next.
    pub input_rate: InputRate,
    /// When the lag gauges were last refreshed.
    lag_published_at: Instant,
    /// When the stored offsets were last copied to Kafka (for tools), and whether a batch
    /// committed since.
    kafka_committed_at: Instant,
    pub kafka_behind: bool,
    pub summary: Summary,
}

/// How often the lag gauges follow the partitions' ends between batches.
const PUBLISH_LAG_EVERY: Duration = Duration::from_secs(1);

/// How often, at most, the stored offsets are copied to Kafka (for tools that show a group's
/// lag): an offset commit per batch costs the broker a write, and with `TRIGGER_INTERVAL_MS=0`
/// batches come many times a second.
const COPY_TO_KAFKA_EVERY: Duration = Duration::from_secs(1);

/// The loop: poll, cut a batch on the trigger (or when it is full), write it, repeat, until
/// shutdown (or, with `available_now`, until the topic's end as seen at start is written).
pub fn run(
    consumer: &BaseConsumer<StreamContext>,
    cfg: &LoopConfig,
    metrics: &Metrics,
    readiness: &Readiness,
) -> anyhow::Result<Summary> {
    let shared = StallShared::default();
    std::thread::scope(|scope| {
        let (stop, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("stall-check".into())
            .spawn_scoped(scope, || {
                stall::checker(consumer, &cfg.topic, &shared, stopped)
            })
            .context("starting the stall checker")?;
        let result = run_loop(consumer, cfg, metrics, readiness, &shared);
        let _ = stop.send(());
        result
    })
}

fn run_loop(
    consumer: &BaseConsumer<StreamContext>,
    cfg: &LoopConfig,
    metrics: &Metrics,
    readiness: &Readiness,
    stall: &StallShared,
) -> anyhow::Result<Summary> {
    consumer
        .subscribe(&[&cfg.topic])
        .with_context(|| format!("subscribing to topic {}", cfg.topic))?;
    info!(topic = %cfg.topic, group = %cfg.consumer_group, trigger_ms = cfg.trigger.as_millis() as u64,
          max_batch_rows = cfg.max_batch_rows, max_batch_bytes = cfg.max_batch_bytes, available_now = cfg.available_now, "stream started");
    let targets = if cfg.available_now {
        let t = topic_end_offsets(consumer, &cfg.topic)?;
        info!(targets = %format_offsets(&t), "available-now: processing up to these offsets");
        t
    } else {
        BTreeMap::new()
    };
    let now = Instant::now();
    let mut s = LoopState {
        consumer,
        cfg,
        metrics,
        readiness,
        generation: 0,
        positions: BTreeMap::new(),
        batch: Batch::default(),
        pending_gaps: BTreeMap::new(),
        range_rejoin: None,
        writer: Writer::new(&cfg.consumer_group, &cfg.topic)
            .with_faults(FaultPoints::new(cfg.crash_at)),
        write_rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the stream thread's runtime")?,
        next_trigger: now + cfg.trigger,
        drained: false,
        targets,
        at_eof: BTreeSet::new(),
        others_asked_at: now,
        started: now,
        stall,
        input_rate: InputRate::default(),
        lag_published_at: now,
        kafka_committed_at: now,
        kafka_behind: false,
        summary: Summary::default(),
    };
    readiness.set(true);

    loop {
        if consumer.context().shutdown.is_cancelled() {
            info!("stopping: shutdown requested");
            break;
        }
        if let Err(e) = s.adopt_assignment() {
            readiness.set(false);
            return Err(e);
        }

        let now = Instant::now();
        let due = now >= s.next_trigger;
        let taken = Taken {
            rows: s.batch.input_rows(),
            bytes: s.batch.input_bytes(),
        };
        match decide::batch_step(taken, cfg.batch_bounds(), due, s.drained) {
            BatchStep::Cut => {
                s.cut(now)?;
                continue;
            }
            BatchStep::SkipTrigger => s.next_trigger = now + cfg.trigger,
            BatchStep::Fill => {}
        }
        if cfg.available_now && s.available_now_done(now) {
            info!(
                batches = s.summary.batches,
                rows = s.summary.input_rows,
                seconds = s.started.elapsed().as_secs_f64(),
                "available-now: caught up, exiting"
            );
            break;
        }
        s.check_stall()?;
        if now.duration_since(s.lag_published_at) >= PUBLISH_LAG_EVERY {
            s.publish_lag();
        }
        s.copy_offsets_to_kafka(now);
        if let Err(e) = s.poll(now, due) {
            readiness.set(false);
            return Err(e);
        }
    }

    // A last synchronous commit of what Postgres holds, so Kafka tools show the final lag.
    commit_to_kafka(consumer, &cfg.topic, &s.positions, CommitMode::Sync);
    readiness.set(false);
    Ok(s.summary)
}

impl LoopState<'_> {
    /// Adopts what the last rebalance decided. A batch in progress is dropped: it may hold
    /// records of partitions this member no longer owns, and it was never written. When
    /// librdkafka refused the assignment, this member owns partitions it does not read:
    /// re-join the group to be given them again, and stop after
    /// [`MAX_ASSIGN_FAILURES`] refusals in a row.
    fn adopt_assignment(&mut self) -> anyhow::Result<()> {
        let mut a = lock(&self.consumer.context().assignment);
        if a.generation == self.generation {
            return Ok(());
        }
        self.generation = a.generation;
        self.positions = a.positions.clone();
        self.pending_gaps = std::mem::take(&mut a.gaps);
        let failed = a.failed.take().map(|e| (e, a.failures_in_a_row));
        let data_loss = a.data_loss.take();
        drop(a);
        if let Some(loss) = data_loss {
            return Err(anyhow::Error::new(loss));
        }
        self.stall
            .owned(self.generation, self.positions.keys().copied());
        self.batch = Batch::default();
        self.drained = false;
        self.at_eof.clear();
        self.input_rate.reset();
        // Partitions another member now owns are its to report.
        self.metrics.lag.reset();
        self.publish_lag();
        if let Some((error, in_a_row)) = failed {
            if in_a_row >= MAX_ASSIGN_FAILURES {
                anyhow::bail!(
                    "the consumer refused {in_a_row} partition assignments in a row \
                     (last: {error}); stopping rather than owning partitions it cannot read"
                );
            }
            warn!(error, "partition assignment refused; re-joining the group");
            self.rejoin()?;
        }
        Ok(())
    }

    /// Writes the batch and starts the next one.
    fn cut(&mut self, now: Instant) -> anyhow::Result<()> {
        if let Some(c) = self.commit()? {
            let summary = &mut self.summary;
            summary.batches += 1;
            summary.input_rows += c.input_rows as u64;
            summary.events_inserted += c.events_inserted as u64;
            summary.duplicates += c.duplicates as u64;
            summary.dead_lettered += c.dead_lettered as u64;
        }
        self.batch = Batch::default();
        self.drained = false;
        self.next_trigger = now + self.cfg.trigger;
        Ok(())
    }

    /// Whether `--available-now` is done, asking Postgres about other members' partitions
    /// when [`decide::available_now`] says to.
    fn available_now_done(&mut self, now: Instant) -> bool {
        if self.generation == 0 {
            // Not yet given partitions: the assignment is where stored offsets are checked
            // against the log (a member that owns none is given an empty assignment).
            return false;
        }
        let progress = Progress {
            targets: &self.targets,
            positions: &self.positions,
            at_eof: &self.at_eof,
            batch_empty: self.batch.is_empty(),
        };
        match decide::available_now(&progress, now, self.others_asked_at) {
            AvailableNow::Done => true,
            AvailableNow::NotYet => false,
            AvailableNow::AskPostgres(pending) => {
                self.others_asked_at = now;
                stored_offsets_reached(self.consumer, &self.cfg.topic, &pending, &self.targets)
            }
        }
    }

    /// Re-joins the group when the stall checker found partitions nobody processes (see
    /// [`crate::watchdog`] and [`super::stall`]).
    fn check_stall(&mut self) -> anyhow::Result<()> {
        if let Some(stalled) = self.stall.take_verdict(self.generation) {
            warn!(partitions = ?stalled,
                  "partitions owned by no live member have records waiting (a broker that did \
                   not rebalance after a member died); re-joining the group");
            self.rejoin()?;
        }
        Ok(())
    }

    /// Copies the positions to Kafka (asynchronously) when a batch committed since the last
    /// copy and [`COPY_TO_KAFKA_EVERY`] has passed.
    pub fn copy_offsets_to_kafka(&mut self, now: Instant) {
        if self.kafka_behind && now.duration_since(self.kafka_committed_at) >= COPY_TO_KAFKA_EVERY {
            commit_to_kafka(
                self.consumer,
                &self.cfg.topic,
                &self.positions,
                CommitMode::Async,
            );
            self.kafka_committed_at = now;
            self.kafka_behind = false;
        }
    }

    /// Sets `spine_processor_lag_records` of every owned partition: its end as last seen minus
    /// the next offset to write.
    pub fn publish_lag(&mut self) {
        self.lag_published_at = Instant::now();
        let ends = self.consumer.context().high_watermarks();
        for (&p, &position) in &self.positions {
            if let Some(&end) = ends.get(&p) {
                self.metrics
                    .lag
                    .with_label_values(&[&p.to_string()])
                    .set(end - position);
            }
        }
    }

    /// Leaves and re-joins the consumer group, forcing a rebalance (and so a fresh read of the
    /// stored offsets).
    pub fn rejoin(&self) -> anyhow::Result<()> {
        self.consumer.unsubscribe();
        self.consumer
            .subscribe(&[&self.cfg.topic])
            .with_context(|| format!("re-subscribing to topic {}", self.cfg.topic))
    }

    /// Takes at most one record (or end-of-partition) into the batch, waiting no later than
    /// the trigger (not at all when the trigger is `due` and a batch is waiting to be cut).
    fn poll(&mut self, now: Instant, due: bool) -> anyhow::Result<()> {
        let timeout = if !self.batch.is_empty() && due {
            Duration::ZERO // drain what is already fetched, then cut the batch
        } else if self.cfg.trigger.is_zero() {
            Duration::from_millis(100)
        } else {
            self.next_trigger
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(100))
        };
        let poll_started = Instant::now();
        match self.consumer.poll(timeout) {
            None => self.drained = true,
            Some(Ok(msg)) => {
                // A batch's fetch time is the time spent taking its records off the client
                // and parsing them, not the time spent waiting for them to be produced.
                let handling = if timeout.is_zero() {
                    poll_started
                } else {
                    Instant::now()
                };
                self.drained = false;
                let p = msg.partition();
                let Some(&position) = self.positions.get(&p) else {
                    return Ok(()); // not (or no longer) ours
                };
                let expected = self.batch.next_offset(p).unwrap_or(position);
                if msg.topic() != self.cfg.topic || msg.offset() < expected {
                    return Ok(()); // fetched before a seek; already covered
                }
                self.take_gaps(p, expected, msg.offset())?;
                self.at_eof.remove(&p);
                self.batch
                    .push(p, msg.offset(), position, msg.key(), msg.payload());
                self.batch.saw_broker_timestamp(msg.timestamp().to_millis());
                self.batch.fetch_time += handling.elapsed();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                self.at_eof.insert(p);
                self.drained = true;
            }
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange,
            ))) => {
                // A fetch found its offset outside the log (retention removed records not yet
                // read, or the broker lost some); librdkafka stopped fetching that partition
                // and, with auto.offset.reset=error, does not say which. A fresh assignment
                // compares every stored offset with its log again, and fails or resumes as
                // ON_DATA_LOSS says.
                if self.range_rejoin != Some(self.generation) {
                    warn!(
                        "a fetch offset lies outside its partition's log (data loss?); \
                         re-joining the group to check every stored offset against its log"
                    );
                    self.range_rejoin = Some(self.generation);
                    self.rejoin()?;
                }
            }
            Some(Err(e)) => {
                debug!(error = %e, "poll error (librdkafka retries by itself)");
            }
        }
        Ok(())
    }

    /// Before a record at `offset` of `partition` joins the batch, where `expected` was next:
    /// the gap found at assignment, if any, starts the batch's range of that partition after
    /// it; offsets skipped since `expected` stop the loop (`fail`) or are recorded
    /// (`continue`).
    fn take_gaps(&mut self, partition: i32, expected: i64, offset: i64) -> anyhow::Result<()> {
        if self.batch.next_offset(partition).is_none() {
            if let Some(gap) = self.pending_gaps.remove(&partition) {
                self.batch.start_after_gap(gap);
            }
        }
        let Some(gap) = gaps::check_next(partition, expected, offset, Utc::now()) else {
            return Ok(());
        };
        let topic = &self.cfg.topic;
        if self.cfg.on_data_loss == OnDataLoss::Fail {
            // Stopping anyway: a moment to name the log's range in the error is well spent.
            let log = self
                .consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(5))
                .ok();
            let stored = self.batch.fence_start(partition).unwrap_or(expected);
            let loss = DataLoss::missing(topic, &gap, stored, log);
            return Err(anyhow::Error::new(loss));
        }
        warn!(topic = %topic, partition, from_offset = gap.from_offset, to_offset = gap.to_offset,
              "data loss: offsets were never delivered; ON_DATA_LOSS=continue records the gap");
        self.batch.gaps.push(gap);
        Ok(())
    }
}
