//! What `GET /batches` says about the processor, against the real broker, Postgres and the
//! real processor binary: lag measured against the live end of the log, the processor's state
//! when it is killed while records keep arriving and when it comes back, and what the API says
//! when the broker does not answer.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spine_api::live_ends::LiveEnds;
use spine_api::AppState;
use spine_testkit::kafka::{create_topic, high_watermarks, produce, Raw};
use spine_testkit::{bin_command, free_port, postgres, tansu, unique_name, KillOnDrop, TestDb};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 3;

/// The API in this process on a free port, measuring lag against `bootstrap`'s `topic`.
struct Api {
    base: String,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

impl Api {
    async fn start(db: &TestDb, bootstrap: &str, topic: &str) -> Api {
        let state = AppState::connect(db.config())
            .expect("pools")
            .with_live_ends(LiveEnds::new(bootstrap, topic).expect("kafka client"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        tokio::spawn(spine_api::serve(listener, state, stop.clone()));
        Api {
            base,
            http: reqwest::Client::new(),
            _stop: stop.drop_guard(),
        }
    }

    async fn batches(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/batches", self.base))
            .send()
            .await
            .expect("GET /batches");
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }
}

async fn migrated_db() -> TestDb {
    let db = postgres().fresh_database().await;
    spine_core::schema::migrate(&mut db.connect().await)
        .await
        .expect("migrate");
    db
}

fn record(partition: i32, n: u64) -> Raw {
    let event = format!(
        r#"{{"event_id":"{}","tenant":"acme","event_type":"order_placed","order_id":"o-{n}","amount_cents":100,"event_time":"{}"}}"#,
        uuid::Uuid::new_v4(),
        spine_core::event::format_time(&chrono::Utc::now())
    );
    Raw {
        partition,
        key: Some(b"acme".to_vec()),
        value: Some(event.into_bytes()),
    }
}

/// `counts[p]` records into partition `p`.
fn produce_counts(bootstrap: &str, topic: &str, counts: &[u64]) {
    let records: Vec<Raw> = counts
        .iter()
        .enumerate()
        .flat_map(|(p, &n)| (0..n).map(move |i| record(p as i32, i)))
        .collect();
    produce(bootstrap, topic, &records);
}

/// The processor binary against the test's broker and database, logging to `log`.
fn processor(
    bootstrap: &str,
    topic: &str,
    db: &TestDb,
    metrics_port: u16,
    log: &std::path::Path,
    extra: &[&str],
) -> Child {
    let mut cmd = bin_command("spine-processor");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    cmd.env("KAFKA_BOOTSTRAP", bootstrap)
        .env("TOPIC", topic)
        .env("CONSUMER_GROUP", "stream-processor")
        .env("DATABASE_URL", db.url())
        .env("METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("TRIGGER_INTERVAL_MS", "200")
        .env("RUST_LOG", "info")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spine-processor")
}

/// Polls `/batches` until `check` holds, or panics after `timeout` with the last answer.
async fn until(api: &Api, timeout: Duration, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let b = api.batches().await;
        if check(&b) {
            return b;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "not within {timeout:?}: {what}; last answer: partitions {} processor {}",
                b["partitions"], b["processor"]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn state(b: &Value) -> &str {
    b["processor"]["state"].as_str().unwrap_or("?")
}

fn lag_records(b: &Value) -> i64 {
    b["processor"]["lag_records"].as_i64().unwrap_or(-1)
}

/// Stored next offset of each partition.
async fn next_offsets(db: &TestDb, topic: &str) -> Vec<i64> {
    let rows = db
        .connect()
        .await
        .query(
            "SELECT next_offset FROM stream_offsets WHERE topic = $1 ORDER BY kafka_partition",
            &[&topic],
        )
        .await
        .expect("offsets");
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_the_live_end_minus_the_committed_offset_and_an_offset_past_the_end_is_an_error() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = migrated_db().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    produce_counts(&broker, &topic, &[10, 20, 30]);
    let dir = tempfile::tempdir().expect("temp dir");
    let drained = processor(
        &broker,
        &topic,
        &db,
        free_port(),
        &dir.path().join("processor.log"),
        &["--available-now"],
    )
    .wait_with_output()
    .expect("processor ran");
    assert!(drained.status.success(), "--available-now run failed");

    // The processor is gone; the log goes on. The stored ends say 10, 20, 30.
    produce_counts(&broker, &topic, &[0, 5, 12]);
    let api = Api::start(&db, &broker, &topic).await;
    let b = api.batches().await;
    let ends = high_watermarks(&broker, &topic, PARTITIONS);
    let stored = next_offsets(&db, &topic).await;
    assert_eq!(stored, vec![10, 20, 30]);
    let parts = b["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), PARTITIONS as usize);
    for p in parts {
        let i = p["partition"].as_u64().expect("partition") as usize;
        assert_eq!(p["high_watermark_source"], "broker", "{p}");
        assert_eq!(p["high_watermark"].as_i64(), Some(ends[i]), "{p}");
        assert_eq!(p["lag"].as_i64(), Some(ends[i] - stored[i]), "{p}");
        assert_eq!(p["lag_error"], Value::Null);
    }
    assert_eq!(
        lag_records(&b),
        17,
        "0 + 5 + 12 records arrived since the last batch"
    );
    assert_eq!(
        b["processor"]["state"], "down",
        "stopped cleanly a moment ago: no heartbeat, and not yet long enough without a batch \
         to call the waiting records stalled"
    );
    assert_eq!(
        b["processor"]["replicas"],
        serde_json::json!([]),
        "a processor that stopped cleanly takes its heartbeat away"
    );

    // An offset stored past the end of the log (a topic re-created under the processor) is an
    // error to see, not a lag of 0.
    db.connect()
        .await
        .execute(
            "UPDATE stream_offsets SET next_offset = 45 WHERE topic = $1 AND kafka_partition = 2",
            &[&topic],
        )
        .await
        .expect("move the offset");
    let b = until(&api, Duration::from_secs(10), "the error shows", |b| {
        b["partitions"][2]["lag_error"].is_string()
    })
    .await;
    assert_eq!(
        b["partitions"][2]["lag_error"],
        "stored offset 45 is ahead of the log's end 42"
    );
    assert_eq!(b["partitions"][2]["lag"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_does_not_answer_leaves_the_stored_ends_marked_as_such() {
    let db = migrated_db().await;
    db.connect()
        .await
        .batch_execute(
            "INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset, high_watermark)
             VALUES ('g', 'events', 0, 5, 8), ('g', 'events', 1, 3, 3)",
        )
        .await
        .expect("seed");
    // Nothing listens there.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let api = Api::start(&db, &nowhere, "events").await;
    let b = api.batches().await;
    for p in b["partitions"].as_array().expect("partitions") {
        assert_eq!(p["high_watermark_source"], "stored", "{p}");
    }
    assert_eq!(b["partitions"][0]["lag"], 3);
    assert_eq!(b["partitions"][1]["lag"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_ends_come_back_with_the_broker() {
    let mut broker = spine_testkit::OwnedTansu::start();
    let topic = unique_name("events");
    create_topic(&broker.bootstrap(), &topic, 1).await;
    produce_counts(&broker.bootstrap(), &topic, &[4]);
    let db = migrated_db().await;
    db.connect()
        .await
        .execute(
            "INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset, high_watermark)
             VALUES ('g', $1, 0, 1, 1)",
            &[&topic],
        )
        .await
        .expect("seed");
    let api = Api::start(&db, &broker.bootstrap(), &topic).await;
    let source = |b: &Value| b["partitions"][0]["high_watermark_source"].clone();
    let b = until(&api, Duration::from_secs(30), "the broker's end", |b| {
        source(b) == "broker"
    })
    .await;
    assert_eq!(b["partitions"][0]["lag"], 3);

    broker.stop();
    let b = until(&api, Duration::from_secs(10), "the stored end", |b| {
        source(b) == "stored"
    })
    .await;
    assert_eq!(b["partitions"][0]["lag"], 0, "as stored at the last commit");

    broker.resume();
    let b = until(
        &api,
        Duration::from_secs(30),
        "the broker's end again",
        |b| source(b) == "broker",
    )
    .await;
    assert_eq!(b["partitions"][0]["lag"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_make_one_broker_call() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    create_topic(&broker, &topic, PARTITIONS).await;
    produce_counts(&broker, &topic, &[1, 2, 3]);
    let live = Arc::new(LiveEnds::new(&broker, &topic).expect("client"));
    let answers = futures::future::join_all((0..1000).map(|_| {
        let live = live.clone();
        tokio::spawn(async move { live.get().await })
    }))
    .await;
    assert_eq!(live.broker_calls(), 1);
    for a in answers {
        let ends = a.expect("task").expect("the broker answered");
        assert_eq!(ends.values().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_processor_is_stalled_while_records_wait_and_running_again_when_back() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = migrated_db().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let api = Api::start(&db, &broker, &topic).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("processor.log");

    // Records keep arriving, as from the producer, until the end of the test.
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (producing, broker, topic) = (producing.clone(), broker.clone(), topic.clone());
        std::thread::spawn(move || {
            while producing.load(Ordering::Relaxed) {
                produce_counts(&broker, &topic, &[2, 2, 2]);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let metrics_port = free_port();
    let first = KillOnDrop(processor(&broker, &topic, &db, metrics_port, &log, &[]));
    let b = until(&api, Duration::from_secs(60), "running", |b| {
        state(b) == "running"
            && b["processor"]["replicas"][0]["assigned_partitions"] == serde_json::json!([0, 1, 2])
    })
    .await;
    assert_eq!(b["processor"]["trigger_interval_ms"], 200);
    let newest = &b["batches"][0];
    assert!(newest["max_event_time"].is_string(), "{newest}");
    assert!(newest["max_broker_timestamp"].is_string(), "{newest}");
    // Where its time went: the wait since its newest record reached the broker, at least.
    assert!(
        newest["queued_ms"].as_f64().is_some_and(|q| q >= 0.0),
        "{newest}"
    );
    assert!(
        newest["process_rate"].as_f64().is_some_and(|r| r > 0.0),
        "{newest}"
    );
    assert!(
        b["processor"]["event_time_lag_s"].is_f64(),
        "{}",
        b["processor"]
    );

    // Its metrics, while it runs.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "spine_processor_lag_records{partition=\"0\"}",
        "spine_processor_lag_seconds ",
        "spine_processor_last_batch_timestamp_seconds ",
        "spine_build_info{version=",
        "process_resident_memory_bytes ",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }

    // SIGKILL: no clean-up, the heartbeat row stays and ages.
    drop(first);
    let b = until(&api, Duration::from_secs(30), "stalled with lag", |b| {
        state(b) == "stalled" && lag_records(b) > 0
    })
    .await;
    let (lag, age) = (
        lag_records(&b),
        b["processor"]["last_batch_age_s"].as_f64().expect("age"),
    );
    until(&api, Duration::from_secs(10), "lag and age growing", |b| {
        lag_records(b) > lag
            && b["processor"]["last_batch_age_s"]
                .as_f64()
                .is_some_and(|a| a > age)
            && state(b) == "stalled"
    })
    .await;

    let _second = KillOnDrop(processor(&broker, &topic, &db, free_port(), &log, &[]));
    until(&api, Duration::from_secs(60), "running again", |b| {
        state(b) == "running"
    })
    .await;
    producing.store(false, Ordering::Relaxed);
    producer.join().expect("producer thread");
    let b = until(&api, Duration::from_secs(60), "caught up", |b| {
        lag_records(b) == 0
    })
    .await;
    assert_eq!(state(&b), "running");

    // Its log file is plain text: no terminal colour codes.
    let text = std::fs::read(&log).expect("log");
    assert!(text.len() > 100, "the processor logged");
    assert!(
        !text.contains(&0x1b),
        "ANSI escapes in a log file:\n{}",
        String::from_utf8_lossy(&text)
    );
}
