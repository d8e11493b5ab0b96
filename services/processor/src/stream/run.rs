//! The poll loop: poll, cut a batch on the trigger (or when it is full), write it, repeat.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use spine_core::ops::Readiness;
use tracing::{debug, info, warn};

use super::decide::{self, AvailableNow, BatchStep, Progress, Taken};
use super::offsets::{check_stalled, commit_to_kafka, stored_offsets_reached, topic_end_offsets};
use super::{format_offsets, lock, LoopConfig, StreamContext, Summary};
use crate::batch::Batch;
use crate::faults::FaultPoints;
use crate::metrics::Metrics;
use crate::sink::Writer;
use crate::watchdog::{self, StallWatch};

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
    /// Writes each batch; owns the test hooks (see [`crate::faults`]).
    pub writer: Writer,
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
    stall_watch: StallWatch,
    stall_checked_at: Instant,
    pub summary: Summary,
}

/// The loop: poll, cut a batch on the trigger (or when it is full), write it, repeat, until
/// shutdown (or, with `available_now`, until the topic's end as seen at start is written).
pub fn run(
    consumer: &BaseConsumer<StreamContext>,
    cfg: &LoopConfig,
    metrics: &Metrics,
    readiness: &Readiness,
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
        writer: Writer::new(&cfg.consumer_group, &cfg.topic)
            .with_faults(FaultPoints::new(cfg.crash_at)),
        next_trigger: now + cfg.trigger,
        drained: false,
        targets,
        at_eof: BTreeSet::new(),
        others_asked_at: now,
        started: now,
        stall_watch: StallWatch::new(now),
        stall_checked_at: now,
        summary: Summary::default(),
    };
    readiness.set(true);

    loop {
        if consumer.context().shutdown.is_cancelled() {
            info!("stopping: shutdown requested");
            break;
        }
        s.adopt_assignment()?;

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
        s.poll(now, due);
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
        let failed = a.failed.take().map(|e| (e, a.failures_in_a_row));
        drop(a);
        self.stall_watch.reset(Instant::now());
        self.batch = Batch::default();
        self.drained = false;
        self.at_eof.clear();
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
                stored_offsets_reached(self.consumer.context(), &pending, &self.targets)
            }
        }
    }

    /// Every [`watchdog::CHECK_EVERY`], looks for partitions nobody processes, and re-joins
    /// the group when there are (see [`crate::watchdog`]).
    fn check_stall(&mut self) -> anyhow::Result<()> {
        if self.stall_checked_at.elapsed() < watchdog::CHECK_EVERY {
            return Ok(());
        }
        self.stall_checked_at = Instant::now();
        let stalled = check_stalled(
            self.consumer,
            &self.cfg.topic,
            &self.positions,
            &mut self.stall_watch,
        );
        if !stalled.is_empty() {
            warn!(partitions = ?stalled,
                  "partitions owned by no live member have records waiting (a broker that did \
                   not rebalance after a member died); re-joining the group");
            self.rejoin()?;
            self.stall_watch.reset(Instant::now());
        }
        Ok(())
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
    fn poll(&mut self, now: Instant, due: bool) {
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
                    return; // not (or no longer) ours
                };
                let expected = self.batch.next_offset(p).unwrap_or(position);
                if msg.topic() != self.cfg.topic || msg.offset() < expected {
                    return; // fetched before a seek; already covered
                }
                self.at_eof.remove(&p);
                self.batch
                    .push(p, msg.offset(), position, msg.key(), msg.payload());
                self.batch.fetch_time += handling.elapsed();
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                self.at_eof.insert(p);
                self.drained = true;
            }
            Some(Err(e)) => {
                debug!(error = %e, "poll error (librdkafka retries by itself)");
            }
        }
    }
}
