//! Writing one batch: the sink's transaction, retried while Postgres fails transiently, and
//! what to do when the offset fence refuses it (another writer got there first).

use std::time::Instant;

use rdkafka::consumer::Consumer;
use spine_core::backoff::Backoff;
use tracing::{info, warn};

use super::context::retry_backoff;
use super::run::LoopState;
use crate::batch::Batch;
use crate::sink::{Committed, SinkError, WRITE_DEADLINE};

/// What became of a batch the fence refused.
enum AfterFence {
    /// What is left of it (another writer's part removed) is to be written again.
    Retry,
    /// Nothing is to be written: all of it was another writer's, shutdown came, or the stored
    /// offsets went backwards (the group is being re-joined).
    Abandon,
}

impl LoopState<'_> {
    /// Writes the loop's batch, retrying transient failures, and moves `positions` past it.
    /// `None` when nothing was committed (the batch was abandoned for shutdown, or everything
    /// in it had been written by another writer).
    pub(super) fn commit(&mut self) -> anyhow::Result<Option<Committed>> {
        let ctx = self.consumer.context();
        self.writer
            .faults()
            .batch_cut(|| format_ranges(&self.batch));
        let high_watermarks = ctx.high_watermarks();
        self.batch.input_rate = self.input_rate.measure(
            Instant::now(),
            &high_watermarks,
            self.positions.keys().copied(),
        );
        let mut backoff = retry_backoff();
        loop {
            let (writer, batch) = (&self.writer, &self.batch);
            let result = self.write_rt.block_on(async {
                let client = ctx
                    .write_pool
                    .get()
                    .await
                    .map_err(|e| SinkError::Unavailable(e.to_string()))?;
                writer
                    .write_within(client, batch, &high_watermarks, WRITE_DEADLINE)
                    .await
            });
            match result {
                Ok(committed) => {
                    self.committed(&committed);
                    return Ok(Some(committed));
                }
                Err(SinkError::Fenced) => {
                    self.metrics.fenced.inc();
                    match self.after_fence(&mut backoff)? {
                        AfterFence::Retry => {}
                        AfterFence::Abandon => return Ok(None),
                    }
                }
                Err(e) if e.is_transient() => {
                    self.readiness.set(false);
                    self.metrics.write_retries.inc();
                    warn!(error = %e, retry_in_ms = backoff.peek().as_millis() as u64,
                          "batch write failed; retrying the same batch (offsets unchanged)");
                    if !backoff.wait_blocking(&ctx.shutdown) {
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

    /// The batch is in Postgres: move the positions past it, tell Kafka (for tools), update
    /// the metrics and log the batch.
    fn committed(&mut self, committed: &Committed) {
        self.readiness.set(true);
        let ctx = self.consumer.context();
        for (&p, r) in &self.batch.ranges {
            self.positions.insert(p, r.end);
            ctx.saw_end(p, r.end);
        }
        for gap in &self.batch.gaps {
            self.metrics
                .data_loss
                .with_label_values(&[&gap.partition.to_string()])
                .inc();
        }
        self.kafka_behind = true;
        self.copy_offsets_to_kafka(Instant::now());
        let total = self.batch.fetch_time + committed.write_time + committed.commit_time;
        self.metrics.record(committed, total.as_secs_f64());
        self.publish_lag();
        info!(
            batch_id = committed.batch_id,
            input_rows = committed.input_rows,
            inserted = committed.events_inserted,
            duplicates = committed.duplicates,
            upserted = committed.orders_upserted,
            stale = committed.stale_skipped,
            dead_lettered = committed.dead_lettered,
            gaps_recorded = self.batch.gaps.len(),
            offsets = %format_ranges(&self.batch),
            fetch_ms = self.batch.fetch_time.as_millis() as u64,
            write_ms = committed.write_time.as_millis() as u64,
            commit_ms = committed.commit_time.as_millis() as u64,
            queued_ms = committed.queued.map(|q| q.as_millis() as u64),
            rows_per_sec = (committed.input_rows as f64 / total.as_secs_f64().max(1e-6)) as u64,
            "batch committed"
        );
    }

    /// The fence refused the batch: some stored offset is no longer where the batch started.
    /// Reads the stored offsets again; a partition another writer moved ahead loses the part
    /// that writer committed, and one whose offset went backwards (someone reset it) sends the
    /// member back to the group for a fresh assignment.
    fn after_fence(&mut self, backoff: &mut Backoff) -> anyhow::Result<AfterFence> {
        let ctx = self.consumer.context();
        let partitions: Vec<i32> = self.batch.ranges.keys().copied().collect();
        let stored = loop {
            match ctx.stored_offsets(&partitions, false) {
                Ok(stored) => break stored,
                Err(e) => {
                    warn!(error = %e, "cannot read stored offsets after a fenced write");
                    if !backoff.wait_blocking(&ctx.shutdown) {
                        return Ok(AfterFence::Abandon);
                    }
                }
            }
        };
        for (p, range) in self.batch.ranges.clone() {
            let fence = self.batch.fence_start(p).unwrap_or(range.start);
            match stored.get(&p) {
                Some(&s) if s == fence => {} // not this partition
                // After a gap at the batch's start the stored offset is not comparable with the
                // range; whoever moved it wrote that gap: re-read it (below).
                Some(&s) if s > range.start && fence == range.start => {
                    warn!(partition = p, ours = range.start, stored = s,
                          "another writer committed this partition ahead of us; skipping what it wrote");
                    self.batch.advance_partition(p, s);
                    self.positions.insert(p, s);
                }
                other => {
                    warn!(partition = p, ours = fence, stored = ?other,
                          "stored offset moved backwards (or past the gap this batch starts \
                           after); re-joining the group to re-read it");
                    self.rejoin()?;
                    self.positions.clear();
                    return Ok(AfterFence::Abandon);
                }
            }
        }
        Ok(if self.batch.is_empty() {
            AfterFence::Abandon
        } else {
            AfterFence::Retry
        })
    }
}

/// The batch's offset ranges, for the log: `0:[10,12) 2:[5,8)`.
pub(super) fn format_ranges(batch: &Batch) -> String {
    batch
        .ranges
        .iter()
        .map(|(p, r)| format!("{p}:[{},{})", r.start, r.end))
        .collect::<Vec<_>>()
        .join(" ")
}
