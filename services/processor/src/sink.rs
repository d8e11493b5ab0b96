//! The one transaction a micro-batch is written in.
//!
//! In order: the fenced offset update (first, so a competing writer blocks on the row locks
//! and then fails its check), the new events (idempotent by `event_id`), the `current_orders`
//! upsert of the newly inserted events reduced to the latest per order (with `tenant_stats`
//! following it), the dead letters (once per record, bounded in size), and the batch's own rows. Every statement is one bulk `unnest()` of column arrays, whatever the
//! batch size. Either all of it commits, or none of it does and the offsets do not move.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use spine_core::reduce::latest_per_order;
use tokio_postgres::{GenericClient, IsolationLevel};
use uuid::Uuid;

use crate::batch::{Batch, Kept};
use crate::faults::FaultPoints;
use crate::pg_error;

/// How long the write of one batch may take, all statements and the COMMIT, before its
/// connection is dropped and the batch retried ([`Writer::write_within`]). Each statement is
/// also limited by the session's `statement_timeout`; this catches what the server cannot: a
/// server gone from the network, whose answers never arrive.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// Writes batches of one consumer group's reading of one topic.
#[derive(Debug)]
pub struct Writer {
    consumer_group: String,
    topic: String,
    faults: FaultPoints,
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
    pub write_time: Duration,
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

const INSERT_EVENTS: &str = "
INSERT INTO events (event_id, tenant, event_type, order_id, amount_cents, currency, event_time,
                    topic, kafka_partition, kafka_offset)
SELECT u.event_id, u.tenant, u.event_type, u.order_id, u.amount_cents, u.currency, u.event_time,
       $8, u.kafka_partition, u.kafka_offset
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
              $7::timestamptz[], $9::int[], $10::bigint[])
       AS u(event_id, tenant, event_type, order_id, amount_cents, currency, event_time,
            kafka_partition, kafka_offset)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id";

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

const INSERT_BATCH: &str = "
INSERT INTO stream_batches (batch_id, consumer_group, topic, started_at, finished_at, input_rows,
                            events_inserted, duplicates, orders_upserted, stale_skipped,
                            dead_lettered, fetch_ms, write_ms, total_ms,
                            max_event_time, max_broker_timestamp, input_rate)
VALUES ((SELECT coalesce(max(batch_id), 0) + 1 FROM stream_batches), $1, $2, $3,
        clock_timestamp(), $4, $5, $6, $7, $8, $9, $10::float8, $11::float8, round(($10::float8 + $11::float8)::numeric, 3)::float8,
        $12, $13, $14)
RETURNING batch_id";

const INSERT_BATCH_PARTITIONS: &str = "
INSERT INTO stream_batch_partitions (batch_id, kafka_partition, start_offset, end_offset)
SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::bigint[])";

/// The three columns of a dead letter's key or payload: its kept bytes, full length and
/// SHA-256 (all NULL when the record had none).
type KeptColumns<'a> = (
    Vec<Option<&'a [u8]>>,
    Vec<Option<i32>>,
    Vec<Option<&'a [u8]>>,
);

fn kept_columns<'a>(values: impl Iterator<Item = Option<&'a Kept>>) -> KeptColumns<'a> {
    let mut columns: KeptColumns<'a> = (Vec::new(), Vec::new(), Vec::new());
    for v in values {
        columns.0.push(v.map(|k| k.head.as_slice()));
        // A Kafka record is at most 2 GiB.
        columns
            .1
            .push(v.map(|k| i32::try_from(k.length).unwrap_or(i32::MAX)));
        columns.2.push(v.map(|k| k.sha256.as_slice()));
    }
    columns
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
        }
    }

    /// The writer with fault injection for tests (see [`crate::faults`]).
    pub fn with_faults(self, faults: FaultPoints) -> Writer {
        Writer { faults, ..self }
    }

    pub fn faults(&self) -> &FaultPoints {
        &self.faults
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
    /// partition (kept with the offsets, for lag).
    pub async fn write(
        &self,
        client: &mut deadpool_postgres::Object,
        batch: &Batch,
        high_watermarks: &BTreeMap<i32, i64>,
    ) -> Result<Committed, SinkError> {
        let started = Instant::now();
        // READ COMMITTED whatever the database's default: after waiting for the batch lock, the
        // batch id and the upsert must see the batches committed meanwhile (under REPEATABLE
        // READ they would read a snapshot from before the wait and collide).
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await?;

        // 1. The fence: every partition's stored offset must still be where this batch started.
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
        let fence = tx.prepare_cached(FENCE).await?;
        let moved = tx
            .execute(
                &fence,
                &[
                    &self.consumer_group,
                    &self.topic,
                    &partitions,
                    &fence_starts,
                    &ends,
                    &hwms,
                ],
            )
            .await?;
        if moved as usize != partitions.len() {
            tx.rollback().await?;
            return Err(SinkError::Fenced);
        }

        // 2. Events, idempotent by event_id; learn which ones are new.
        let n = batch.events.len();
        let mut ids = Vec::with_capacity(n);
        let mut tenants = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut orders = Vec::with_capacity(n);
        let mut amounts = Vec::with_capacity(n);
        let mut currencies = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut event_partitions = Vec::with_capacity(n);
        let mut offsets = Vec::with_capacity(n);
        for located in &batch.events {
            let e = &located.event;
            ids.push(e.event_id);
            tenants.push(e.tenant.as_str());
            types.push(e.event_type.as_str());
            orders.push(e.order_id.as_str());
            amounts.push(e.amount_cents);
            currencies.push(e.currency.as_str());
            times.push(e.event_time);
            event_partitions.push(located.partition);
            offsets.push(located.offset);
        }
        let inserted: HashSet<Uuid> = if n == 0 {
            HashSet::new()
        } else {
            let stmt = tx.prepare_cached(INSERT_EVENTS).await?;
            tx.query(
                &stmt,
                &[
                    &ids,
                    &tenants,
                    &types,
                    &orders,
                    &amounts,
                    &currencies,
                    &times,
                    &self.topic,
                    &event_partitions,
                    &offsets,
                ],
            )
            .await?
            .iter()
            .map(|row| row.get::<_, Uuid>(0))
            .collect()
        };

        // 3. current_orders (and tenant_stats): only events seen for the first time can change an
        //    order (a replay was applied when it was first inserted), reduced to the newest per
        //    order. From here to the commit, writers take turns.
        tx.batch_execute(LOCK_BATCHES).await?;
        self.faults.holding_lock();
        let latest = latest_per_order(
            batch
                .events
                .iter()
                .filter(|l| inserted.contains(&l.event.event_id))
                .map(|l| &l.event),
        );
        let upserted = if latest.is_empty() {
            0
        } else {
            let stmt = tx.prepare_cached(UPSERT_ORDERS).await?;
            let tenants: Vec<&str> = latest.iter().map(|e| e.tenant.as_str()).collect();
            let orders: Vec<&str> = latest.iter().map(|e| e.order_id.as_str()).collect();
            let statuses: Vec<&str> = latest.iter().map(|e| e.event_type.as_str()).collect();
            let amounts: Vec<i64> = latest.iter().map(|e| e.amount_cents).collect();
            let currencies: Vec<&str> = latest.iter().map(|e| e.currency.as_str()).collect();
            let times: Vec<DateTime<Utc>> = latest.iter().map(|e| e.event_time).collect();
            let ids: Vec<Uuid> = latest.iter().map(|e| e.event_id).collect();
            let row = tx
                .query_one(
                    &stmt,
                    &[
                        &tenants,
                        &orders,
                        &statuses,
                        &amounts,
                        &currencies,
                        &times,
                        &ids,
                    ],
                )
                .await?;
            row.get::<_, i64>(0) as usize
        };

        // 4. Dead letters: at most 64 KiB of key and payload each, with lengths and hashes.
        if !batch.dead_letters.is_empty() {
            let stmt = tx.prepare_cached(INSERT_DEAD_LETTERS).await?;
            let d = &batch.dead_letters;
            let partitions: Vec<i32> = d.iter().map(|x| x.partition).collect();
            let offsets: Vec<i64> = d.iter().map(|x| x.offset).collect();
            let (keys, key_lengths, key_hashes) = kept_columns(d.iter().map(|x| x.key.as_ref()));
            let (payloads, payload_lengths, payload_hashes) =
                kept_columns(d.iter().map(|x| x.payload.as_ref()));
            let errors: Vec<&str> = d.iter().map(|x| x.error.as_str()).collect();
            tx.execute(
                &stmt,
                &[
                    &self.topic,
                    &partitions,
                    &offsets,
                    &keys,
                    &key_lengths,
                    &key_hashes,
                    &payloads,
                    &payload_lengths,
                    &payload_hashes,
                    &errors,
                ],
            )
            .await?;
        }

        // 5. The batch's own rows.
        let duplicates = (n - inserted.len()) + batch.in_batch_duplicates.len();
        let counts = Committed {
            batch_id: 0,
            input_rows: batch.input_rows(),
            events_inserted: inserted.len(),
            duplicates,
            orders_upserted: upserted,
            stale_skipped: latest.len() - upserted,
            dead_lettered: batch.dead_letters.len(),
            write_time: Duration::ZERO,
            max_event_time: batch
                .events
                .iter()
                .filter(|l| inserted.contains(&l.event.event_id))
                .map(|l| l.event.event_time)
                .max(),
        };
        let stmt = tx.prepare_cached(INSERT_BATCH).await?;
        let as_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        let row = tx
            .query_one(
                &stmt,
                &[
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
                    &ms(started.elapsed()),
                    &counts.max_event_time,
                    &batch.max_broker_timestamp,
                    &batch.input_rate,
                ],
            )
            .await?;
        let batch_id: i64 = row.get(0);
        let stmt = tx.prepare_cached(INSERT_BATCH_PARTITIONS).await?;
        tx.execute(&stmt, &[&batch_id, &partitions, &starts, &ends])
            .await?;

        if !batch.gaps.is_empty() {
            self.insert_gaps(&tx, batch).await?;
        }

        self.faults.before_commit();
        tx.commit().await?;
        self.faults.after_commit();
        Ok(Committed {
            batch_id,
            write_time: started.elapsed(),
            ..counts
        })
    }
}

impl Writer {
    /// The batch's gaps, in `stream_gaps` (see [`crate::gaps`]).
    async fn insert_gaps(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        batch: &Batch,
    ) -> Result<(), SinkError> {
        let g = &batch.gaps;
        let partitions: Vec<i32> = g.iter().map(|x| x.partition).collect();
        let from: Vec<i64> = g.iter().map(|x| x.from_offset).collect();
        let to: Vec<i64> = g.iter().map(|x| x.to_offset).collect();
        let at: Vec<DateTime<Utc>> = g.iter().map(|x| x.detected_at).collect();
        let reasons: Vec<&str> = g.iter().map(|x| x.reason.as_str()).collect();
        let stmt = tx.prepare_cached(INSERT_GAPS).await?;
        tx.execute(
            &stmt,
            &[
                &self.consumer_group,
                &self.topic,
                &partitions,
                &from,
                &to,
                &at,
                &reasons,
            ],
        )
        .await?;
        Ok(())
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
