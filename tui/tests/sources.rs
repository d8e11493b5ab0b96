//! The sources against real servers: the topic tail and `peek` against a Tansu broker (the
//! project's local Kafka-API broker), the API poller against an HTTP server on a real socket, and
//! the API source falling back to it when the API has no stream (riding on the stream:
//! `push.rs`).

mod common;

use std::time::{Duration, Instant};

use common::{event_json, raw};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use spine_testkit::kafka::{create_topic, produce};
use spine_testkit::OwnedTansu;
use spine_testkit::{tansu, unique_name};
use spine_tui::app::{BrokerReport, Feed, FetchError, Msg};
use spine_tui::model::{TailBody, TailRecord};
use spine_tui::sources::api::{self, ApiClient};
use spine_tui::sources::stream;
use spine_tui::sources::topic::{self, TailConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Receives from the tail until `done` says so, collecting the records; fails after `timeout`.
async fn collect_until(
    rx: &mut mpsc::Receiver<Msg>,
    records: &mut Vec<TailRecord>,
    reports: &mut Vec<BrokerReport>,
    timeout: Duration,
    mut done: impl FnMut(&[TailRecord], &[BrokerReport]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(records, reports) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Msg::Tail { records: batch, .. })) => records.extend(batch),
            Ok(Some(Msg::Broker { report, .. })) => reports.push(report),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the tail stopped"),
            Err(_) => panic!("timed out: {} records, reports {reports:?}", records.len()),
        }
    }
}

fn tenant_of(r: &TailRecord) -> Option<&str> {
    r.tenant().map(|t| t.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_reads_history_then_new_records_malformed_ones_included_and_commits_nothing() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_tail");
    create_topic(&bootstrap, &topic, 3).await;
    let history: Vec<_> = (0..30)
        .map(|i| {
            raw(
                i % 3,
                "acme",
                &event_json("acme", "order_placed", &format!("old-{i}"), 100 + i as i64),
            )
        })
        .collect();
    produce(&bootstrap, &topic, &history);

    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let mut config = TailConfig::new(&bootstrap, &topic);
    config.backfill = 15; // 5 a partition
    let group = config.group.clone();
    let tail = topic::spawn(config, tx, cancel.clone());

    let (mut records, mut reports) = (Vec::new(), Vec::new());
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |r, _| r.len() >= 15,
    )
    .await;
    assert!(
        reports.contains(&BrokerReport::Up { partitions: 3 }),
        "{reports:?}"
    );
    assert_eq!(records.len(), 15, "5 records of history a partition");
    assert!(
        records.iter().all(|r| r.backfill && r.offset >= 5),
        "the newest 5 of each partition"
    );

    // New records, a malformed one among them, arrive as they are produced.
    produce(
        &bootstrap,
        &topic,
        &[
            raw(
                0,
                "globex",
                &event_json("globex", "order_paid", "new-1", 4200),
            ),
            raw(1, "acme", b"{\"not\": \"an event\"}"),
            raw(
                2,
                "initech",
                &event_json("initech", "order_shipped", "new-2", 1),
            ),
        ],
    );
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |r, _| r.len() >= 18,
    )
    .await;
    let new = &records[15..];
    assert!(new.iter().all(|r| !r.backfill));
    let malformed = new
        .iter()
        .find(|r| r.is_malformed())
        .expect("the malformed record is kept");
    assert_eq!(
        (malformed.partition, malformed.offset, tenant_of(malformed)),
        (1, 10, Some("acme"))
    );
    match &malformed.body {
        TailBody::Malformed { reason, .. } => assert!(
            reason.as_str().contains("missing field `event_id`"),
            "{reason}"
        ),
        TailBody::Event(_) => unreachable!(),
    }
    let paid = new
        .iter()
        .find(|r| tenant_of(r) == Some("globex"))
        .expect("globex");
    match &paid.body {
        TailBody::Event(e) => assert_eq!((e.order_id.as_str(), e.amount_cents), ("new-1", 4200)),
        TailBody::Malformed { .. } => unreachable!(),
    }

    cancel.cancel();
    tokio::task::spawn_blocking(move || tail.join())
        .await
        .expect("join")
        .expect("tail thread");

    // Nothing was committed under the tail's group id (nor could it be: it never subscribed).
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .create()
        .expect("probe");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&topic, p);
    }
    let committed = probe
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    for e in committed.elements() {
        assert!(
            matches!(e.offset(), Offset::Invalid),
            "partition {} has a committed offset {:?}",
            e.partition(),
            e.offset()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_says_when_the_broker_is_down_and_recovers_when_it_returns() {
    let mut broker = OwnedTansu::start();
    let bootstrap = broker.bootstrap();
    let topic = unique_name("tui_down");
    create_topic(&bootstrap, &topic, 1).await;

    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let _tail = topic::spawn(TailConfig::new(&bootstrap, &topic), tx, cancel.clone());
    let (mut records, mut reports) = (Vec::new(), Vec::new());
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |_, r| r.contains(&BrokerReport::Up { partitions: 1 }),
    )
    .await;
    produce(
        &bootstrap,
        &topic,
        &[raw(
            0,
            "acme",
            &event_json("acme", "order_placed", "before", 1),
        )],
    );
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |r, _| !r.is_empty(),
    )
    .await;

    broker.stop();
    let stopped = Instant::now();
    reports.clear();
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |_, r| r.iter().any(|r| matches!(r, BrokerReport::Down { .. })),
    )
    .await;
    let noticed = stopped.elapsed();
    assert!(
        noticed < Duration::from_secs(10),
        "noticed the broker down after {noticed:?}"
    );

    broker.resume();
    let resumed = Instant::now();
    reports.clear();
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(60),
        |_, r| r.contains(&BrokerReport::Up { partitions: 1 }),
    )
    .await;
    let recovered = resumed.elapsed();
    produce(
        &bootstrap,
        &topic,
        &[raw(
            0,
            "acme",
            &event_json("acme", "order_paid", "after", 2),
        )],
    );
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |r, _| r.len() >= 2,
    )
    .await;
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1],
        "nothing lost, nothing twice"
    );
    eprintln!("broker down noticed in {noticed:?}, recovery in {recovered:?}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_prints_the_newest_records_as_json_lines() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_peek");
    create_topic(&bootstrap, &topic, 3).await;
    // One at a time, so their timestamps order them.
    for i in 0..8 {
        let value = if i == 6 {
            b"\x1b[2J not json".to_vec()
        } else {
            event_json("acme", "order_paid", &format!("ord-{i}"), i)
        };
        produce(&bootstrap, &topic, &[raw(i as i32 % 3, "acme", &value)]);
        std::thread::sleep(Duration::from_millis(5));
    }

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_spine-tui"))
        .args([
            "peek",
            "--num",
            "5",
            "--brokers",
            &bootstrap,
            "--topic",
            &topic,
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    let orders: Vec<String> = lines
        .iter()
        .map(|l| {
            let value = l["value"].as_str().unwrap_or_default();
            serde_json::from_str::<serde_json::Value>(value).map_or("malformed".into(), |v| {
                v["order_id"].as_str().unwrap_or("?").into()
            })
        })
        .collect();
    assert_eq!(
        orders,
        ["ord-3", "ord-4", "ord-5", "malformed", "ord-7"],
        "{stdout}"
    );
    assert_eq!(
        lines[3]["malformed"]
            .as_str()
            .map(|m| m.starts_with("not a valid event JSON object")),
        Some(true)
    );
    assert!(!stdout.contains('\u{1b}'), "escaped as JSON: {stdout}");
    assert_eq!(lines[4]["topic"], topic.as_str());
    assert_eq!(lines[4]["key"], "acme");
    assert_eq!(
        (lines[4]["partition"].as_i64(), lines[4]["offset"].as_i64()),
        (Some(1), Some(2))
    );
    assert!(lines[4]["timestamp"].as_i64().is_some());

    // A topic that does not exist, a broker that does not answer: one line, non-zero exit.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_spine-tui"))
        .args([
            "peek",
            "--brokers",
            &bootstrap,
            "--topic",
            "no_such_topic_here",
        ])
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        format!("spine-tui: topic no_such_topic_here does not exist on {bootstrap}")
    );
    let dead = std::process::Command::new(env!("CARGO_BIN_EXE_spine-tui"))
        .args([
            "peek",
            "--brokers",
            &format!("127.0.0.1:{}", spine_testkit::free_port()),
            "--timeout-secs",
            "3",
        ])
        .env("RUST_LOG", "off")
        .output()
        .expect("runs");
    assert!(!dead.status.success());
    assert!(String::from_utf8_lossy(&dead.stderr)
        .starts_with("spine-tui: cannot reach the broker at 127.0.0.1:"));
}

/// A stand-in for spine-api with the documented JSON shapes.
fn fake_api() -> axum::Router {
    use axum::routing::get;
    use axum::Json;
    axum::Router::new()
        .route(
            "/orders",
            get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                let tenant = q.get("tenant").cloned().unwrap_or_else(|| "acme".into());
                Json(serde_json::json!({"orders": [{"tenant": tenant, "order_id": "ord-1", "status": "order_paid",
                    "amount_cents": 12999, "currency": "USD", "updated_at": "2026-11-25T12:00:00.123456Z"}], "as_of_batch": 42}))
            }),
        )
        .route(
            "/stats",
            get(|| async {
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({"error": "tenant: expected 1 to 64 characters"})),
                )
            }),
        )
        .route("/batches", get(|| async { "not json" }))
}

async fn next(rx: &mut mpsc::Receiver<Msg>) -> spine_tui::app::ApiPoll {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Msg::Api(poll))) => poll,
        other => panic!("expected a poll, got {other:?}"),
    }
}

#[tokio::test]
async fn the_api_poller_reports_what_each_route_answered_and_recovers() {
    let port = spine_testkit::free_port();
    let client = ApiClient::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let (tx, mut rx) = mpsc::channel(8);
    let (tenant_tx, tenant_rx) = watch::channel(None);
    let cancel = CancellationToken::new();
    tokio::spawn(api::run(client, tx, tenant_rx, cancel.clone()));

    let down = next(&mut rx).await;
    for e in [down.orders.err(), down.stats.err(), down.batches.err()] {
        assert!(
            matches!(&e, Some(FetchError::Unreachable(m)) if m.contains("refused")),
            "{e:?}"
        );
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the same port");
    tokio::spawn(async move { axum::serve(listener, fake_api()).await });
    let started = Instant::now();
    let up = loop {
        let poll = next(&mut rx).await;
        if poll.orders.is_ok() {
            break poll;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "no recovery");
    };
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "picked up within a poll or two"
    );
    assert_eq!(up.orders.expect("orders").orders[0].tenant.as_str(), "acme");
    assert_eq!(
        up.stats.err(),
        Some(FetchError::Status {
            code: 400,
            message: "tenant: expected 1 to 64 characters".into()
        })
    );
    assert!(matches!(up.batches, Err(FetchError::Invalid(_))));

    // A new tenant filter is asked for at once, not at the next tick.
    tenant_tx.send_replace(Some("globex".into()));
    let asked = Instant::now();
    let filtered = next(&mut rx).await;
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(filtered.tenant.as_ref().map(|t| t.as_str()), Some("globex"));
    assert_eq!(
        filtered.orders.expect("orders").orders[0].tenant.as_str(),
        "globex"
    );
    cancel.cancel();
}

/// An API without `GET /stream` (this stand-in answers 404 there): the source says it polls,
/// and polls once a second as before.
#[tokio::test]
async fn without_a_stream_the_api_source_polls_and_says_so() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, fake_api()).await });
    let (tx, mut rx) = mpsc::channel(8);
    let (_tenant_tx, tenant_rx) = watch::channel(None);
    let cancel = CancellationToken::new();
    let client = ApiClient::new(&base).expect("client");
    tokio::spawn(stream::run(client, tx, tenant_rx, cancel.clone()));
    match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        Ok(Some(Msg::Feed(Feed::Poll))) => {}
        other => panic!("expected polling to be said first, got {other:?}"),
    }
    let first = next(&mut rx).await;
    assert_eq!(first.orders.expect("orders").as_of_batch, Some(42));
    let second = next(&mut rx).await;
    let apart = (second.at - first.at).as_seconds_f64();
    assert!(
        apart > 0.5,
        "polled once a second, not in a loop: {apart} s"
    );
    cancel.cancel();
}

/// Metadata is read again and again: a topic that appears later (the producer creates it) is
/// found, with all its partitions, and read from its start. (Tansu cannot add partitions to a
/// topic, which the same code path handles.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_waits_for_a_missing_topic_and_picks_up_its_partitions() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_later");
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let _tail = topic::spawn(TailConfig::new(&bootstrap, &topic), tx, cancel.clone());
    let (mut records, mut reports) = (Vec::new(), Vec::new());
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |_, r| r.contains(&BrokerReport::TopicMissing),
    )
    .await;

    create_topic(&bootstrap, &topic, 3).await;
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |_, r| r.contains(&BrokerReport::Up { partitions: 3 }),
    )
    .await;
    produce(
        &bootstrap,
        &topic,
        &[
            raw(0, "acme", &event_json("acme", "order_placed", "a", 1)),
            raw(2, "acme", &event_json("acme", "order_placed", "b", 1)),
        ],
    );
    collect_until(
        &mut rx,
        &mut records,
        &mut reports,
        Duration::from_secs(30),
        |r, _| r.len() >= 2,
    )
    .await;
    let mut seen: Vec<(i32, i64)> = records.iter().map(|r| (r.partition, r.offset)).collect();
    seen.sort();
    assert_eq!(seen, [(0, 0), (2, 0)]);
    cancel.cancel();
}
