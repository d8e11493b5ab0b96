//! The guards at the processor's edges, against the real binary, the local broker (Tansu) and a
//! real Postgres: a replica frozen (SIGSTOP) while it holds the batch lock stalls nobody; a
//! database defaulting to REPEATABLE READ changes nothing; a migration that cannot apply or a
//! dropped table stops it saying why; per-tenant sums do not overflow.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{event, raw, KillOnDrop};
use spine_core::event::{Event, EventType};
use spine_core::reduce;
use spine_testkit::kafka::{create_topic, high_watermarks, produce, Raw};
use spine_testkit::{postgres, tansu, unique_name, TestDb};

const PARTITIONS: i32 = 4;

/// A real `spine-processor` whose log lines are kept (and echoed with a prefix).
struct Replica {
    child: KillOnDrop,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    fn spawn(name: &'static str, env: &[(String, String)], extra: &[(&str, &str)]) -> Replica {
        let mut cmd = common::processor_command(env);
        cmd.env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn spine-processor");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    eprintln!("{name}| {line}");
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Replica {
            child: KillOnDrop(child),
            lines,
        }
    }

    fn pid(&self) -> String {
        self.child.0.id().to_string()
    }

    /// The last line containing `needle`, if any.
    fn last(&self, needle: &str) -> Option<String> {
        let lines = self.lines.lock().expect("lines");
        lines.iter().rev().find(|l| l.contains(needle)).cloned()
    }

    /// Waits until a line contains `needle`.
    fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.last(needle) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "the replica never logged {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many partitions the last assignment gave it (0 before any).
    fn owned(&self) -> usize {
        self.last("partitions assigned")
            .and_then(|l| {
                l.split("partitions=")
                    .nth(1)
                    .map(|s| s.matches('@').count())
            })
            .unwrap_or(0)
    }
}

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

/// A pool of `size` over `db`.
fn processor_pool(db: &TestDb, size: usize) -> deadpool_postgres::Pool {
    spine_core::db::pool(db.config(), size, Duration::from_secs(30)).expect("pool")
}

/// Two writers (two replicas' sessions) on a database whose default isolation is REPEATABLE
/// READ: the second one's transaction starts, then waits for the batch lock the first holds.
/// Once the first commits, the second must see its batch (READ COMMITTED): with a snapshot
/// from before the wait it would take the same batch id and fail on the duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_defaulting_to_repeatable_read_still_takes_turns() {
    use spine_processor::batch::Batch;
    use spine_processor::config::CrashPoint;
    use spine_processor::faults::FaultPoints;
    use spine_processor::sink::{self, Writer};

    let db = postgres().fresh_database().await;
    db.connect()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_isolation = 'repeatable read'",
            db.name
        ))
        .await
        .expect("alter database");
    let pool = processor_pool(&db, 4);
    {
        let mut c = pool.get().await.expect("connection");
        spine_core::schema::migrate(&mut c).await.expect("migrate");
        sink::load_or_init_offsets(&**c, "g", "t", &[0, 1])
            .await
            .expect("offsets");
        let level: String = c
            .query_one("SHOW transaction_isolation", &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(level, "repeatable read", "the database's default applies");
    }
    // Different tenants: the two batches touch no row in common.
    let batch = |partition: i32, id: u128| {
        let tenant = ["acme", "globex"][partition as usize];
        let e = event(tenant, &format!("o{id}"), EventType::OrderPlaced, 1, id);
        let mut b = Batch::default();
        b.push(partition, 0, 0, Some(b"k"), Some(&e.to_json()));
        b
    };

    // The first writer pauses 5 s in its batch's transaction, holding the batch lock.
    let first = {
        let pool = pool.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let writer = Writer::new("g", "t")
                .with_faults(FaultPoints::new(Some(CrashPoint::PauseHoldingLock(1))));
            writer.faults().batch_cut(String::new);
            handle.block_on(async {
                let mut c = pool.get().await.expect("connection");
                writer.write(&mut c, &batch(1, 1), &BTreeMap::new()).await
            })
        })
    };
    let watcher = db.connect().await;
    common::eventually(
        Duration::from_secs(10),
        "the first writer holds the lock",
        || {
            let watcher = &watcher;
            async move {
                watcher
                    .query_one(
                        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                      WHERE c.relname = 'stream_batches' AND l.mode = 'ShareRowExclusiveLock'
                        AND l.granted",
                        &[],
                    )
                    .await
                    .expect("pg_locks")
                    .get::<_, i64>(0)
                    == 1
            }
        },
    )
    .await;
    // The second starts its transaction now and waits for the lock.
    let mut c = pool.get().await.expect("connection");
    let second = Writer::new("g", "t")
        .write(&mut c, &batch(0, 2), &BTreeMap::new())
        .await;
    let first = first.await.expect("join");
    let first = first.expect("the first writer commits");
    let second = second.expect("the second writer commits after it, not on a stale snapshot");
    assert_eq!((first.batch_id, second.batch_id), (1, 2));
}

/// Waits for `child` to exit within `within`; kills it (and fails) when it does not.
fn exit_within(child: &mut KillOnDrop, within: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A migration that cannot apply (here: an applied migration's checksum differs from the
/// file's, as after editing an applied migration) stops start-up with one line saying so,
/// instead of "Postgres not ready" forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_that_cannot_apply_stops_start_up_saying_so() {
    let db = postgres().fresh_database().await;
    let mut c = db.connect().await;
    spine_core::schema::migrate(&mut c).await.expect("migrate");
    c.batch_execute("UPDATE refinery_schema_history SET checksum = '42' WHERE version = 1")
        .await
        .expect("damage the history");
    let env = common::env(&tansu().bootstrap(), &unique_name("events"), "g", &db);
    let mut p = Replica::spawn("P", &env, &[]);
    let status = tokio::task::block_in_place(|| {
        exit_within(&mut p.child, Duration::from_secs(30), "the processor")
    });
    assert_eq!(status.code(), Some(1), "a start-up failure");
    let line = p.wait_for("spine-processor failed", Duration::from_secs(5));
    assert!(
        line.contains("migrating the schema failed") && line.contains("different than"),
        "one line saying why: {line}"
    );
    assert!(p.last("Postgres not ready").is_none(), "not a retry");
}

/// A table dropped under a running processor stops it with an error naming the table, and a
/// restart stops at start-up saying which table is missing (not a crash at the first batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_stops_the_processor_naming_it() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = postgres().fresh_database().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let env = common::env(&broker, &topic, "g", &db);
    let (records, _) = workload(0, 50);
    produce(&broker, &topic, &records[..50]);
    let p = Replica::spawn("P", &env, &[]);
    let c = db.connect().await;
    common::eventually(
        Duration::from_secs(60),
        "the first events stored",
        || async {
            // Fails until the processor has created the schema.
            c.query_one("SELECT count(*) FROM events", &[])
                .await
                .is_ok_and(|r| r.get::<_, i64>(0) == 50)
        },
    )
    .await;

    db.connect()
        .await
        .batch_execute("DROP TABLE events")
        .await
        .expect("drop events");
    produce(&broker, &topic, &records[50..]);
    let mut p = p;
    let status = tokio::task::block_in_place(|| {
        exit_within(&mut p.child, Duration::from_secs(60), "the processor")
    });
    assert!(!status.success());
    let line = p.wait_for("spine-processor failed", Duration::from_secs(5));
    assert!(
        line.contains(r#"relation \"events\" does not exist"#)
            || line.contains(r#"relation "events" does not exist"#),
        "names the table: {line}"
    );

    let mut again = Replica::spawn("P2", &env, &[]);
    let status = tokio::task::block_in_place(|| {
        exit_within(&mut again.child, Duration::from_secs(30), "the restart")
    });
    assert!(!status.success());
    let line = again.wait_for("spine-processor failed", Duration::from_secs(5));
    assert!(line.contains("table events missing"), "{line}");
    assert!(
        again.last("partitions assigned").is_none(),
        "stopped at start-up"
    );
}

/// `tenant_stats` sums are numeric: a tenant whose revenue passes `i64::MAX` is counted on,
/// where a bigint column failed the batch ("bigint out of range") on every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_tenant_sums_do_not_overflow() {
    use spine_processor::batch::Batch;
    use spine_processor::sink::{self, Writer};

    let db = postgres().fresh_database().await;
    let pool = processor_pool(&db, 2);
    let mut c = pool.get().await.expect("connection");
    spine_core::schema::migrate(&mut c).await.expect("migrate");
    sink::load_or_init_offsets(&**c, "g", "t", &[0])
        .await
        .expect("offsets");
    // As if billions of orders were counted already: one more amount passes i64::MAX.
    let near_max = i64::MAX - 10;
    c.execute(
        "INSERT INTO tenant_stats (tenant, status, orders, amount_cents) \
         VALUES ('acme', 'order_placed', 1, $1::bigint)",
        &[&near_max],
    )
    .await
    .expect("seed tenant_stats");
    let mut e = event("acme", "o1", EventType::OrderPlaced, 1, 1);
    e.amount_cents = 1_000_000_000_000;
    let mut b = Batch::default();
    b.push(0, 0, 0, Some(b"k"), Some(&e.to_json()));
    Writer::new("g", "t")
        .write(&mut c, &b, &BTreeMap::new())
        .await
        .expect("the batch commits");
    let row = c
        .query_one(
            "SELECT orders::text, amount_cents::text FROM tenant_stats \
              WHERE tenant = 'acme' AND status = 'order_placed'",
            &[],
        )
        .await
        .expect("tenant_stats");
    let expected = (near_max as i128 + 1_000_000_000_000).to_string();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("2".to_string(), expected)
    );
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
