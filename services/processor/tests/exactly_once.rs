//! Exactly-once against a real Kafka-protocol broker (Tansu) and a real Postgres: the
//! processor is killed between batches, inside a batch before its commit, and at random
//! instants, and every produced event must end up in `events` exactly once.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{event, raw, raw_bytes};
use spine_core::event::{Event, EventType};
use spine_core::reduce;
use spine_testkit::kafka::{create_topic, high_watermarks, produce, Raw};
use spine_testkit::{postgres, tansu, unique_name, TestDb};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 3;

/// A mixed stream: order lifecycles spread over partitions by tenant, with malformed records,
/// exact duplicates (a producer retry) and late events mixed in.
fn workload(orders: u128) -> (Vec<Raw>, Vec<Event>, usize) {
    let mut records = Vec::new();
    let mut events = Vec::new();
    let mut dead = 0;
    let tenants = ["acme", "globex", "initech"];
    for o in 0..orders {
        let tenant = tenants[(o % 3) as usize];
        let partition = (o % 3) as i32;
        let order = format!("ord-{o}");
        let base = (o * 10) as i64;
        let lifecycle = [
            event(tenant, &order, EventType::OrderPlaced, base, o * 10 + 1),
            event(tenant, &order, EventType::OrderPaid, base + 1, o * 10 + 2),
            event(
                tenant,
                &order,
                EventType::OrderShipped,
                base + 2,
                o * 10 + 3,
            ),
        ];
        // Late: the shipped event is produced before the paid one for every 4th order.
        let order_of: &[usize] = if o % 4 == 0 { &[0, 2, 1] } else { &[0, 1, 2] };
        for &i in order_of {
            records.push(raw(partition, &lifecycle[i]));
            events.push(lifecycle[i].clone());
        }
        if o % 5 == 0 {
            records.push(raw(partition, &lifecycle[0])); // duplicate delivery
        }
        if o % 7 == 0 {
            records.push(raw_bytes(partition, format!("garbage {o}").as_bytes()));
            dead += 1;
        }
    }
    (records, events, dead)
}

async fn assert_exactly_once(db: &TestDb, group: &str, topic: &str, events: &[Event], dead: usize) {
    let stored = common::stored(db, group, topic).await;
    let ends = high_watermarks(&spine_testkit::tansu().bootstrap(), topic, PARTITIONS);
    let expected_ids: std::collections::BTreeSet<_> = events.iter().map(|e| e.event_id).collect();
    let got_ids: std::collections::BTreeSet<_> = stored.events.keys().copied().collect();
    let missing: Vec<_> = expected_ids.difference(&got_ids).take(5).collect();
    let invented: Vec<_> = got_ids.difference(&expected_ids).take(5).collect();
    assert!(
        missing.is_empty() && invented.is_empty(),
        "{} of {} events missing (e.g. {missing:?}), {} invented (e.g. {invented:?}); stored offsets {:?}, topic ends {ends:?}",
        expected_ids.difference(&got_ids).count(),
        expected_ids.len(),
        got_ids.difference(&expected_ids).count(),
        stored.offsets,
    );
    assert_eq!(
        stored.event_rows as usize,
        expected_ids.len(),
        "no event twice"
    );
    assert_eq!(
        stored.dead_letter_rows as usize, dead,
        "every malformed record once"
    );
    let expected_offsets: BTreeMap<i32, i64> = ends
        .iter()
        .enumerate()
        .map(|(p, &e)| (p as i32, e))
        .collect();
    assert_eq!(
        stored.offsets, expected_offsets,
        "stream_offsets = the end of the topic"
    );
    let expected_orders: BTreeMap<(String, String), (String, uuid::Uuid)> =
        reduce::fold_all(events)
            .into_iter()
            .map(|(k, v)| (k, (v.status.as_str().to_owned(), v.version.event_id)))
            .collect();
    assert_eq!(
        stored.orders, expected_orders,
        "current_orders = the fold of all events"
    );

    // Batches account for every record exactly once, and their ranges tile each partition.
    let c = db.connect().await;
    common::assert_tenant_stats_match(db).await;
    let input = common::batched_rows(db).await;
    assert_eq!(
        input,
        ends.iter().sum::<i64>(),
        "input_rows over all batches = records on the topic"
    );
    for p in 0..PARTITIONS {
        let ranges: Vec<(i64, i64)> = c
            .query(
                "SELECT start_offset, end_offset FROM stream_batch_partitions WHERE kafka_partition = $1 ORDER BY batch_id",
                &[&p],
            )
            .await
            .expect("ranges")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let mut at = 0;
        for (start, end) in ranges {
            assert_eq!(
                start, at,
                "partition {p}: batches leave no gap and no overlap"
            );
            at = end;
        }
        assert_eq!(at, ends[p as usize]);
    }
}

async fn drain(bootstrap: &str, topic: &str, group: &str, db: &TestDb) -> spine_processor::Summary {
    let args = common::args(bootstrap, topic, group, db, &["--available-now"]);
    tokio::time::timeout(
        Duration::from_secs(120),
        spine_processor::run(args, CancellationToken::new()),
    )
    .await
    .expect("available-now finishes")
    .expect("processor run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_now_drains_the_topic_once() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let group = unique_name("group");
    let db = postgres().fresh_database().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let (records, events, dead) = workload(60);
    produce(&broker, &topic, &records);

    let summary = drain(&broker, &topic, &group, &db).await;
    assert_eq!(summary.input_rows as usize, records.len());
    assert_exactly_once(&db, &group, &topic, &events, dead).await;

    // A second run finds nothing new and changes nothing.
    let again = drain(&broker, &topic, &group, &db).await;
    assert_eq!(again.batches, 0);
    assert_exactly_once(&db, &group, &topic, &events, dead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_consumer_group_stores_each_bad_record_once() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = postgres().fresh_database().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let (records, events, dead) = workload(30);
    produce(&broker, &topic, &records);

    let first = unique_name("group");
    drain(&broker, &topic, &first, &db).await;
    // Another group reads the whole topic again (as a replay, or a rewind, does).
    let second = unique_name("group");
    let summary = drain(&broker, &topic, &second, &db).await;
    assert_eq!(
        summary.dead_lettered as usize, dead,
        "the second group found the same bad records"
    );
    let stored = common::stored(&db, &second, &topic).await;
    assert_eq!(
        stored.dead_letter_rows as usize, dead,
        "each bad record is one dead letter, whichever groups read it"
    );
    assert_eq!(stored.event_rows as usize, events.len());
}

/// Runs the real binary to completion (or to its crash), returning its exit status.
fn run_binary(env: &[(String, String)], extra_env: &[(&str, &str)]) -> std::process::ExitStatus {
    let mut cmd = common::processor_command(env);
    cmd.arg("--available-now");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run spine-processor");
    eprintln!(
        "--- processor ({}) ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_and_inside_batches_it_resumes_exactly_once() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let group = unique_name("group");
    let db = postgres().fresh_database().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let (records, events, dead) = workload(90);
    produce(&broker, &topic, &records);
    // Small batches, so there are many commits to crash around.
    let mut env = common::env(&broker, &topic, &group, &db);
    env.push(("MAX_BATCH_ROWS".into(), "25".into()));

    // Killed inside the 2nd batch's transaction, before COMMIT: that batch must vanish.
    let status = run_binary(&env, &[("SPINE_CRASH_AT", "before-commit:2")]);
    assert!(!status.success(), "the hook aborts the process");
    let after_first = common::stored(&db, &group, &topic).await;
    let committed: i64 = after_first.offsets.values().sum();
    assert!(
        committed > 0 && committed <= 25,
        "exactly one batch committed, got offsets {:?}",
        after_first.offsets
    );

    // Killed right after the 3rd batch's COMMIT, before anything else (Kafka commit, log).
    let status = run_binary(&env, &[("SPINE_CRASH_AT", "after-commit:3")]);
    assert!(!status.success());

    // Then to the end.
    assert!(run_binary(&env, &[]).success());
    assert_exactly_once(&db, &group, &topic, &events, dead).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_at_random_instants_while_events_arrive_loses_nothing() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let group = unique_name("group");
    let db = postgres().fresh_database().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let (records, events, dead) = workload(150);
    let env = common::env(&broker, &topic, &group, &db);

    // Produce in slices while a continuously running processor is SIGKILLed and restarted.
    let slices: Vec<&[Raw]> = records.chunks(records.len() / 6 + 1).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    // Each killed run's log, kept if the test fails.
    let logs = std::env::temp_dir().join(unique_name("spine-sigkill-logs"));
    std::fs::create_dir_all(&logs).expect("log dir");
    eprintln!("processor logs: {}", logs.display());
    for (run, slice) in slices.into_iter().enumerate() {
        produce(&broker, &topic, slice);
        let log = std::fs::File::create(logs.join(format!("run-{run}.log"))).expect("log file");
        let mut child = common::processor_command(&env)
            .env("LOG_FORMAT", "text")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn spine-processor");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let ms = 300 + seed % 2500;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
    assert!(
        run_binary(&env, &[]).success(),
        "a last run drains the rest"
    );
    assert_exactly_once(&db, &group, &topic, &events, dead).await;
    let _ = std::fs::remove_dir_all(&logs);
}
