//! Offsets ahead of (or behind) the log: the broker loses its data while Postgres keeps the
//! offsets read before. The processor must never skip the new records silently: with
//! `ON_DATA_LOSS=fail` it writes nothing and exits 3, with `continue` it reads the new log
//! from its start and records the gap (docs/architecture.md, "When the log lost records").
//!
//! "The broker loses its data" is a Tansu this test owns, stopped, its SQLite file deleted,
//! and started again on the same port: the topic is recreated and new records produced, so
//! each partition's new end is below the offset stored in Postgres. Records removed as
//! retention or compaction would remove them are rows deleted from that SQLite file while the
//! broker is stopped (Tansu 0.6 has neither DeleteRecords nor retention by offset).

mod common;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use common::{event, raw};
use spine_core::event::{Event, EventType};
use spine_testkit::kafka::{create_topic, high_watermarks, produce, Raw};
use spine_testkit::{free_port, postgres, unique_name, OwnedTansu, TestDb};

const PARTITIONS: i32 = 3;

/// `n` placed orders from id `from`, spread over the partitions.
fn events(from: u128, n: u128) -> (Vec<Raw>, Vec<Event>) {
    let events: Vec<Event> = (from..from + n)
        .map(|i| {
            event(
                "acme",
                &format!("ord-{i}"),
                EventType::OrderPlaced,
                i as i64,
                i + 1,
            )
        })
        .collect();
    let records = events
        .iter()
        .map(|e| raw((e.event_id.as_u128() % PARTITIONS as u128) as i32, e))
        .collect();
    (records, events)
}

/// Runs the real binary with `--available-now` to its end.
fn available_now(env: &[(String, String)], extra: &[(&str, &str)]) -> Output {
    let mut cmd = common::processor_command(env);
    cmd.arg("--available-now")
        .env("LOG_FORMAT", "text")
        .env("NO_COLOR", "1");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run spine-processor");
    eprintln!(
        "--- processor ({}) ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stops the broker, deletes its data and starts it again on the same port, empty.
fn wipe(broker: &mut OwnedTansu) {
    broker.stop();
    for entry in std::fs::read_dir(broker.dir()).expect("broker dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("tansu.db") {
            std::fs::remove_file(&path).expect("delete the broker's data");
        }
    }
    broker.resume();
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.connect()
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// The same, 0 while the table does not exist yet (the processor creates the schema).
async fn count_or_0(db: &TestDb, sql: &str) -> i64 {
    db.connect()
        .await
        .query_one(sql, &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// 300 events read, then the broker wiped and 90 new events produced to the recreated topic.
/// Returns the broker, the offsets stored before the wipe and the new events.
async fn read_then_wipe(
    db: &TestDb,
    topic: &str,
    group: &str,
) -> (OwnedTansu, BTreeMap<i32, i64>, Vec<Event>) {
    let mut broker = OwnedTansu::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, topic, PARTITIONS).await;
    let (records, _) = events(0, 300);
    produce(&bootstrap, topic, &records);
    let env = common::env(&bootstrap, topic, group, db);
    assert!(
        available_now(&env, &[]).status.success(),
        "the first run drains the topic"
    );
    let before = common::stored(db, group, topic).await;
    assert_eq!(before.event_rows, 300);

    wipe(&mut broker);
    create_topic(&bootstrap, topic, PARTITIONS).await;
    let (records, new) = events(1000, 90);
    produce(&bootstrap, topic, &records);
    let ends = high_watermarks(&bootstrap, topic, PARTITIONS);
    for (p, end) in ends.iter().enumerate() {
        assert!(
            before.offsets[&(p as i32)] > *end,
            "partition {p}: the stored offset is now beyond the log's end {end}"
        );
    }
    (broker, before.offsets, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_broker_stops_the_processor_with_exit_3_and_writes_nothing() {
    let db = postgres().fresh_database().await;
    let (topic, group) = (unique_name("events"), unique_name("group"));
    let (broker, stored, _) = read_then_wipe(&db, &topic, &group).await;
    let env = common::env(&broker.bootstrap(), &topic, &group, &db);

    let out = available_now(&env, &[]);
    assert_eq!(out.status.code(), Some(3), "exit status 3 on data loss");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one error line: {errors:?}");
    let line = errors[0];
    let p = (0..PARTITIONS)
        .find(|p| line.contains(&format!("partition {p}:")))
        .unwrap_or_else(|| panic!("no partition named in {line}"));
    for needle in [
        "data loss".to_string(),
        format!("topic {topic}"),
        format!("stored offset {}", stored[&p]),
        "beyond the log's range [0, ".to_string(),
    ] {
        assert!(line.contains(&needle), "{needle:?} missing from {line}");
    }

    // Nothing written: no event, no batch, the stored offsets as they were.
    let after = common::stored(&db, &group, &topic).await;
    assert_eq!(after.event_rows, 300);
    assert_eq!(after.offsets, stored);
    assert_eq!(count(&db, "SELECT count(*) FROM stream_gaps").await, 0);
    // And the same again on a restart: it does not go away by itself.
    assert_eq!(available_now(&env, &[]).status.code(), Some(3));
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_continue_a_wiped_broker_is_read_from_its_start_and_the_gap_recorded() {
    let db = postgres().fresh_database().await;
    let (topic, group) = (unique_name("events"), unique_name("group"));
    let (broker, stored, new) = read_then_wipe(&db, &topic, &group).await;
    let bootstrap = broker.bootstrap();
    let ends = high_watermarks(&bootstrap, &topic, PARTITIONS);
    let mut env = common::env(&bootstrap, &topic, &group, &db);
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    env.retain(|(k, _)| k != "METRICS_ADDR");
    env.push(("METRICS_ADDR".into(), metrics_addr.clone()));
    env.push(("ON_DATA_LOSS".into(), "continue".into()));

    let mut processor = common::KillOnDrop(
        common::processor_command(&env)
            .spawn()
            .expect("spawn spine-processor"),
    );
    common::eventually(
        Duration::from_secs(90),
        "the 90 new events stored",
        || async { count(&db, "SELECT count(*) FROM events").await == 390 },
    )
    .await;
    // Every partition's gap is committed with its first batch; wait for all three.
    common::eventually(
        Duration::from_secs(30),
        "the offsets at the new log's end",
        || async {
            let s = common::stored(&db, &group, &topic).await;
            (0..PARTITIONS).all(|p| s.offsets.get(&p) == Some(&ends[p as usize]))
        },
    )
    .await;
    let metrics = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    assert!(
        processor.0.try_wait().expect("status").is_none(),
        "still running"
    );
    drop(processor);

    let after = common::stored(&db, &group, &topic).await;
    for e in &new {
        assert!(
            after.events.contains_key(&e.event_id),
            "{} stored",
            e.event_id
        );
    }
    let c = db.connect().await;
    let gaps: Vec<(i32, i64, i64, String, String)> = c
        .query(
            "SELECT kafka_partition, from_offset, to_offset, reason, consumer_group
               FROM stream_gaps WHERE topic = $1 ORDER BY kafka_partition",
            &[&topic],
        )
        .await
        .expect("gaps")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let expected: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            (
                p,
                stored[&p],
                0,
                "offset_beyond_log_end".to_string(),
                group.clone(),
            )
        })
        .collect();
    assert_eq!(
        gaps, expected,
        "one gap per partition: from the stored offset to the new start"
    );
    for p in 0..PARTITIONS {
        let line = format!("spine_processor_data_loss_total{{partition=\"{p}\"}} 1");
        assert!(metrics.contains(&line), "{line:?} missing from\n{metrics}");
    }
    // The batches after the gap start at the new log's start and tile it.
    for p in 0..PARTITIONS {
        let ranges: Vec<(i64, i64)> = c
            .query(
                "SELECT start_offset, end_offset FROM stream_batch_partitions bp
                   JOIN stream_batches b USING (batch_id)
                  WHERE b.topic = $1 AND kafka_partition = $2
                    AND b.finished_at >= (SELECT detected_at FROM stream_gaps
                                           WHERE topic = $1 AND kafka_partition = $2)
                  ORDER BY batch_id",
                &[&topic, &p],
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
                "partition {p}: no gap, no overlap after the new start"
            );
            at = end;
        }
        assert_eq!(at, ends[p as usize]);
    }
    common::assert_tenant_stats_match(&db).await;
    drop(broker);
}

/// The loop itself, in this process, so the test sees the readiness `/readyz` serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_data_loss_readiness_goes_to_503_and_the_loop_stops_with_the_error() {
    use spine_core::ops::Readiness;
    use spine_processor::gaps::DataLoss;
    use spine_processor::stream::{self, LoopConfig};

    let db = postgres().fresh_database().await;
    let (topic, group) = (unique_name("events"), unique_name("group"));
    let (broker, _, _) = read_then_wipe(&db, &topic, &group).await;
    let cfg = LoopConfig {
        bootstrap: broker.bootstrap(),
        topic: topic.clone(),
        consumer_group: group.clone(),
        trigger: Duration::from_millis(100),
        max_batch_rows: 1000,
        ..LoopConfig::default()
    };
    let pool = spine_core::db::pool(db.config(), 2, Duration::from_secs(30)).expect("pool");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let consumer = stream::create_consumer(&cfg, pool, shutdown.clone()).expect("consumer");
    let readiness = Readiness::default();
    let seen = readiness.clone();
    let metrics = spine_processor::metrics::Metrics::new();
    let running =
        tokio::task::spawn_blocking(move || stream::run(&consumer, &cfg, &metrics, &readiness));
    // Without the check it would run on (ready, reading nothing); stop it then.
    let stopper = shutdown.clone();
    let guard = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        stopper.cancel();
    });
    let result = running.await.expect("join");
    guard.abort();
    assert!(!shutdown.is_cancelled(), "it stopped by itself: {result:?}");
    let error = result.expect_err("data loss is an error");
    let loss = error.downcast_ref::<DataLoss>().expect("a DataLoss error");
    assert_eq!(loss.topic, topic);
    assert!(!seen.get(), "/readyz answers 503");
    drop(broker);
}

/// The broker loses its data while the processor runs: its next fetch is past the new log's
/// end. It must not wait there forever, reading nothing: it stops, and as started again it
/// stops with exit 3 having written nothing.
///
/// Today the first stop is not ours: librdkafka 2.12.1 crashes (SIGSEGV in its metadata
/// cache, `rd_kafka_metadata_cache_find`) when the topic it reads is recreated under it on
/// Tansu. The test accepts any failed exit there, so it keeps passing once that is fixed and
/// the fetch's offset-out-of-range error (see `stream/run.rs`) stops the run with exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_wiped_under_a_running_processor_stops_it_and_it_stays_stopped() {
    let db = postgres().fresh_database().await;
    let (topic, group) = (unique_name("events"), unique_name("group"));
    let mut broker = OwnedTansu::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    let (records, _) = events(0, 300);
    produce(&bootstrap, &topic, &records);
    let env = common::env(&bootstrap, &topic, &group, &db);
    let log_path = std::env::temp_dir().join(unique_name("spine-wiped-under-it.log"));
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut processor = common::KillOnDrop(
        common::processor_command(&env)
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn spine-processor"),
    );
    common::eventually(Duration::from_secs(60), "300 events stored", || async {
        count_or_0(&db, "SELECT count(*) FROM events").await == 300
    })
    .await;

    wipe(&mut broker);
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    let (records, _) = events(1000, 90);
    produce(&bootstrap, &topic, &records);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = processor.0.try_wait().expect("status") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 90 s after the broker lost its data"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = std::fs::read_to_string(&log_path).expect("the processor's log");
    eprintln!("{log}");
    let _ = std::fs::remove_file(&log_path);
    assert!(!status.success(), "{status:?}");
    if status.code() == Some(3) {
        assert!(log.contains("data loss on topic"), "the error line");
    }
    let out = available_now(&env, &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "restarted, it stops on the data loss"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM events").await,
        300,
        "nothing new written"
    );
    drop(broker);
}

/// Runs `sql` on the stopped broker's SQLite file (Tansu keeps each record as a row), then
/// starts it again: the way to make it lose chosen records, as compaction or retention would.
fn edit_log(broker: &mut OwnedTansu, sql: &str) {
    broker.stop();
    let db = broker.dir().join("tansu.db");
    let status = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(sql)
        .status()
        .expect("sqlite3 (scripts/setup.sh installs it)");
    assert!(status.success(), "{sql}");
    broker.resume();
}

/// The `topition` (Tansu's topic-partition id) of partition 0 of `topic`, in SQL.
fn partition_0(topic: &str) -> String {
    format!(
        "(SELECT t.id FROM topition t JOIN topic p ON t.topic = p.id \
          WHERE p.name = '{topic}' AND t.partition = 0)"
    )
}

fn on_partition_0((records, _): (Vec<Raw>, Vec<Event>)) -> Vec<Raw> {
    records
        .into_iter()
        .map(|r| Raw { partition: 0, ..r })
        .collect()
}

/// Offsets without a record between two records (compaction leaves these; so do transaction
/// markers). `fail` stops at the gap and writes nothing of the batch it was in; `continue`
/// records the gap and stores everything there is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_missing_between_two_records_are_never_silent() {
    let mut broker = OwnedTansu::start();
    let bootstrap = broker.bootstrap();
    let topic = unique_name("events");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, &on_partition_0(events(0, 20)));
    let tp = partition_0(&topic);
    edit_log(
        &mut broker,
        &format!("DELETE FROM record WHERE topition = {tp} AND offset_id IN (10, 11);"),
    );

    let db = postgres().fresh_database().await;
    let group = unique_name("group");
    let mut env = common::env(&bootstrap, &topic, &group, &db);
    let out = available_now(&env, &[]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("data loss on topic")
            && stderr.contains("offsets 10..11 were never delivered"),
        "the error line names the gap"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 0);

    env.push(("ON_DATA_LOSS".into(), "continue".into()));
    assert!(available_now(&env, &[]).status.success());
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 18);
    assert_eq!(
        the_gap(&db).await,
        (10, 12, "offsets_missing_in_log".to_string())
    );
    assert_eq!(common::stored(&db, &group, &topic).await.offsets[&0], 20);
    drop(broker);
}

/// Retention removed records the group had not read yet (stored offset < the log's start).
/// `fail` stops; `continue` resumes at the log's start and records the gap; a group that never
/// read the topic starts at the log's start, which loses nothing of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_removed_before_they_were_read_are_data_loss_but_not_for_a_new_group() {
    let mut broker = OwnedTansu::start();
    let bootstrap = broker.bootstrap();
    let topic = unique_name("events");
    create_topic(&bootstrap, &topic, 1).await;
    produce(&bootstrap, &topic, &on_partition_0(events(0, 30)));
    let db = postgres().fresh_database().await;
    let group = unique_name("group");
    let mut env = common::env(&bootstrap, &topic, &group, &db);
    assert!(available_now(&env, &[]).status.success());
    produce(&bootstrap, &topic, &on_partition_0(events(100, 30)));
    let tp = partition_0(&topic);
    edit_log(
        &mut broker,
        &format!(
            "DELETE FROM record WHERE topition = {tp} AND offset_id < 45;
             UPDATE watermark SET low = 45 WHERE topition = {tp};"
        ),
    );

    let out = available_now(&env, &[]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stored offset 30 is before the log's range [45, 60)"),
        "the error line"
    );
    env.push(("ON_DATA_LOSS".into(), "continue".into()));
    assert!(available_now(&env, &[]).status.success());
    assert_eq!(count(&db, "SELECT count(*) FROM events").await, 45);
    assert_eq!(
        the_gap(&db).await,
        (30, 45, "offset_before_log_start".to_string())
    );

    // A new group (fail, the default) reads what the log holds, from its start.
    let fresh_db = postgres().fresh_database().await;
    let fresh = common::env(&bootstrap, &topic, &unique_name("group"), &fresh_db);
    assert!(available_now(&fresh, &[]).status.success());
    assert_eq!(count(&fresh_db, "SELECT count(*) FROM events").await, 15);
    drop(broker);
}

/// The one `stream_gaps` row: `(from_offset, to_offset, reason)`.
async fn the_gap(db: &spine_testkit::TestDb) -> (i64, i64, String) {
    let gap = db
        .connect()
        .await
        .query_one(
            "SELECT from_offset, to_offset, reason FROM stream_gaps",
            &[],
        )
        .await
        .expect("one gap");
    (gap.get(0), gap.get(1), gap.get(2))
}
