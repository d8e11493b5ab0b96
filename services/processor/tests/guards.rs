//! Errors and settings that must not turn into a crash loop or a wrong answer, against the
//! real binary, the local broker (Tansu) and a real Postgres: a database defaulting to
//! REPEATABLE READ changes nothing; a migration that cannot apply or a dropped table stops the
//! processor saying why; per-tenant sums do not overflow.

mod common;
#[path = "support/replica.rs"]
mod replica;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{event, raw};
use replica::{exit_within, Replica};
use spine_core::event::EventType;
use spine_testkit::kafka::{create_topic, produce, Raw};
use spine_testkit::{postgres, tansu, unique_name, TestDb};

const PARTITIONS: i32 = 3;

/// `n` orders placed, spread over the partitions, a tenant per partition (so two replicas'
/// batches touch no `tenant_stats` row in common).
fn placed(n: u128) -> Vec<Raw> {
    let tenants = ["acme", "globex", "initech"];
    (0..n)
        .map(|i| {
            let tenant = tenants[(i % PARTITIONS as u128) as usize];
            let e = event(tenant, &format!("o{i}"), EventType::OrderPlaced, 1, i + 1);
            raw((i % PARTITIONS as u128) as i32, &e)
        })
        .collect()
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

/// A role that may not create tables (Postgres 15 no longer lets every role create in
/// `public`) stops start-up the same way: one line saying the migration failed and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_without_the_privilege_stops_start_up_saying_so() {
    let db = postgres().fresh_database().await;
    let role = unique_name("limited").to_lowercase();
    db.connect()
        .await
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN; REVOKE CREATE ON SCHEMA public FROM PUBLIC"
        ))
        .await
        .expect("a role without CREATE");
    let mut env = common::env(&tansu().bootstrap(), &unique_name("events"), "g", &db);
    env.retain(|(k, _)| k != "DATABASE_URL");
    env.push((
        "DATABASE_URL".into(),
        format!("postgres://{role}@127.0.0.1:{}/{}", db.port, db.name),
    ));
    let mut p = Replica::spawn("P", &env, &[]);
    let status = tokio::task::block_in_place(|| {
        exit_within(&mut p.child, Duration::from_secs(30), "the processor")
    });
    assert_eq!(status.code(), Some(1), "a start-up failure");
    let line = p.wait_for("spine-processor failed", Duration::from_secs(5));
    assert!(
        line.contains("migrating the schema failed") && line.contains("permission denied"),
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
    let records = placed(100);
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

/// What the manifest says SIGTERM does: a batch not yet written is not committed (the next
/// owner re-reads it from the stored offsets), and the process exits cleanly and promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_abandons_the_batch_in_hand_and_a_restart_re_reads_it() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = postgres().fresh_database().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let mut env = common::env(&broker, &topic, "g", &db);
    env.retain(|(k, _)| k != "TRIGGER_INTERVAL_MS");
    env.push(("TRIGGER_INTERVAL_MS".into(), "60000".into()));
    let mut p = Replica::spawn("P", &env, &[]);
    tokio::task::block_in_place(|| p.wait_for("partitions assigned", Duration::from_secs(60)));
    produce(&broker, &topic, &placed(90));
    // The records are fetched into the batch within milliseconds; its trigger is a minute away.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.child.0.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let status = tokio::task::block_in_place(|| {
        exit_within(&mut p.child, Duration::from_secs(10), "the processor")
    });
    assert!(status.success(), "a clean exit: {status}");
    let stored = common::stored(&db, "g", &topic).await;
    assert_eq!(
        stored.event_rows, 0,
        "nothing of the batch in hand committed"
    );
    assert!(
        stored.offsets.values().all(|&o| o == 0),
        "{:?}",
        stored.offsets
    );

    let out = common::processor_command(&common::env(&broker, &topic, "g", &db))
        .arg("--available-now")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(common::stored(&db, "g", &topic).await.event_rows, 90);
}

/// Two replicas of the real binary on a database whose default isolation is REPEATABLE READ,
/// one waiting for the other's batch lock: both keep running and every record is stored (before, one of them
/// soon stopped on a duplicate `batch_id`, and would again after every restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_a_repeatable_read_database_keep_running() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let group = unique_name("group");
    let db = postgres().fresh_database().await;
    db.connect()
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_isolation = 'repeatable read'",
            db.name
        ))
        .await
        .expect("alter database");
    {
        let mut c = db.connect().await;
        spine_core::schema::migrate(&mut c).await.expect("migrate");
    }
    create_topic(&broker, &topic, PARTITIONS).await;
    // A holds the batch lock for 5 s in its 2nd batch, so a batch of B certainly starts its
    // transaction before A's commit and takes the lock after it.
    let mut env = common::env(&broker, &topic, &group, &db);
    env.push(("MAX_BATCH_ROWS".into(), "20".into()));
    let mut a = Replica::spawn("A", &env, &[("SPINE_CRASH_AT", "pause-holding-lock:2")]);
    let mut b = Replica::spawn("B", &env, &[]);
    common::eventually(
        Duration::from_secs(60),
        "both replicas own partitions",
        || {
            let (a, b) = (&a, &b);
            async move { a.owned() > 0 && b.owned() > 0 && a.owned() + b.owned() == 3 }
        },
    )
    .await;
    // Records keep arriving while A pauses, so B has batches to write meanwhile.
    for slice in placed(6_000).chunks(600) {
        produce(&broker, &topic, slice);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    common::eventually(Duration::from_secs(90), "every record stored", || async {
        common::stored(&db, &group, &topic)
            .await
            .offsets
            .values()
            .sum::<i64>()
            == 6_000
    })
    .await;
    for r in [&mut a, &mut b] {
        assert!(
            r.child.0.try_wait().expect("try_wait").is_none(),
            "a replica stopped: {:?}",
            r.last("spine-processor failed")
        );
    }
    assert_eq!(common::stored(&db, &group, &topic).await.event_rows, 6_000);
    common::assert_tenant_stats_match(&db).await;
}
