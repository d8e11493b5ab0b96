//! The batch transaction as pipelined round trips: where a batch's time goes
//! (docs/contracts.md, "Tables": `queued_ms`, `write_ms`, `commit_ms`), nothing left open
//! behind a refused batch, and a batch bigger than one statement's chunk written whole.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use common::event;
use spine_core::event::EventType;
use spine_processor::batch::Batch;
use spine_processor::sink::{self, SinkError, Writer};
use spine_testkit::{postgres, TestDb};

const GROUP: &str = "g";
const TOPIC: &str = "events";

async fn setup() -> (TestDb, deadpool_postgres::Pool) {
    let db = postgres().fresh_database().await;
    let pool = spine_core::db::pool(db.config(), 2, Duration::from_secs(30)).expect("pool");
    let mut client = pool.get().await.expect("connection");
    spine_core::schema::migrate(&mut client)
        .await
        .expect("migrate");
    sink::load_or_init_offsets(&**client, GROUP, TOPIC, &[0, 1])
        .await
        .expect("offsets");
    (db, pool)
}

/// One event for order `order` at offset `offset` of partition 0 (stored offset `offset`).
fn batch(offset: i64, id: u128) -> Batch {
    let e = event("acme", &format!("o{id}"), EventType::OrderPlaced, 1, id);
    let mut b = Batch::default();
    b.push(0, offset, offset, None, Some(&e.to_json()));
    b
}

type Timings = (i64, Option<f64>, f64, f64, f64, Option<f64>);

async fn timings(db: &TestDb) -> Vec<Timings> {
    db.connect()
        .await
        .query(
            "SELECT batch_id, queued_ms, fetch_ms, write_ms, total_ms, commit_ms
               FROM stream_batches ORDER BY batch_id",
            &[],
        )
        .await
        .expect("batches")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_records_its_wait_its_write_and_then_its_commit() {
    let (db, pool) = setup().await;
    let writer = Writer::new(GROUP, TOPIC);

    // Its newest record reached the broker 2.5 s before the write began.
    let mut first = batch(0, 1);
    first.saw_broker_timestamp(Some(
        (Utc::now() - chrono::Duration::milliseconds(2500)).timestamp_millis(),
    ));
    first.fetch_time = Duration::from_millis(7);
    let mut client = pool.get().await.expect("connection");
    let c1 = writer
        .write(&mut client, &first, &BTreeMap::new())
        .await
        .expect("batch 1");
    let queued = c1.queued.expect("a broker timestamp was seen");
    assert!(
        queued >= Duration::from_millis(2500) && queued < Duration::from_secs(60),
        "{queued:?}"
    );

    let rows = timings(&db).await;
    let (id, queued_ms, fetch_ms, write_ms, total_ms, commit_ms) = rows[0];
    assert_eq!(id, c1.batch_id);
    assert_eq!(queued_ms, Some((queued.as_secs_f64() * 1e6).round() / 1e3));
    assert_eq!(fetch_ms, 7.0);
    assert_eq!(write_ms, (c1.write_time.as_secs_f64() * 1e6).round() / 1e3);
    assert!(write_ms > 0.0);
    assert!(
        (total_ms - (fetch_ms + write_ms)).abs() < 0.002,
        "{total_ms}"
    );
    assert_eq!(
        commit_ms, None,
        "a batch cannot time its own COMMIT in its transaction"
    );

    // The next batch of the same writer records the first one's COMMIT round trip; a batch
    // whose records carried no broker timestamp has no queued time.
    let second = batch(1, 2);
    let c2 = writer
        .write(&mut client, &second, &BTreeMap::new())
        .await
        .expect("batch 2");
    assert_eq!(c2.queued, None);
    let rows = timings(&db).await;
    assert_eq!(
        rows[0].5,
        Some((c1.commit_time.as_secs_f64() * 1e6).round() / 1e3),
        "batch 1's commit, as measured by its writer"
    );
    assert!(c1.commit_time > Duration::ZERO);
    assert_eq!((rows[1].1, rows[1].5), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_leaves_no_transaction_or_lock_behind() {
    let (db, pool) = setup().await;
    let writer = Writer::new(GROUP, TOPIC);
    let mut client = pool.get().await.expect("connection");
    writer
        .write(&mut client, &batch(0, 1), &BTreeMap::new())
        .await
        .expect("the owner commits");
    // A stale copy of the same batch: its statements were sent in one pipeline with the
    // fence, so the fence's refusal comes after the batch lock was taken.
    let err = writer
        .write(&mut client, &batch(0, 1), &BTreeMap::new())
        .await
        .expect_err("fenced");
    assert!(matches!(err, SinkError::Fenced), "{err}");
    // Refused by the fence, not taken for a batch of stored events (its plain insert met the
    // owner's events): the writer does not start deduplicating.
    assert!(!writer.is_deduplicating());
    let other = db.connect().await;
    let locks: i64 = other
        .query_one(
            "SELECT count(*) FROM pg_locks
              WHERE relation = 'stream_batches'::regclass AND mode = 'ShareRowExclusiveLock'",
            &[],
        )
        .await
        .expect("locks")
        .get(0);
    assert_eq!(
        locks, 0,
        "the refused batch's transaction still holds the batch lock"
    );
    let in_transaction: bool = client
        .query_one("SELECT pg_current_xact_id_if_assigned() IS NOT NULL", &[])
        .await
        .expect("the connection answers")
        .get(0);
    assert!(
        !in_transaction,
        "the connection is back outside any transaction"
    );
    // And the writer goes on: the next batch commits on the same connection.
    writer
        .write(&mut client, &batch(1, 2), &BTreeMap::new())
        .await
        .expect("the next batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_several_chunks_is_written_whole_and_once() {
    let (db, pool) = setup().await;
    let writer = Writer::new(GROUP, TOPIC);
    let mut client = pool.get().await.expect("connection");
    // 25,000 events (three statements' worth) over 12,500 orders: each placed, then paid.
    let events: Vec<_> = (0..25_000u128)
        .map(|i| {
            let (order, ty, secs) = if i < 12_500 {
                (i, EventType::OrderPlaced, 1)
            } else {
                (i - 12_500, EventType::OrderPaid, 2)
            };
            let tenant = if order % 2 == 0 { "acme" } else { "globex" };
            event(tenant, &format!("o{order}"), ty, secs, i + 1)
        })
        .collect();
    let mut b = Batch::default();
    for (offset, e) in events.iter().enumerate() {
        b.push(0, offset as i64, 0, None, Some(&e.to_json()));
    }
    let c = writer
        .write(&mut client, &b, &BTreeMap::new())
        .await
        .expect("the batch");
    assert_eq!(
        (c.events_inserted, c.orders_upserted, c.duplicates),
        (25_000, 12_500, 0)
    );
    let check = db.connect().await;
    let counts = check
        .query_one(
            "SELECT (SELECT count(*) FROM events),
                    (SELECT count(*) FROM current_orders WHERE status = 'order_paid'),
                    (SELECT sum(orders)::bigint FROM tenant_stats),
                    (SELECT sum(orders)::bigint FROM tenant_stats WHERE status = 'order_paid')",
            &[],
        )
        .await
        .expect("counts");
    let counts: (i64, i64, i64, i64) = (counts.get(0), counts.get(1), counts.get(2), counts.get(3));
    assert_eq!(counts, (25_000, 12_500, 12_500, 12_500));

    // The same records read again at later offsets (a replay): every one a duplicate.
    let mut replay = Batch::default();
    for (i, e) in events.iter().enumerate() {
        replay.push(1, i as i64, 0, None, Some(&e.to_json()));
    }
    let c = writer
        .write(&mut client, &replay, &BTreeMap::new())
        .await
        .expect("the replay");
    assert_eq!(
        (c.events_inserted, c.orders_upserted, c.duplicates),
        (0, 0, 25_000)
    );
    let stats: i64 = check
        .query_one("SELECT sum(orders)::bigint FROM tenant_stats", &[])
        .await
        .expect("stats")
        .get(0);
    assert_eq!(stats, 12_500, "tenant_stats unchanged by the replay");
}
