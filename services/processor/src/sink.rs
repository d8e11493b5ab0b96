//! The one transaction a micro-batch is written in.
//!
//! In order: the fenced offset update (first, so a competing writer blocks on the row locks
//! and then fails its check), the events (one row per `event_id`: a plain insert, or, when
//! some are stored already, an idempotent one), the `current_orders` upsert of the new events
//! reduced to the latest per order (with `tenant_stats` following it), the dead letters (once
//! per record, bounded in size), and the batch's own rows. Every statement is one bulk
//! `unnest()` of column arrays, whatever the batch size. Either all of it commits, or none of
//! it does and the offsets do not move.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use spine_core::reduce::latest_per_order;
use tokio_postgres::GenericClient;
use tracing::info;
use uuid::Uuid;

use crate::batch::Batch;

mod columns;
use crate::faults::FaultPoints;
use crate::pg_error;
use columns::{DeadLetterColumns, EventColumns, GapColumns, OrderColumns, Params};

/// How long the write of one batch may take, all statements and the COMMIT, before its
/// connection is dropped and the batch retried ([`Writer::write_within`]). Each statement is
/// also limited by the session's `statement_timeout`; this catches what the server cannot: a
/// server gone from the network, whose answers never arrive.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// When a write began, for its `write_ms` and `queued_ms` (a batch written twice, first plainly
/// then deduplicating, counts from the first attempt).
#[derive(Debug, Clone, Copy)]
struct Start {
    at: Instant,
    queued: Option<Duration>,
}

/// Writes batches of one consumer group's reading of one topic.
#[derive(Debug)]
pub struct Writer {
    consumer_group: String,
    topic: String,
    faults: FaultPoints,
    /// The id and COMMIT round trip (ms) of this writer's last committed batch, recorded in
    /// its row by the next batch's transaction.
    last_commit: Mutex<Option<(i64, f64)>>,
    /// How many more batches insert their events with [`INSERT_EVENTS_DEDUPLICATING`] (set to
    /// [`DEDUPLICATING_BATCHES`] when a plain insert meets a stored event).
    deduplicating: AtomicU32,
}

/// What a committed batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub batch_id: i64,
    pub input_rows: usize,
    pub events_inserted: usize,
    pub duplicates: usize,
    pub orders_upserted: usize,
    pub stale_skipped: usize,
    pub dead_lettered: usize,
    /// From the start of the write to sending its last statement (`write_ms`).
    pub write_time: Duration,
    /// The last round trip: the batch's own rows and COMMIT (`commit_ms`).
    pub commit_time: Duration,
    /// From the newest record's broker timestamp to the start of the write (`queued_ms`;
    /// `None` when no record carried a timestamp; zero when the broker's clock is ahead).
    pub queued: Option<Duration>,
    /// The newest `event_time` among the events this batch inserted.
    pub max_event_time: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The stored offset of some partition is no longer where this batch started: another
    /// replica (or an earlier attempt of this one whose commit outcome was unknown) has
    /// committed past it. Nothing was written.
    #[error("fenced: the stored offsets moved since this batch started")]
    Fenced,
    /// A plain insert of the batch's events met an event already stored (its primary key):
    /// nothing was written, and [`Writer::write`] writes the batch again, deduplicating, so
    /// its callers never see this one.
    #[error("an event of the batch is already stored")]
    StoredEvent,
    /// Postgres failed or is unreachable. Nothing was written (or the commit's outcome is
    /// unknown, which the fence resolves on retry).
    #[error("postgres: {}", pg_error::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("postgres unavailable: {0}")]
    Unavailable(String),
    /// The write did not finish within its deadline (Postgres unreachable, or the session
    /// stuck): its connection was dropped, so whatever it held is released when the server
    /// notices. Whether the COMMIT landed is unknown; the fence settles it on retry.
    #[error("the batch write took longer than {0:?}; its connection was dropped")]
    Deadline(Duration),
}

impl SinkError {
    /// Errors worth retrying unchanged. A data or schema error would fail again, but every
    /// value was validated before it got here, so those mean a bug or a damaged schema.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Fenced => false,
            SinkError::StoredEvent => true,
            SinkError::Unavailable(_) | SinkError::Deadline(_) => true,
            SinkError::Postgres(e) => pg_error::is_transient(e),
        }
    }
}

const FENCE: &str = "
UPDATE stream_offsets AS o
   SET next_offset = u.end_offset, high_watermark = u.high_watermark, updated_at = now()
  FROM unnest($3::int[], $4::bigint[], $5::bigint[], $6::bigint[])
       AS u(kafka_partition, start_offset, end_offset, high_watermark)
 WHERE o.consumer_group = $1 AND o.topic = $2
   AND o.kafka_partition = u.kafka_partition AND o.next_offset = u.start_offset";

/// The statement both forms of the events' insert share (a macro, so that both are literals).
macro_rules! insert_events {
    () => {
        "
INSERT INTO events (event_id, tenant, event_type, order_id, amount_cents, currency, event_time,
                    topic, kafka_partition, kafka_offset)
SELECT u.event_id, u.tenant, u.event_type, u.order_id, u.amount_cents, u.currency, u.event_time,
       $8, u.kafka_partition, u.kafka_offset
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
              $7::timestamptz[], $9::int[], $10::bigint[])
       AS u(event_id, tenant, event_type, order_id, amount_cents, currency, event_time,
            kafka_partition, kafka_offset)"
    };
}

/// The events, in the usual case: a plain insert, with no answer. No event of a batch repeats
/// another of the batch (`Batch` set those apart as `in_batch_duplicates`), so the only
/// conflict left is an event already stored by an earlier batch: a producer's retry that
/// landed in a later batch, or a second consumer group over the same topic. Then the primary
/// key raises a unique violation, nothing of the batch is kept, and [`Writer::write`] writes it
/// again with [`INSERT_EVENTS_DEDUPLICATING`]. Checking every event against the primary key
/// (`ON CONFLICT`'s speculative insertion, and its `RETURNING`) cost about a third of the
/// insert's time for the rare batch that needs it (docs/benchmarks.md, issue 14).
const INSERT_EVENTS: &str = insert_events!();

/// The events when some may be stored already: idempotent by `event_id`, answering which were
/// new. Used for a batch whose plain insert met a stored event, and for the batches after it
/// ([`DEDUPLICATING_BATCHES`]).
const INSERT_EVENTS_DEDUPLICATING: &str = concat!(
    insert_events!(),
    "
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id"
);

/// Insert, or replace only with a strictly newer (event_time, event_id): the SQL form of
/// `spine_core::reduce::apply`. In the same statement, `tenant_stats` follows every row that
/// changed: +1 order (and its amount) for its new status, -1 for the status it replaced.
/// Runs under the batch lock (below), so no other writer changes `current_orders` between
/// reading the replaced rows and replacing them. Each row written is stamped with this batch's
/// id (`last_batch_id`), which `GET /stream` reads.
const UPSERT_ORDERS: &str = "
WITH input AS (
    SELECT u.*, b.batch_id AS last_batch_id
      FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                  $6::timestamptz[], $7::uuid[])
           AS u(tenant, order_id, status, amount_cents, currency, updated_at, last_event_id),
           -- This batch's id, as INSERT_BATCH will assign it (both under the batch lock).
           (SELECT coalesce(max(batch_id), 0) + 1 AS batch_id FROM stream_batches) AS b
), replaced AS (
    SELECT c.tenant, c.order_id, c.status, c.amount_cents
      FROM current_orders c JOIN input i ON c.tenant = i.tenant AND c.order_id = i.order_id
), upserted AS (
    INSERT INTO current_orders AS c (tenant, order_id, status, amount_cents, currency,
                                     updated_at, last_event_id, last_batch_id)
    SELECT * FROM input
    ON CONFLICT (tenant, order_id) DO UPDATE
       SET status = EXCLUDED.status, amount_cents = EXCLUDED.amount_cents,
           currency = EXCLUDED.currency, updated_at = EXCLUDED.updated_at,
           last_event_id = EXCLUDED.last_event_id, last_batch_id = EXCLUDED.last_batch_id
     WHERE (EXCLUDED.updated_at, EXCLUDED.last_event_id) > (c.updated_at, c.last_event_id)
    RETURNING c.tenant, c.order_id, c.status, c.amount_cents
), deltas AS (
    SELECT tenant, status, 1 AS orders, amount_cents FROM upserted
    UNION ALL
    SELECT r.tenant, r.status, -1, -r.amount_cents
      FROM replaced r JOIN upserted u ON r.tenant = u.tenant AND r.order_id = u.order_id
), counted AS (
    INSERT INTO tenant_stats AS t (tenant, status, orders, amount_cents)
    SELECT tenant, status, sum(orders), sum(amount_cents) FROM deltas GROUP BY tenant, status
    ON CONFLICT (tenant, status) DO UPDATE
       SET orders = t.orders + EXCLUDED.orders,
           amount_cents = t.amount_cents + EXCLUDED.amount_cents
)
SELECT count(*) FROM upserted";

/// One row per record, whichever batch, replica or consumer group read it (a replay or a
/// second group keeps the first row).
const INSERT_DEAD_LETTERS: &str = "
INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, key, key_length, key_sha256,
                          payload, payload_length, payload_sha256, error)
SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::bytea[], $5::int[], $6::bytea[],
                         $7::bytea[], $8::int[], $9::bytea[], $10::text[])
ON CONFLICT (topic, kafka_partition, kafka_offset) DO NOTHING";

/// Taken before `current_orders` is touched and held to the commit: writers (replicas) take
/// turns from here on, so the order upsert and `tenant_stats` see every earlier batch, and batch
/// ids increase in commit order (`max(batch_id)` means "everything up to this batch is visible"
/// to a reader). Readers are never blocked.
const LOCK_BATCHES: &str = "LOCK TABLE stream_batches IN SHARE ROW EXCLUSIVE MODE";

/// The batch's row and its offset ranges, in one statement (its id: the next after every
/// committed batch, under the batch lock). `write_ms` is the time up to sending it. The same
/// statement records the COMMIT round trip of this writer's previous batch ($19, $20: both
/// `NULL` for a writer's first batch), which that batch could not record itself
/// (docs/contracts.md, "Tables": `commit_ms`): one statement fewer per batch than a separate
/// UPDATE.
const INSERT_BATCH: &str = "
WITH c AS (
    UPDATE stream_batches SET commit_ms = $20::float8 WHERE batch_id = $19::bigint
), b AS (
    INSERT INTO stream_batches (batch_id, consumer_group, topic, started_at, finished_at,
                                input_rows, events_inserted, duplicates, orders_upserted,
                                stale_skipped, dead_lettered, fetch_ms, write_ms, total_ms,
                                max_event_time, max_broker_timestamp, input_rate, queued_ms)
    VALUES ((SELECT coalesce(max(batch_id), 0) + 1 FROM stream_batches), $1, $2, $3,
            clock_timestamp(), $4, $5, $6, $7, $8, $9, $10::float8, $11::float8,
            round(($10::float8 + $11::float8)::numeric, 3)::float8, $12, $13, $14, $15)
    RETURNING batch_id
), p AS (
    INSERT INTO stream_batch_partitions (batch_id, kafka_partition, start_offset, end_offset)
    SELECT b.batch_id, u.* FROM b, unnest($16::int[], $17::bigint[], $18::bigint[]) AS u
)
SELECT batch_id FROM b";

/// After a batch met an event already stored, this many batches are written with
/// [`INSERT_EVENTS_DEDUPLICATING`] before a plain insert is tried again: duplicates come in
/// runs (a second consumer group over the same topic meets one in every batch), and a failed
/// plain insert costs its round trip.
const DEDUPLICATING_BATCHES: u32 = 100;

/// The most rows one statement carries: a bigger batch's events (and orders) go in several
/// statements of its transaction, one after the other, so its memory is bounded by a chunk.
const CHUNK_ROWS: usize = 10_000;

const BEGIN: &str = "START TRANSACTION ISOLATION LEVEL READ COMMITTED";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds, to the microsecond.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Writer {
    pub fn new(consumer_group: &str, topic: &str) -> Writer {
        Writer {
            consumer_group: consumer_group.to_owned(),
            topic: topic.to_owned(),
            faults: FaultPoints::none(),
            last_commit: Mutex::new(None),
            deduplicating: AtomicU32::new(0),
        }
    }

    /// The writer with fault injection for tests (see [`crate::faults`]).
    pub fn with_faults(self, faults: FaultPoints) -> Writer {
        Writer { faults, ..self }
    }

    pub fn faults(&self) -> &FaultPoints {
        &self.faults
    }

    /// Whether the next batch inserts its events idempotently ([`INSERT_EVENTS_DEDUPLICATING`]):
    /// for [`DEDUPLICATING_BATCHES`] batches after one met an event already stored.
    pub fn is_deduplicating(&self) -> bool {
        self.deduplicating.load(Ordering::Relaxed) > 0
    }

    /// [`Writer::write`] within `deadline`. Past it the write is abandoned and its connection
    /// taken out of the pool and closed (a connection whose transaction is in an unknown state
    /// must not serve the next batch), and [`SinkError::Deadline`] is returned: transient, so
    /// the batch is retried, and the fence settles whether the abandoned COMMIT landed.
    pub async fn write_within(
        &self,
        mut client: deadpool_postgres::Object,
        batch: &Batch,
        high_watermarks: &BTreeMap<i32, i64>,
        deadline: Duration,
    ) -> Result<Committed, SinkError> {
        let result =
            tokio::time::timeout(deadline, self.write(&mut client, batch, high_watermarks)).await;
        match result {
            Ok(done) => done,
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                Err(SinkError::Deadline(deadline))
            }
        }
    }

    /// Writes `batch` in one transaction. `high_watermarks` is the last seen end of each
    /// partition (kept with the offsets, for lag). On any error the transaction is rolled back
    /// before the connection goes back to the pool.
    pub async fn write(
        &self,
        client: &mut deadpool_postgres::Object,
        batch: &Batch,
        high_watermarks: &BTreeMap<i32, i64>,
    ) -> Result<Committed, SinkError> {
        let start = Start {
            at: Instant::now(),
            queued: batch
                .max_broker_timestamp
                .map(|t| (Utc::now() - t).to_std().unwrap_or_default()),
        };
        let deduplicating = self.is_deduplicating();
        let mut result = self
            .write_pipelined(client, batch, high_watermarks, deduplicating, start)
            .await;
        if let Err(SinkError::StoredEvent) = result {
            // Nothing of the batch was kept: write it again, keeping the events that are new.
            client.batch_execute("ROLLBACK").await?;
            info!(
                batches = DEDUPLICATING_BATCHES,
                "a batch held an event already stored (a producer's retry, another consumer \
                 group): inserting events idempotently for a while"
            );
            self.deduplicating
                .store(DEDUPLICATING_BATCHES, Ordering::Relaxed);
            result = self
                .write_pipelined(client, batch, high_watermarks, true, start)
                .await;
        } else if let (true, Ok(c)) = (deduplicating, &result) {
            if c.events_inserted < batch.events.len() {
                // Still finding stored events: go on deduplicating.
                self.deduplicating
                    .store(DEDUPLICATING_BATCHES, Ordering::Relaxed);
            } else {
                let _ =
                    self.deduplicating
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        }
        if result.is_err() && !client.is_closed() {
            // The statements were sent without a Transaction guard (to pipeline them): never
            // hand back a connection inside a transaction. Outside one this only warns.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        result
    }

    /// The transaction in two round trips, each a pipeline of statements sent together
    /// (tokio-postgres pipelines requests issued concurrently on one connection):
    /// 1. BEGIN, the fence, the events (all new, or the insert fails with
    ///    [`SinkError::StoredEvent`]), the batch lock, then the `current_orders` upsert of the
    ///    newest event per order (with `tenant_stats`), the dead letters and the gaps;
    /// 2. the batch's own rows (and the previous batch's commit time), and COMMIT.
    ///
    /// When `deduplicating`, the events' insert answers which are new, and only those change
    /// orders: the upsert, dead letters and gaps wait for that answer, a round trip of their
    /// own between the two. A fenced batch has sent its statements for nothing: it is rolled
    /// back. (Of a big batch, the events' and orders' chunks after the first go after the dead
    /// letters and gaps: a chunk is sent when the one before it is answered.)
    async fn write_pipelined(
        &self,
        client: &deadpool_postgres::Object,
        batch: &Batch,
        high_watermarks: &BTreeMap<i32, i64>,
        deduplicating: bool,
        start: Start,
    ) -> Result<Committed, SinkError> {
        let Start {
            at: started,
            queued,
        } = start;

        // The fence: every partition's stored offset must still be where this batch started.
        let partitions: Vec<i32> = batch.ranges.keys().copied().collect();
        let starts: Vec<i64> = batch.ranges.values().map(|r| r.start).collect();
        // Where the stored offsets must be: the ranges' starts, or before a gap at a batch's
        // start (ON_DATA_LOSS=continue), the offset stored before it.
        let fence_starts: Vec<i64> = partitions
            .iter()
            .filter_map(|&p| batch.fence_start(p))
            .collect();
        let ends: Vec<i64> = batch.ranges.values().map(|r| r.end).collect();
        let hwms: Vec<i64> = batch
            .ranges
            .iter()
            .map(|(p, r)| high_watermarks.get(p).copied().unwrap_or(r.end).max(r.end))
            .collect();
        let previous_commit = *lock(&self.last_commit);

        // Round trip 1. Statements are prepared once per connection (cached).
        let fence = client.prepare_cached(FENCE).await?;
        let insert_events = client
            .prepare_cached(if deduplicating {
                INSERT_EVENTS_DEDUPLICATING
            } else {
                INSERT_EVENTS
            })
            .await?;
        let upsert = client.prepare_cached(UPSERT_ORDERS).await?;
        let insert_dead = client.prepare_cached(INSERT_DEAD_LETTERS).await?;
        let insert_gaps = client.prepare_cached(INSERT_GAPS).await?;
        let rest = Rest {
            client,
            upsert: &upsert,
            insert_dead: &insert_dead,
            insert_gaps: &insert_gaps,
            dead: DeadLetterColumns::new(batch),
            gaps: GapColumns::new(batch),
            batch,
        };
        // When every event is new (no deduplication), the orders they change are known before
        // anything is sent, and their statements go in the first round trip, after the lock.
        let all_new =
            (!deduplicating).then(|| latest_per_order(batch.events.iter().map(|l| &l.event)));
        let fence_params: Params<'_, 6> = [
            &self.consumer_group,
            &self.topic,
            &partitions,
            &fence_starts,
            &ends,
            &hwms,
        ];
        // join!, not try_join!: when one statement fails, the ones after it fail too ("current
        // transaction is aborted"), and the cause is the failure that is not that one.
        // biased: polled in this order, the statements are sent in this order (each is sent
        // when its future is first polled), so the orders' statements follow the lock.
        let (begun, moved, inserted, locked, written_with) = tokio::join!(
            biased;
            client.batch_execute(BEGIN),
            client.execute(&fence, &fence_params),
            async {
                // In chunks, so that a big batch's columns, encoded statement and answers
                // are in memory a chunk at a time. `None`: every event was new.
                let mut inserted =
                    deduplicating.then(|| HashSet::with_capacity(batch.events.len()));
                for chunk in batch.events.chunks(CHUNK_ROWS) {
                    let columns = EventColumns::new(chunk);
                    let params = columns.params(&self.topic);
                    match &mut inserted {
                        Some(inserted) => {
                            let rows = client.query(&insert_events, &params).await?;
                            inserted.extend(rows.iter().map(|row| row.get::<_, Uuid>(0)));
                        }
                        None => {
                            client.execute(&insert_events, &params).await?;
                        }
                    }
                }
                Ok::<_, tokio_postgres::Error>(inserted)
            },
            // From here to the commit, writers take turns.
            client.batch_execute(LOCK_BATCHES),
            async {
                match &all_new {
                    Some(latest) => rest.write(self, latest).await.map(Some),
                    None => Ok(None),
                }
            },
        );
        let (moved, inserted, written_with) = match (begun, moved, inserted, locked, written_with) {
            (Ok(()), Ok(moved), Ok(inserted), Ok(()), Ok(written_with)) => {
                (moved, inserted, written_with)
            }
            // Refused by the fence, whatever failed after it: another writer committed this
            // range (and so, for a plain insert, stored its events).
            (_, Ok(moved), ..) if moved as usize != partitions.len() => {
                return Err(SinkError::Fenced);
            }
            (begun, moved, inserted, locked, written_with) => {
                let errors = [
                    begun.err(),
                    moved.err(),
                    inserted.err(),
                    locked.err(),
                    written_with.err(),
                ];
                let e = pg_error::cause(errors.into_iter().flatten()).expect("a failure");
                return Err(if pg_error::is_stored_event(&e) {
                    SinkError::StoredEvent
                } else {
                    SinkError::Postgres(e)
                });
            }
        };
        let is_new = |l: &&crate::batch::Located| {
            inserted
                .as_ref()
                .is_none_or(|inserted| inserted.contains(&l.event.event_id))
        };
        let inserted_count = inserted.as_ref().map_or(batch.events.len(), HashSet::len);
        if moved as usize != partitions.len() {
            return Err(SinkError::Fenced);
        }
        self.faults.holding_lock();

        // Deduplicating, round trip 2: current_orders (and tenant_stats), the dead letters and
        // the gaps. Only events seen for the first time can change an order (a replay was
        // applied when it was first inserted).
        let (latest, upserted) = match (all_new, written_with) {
            (Some(latest), Some(upserted)) => (latest, upserted),
            _ => {
                let latest = latest_per_order(batch.events.iter().filter(is_new).map(|l| &l.event));
                let upserted = rest.write(self, &latest).await?;
                (latest, upserted)
            }
        };

        // The last round trip: the batch's own rows, then COMMIT.
        let duplicates = (batch.events.len() - inserted_count) + batch.in_batch_duplicates.len();
        let counts = Committed {
            batch_id: 0,
            input_rows: batch.input_rows(),
            events_inserted: inserted_count,
            duplicates,
            orders_upserted: upserted,
            stale_skipped: latest.len() - upserted,
            dead_lettered: batch.dead_letters.len(),
            write_time: Duration::ZERO,
            commit_time: Duration::ZERO,
            queued,
            max_event_time: batch
                .events
                .iter()
                .filter(is_new)
                .map(|l| l.event.event_time)
                .max(),
        };
        let insert_batch = client.prepare_cached(INSERT_BATCH).await?;
        let as_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        let write_time = started.elapsed();
        let (previous_id, previous_commit_ms) = match previous_commit {
            Some((id, commit_ms)) => (Some(id), Some(commit_ms)),
            None => (None, None),
        };
        let batch_params: Params<'_, 20> = [
            &self.consumer_group,
            &self.topic,
            // An empty batch (never cut by the loop) started now.
            &batch.started_at.unwrap_or_else(Utc::now),
            &as_i32(counts.input_rows),
            &as_i32(counts.events_inserted),
            &as_i32(counts.duplicates),
            &as_i32(counts.orders_upserted),
            &as_i32(counts.stale_skipped),
            &as_i32(counts.dead_lettered),
            &ms(batch.fetch_time),
            &ms(write_time),
            &counts.max_event_time,
            &batch.max_broker_timestamp,
            &batch.input_rate,
            &queued.map(ms),
            &partitions,
            &starts,
            &ends,
            &previous_id,
            &previous_commit_ms,
        ];
        self.faults.before_commit();
        let commit_started = Instant::now();
        let (row, _) = tokio::try_join!(
            client.query_one(&insert_batch, &batch_params),
            client.batch_execute("COMMIT"),
        )?;
        let commit_time = commit_started.elapsed();
        self.faults.after_commit();
        let batch_id: i64 = row.get(0);
        *lock(&self.last_commit) = Some((batch_id, ms(commit_time)));
        Ok(Committed {
            batch_id,
            write_time,
            commit_time,
            ..counts
        })
    }
}

/// The statements of a batch after the lock: the orders, the dead letters, the gaps.
struct Rest<'a> {
    client: &'a deadpool_postgres::Object,
    upsert: &'a tokio_postgres::Statement,
    insert_dead: &'a tokio_postgres::Statement,
    insert_gaps: &'a tokio_postgres::Statement,
    dead: DeadLetterColumns<'a>,
    gaps: GapColumns<'a>,
    batch: &'a Batch,
}

impl Rest<'_> {
    /// Upserts `latest` (the newest new event of each order) in chunks, and writes the dead
    /// letters and gaps, pipelined; returns how many orders changed.
    async fn write(
        &self,
        writer: &Writer,
        latest: &[&spine_core::event::Event],
    ) -> Result<usize, tokio_postgres::Error> {
        let client = self.client;
        let dead_params = self.dead.params(&writer.topic);
        let gap_params = self.gaps.params(&writer.consumer_group, &writer.topic);
        // join!, as for the first statements of the batch (see `pg_error::cause`).
        let (upserted, dead, gaps) = tokio::join!(
            biased;
            async {
                let mut upserted = 0;
                for chunk in latest.chunks(CHUNK_ROWS) {
                    let columns = OrderColumns::new(chunk);
                    let row = client.query_one(self.upsert, &columns.params()).await?;
                    upserted += row.get::<_, i64>(0) as usize;
                }
                Ok::<_, tokio_postgres::Error>(upserted)
            },
            async {
                if self.batch.dead_letters.is_empty() {
                    return Ok(0);
                }
                client.execute(self.insert_dead, &dead_params).await
            },
            async {
                if self.batch.gaps.is_empty() {
                    return Ok(0);
                }
                client.execute(self.insert_gaps, &gap_params).await
            },
        );
        match (upserted, dead, gaps) {
            (Ok(upserted), Ok(_), Ok(_)) => Ok(upserted),
            (upserted, dead, gaps) => {
                let errors = [upserted.err(), dead.err(), gaps.err()];
                Err(pg_error::cause(errors.into_iter().flatten()).expect("a failure"))
            }
        }
    }
}

const INSERT_GAPS: &str = "
INSERT INTO stream_gaps (consumer_group, topic, kafka_partition, from_offset, to_offset,
                         detected_at, reason)
SELECT $1, $2, * FROM unnest($3::int[], $4::bigint[], $5::bigint[], $6::timestamptz[], $7::text[])";

/// The stored offsets of `partitions`, creating rows at each one's given start (a group that
/// never read a partition starts at the log's start, its low watermark).
pub async fn load_or_init_offsets_at(
    client: &impl GenericClient,
    consumer_group: &str,
    topic: &str,
    starts: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, i64>, tokio_postgres::Error> {
    let partitions: Vec<i32> = starts.keys().copied().collect();
    let offsets: Vec<i64> = starts.values().copied().collect();
    client
        .execute(
            "INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset)
             SELECT $1, $2, p, o FROM unnest($3::int[], $4::bigint[]) AS u(p, o)
             ON CONFLICT DO NOTHING",
            &[&consumer_group, &topic, &partitions, &offsets],
        )
        .await?;
    load_offsets(client, consumer_group, topic, &partitions).await
}

/// The stored offsets of `partitions`, creating rows at offset 0 for partitions this group
/// has never read (0 = the start of the partition: a new group reads the whole topic).
pub async fn load_or_init_offsets(
    client: &impl GenericClient,
    consumer_group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset)
             SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS p
             ON CONFLICT DO NOTHING",
            &[&consumer_group, &topic, &partitions],
        )
        .await?;
    load_offsets(client, consumer_group, topic, partitions).await
}

/// The stored offsets of `partitions` (partitions without a row are left out).
pub async fn load_offsets(
    client: &impl GenericClient,
    consumer_group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT kafka_partition, next_offset FROM stream_offsets
              WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3)",
            &[&consumer_group, &topic, &partitions],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
        .collect())
}
