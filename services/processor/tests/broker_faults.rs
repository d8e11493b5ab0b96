//! Broker faults and several replicas, against librdkafka's in-process mock cluster (a real
//! group coordinator, and faults on demand) and a real Postgres.

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::time::Duration;

use common::{event, raw};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use spine_core::event::{Event, EventType};
use spine_testkit::kafka::{produce, Raw};
use spine_testkit::{postgres, unique_name, TestDb};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 3;

fn events(from: u128, n: u128) -> (Vec<Raw>, Vec<Event>) {
    let tenants = ["acme", "globex", "initech"];
    let events: Vec<Event> = (from..from + n)
        .map(|i| {
            event(
                tenants[(i % 3) as usize],
                &format!("ord-{i}"),
                EventType::OrderPlaced,
                i as i64,
                i + 1,
            )
        })
        .collect();
    let records = events
        .iter()
        .map(|e| raw((e.event_id.as_u128() % 3) as i32, e))
        .collect();
    (records, events)
}

/// The stored event ids (none while the processor has not created the schema yet).
async fn stored_ids(db: &TestDb) -> BTreeSet<uuid::Uuid> {
    db.connect()
        .await
        .query("SELECT event_id FROM events", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default()
}

async fn wait_for_events(db: &TestDb, n: usize, within: Duration) {
    common::eventually(within, &format!("{n} events in Postgres"), || async {
        stored_ids(db).await.len() >= n
    })
    .await;
}

async fn assert_exactly_once(db: &TestDb, produced: &[Event]) {
    let c = db.connect().await;
    let rows: i64 = c
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("count")
        .get(0);
    let expected: BTreeSet<_> = produced.iter().map(|e| e.event_id).collect();
    assert_eq!(stored_ids(db).await, expected);
    assert_eq!(rows as usize, expected.len(), "no event twice");
    common::assert_tenant_stats_match(db).await;
    assert_eq!(
        common::batched_rows(db).await as usize,
        produced.len(),
        "every record in exactly one committed batch"
    );
}

fn mock_cluster(topic: &str) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(topic, PARTITIONS, 1).expect("topic");
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_going_away_and_failing_fetches_lose_nothing() {
    let topic = unique_name("events");
    let cluster = mock_cluster(&topic);
    let bootstrap = cluster.bootstrap_servers();
    let db = postgres().fresh_database().await;
    let (first, mut all) = events(0, 300);
    produce(&bootstrap, &topic, &first);

    let stop = CancellationToken::new();
    let args = common::args(&bootstrap, &topic, "g", &db, &[]);
    let processor = tokio::spawn(spine_processor::run(args, stop.clone()));
    wait_for_events(&db, 300, Duration::from_secs(60)).await;

    // The broker goes away for a while: the processor keeps running and retries.
    cluster.broker_down(1).expect("down");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!processor.is_finished(), "a missing broker is not fatal");
    cluster.broker_up(1).expect("up");

    // Then fetches fail for a while (leader changes, timeouts) while new events arrive.
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5]
            .into_iter()
            .chain([RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 5])
            .collect::<Vec<_>>(),
    );
    let (second, more) = events(300, 300);
    let bootstrap2 = bootstrap.clone();
    let topic2 = topic.clone();
    tokio::task::spawn_blocking(move || produce(&bootstrap2, &topic2, &second))
        .await
        .expect("produce");
    all.extend(more);
    wait_for_events(&db, 600, Duration::from_secs(60)).await;

    stop.cancel();
    let summary = processor
        .await
        .expect("join")
        .expect("clean exit on shutdown");
    assert_eq!(summary.input_rows, 600);
    assert_exactly_once(&db, &all).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_group_split_the_partitions() {
    let topic = unique_name("events");
    let cluster = mock_cluster(&topic);
    let bootstrap = cluster.bootstrap_servers();
    let db = postgres().fresh_database().await;
    {
        // Migrate once up front so the two replicas race only on the stream.
        let mut c = db.connect().await;
        spine_core::schema::migrate(&mut c).await.expect("migrate");
    }
    let stop = CancellationToken::new();
    let a = tokio::spawn(spine_processor::run(
        common::args(&bootstrap, &topic, "shared", &db, &[]),
        stop.clone(),
    ));
    let b = tokio::spawn(spine_processor::run(
        common::args(&bootstrap, &topic, "shared", &db, &[]),
        stop.clone(),
    ));
    // Let both join before data flows, so the split is visible in who wrote what.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (records, all) = events(0, 900);
    let bs = bootstrap.clone();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || produce(&bs, &t, &records))
        .await
        .expect("produce");
    wait_for_events(&db, 900, Duration::from_secs(60)).await;
    stop.cancel();
    let (a, b) = (
        a.await.expect("join").expect("a"),
        b.await.expect("join").expect("b"),
    );
    assert!(
        a.input_rows > 0 && b.input_rows > 0,
        "both replicas worked: {a:?} {b:?}"
    );
    assert_eq!(
        a.input_rows + b.input_rows,
        900,
        "and no record was processed by both"
    );
    assert_exactly_once(&db, &all).await;
    drop(cluster);
}

/// A replica frozen in the middle of a batch (SIGSTOP: no heartbeats) loses its partitions to
/// the other replica; when it thaws, its stale batch is refused by the offset fence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replicas_stale_batch_is_refused() {
    let topic = unique_name("events");
    let cluster = mock_cluster(&topic);
    let bootstrap = cluster.bootstrap_servers();
    let db = postgres().fresh_database().await;
    let env = common::env(&bootstrap, &topic, "shared", &db);
    let (first, mut all) = events(0, 300);
    produce(&bootstrap, &topic, &first);

    // Replica A pauses before writing its first batch; we freeze it right there.
    let mut a = common::KillOnDrop(
        common::processor_command(&env)
            .env("SPINE_CRASH_AT", "pause-before-write:1")
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn A"),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = a.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("A| {line}");
            let _ = tx.send(line);
        }
    });
    let wait_line = |needle: &str, secs: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("replica A never logged {needle:?}"),
            }
        }
    };
    wait_line("pausing before writing batch 1", 60);
    let pid = a.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("SIGSTOP");

    // Replica B takes over once A's session expires, and writes everything.
    let stop = CancellationToken::new();
    let b = tokio::spawn(spine_processor::run(
        common::args(&bootstrap, &topic, "shared", &db, &[]),
        stop.clone(),
    ));
    wait_for_events(&db, 300, Duration::from_secs(60)).await;

    // A thaws and tries to write the batch it cut long ago: refused, nothing written twice.
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("SIGCONT");
    wait_line("another writer committed this partition ahead of us", 30);

    // Both keep going: new events are still written exactly once.
    let (second, more) = events(300, 150);
    let bs = bootstrap.clone();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || produce(&bs, &t, &second))
        .await
        .expect("produce");
    all.extend(more);
    wait_for_events(&db, 450, Duration::from_secs(60)).await;
    drop(a);
    stop.cancel();
    b.await.expect("join").expect("b");
    assert_exactly_once(&db, &all).await;
    drop(cluster);
}

/// With `auto.offset.reset=error`, a fetch answered "offset out of range" stops that partition
/// in librdkafka and is reported without saying which partition. The processor re-joins the
/// group, which checks every stored offset against its log again: here they are all inside
/// (the error was spurious), so it resumes where it was, rewinding nothing and losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_out_of_range_fetch_error_is_checked_and_reading_resumes() {
    let topic = unique_name("events");
    let cluster = mock_cluster(&topic);
    let bootstrap = cluster.bootstrap_servers();
    let db = postgres().fresh_database().await;
    let (first, mut all) = events(0, 300);
    produce(&bootstrap, &topic, &first);

    let stop = CancellationToken::new();
    let args = common::args(&bootstrap, &topic, "g", &db, &[]);
    let processor = tokio::spawn(spine_processor::run(args, stop.clone()));
    wait_for_events(&db, 300, Duration::from_secs(60)).await;

    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE; 3],
    );
    let (second, more) = events(300, 300);
    let bs = bootstrap.clone();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || produce(&bs, &t, &second))
        .await
        .expect("produce");
    all.extend(more);
    wait_for_events(&db, 600, Duration::from_secs(60)).await;

    stop.cancel();
    let summary = processor
        .await
        .expect("join")
        .expect("clean exit on shutdown");
    assert_eq!(summary.input_rows, 600, "nothing read twice");
    assert_exactly_once(&db, &all).await;
    let gaps: i64 = db
        .connect()
        .await
        .query_one("SELECT count(*) FROM stream_gaps", &[])
        .await
        .expect("gaps")
        .get(0);
    assert_eq!(gaps, 0, "nothing was lost");
    drop(cluster);
}

/// A fresh broker (or a recreated topic) meets an old database: the stored offsets are past the
/// log's end. With `--available-now` and a group that takes a while to hand out partitions, the
/// run must not read "stored offset ≥ the end at start" in Postgres as "caught up" and exit 0:
/// it waits for its partitions, finds the data loss, and stops with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn available_now_does_not_take_offsets_past_the_end_for_caught_up() {
    let topic = unique_name("events");
    let cluster = mock_cluster(&topic);
    let bootstrap = cluster.bootstrap_servers();
    let db = postgres().fresh_database().await;
    let (records, _) = events(0, 30);
    produce(&bootstrap, &topic, &records);
    {
        let mut c = db.connect().await;
        spine_core::schema::migrate(&mut c).await.expect("migrate");
        c.execute(
            "INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset)
             SELECT 'g', $1, p, 1000 FROM generate_series(0, 2) AS p",
            &[&topic],
        )
        .await
        .expect("old offsets");
    }
    // The coordinator is slow to let the member join.
    cluster.request_errors(
        RDKafkaApiKey::JoinGroup,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 5],
    );
    let args = common::args(&bootstrap, &topic, "g", &db, &["--available-now"]);
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        spine_processor::run(args, CancellationToken::new()),
    )
    .await
    .expect("the run ends");
    let error = result.expect_err("data loss, not caught up");
    assert!(
        error
            .downcast_ref::<spine_processor::gaps::DataLoss>()
            .is_some(),
        "{error:#}"
    );
    assert!(stored_ids(&db).await.is_empty(), "nothing written");
    drop(cluster);
}
