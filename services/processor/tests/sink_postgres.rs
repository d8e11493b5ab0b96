//! The batch transaction against a real Postgres: ordering, idempotence, dead letters, the
//! offset fence, and the SQL upsert checked against the reducer's model.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::event;
use proptest::prelude::*;
use spine_core::event::{Event, EventType};
use spine_core::reduce::{self, latest_per_order};
use spine_processor::batch::Batch;
use spine_processor::sink::{self, SinkError, Writer};
use spine_testkit::{postgres, TestDb};

const GROUP: &str = "g";
const TOPIC: &str = "events";

struct Sink {
    db: TestDb,
    pool: deadpool_postgres::Pool,
}

impl Sink {
    async fn new() -> Sink {
        let db = postgres().fresh_database().await;
        let pool = spine_core::db::pool(db.config(), 2, Duration::from_secs(30)).expect("pool");
        let mut client = pool.get().await.expect("connection");
        spine_core::schema::migrate(&mut client)
            .await
            .expect("migrate");
        sink::load_or_init_offsets(&**client, GROUP, TOPIC, &[0, 1, 2])
            .await
            .expect("offsets");
        Sink { db, pool }
    }

    async fn write(&self, batch: &Batch) -> Result<sink::Committed, SinkError> {
        let mut client = self.pool.get().await.expect("connection");
        Writer::new(GROUP, TOPIC)
            .write(&mut client, batch, &BTreeMap::new())
            .await
    }

    async fn status(&self, tenant: &str, order: &str) -> Option<String> {
        let c = self.db.connect().await;
        c.query_opt(
            "SELECT status FROM current_orders WHERE tenant = $1 AND order_id = $2",
            &[&tenant, &order],
        )
        .await
        .expect("query")
        .map(|r| r.get(0))
    }

    async fn count(&self, table: &str) -> i64 {
        let c = self.db.connect().await;
        c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0)
    }

    async fn sql(&self, sql: &str) {
        self.db.connect().await.batch_execute(sql).await.expect(sql);
    }

    async fn offset(&self, partition: i32) -> i64 {
        let c = self.db.connect().await;
        c.query_one(
            "SELECT next_offset FROM stream_offsets WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3",
            &[&GROUP, &TOPIC, &partition],
        )
        .await
        .expect("offset")
        .get(0)
    }
}

/// A batch of `payloads` read from `partition` starting at `start`, the stored offset.
fn batch_of(partition: i32, start: i64, payloads: &[Vec<u8>]) -> Batch {
    batch_after_gap(partition, start, start, payloads)
}

/// The same, where the first record is at `first` > `start` (older records were deleted by
/// retention, or were transaction markers).
fn batch_after_gap(partition: i32, start: i64, first: i64, payloads: &[Vec<u8>]) -> Batch {
    let mut b = Batch::default();
    for (i, p) in payloads.iter().enumerate() {
        b.push(partition, first + i as i64, start, Some(b"k"), Some(p));
    }
    b
}

fn json(events: &[&Event]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.to_json()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_never_overwrites_a_newer_status() {
    let s = Sink::new().await;
    let shipped = event("acme", "o1", EventType::OrderShipped, 30, 3);
    let placed = event("acme", "o1", EventType::OrderPlaced, 10, 1);
    let paid = event("acme", "o1", EventType::OrderPaid, 20, 2);

    let c = s
        .write(&batch_of(0, 0, &json(&[&shipped])))
        .await
        .expect("batch 1");
    assert_eq!(
        (c.events_inserted, c.orders_upserted, c.stale_skipped),
        (1, 1, 0)
    );

    let c = s
        .write(&batch_of(0, 1, &json(&[&placed, &paid])))
        .await
        .expect("batch 2");
    assert_eq!(c.events_inserted, 2, "late events are still history");
    assert_eq!(
        (c.orders_upserted, c.stale_skipped),
        (0, 1),
        "reduced to paid, which loses to shipped"
    );
    assert_eq!(
        s.status("acme", "o1").await.as_deref(),
        Some("order_shipped")
    );
    assert_eq!(s.count("events").await, 3);
    assert_eq!(s.offset(0).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_row_says_how_fresh_and_how_fast() {
    let s = Sink::new().await;
    let newest = event("acme", "o1", EventType::OrderPaid, 20, 2);
    let older = event("acme", "o2", EventType::OrderPlaced, 10, 1);
    let mut b = batch_of(0, 0, &json(&[&older, &newest]));
    b.saw_broker_timestamp(Some(1_764_000_100_000));
    b.input_rate = Some(12.5);
    let c = s.write(&b).await.expect("batch 1");
    assert_eq!(c.max_event_time, Some(newest.event_time));

    // A replay inserts nothing: the batch wrote no event time.
    let mut replay = batch_of(1, 0, &json(&[&newest]));
    replay.saw_broker_timestamp(Some(1_764_000_200_000));
    let c = s.write(&replay).await.expect("batch 2");
    assert_eq!(c.max_event_time, None);

    let rows = s
        .db
        .connect()
        .await
        .query(
            "SELECT max_event_time, max_broker_timestamp, input_rate FROM stream_batches ORDER BY batch_id",
            &[],
        )
        .await
        .expect("batches");
    type Row = (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<f64>,
    );
    let got: Vec<Row> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let at = |ms| chrono::DateTime::from_timestamp_millis(ms);
    assert_eq!(
        got,
        vec![
            (Some(newest.event_time), at(1_764_000_100_000), Some(12.5)),
            (None, at(1_764_000_200_000), None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_event_times_resolve_as_the_reducer_does() {
    let s = Sink::new().await;
    // Same event_time; the higher event_id wins, whichever batch comes first.
    let low = event("acme", "o1", EventType::OrderCancelled, 5, 0x10);
    let high = event(
        "acme",
        "o1",
        EventType::OrderPaid,
        5,
        0xff00_0000_0000_0000_0000_0000_0000_0000,
    );
    s.write(&batch_of(0, 0, &json(&[&high])))
        .await
        .expect("batch 1");
    let c = s
        .write(&batch_of(0, 1, &json(&[&low])))
        .await
        .expect("batch 2");
    assert_eq!(c.stale_skipped, 1);
    assert_eq!(s.status("acme", "o1").await.as_deref(), Some("order_paid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_batch_changes_nothing() {
    let s = Sink::new().await;
    let events = [
        event("acme", "o1", EventType::OrderPlaced, 1, 1),
        event("acme", "o1", EventType::OrderPaid, 2, 2),
        event("globex", "o1", EventType::OrderPlaced, 3, 3),
    ];
    let refs: Vec<&Event> = events.iter().collect();
    s.write(&batch_of(1, 0, &json(&refs)))
        .await
        .expect("first delivery");
    let snapshot = common::stored(&s.db, GROUP, TOPIC).await;

    // The same records delivered again at later offsets (a producer retry, a replayed topic).
    let c = s
        .write(&batch_of(1, 3, &json(&refs)))
        .await
        .expect("replay");
    assert_eq!((c.input_rows, c.events_inserted, c.duplicates), (3, 0, 3));
    assert_eq!(
        (c.orders_upserted, c.stale_skipped),
        (0, 0),
        "replays never touch current_orders"
    );
    let after = common::stored(&s.db, GROUP, TOPIC).await;
    assert_eq!(
        after.events, snapshot.events,
        "events keep their first offsets"
    );
    assert_eq!(after.orders, snapshot.orders);
    assert_eq!(after.offsets[&1], 6);

    // And the identical batch (same offsets) again is refused by the fence: nothing moves.
    let err = s
        .write(&batch_of(1, 3, &json(&refs)))
        .await
        .expect_err("fenced");
    assert!(matches!(err, SinkError::Fenced), "{err}");
    assert_eq!(s.count("stream_batches").await, 2);
    assert_eq!(s.offset(1).await, 6);
}

/// A writer inserts events plainly until one is already stored; then that batch is written
/// again keeping only the new events, and the writer goes on (deduplicating for a while).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_some_events_stored_already_keeps_the_new_ones() {
    let s = Sink::new().await;
    let writer = Writer::new(GROUP, TOPIC);
    let mut client = s.pool.get().await.expect("connection");
    let placed = event("acme", "o1", EventType::OrderPlaced, 1, 1);
    let paid = event("acme", "o1", EventType::OrderPaid, 2, 2);
    let other = event("globex", "o2", EventType::OrderPlaced, 3, 3);
    let later = event("globex", "o2", EventType::OrderPaid, 4, 4);
    let hwm = BTreeMap::new();

    let first = writer
        .write(&mut client, &batch_of(0, 0, &json(&[&placed])), &hwm)
        .await
        .expect("first batch");
    assert_eq!((first.events_inserted, first.duplicates), (1, 0));

    // `placed` again (a producer retry that landed in a later batch), between two new events.
    let mixed = writer
        .write(
            &mut client,
            &batch_of(0, 1, &json(&[&paid, &placed, &other])),
            &hwm,
        )
        .await
        .expect("a batch with a stored event commits");
    assert_eq!(
        (mixed.input_rows, mixed.events_inserted, mixed.duplicates),
        (3, 2, 1)
    );
    assert_eq!(mixed.orders_upserted, 2);
    assert!(writer.is_deduplicating());
    assert_eq!(s.count("events").await, 3);
    assert_eq!(s.status("acme", "o1").await.as_deref(), Some("order_paid"));
    assert_eq!(s.offset(0).await, 4);

    let next = writer
        .write(&mut client, &batch_of(0, 4, &json(&[&later])), &hwm)
        .await
        .expect("the next batch");
    assert_eq!((next.events_inserted, next.duplicates), (1, 0));
    assert_eq!(
        s.status("globex", "o2").await.as_deref(),
        Some("order_paid")
    );
    assert_eq!(s.count("events").await, 4);
    assert_eq!(s.count("stream_batches").await, 3);
    drop(client);
    let stored = common::stored(&s.db, GROUP, TOPIC).await;
    assert_eq!(stored.offsets[&0], 5);
}

/// When one statement of a batch fails, every statement sent after it fails with "current
/// transaction is aborted". The batch's error must be the first one's: here a lock timeout in
/// the upsert (transient: the batch is retried), not the aborted insert of the events' second
/// chunk that the pipeline sends after it (which, taken for the cause, stopped the processor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_is_the_cause_not_the_aborted_ones_after_it() {
    let s = Sink::new().await;
    let first = event("aaa", "a0", EventType::OrderPlaced, 1, 1);
    s.write(&batch_of(0, 0, &json(&[&first])))
        .await
        .expect("first batch");

    // Another session holds order a0's row; the writer waits for a lock at most 200 ms.
    let holder = s.db.connect().await;
    holder
        .batch_execute(
            "BEGIN; SELECT 1 FROM current_orders WHERE tenant = 'aaa' AND order_id = 'a0' FOR UPDATE",
        )
        .await
        .expect("lock the row");
    let mut client = s.pool.get().await.expect("connection");
    client
        .batch_execute("SET lock_timeout = 200")
        .await
        .expect("lock timeout");

    // More events than one statement carries (10,000), so the events' second chunk goes after
    // the upsert, whose first order (they are sorted) is a0.
    let paid = event("aaa", "a0", EventType::OrderPaid, 2, 2);
    let mut events = vec![paid];
    events.extend((0..10_000).map(|i| {
        event(
            "bbb",
            &format!("o{i}"),
            EventType::OrderPlaced,
            3,
            1000 + i as u128,
        )
    }));
    let refs: Vec<&Event> = events.iter().collect();
    let err = Writer::new(GROUP, TOPIC)
        .write(&mut client, &batch_of(0, 1, &json(&refs)), &BTreeMap::new())
        .await
        .expect_err("the row is locked");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("lock"), "{err}");

    // Once the row is free, the same batch commits.
    holder.batch_execute("ROLLBACK").await.expect("release");
    client
        .batch_execute("RESET lock_timeout")
        .await
        .expect("reset");
    let c = Writer::new(GROUP, TOPIC)
        .write(&mut client, &batch_of(0, 1, &json(&refs)), &BTreeMap::new())
        .await
        .expect("the retried batch");
    assert_eq!(c.events_inserted, 10_001);
    assert_eq!(s.status("aaa", "a0").await.as_deref(), Some("order_paid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_class_of_bad_input_is_a_dead_letter_while_good_records_commit() {
    let s = Sink::new().await;
    let good1 = event("acme", "o1", EventType::OrderPlaced, 1, 1).to_json();
    let good2 = event("initech", "o9", EventType::OrderPaid, 2, 2).to_json();
    let good = serde_json::from_slice::<serde_json::Value>(&good1).expect("json");
    let with = |field: &str, v: serde_json::Value| {
        let mut x = good.clone();
        x[field] = v;
        serde_json::to_vec(&x).expect("json")
    };
    let without = |field: &str| {
        let mut x = good.clone();
        x.as_object_mut().expect("object").remove(field);
        serde_json::to_vec(&x).expect("json")
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"this is not json".to_vec(),
            "not a valid event JSON object",
        ),
        (b"{\"tenant\": \"\xff\xfe\"}".to_vec(), "not UTF-8"),
        (
            without("order_id"),
            "not a valid event JSON object: missing field `order_id`",
        ),
        (
            with("amount_cents", "12".into()),
            "not a valid event JSON object: invalid type: string",
        ),
        (
            with("tenant", serde_json::Value::Null),
            "not a valid event JSON object: invalid type: null",
        ),
        (
            with("event_id", "not-a-uuid".into()),
            "event_id: expected a UUID",
        ),
        (
            with("amount_cents", serde_json::json!(1_000_000_000_001i64)),
            "amount_cents: expected an integer from 0",
        ),
        (
            with("amount_cents", serde_json::json!(-5)),
            "amount_cents: expected an integer from 0",
        ),
        (
            with("event_type", "order_refunded".into()),
            "event_type: expected order_placed",
        ),
        (
            with("event_time", "25/11/2026".into()),
            "event_time: expected RFC 3339",
        ),
        (
            with("tenant", "nul\u{0}byte".into()),
            "tenant: must not contain control characters",
        ),
    ];
    let mut payloads = vec![good1.clone()];
    payloads.extend(cases.iter().map(|(p, _)| p.clone()));
    payloads.push(good2.clone());
    let c = s
        .write(&batch_after_gap(2, 0, 100, &payloads))
        .await
        .expect("batch commits");
    assert_eq!(c.dead_lettered, cases.len());
    assert_eq!(c.events_inserted, 2);
    assert_eq!(c.input_rows, cases.len() + 2);

    let client = s.db.connect().await;
    let rows = client
        .query(
            "SELECT kafka_offset, payload, error, key FROM dead_letters ORDER BY kafka_offset",
            &[],
        )
        .await
        .expect("dead letters");
    assert_eq!(rows.len(), cases.len());
    for (row, (payload, reason)) in rows.iter().zip(&cases) {
        let stored_payload: Vec<u8> = row.get(1);
        let error: String = row.get(2);
        let key: Vec<u8> = row.get(3);
        assert_eq!(&stored_payload, payload, "payload kept byte for byte");
        assert!(
            error.starts_with(reason),
            "{error:?} should start with {reason:?}"
        );
        assert_eq!(key, b"k");
    }
    let first: i64 = rows[0].get(0);
    assert_eq!(first, 101);
    assert_eq!(
        s.status("acme", "o1").await.as_deref(),
        Some("order_placed")
    );
    assert_eq!(
        s.status("initech", "o9").await.as_deref(),
        Some("order_paid")
    );
    assert_eq!(s.offset(2).await, 100 + payloads.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_dead_letter_is_stored_bounded_with_its_length_and_hash() {
    use sha2::{Digest, Sha256};
    let s = Sink::new().await;
    let key = vec![b'k'; 100_000];
    // A JSON string of 900 KB: serde's own error message would quote all of it.
    let payload = serde_json::to_vec(&"v".repeat(900_000 - 2)).expect("json");
    let mut b = Batch::default();
    b.push(0, 0, 0, Some(&key), Some(&payload));
    b.push(0, 1, 0, None, Some(b"short"));
    let c = s.write(&b).await.expect("batch commits");
    assert_eq!(c.dead_lettered, 2);

    let client = s.db.connect().await;
    let rows = client
        .query(
            "SELECT key, key_length, key_sha256, payload, payload_length, payload_sha256, error
               FROM dead_letters ORDER BY kafka_offset",
            &[],
        )
        .await
        .expect("dead letters");
    let big = &rows[0];
    let sha = |b: &[u8]| Sha256::digest(b).to_vec();
    assert_eq!(big.get::<_, Vec<u8>>(0), key[..64 * 1024]);
    assert_eq!(big.get::<_, Option<i32>>(1), Some(100_000));
    assert_eq!(big.get::<_, Vec<u8>>(2), sha(&key));
    assert_eq!(big.get::<_, Vec<u8>>(3), payload[..64 * 1024]);
    assert_eq!(big.get::<_, Option<i32>>(4), Some(900_000));
    assert_eq!(big.get::<_, Vec<u8>>(5), sha(&payload));
    let error: String = big.get(6);
    assert!(error.len() <= 1024, "{} bytes of reason", error.len());
    assert!(
        error.starts_with("not a valid event JSON object: invalid type: string"),
        "{error}"
    );
    assert!(
        !error.contains(&"v".repeat(100)),
        "the value is not echoed: {error}"
    );

    let small = &rows[1];
    assert_eq!(small.get::<_, Option<Vec<u8>>>(0), None, "no key");
    assert_eq!(small.get::<_, Option<i32>>(1), None);
    assert_eq!(
        small.get::<_, Vec<u8>>(3),
        b"short",
        "a small payload is whole"
    );
    assert_eq!(small.get::<_, Option<i32>>(4), Some(5));
    assert_eq!(small.get::<_, Vec<u8>>(5), sha(b"short"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_bad_record_is_one_dead_letter() {
    let s = Sink::new().await;
    let good = event("acme", "o1", EventType::OrderPlaced, 1, 1).to_json();
    let records = [b"garbage".to_vec(), good.clone()];
    s.write(&batch_of(0, 0, &records))
        .await
        .expect("first read");

    // A second consumer group reads the same records, then the first is rewound.
    let mut client = s.pool.get().await.expect("connection");
    sink::load_or_init_offsets(&**client, "g2", TOPIC, &[0])
        .await
        .expect("offsets of g2");
    let replay = Writer::new("g2", TOPIC)
        .write(&mut client, &batch_of(0, 0, &records), &BTreeMap::new())
        .await
        .expect("second group");
    assert_eq!(
        replay.dead_lettered, 1,
        "still counted as the batch's bad record"
    );
    client
        .execute(
            "UPDATE stream_offsets SET next_offset = 0 WHERE consumer_group = $1",
            &[&GROUP],
        )
        .await
        .expect("rewind");
    let mut rewound = batch_of(0, 0, &[b"other garbage".to_vec(), good]);
    rewound.push(0, 2, 0, None, Some(b"new garbage"));
    s.write(&rewound).await.expect("rewound read");

    let rows = client
        .query(
            "SELECT kafka_offset, payload FROM dead_letters ORDER BY kafka_offset",
            &[],
        )
        .await
        .expect("dead letters");
    let rows: Vec<(i64, Vec<u8>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        vec![(0, b"garbage".to_vec()), (2, b"new garbage".to_vec())],
        "one row per record, the first one kept"
    );
    assert_eq!(s.count("events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writers_batch_is_refused_and_writes_nothing() {
    let s = Sink::new().await;
    let a = event("acme", "o1", EventType::OrderPlaced, 1, 1);
    let b = event("acme", "o2", EventType::OrderPlaced, 1, 2);
    // Two writers both think partition 0 is theirs from offset 0.
    s.write(&batch_of(0, 0, &json(&[&a])))
        .await
        .expect("the owner commits");
    let err = s
        .write(&batch_of(0, 0, &json(&[&a, &b])))
        .await
        .expect_err("stale writer");
    assert!(matches!(err, SinkError::Fenced));
    assert_eq!(s.count("events").await, 1);
    assert_eq!(s.status("acme", "o2").await, None);
    assert_eq!(s.count("stream_batches").await, 1);
    assert_eq!(s.offset(0).await, 1);

    // A batch over several partitions is refused whole if any one of them moved.
    let mut mixed = batch_of(1, 0, &json(&[&b]));
    mixed.push(0, 0, 0, None, Some(&a.to_json()));
    assert!(matches!(s.write(&mixed).await, Err(SinkError::Fenced)));
    assert_eq!(s.offset(1).await, 0);
    assert_eq!(s.count("events").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ids_increase_and_record_each_partitions_range() {
    let s = Sink::new().await;
    let e = |id| event("acme", &format!("o{id}"), EventType::OrderPlaced, 1, id);
    let mut b = batch_of(0, 0, &json(&[&e(1), &e(2)]));
    b.push(2, 7, 0, None, Some(&e(3).to_json()));
    let first = s.write(&b).await.expect("first");
    let second = s
        .write(&batch_of(0, 2, &json(&[&e(4)])))
        .await
        .expect("second");
    assert_eq!((first.batch_id, second.batch_id), (1, 2));
    let client = s.db.connect().await;
    let ranges: Vec<(i64, i32, i64, i64)> = client
        .query("SELECT batch_id, kafka_partition, start_offset, end_offset FROM stream_batch_partitions ORDER BY 1, 2", &[])
        .await
        .expect("ranges")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(ranges, vec![(1, 0, 0, 2), (1, 2, 0, 8), (2, 0, 2, 3)]);
}

/// `GET /stream` rides on these two: each order row names the batch that wrote it, and each
/// commit NOTIFYs `spine_batches` with its id (and a rolled-back batch notifies nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_commit_notifies_its_batch_id_and_stamps_the_orders_it_wrote() {
    use futures::StreamExt;
    let s = Sink::new().await;
    let (listener, mut conn) =
        s.db.config()
            .connect(tokio_postgres::NoTls)
            .await
            .expect("listener");
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener
        .batch_execute("LISTEN spine_batches")
        .await
        .expect("LISTEN");

    let e =
        |order: &str, id: u8| event("acme", order, EventType::OrderPlaced, id.into(), id.into());
    let first = s
        .write(&batch_of(0, 0, &json(&[&e("o1", 1), &e("o2", 2)])))
        .await
        .expect("first");
    let second = s
        .write(&batch_of(0, 2, &json(&[&e("o2", 3)])))
        .await
        .expect("second");
    // A fenced batch (it starts where the stored offset no longer is) rolls back: no NOTIFY.
    assert!(s
        .write(&batch_of(0, 0, &json(&[&e("o3", 4)])))
        .await
        .is_err());
    let third = s
        .write(&batch_of(0, 3, &json(&[&e("o4", 5)])))
        .await
        .expect("third");

    let mut ids = Vec::new();
    for _ in 0..3 {
        let (channel, payload) = tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .expect("a notification within 5 s")
            .expect("listener alive");
        assert_eq!(channel, "spine_batches");
        ids.push(payload.parse::<i64>().expect("a batch id"));
    }
    assert_eq!(ids, vec![first.batch_id, second.batch_id, third.batch_id]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), heard.recv())
            .await
            .is_err(),
        "the fenced batch notified"
    );

    let client = s.db.connect().await;
    let stamps: Vec<(String, i64)> = client
        .query(
            "SELECT order_id, last_batch_id FROM current_orders ORDER BY order_id",
            &[],
        )
        .await
        .expect("orders")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        stamps,
        vec![
            ("o1".to_owned(), first.batch_id),
            ("o2".to_owned(), second.batch_id),
            ("o4".to_owned(), third.batch_id),
        ]
    );
}

/// After a log that started over (ON_DATA_LOSS=continue), the batch reads from the new log's
/// start while the stored offset is still the old one: the fence checks the old one, the
/// batch's range starts at the new start, and the gap is written in the same transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_after_a_gap_writes_the_gap_with_it_or_not_at_all() {
    use spine_processor::gaps::{check_next, check_stored};
    let s = Sink::new().await;
    let e = |id| event("acme", &format!("o{id}"), EventType::OrderPlaced, 1, id);
    s.write(&batch_of(0, 0, &json(&[&e(1), &e(2), &e(3)])))
        .await
        .expect("before the wipe");
    // ... and many more batches: 50 read before the broker lost its data.
    s.sql("UPDATE stream_offsets SET next_offset = 50 WHERE kafka_partition = 0")
        .await;
    let gaps = || async {
        let c = s.db.connect().await;
        c.query(
            "SELECT kafka_partition, from_offset, to_offset, reason FROM stream_gaps ORDER BY id",
            &[],
        )
        .await
        .expect("gaps")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect::<Vec<(i32, i64, i64, String)>>()
    };

    // The log now holds offsets 0..5 (new records), offset 1 without a record.
    let now = chrono::Utc::now();
    let mut b = Batch::default();
    b.start_after_gap(check_stored(0, 50, 0, 5, now).expect("beyond the end"));
    b.push(0, 0, 0, None, Some(&e(10).to_json()));
    b.gaps
        .push(check_next(0, 1, 2, now).expect("offset 1 missing"));
    for (offset, id) in [(2, 11), (3, 12), (4, 13)] {
        b.push(0, offset, 0, None, Some(&e(id).to_json()));
    }

    // A stale stored offset (another writer moved it): refused, and no gap row either.
    s.sql("UPDATE stream_offsets SET next_offset = 51 WHERE kafka_partition = 0")
        .await;
    assert!(matches!(s.write(&b).await, Err(SinkError::Fenced)));
    assert_eq!(gaps().await, vec![]);
    s.sql("UPDATE stream_offsets SET next_offset = 50 WHERE kafka_partition = 0")
        .await;

    s.write(&b).await.expect("the fence finds the old offset");
    assert_eq!(s.offset(0).await, 5, "the new log read to its end");
    assert_eq!(
        gaps().await,
        vec![
            (0, 50, 0, "offset_beyond_log_end".to_string()),
            (0, 1, 2, "offsets_missing_in_log".to_string()),
        ]
    );
    let c = s.db.connect().await;
    let range: (i64, i64) = c
        .query_one(
            "SELECT start_offset, end_offset FROM stream_batch_partitions WHERE batch_id = 2",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("the second batch's range");
    assert_eq!(range, (0, 5), "the range starts at the new log's start");
    assert_eq!(s.count("events").await, 7);
}

/// Small universe, so orders collide and times tie; ids derive everything, so a repeated id
/// is a true replay.
fn arb_event() -> impl Strategy<Value = Event> {
    (0..30u128).prop_map(|id| {
        let tenant = ["acme", "globex"][(id % 2) as usize];
        let order = format!("o{}", (id / 2) % 3);
        event(
            tenant,
            &order,
            EventType::ALL[(id % 4) as usize],
            ((id * 7) % 5) as i64,
            id,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// The SQL upsert and the Rust model agree on every sequence of batches.
    #[test]
    fn the_sql_upsert_matches_the_reducer_model(
        events in proptest::collection::vec(arb_event(), 1..40),
        cuts in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        rt.block_on(async {
            let s = Sink::new().await;
            let mut model = BTreeMap::new();
            let mut seen = std::collections::HashSet::new();
            let mut offset = 0i64;
            let mut current: Vec<&Event> = Vec::new();
            let mut batches: Vec<Vec<&Event>> = Vec::new();
            for (e, cut) in events.iter().zip(cuts.iter().chain(std::iter::repeat(&false))) {
                current.push(e);
                if *cut { batches.push(std::mem::take(&mut current)); }
            }
            batches.push(current);
            for batch in batches.into_iter().filter(|b| !b.is_empty()) {
                let committed = s.write(&batch_of(0, offset, &json(&batch))).await.expect("write");
                offset += batch.len() as i64;
                // The model: only first-seen events are applied (replays were applied before).
                let mut fresh = Vec::new();
                for e in &batch {
                    if seen.insert(e.event_id) { fresh.push(*e); }
                }
                let outcome = reduce::apply(&mut model, &latest_per_order(fresh));
                assert_eq!(committed.orders_upserted, outcome.upserted);
                assert_eq!(committed.stale_skipped, outcome.stale);
            }
            let stored = common::stored(&s.db, GROUP, TOPIC).await;
            let expected: BTreeMap<(String, String), (String, uuid::Uuid)> = model
                .iter()
                .map(|(k, v)| (k.clone(), (v.status.as_str().to_owned(), v.version.event_id)))
                .collect();
            assert_eq!(stored.orders, expected);
            assert_eq!(stored.orders, reduce::fold_all(&events).iter()
                .map(|(k, v)| (k.clone(), (v.status.as_str().to_owned(), v.version.event_id))).collect());
            assert_eq!(stored.event_rows as usize, seen.len());
            common::assert_tenant_stats_match(&s.db).await;
        });
    }
}
