//! A frozen or cut-off peer stalls nobody, against the real binary twice, the local broker
//! (Tansu) and a real Postgres: a replica frozen (SIGSTOP) while it holds the batch lock, and a
//! Postgres that stops answering in the middle of a write.

mod common;
#[path = "support/replica.rs"]
mod replica;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{event, raw};
use replica::Replica;
use spine_core::event::{Event, EventType};
use spine_core::reduce;
use spine_testkit::kafka::{create_topic, high_watermarks, produce, Raw};
use spine_testkit::{postgres, tansu, unique_name, TestDb};

const PARTITIONS: i32 = 4;

/// Orders spread over the partitions, each placed then paid: every event unique.
fn workload(from: u128, orders: u128) -> (Vec<Raw>, Vec<Event>) {
    let tenants = ["acme", "globex", "initech", "umbrella"];
    let mut records = Vec::new();
    let mut events = Vec::new();
    for o in from..from + orders {
        let tenant = tenants[(o % 4) as usize];
        let order = format!("ord-{o}");
        for (i, ty) in [EventType::OrderPlaced, EventType::OrderPaid]
            .into_iter()
            .enumerate()
        {
            let e = event(
                tenant,
                &order,
                ty,
                o as i64 + i as i64,
                o * 2 + i as u128 + 1,
            );
            records.push(raw((o % PARTITIONS as u128) as i32, &e));
            events.push(e);
        }
    }
    (records, events)
}

async fn stored_offsets(db: &TestDb, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    common::stored(db, group, topic).await.offsets
}

/// Every event once, current_orders = the fold, tenant_stats = its grouping, and the batches'
/// ranges tile every partition from 0 to its end.
async fn assert_invariants(db: &TestDb, group: &str, topic: &str, events: &[Event]) {
    let stored = common::stored(db, group, topic).await;
    let expected: BTreeSet<_> = events.iter().map(|e| e.event_id).collect();
    let got: BTreeSet<_> = stored.events.keys().copied().collect();
    assert_eq!(
        expected.difference(&got).count(),
        0,
        "no event missing (of {})",
        expected.len()
    );
    assert_eq!(got.difference(&expected).count(), 0, "no event invented");
    assert_eq!(stored.event_rows as usize, expected.len(), "no event twice");
    let folded: BTreeMap<(String, String), (String, uuid::Uuid)> = reduce::fold_all(events)
        .into_iter()
        .map(|(k, v)| (k, (v.status.as_str().to_owned(), v.version.event_id)))
        .collect();
    assert_eq!(
        stored.orders, folded,
        "current_orders = the fold of all events"
    );
    common::assert_tenant_stats_match(db).await;
    let ends = high_watermarks(&tansu().bootstrap(), topic, PARTITIONS);
    assert_eq!(
        common::batched_rows(db).await,
        ends.iter().sum::<i64>(),
        "every record in exactly one committed batch"
    );
    let c = db.connect().await;
    for p in 0..PARTITIONS {
        let ranges: Vec<(i64, i64)> = c
            .query(
                "SELECT start_offset, end_offset FROM stream_batch_partitions
                  WHERE kafka_partition = $1 ORDER BY batch_id",
                &[&p],
            )
            .await
            .expect("ranges")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut at = 0;
        for (start, end) in ranges {
            assert_eq!(start, at, "partition {p}: no gap and no overlap");
            at = end;
        }
        assert_eq!(at, ends[p as usize], "partition {p} batched to its end");
    }
}

/// Whether the process is stopped (state `T` in /proc).
fn is_stopped(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

/// Two replicas share the stream while events arrive; one is frozen (SIGSTOP) in the middle of
/// a batch, holding the batch lock, and stays frozen. The Postgres session it left "idle in
/// transaction" is ended by the server, and the survivor takes its partitions over (stall
/// watchdog) and finishes the stream alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_frozen_holding_the_batch_lock_stalls_nobody() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let group = unique_name("group");
    let db = postgres().fresh_database().await;
    {
        let mut c = db.connect().await;
        spine_core::schema::migrate(&mut c).await.expect("migrate");
    }
    create_topic(&broker, &topic, PARTITIONS).await;
    let env = common::env(&broker, &topic, &group, &db);

    let a = Replica::spawn("A", &env, &[("SPINE_CRASH_AT", "pause-holding-lock:3")]);
    let b = Replica::spawn("B", &env, &[]);
    // Both own partitions before events flow, so A's batches hold the lock B needs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.owned() > 0 && b.owned() > 0 && a.owned() + b.owned() == PARTITIONS as usize) {
        assert!(Instant::now() < deadline, "both replicas own partitions");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Events arrive in slices for a while; A freezes early on.
    let (records, events) = workload(0, 8_000);
    let producer = {
        let broker = broker.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            for slice in records.chunks(500) {
                produce(&broker, &topic, slice);
                std::thread::sleep(Duration::from_millis(300));
            }
            Instant::now()
        })
    };
    let a_pid = a.pid();
    let line = tokio::task::block_in_place(|| {
        a.wait_for(
            "pausing while holding the batch lock",
            Duration::from_secs(60),
        )
    });
    let status = std::process::Command::new("kill")
        .args(["-STOP", &a_pid])
        .status()
        .expect("kill -STOP");
    assert!(status.success());
    let frozen_at = Instant::now();
    eprintln!("froze A: {line}");

    let last_event = tokio::task::block_in_place(|| producer.join().expect("producer"));
    let ends = high_watermarks(&broker, &topic, PARTITIONS);
    let expected: BTreeMap<i32, i64> = ends
        .iter()
        .enumerate()
        .map(|(p, &e)| (p as i32, e))
        .collect();
    let within = Duration::from_secs(120);
    loop {
        if stored_offsets(&db, &group, &topic).await == expected {
            break;
        }
        assert!(
            last_event.elapsed() < within,
            "stored offsets {:?} did not reach the topic's end {expected:?} within {within:?} \
             of the last event (A frozen since {:?})",
            stored_offsets(&db, &group, &topic).await,
            frozen_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "survivor done: {:.1} s after the freeze, {:.1} s after the last event",
        frozen_at.elapsed().as_secs_f64(),
        last_event.elapsed().as_secs_f64()
    );
    assert!(is_stopped(&a_pid), "A stayed frozen throughout");
    assert_invariants(&db, &group, &topic, &events).await;
    drop(b);
    drop(a);
}

/// A TCP proxy to Postgres that can be cut: from then on it swallows what either side sends
/// and answers nothing, with the connections left open (a network partition, or a server
/// frozen with its kernel still up). Counts the client connections that were closed.
struct Blackhole {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    closed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Blackhole {
    async fn start(upstream: u16) -> Blackhole {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicUsize::new(0));
        let (c, d) = (cut.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .expect("upstream");
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (c1, c2, d1) = (c.clone(), c.clone(), d.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                d1.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(_) if c1.load(Ordering::SeqCst) => {}
                            Ok(n) => {
                                if sw.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if c2.load(Ordering::SeqCst) => {}
                            Ok(n) => {
                                if cw.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Blackhole { port, cut, closed }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Postgres stops answering in the middle of a batch: the write gives up at its deadline with a
/// transient error (so the batch is retried), and its connection is closed, not handed back
/// to the pool for the next batch to wait on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_server_that_stopped_answering_gives_up_at_its_deadline() {
    use spine_processor::batch::Batch;
    use spine_processor::sink::{self, SinkError, Writer};

    let db = postgres().fresh_database().await;
    {
        let mut c = db.connect().await;
        spine_core::schema::migrate(&mut c).await.expect("migrate");
        sink::load_or_init_offsets(&c, "g", "t", &[0])
            .await
            .expect("offsets");
    }
    let proxy = Blackhole::start(db.port).await;
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(proxy.port)
        .user("postgres")
        .dbname(&db.name);
    let pool =
        spine_core::db::pool_with(config, 1, &spine_processor::session_settings()).expect("pool");
    let client = pool.get().await.expect("a connection through the proxy");
    proxy.cut();

    let e = event("acme", "o1", EventType::OrderPlaced, 1, 1);
    let mut b = Batch::default();
    b.push(0, 0, 0, Some(b"k"), Some(&e.to_json()));
    let deadline = Duration::from_secs(2);
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        Writer::new("g", "t").write_within(client, &b, &BTreeMap::new(), deadline),
    )
    .await
    .expect("the write returns instead of waiting forever");
    let err = result.expect_err("nothing can be written");
    assert!(
        matches!(err, SinkError::Deadline(d) if d == deadline),
        "{err}"
    );
    assert!(err.is_transient(), "the batch is retried");
    assert_eq!(pool.status().size, 0, "the connection left the pool");
    common::eventually(Duration::from_secs(5), "the connection closed", || async {
        proxy.closed() == 1
    })
    .await;
    let c = db.connect().await;
    assert_eq!(
        c.query_one("SELECT count(*) FROM stream_batches", &[])
            .await
            .expect("count")
            .get::<_, i64>(0),
        0
    );
}
