//! `GET /stream` with everything real: the broker (Tansu), Postgres, the processor binary
//! writing batches, the API on port 0, and `curl -N` as the subscriber.

mod stream_support;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use spine_api::live_ends::LiveEnds;
use spine_testkit::kafka::{create_topic, produce, Raw};
use spine_testkit::{bin_command, free_port, tansu, unique_name, KillOnDrop, TestDb};
use stream_support::{parse, Event, Server};
use tokio::io::{AsyncBufReadExt, BufReader};

const PARTITIONS: i32 = 3;

fn record(partition: i32, tenant: &str, n: u64) -> Raw {
    let event = format!(
        r#"{{"event_id":"{}","tenant":"{tenant}","event_type":"order_placed","order_id":"o-{n}","amount_cents":100,"event_time":"{}"}}"#,
        uuid::Uuid::new_v4(),
        spine_core::event::format_time(&Utc::now())
    );
    Raw {
        partition,
        key: Some(tenant.as_bytes().to_vec()),
        value: Some(event.into_bytes()),
    }
}

/// The processor binary against the test's broker and database.
fn processor(bootstrap: &str, topic: &str, db: &TestDb, log: &std::path::Path) -> KillOnDrop {
    let mut cmd = bin_command("spine-processor");
    let log = std::fs::File::create(log).expect("log file");
    KillOnDrop(
        cmd.env("KAFKA_BOOTSTRAP", bootstrap)
            .env("TOPIC", topic)
            .env("CONSUMER_GROUP", "stream-processor")
            .env("DATABASE_URL", db.url())
            .env("METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("TRIGGER_INTERVAL_MS", "200")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spine-processor"),
    )
}

/// `curl -N` on `url`: its events, each with the instant it arrived.
fn curl(
    url: &str,
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<(Instant, Event)>,
) {
    let mut child = tokio::process::Command::new("curl")
        .args(["-sN", url])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut block = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.is_empty() {
                if let Some(e) = parse(&block) {
                    let _ = tx.send((Instant::now(), e));
                }
                block.clear();
            } else {
                block.push_str(&line);
                block.push('\n');
            }
        }
    });
    (child, rx)
}

async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(Instant, Event)>,
    within: Duration,
    what: &str,
) -> (Instant, Event) {
    tokio::time::timeout(within, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no event within {within:?}: {what}"))
        .expect("curl's stream ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_each_committed_batch_within_a_second_with_ids_one_by_one() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = stream_support::migrated_db().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let s = Server::serve(db, |a| a).await;
    let (_curl, mut events) = curl(&format!("{}/stream", s.base));
    let (_, reset) = next_event(&mut events, Duration::from_secs(10), "reset").await;
    assert_eq!((reset.event.as_str(), reset.id()), ("reset", 0));

    let dir = tempfile::tempdir().expect("temp dir");
    let _processor = processor(&broker, &topic, &s.db, &dir.path().join("processor.log"));
    let mut expected = 1;
    let mut lateness = Vec::new();
    let mut seen_orders = 0;
    for round in 0..6u64 {
        let records: Vec<Raw> = (0..9)
            .map(|i| record((i % 3) as i32, "acme", round * 100 + i))
            .collect();
        produce(&broker, &topic, &records);
        // Every batch the round makes, until the nine orders are in.
        let mut round_orders = 0;
        while round_orders < 9 {
            let (at, e) = next_event(&mut events, Duration::from_secs(30), "a batch").await;
            if e.event != "batch" {
                assert_eq!(e.event, "status", "{e:?}");
                continue;
            }
            assert_eq!(e.id(), expected, "batch ids one by one: {e:?}");
            expected += 1;
            let data: Value = e.json();
            let finished: DateTime<Utc> = data["batch"]["finished_at"]
                .as_str()
                .expect("finished_at")
                .parse()
                .expect("time");
            let arrived = Utc::now() - chrono::Duration::from_std(at.elapsed()).expect("d");
            lateness.push((arrived - finished).num_milliseconds());
            round_orders += data["orders"].as_array().expect("orders").len();
        }
        seen_orders += round_orders;
    }
    assert_eq!(seen_orders, 54);
    let worst = lateness.iter().max().copied().unwrap_or(0);
    assert!(
        worst < 1000,
        "a batch event arrived {worst} ms after its commit: {lateness:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_events_say_stalled_when_the_processor_is_killed() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = stream_support::migrated_db().await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let live = LiveEnds::new(&broker, &topic).expect("kafka client");
    let s = Server::serve(db, |a| a.with_live_ends(live)).await;
    let producing = Arc::new(AtomicBool::new(true));
    let producer = {
        let (producing, broker, topic) = (producing.clone(), broker.clone(), topic.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while producing.load(Ordering::Relaxed) {
                let records: Vec<Raw> = (0..3).map(|p| record(p, "acme", n + p as u64)).collect();
                produce(&broker, &topic, &records);
                n += 3;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let processor = processor(&broker, &topic, &s.db, &dir.path().join("processor.log"));
    let mut sse = s.subscribe("/stream", None).await;
    let state_of = |e: &Event| {
        e.json()["processor"]["state"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let e = sse
            .next_within(Duration::from_secs(10))
            .await
            .expect("stream");
        if e.event == "status" && state_of(&e) == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "never running");
    }
    drop(processor); // SIGKILL
    let deadline = Instant::now() + Duration::from_secs(45);
    let stalled = loop {
        let e = sse
            .next_within(Duration::from_secs(10))
            .await
            .expect("stream");
        if e.event == "status" && state_of(&e) == "stalled" {
            break e.json();
        }
        assert!(
            Instant::now() < deadline,
            "status never said stalled: last {e:?}"
        );
    };
    assert!(
        stalled["processor"]["lag_records"].as_i64().expect("lag") > 0,
        "{stalled}"
    );
    assert!(stalled["partitions"].as_array().expect("partitions").len() == 3);
    producing.store(false, Ordering::Relaxed);
    producer.join().expect("producer");
}
