//! spine-tui riding on `GET /stream` (docs/contracts.md, "spine-tui") against the real
//! `spine-api` and `spine-processor` on a Tansu broker and a throwaway Postgres: the API
//! source says push and delivers a committed batch's orders without asking `/orders` again,
//! resubscribes on a new tenant filter, and polls (saying so) when the API goes; the real
//! binary in a real terminal (tmux) shows `· push` and a new order at once, and the API's
//! request counters show no `/orders` calls from it while it runs.
//!
//! The sibling binaries must be built first: `cargo build --workspace --bins`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::services::{kafka_env, tail_of_log, Service};
use common::tmux::{pane, spine_tui};
use common::{event_json, raw};
use spine_testkit::kafka::{create_topic, produce};
use spine_testkit::{free_port, postgres, tansu, unique_name, TestDb};
use spine_tui::app::{ApiPoll, Feed, FetchError, Msg};
use spine_tui::sources::api::ApiClient;
use spine_tui::sources::stream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// The broker, the processor and the API, for one test.
struct Spine {
    bootstrap: String,
    topic: String,
    api_url: String,
    api: Service,
    processor: Service,
    _db: TestDb,
}

impl Spine {
    async fn start(name: &str, logs: &Path) -> Spine {
        let db = postgres().fresh_database().await;
        let bootstrap = tansu().bootstrap();
        let topic = unique_name(name);
        create_topic(&bootstrap, &topic, 3).await;
        let processor = Service::start(
            "spine-processor",
            &kafka_env(
                &bootstrap,
                &topic,
                &[
                    ("CONSUMER_GROUP", unique_name(name)),
                    ("DATABASE_URL", db.url()),
                    ("TRIGGER_INTERVAL_MS", "200".into()),
                ],
            ),
            &[],
            logs,
        );
        let port = free_port();
        let api = Service::start_api(
            &[
                ("DATABASE_URL", db.url()),
                ("API_ADDR", format!("127.0.0.1:{port}")),
                ("KAFKA_BOOTSTRAP", bootstrap.clone()),
                ("TOPIC", topic.clone()),
            ],
            port,
            logs,
        );
        let spine = Spine {
            bootstrap,
            topic,
            api_url: format!("http://127.0.0.1:{port}"),
            api,
            processor,
            _db: db,
        };
        // The processor creates the tables at start: wait until the API can read them.
        let started = Instant::now();
        while reqwest::get(format!("{}/batches", spine.api_url))
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the schema never appeared\n{}",
                spine.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // An API started before the schema existed answers 503 on /stream until its listener
        // has read the newest batch (it asks again every second).
        while reqwest::get(format!("{}/stream", spine.api_url))
            .await
            .map_or(true, |r| r.status() != reqwest::StatusCode::OK)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the stream never opened\n{}",
                spine.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        spine
    }

    fn logs(&self) -> String {
        format!(
            "{}\n{}",
            self.processor.tail_of_log(),
            self.api.tail_of_log()
        )
    }

    /// `spine_api_requests_total` for exactly `route`, every status summed.
    async fn requests(&self, route: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.api_url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let prefix = format!("spine_api_requests_total{{route=\"{route}\"");
        text.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn produce_order(&self, partition: i32, tenant: &str, order: &str) {
        produce(
            &self.bootstrap,
            &self.topic,
            &[raw(
                partition,
                tenant,
                &event_json(tenant, "order_placed", order, 100),
            )],
        );
    }
}

/// The next message other than the tail's, or a panic after `within`.
async fn next(rx: &mut mpsc::Receiver<Msg>, within: Duration) -> Msg {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("a message in time")
        .expect("the source runs")
}

/// Rounds until one satisfies `done`; panics after `within`.
async fn round_until(
    rx: &mut mpsc::Receiver<Msg>,
    within: Duration,
    what: &str,
    done: impl Fn(&ApiPoll) -> bool,
) -> ApiPoll {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(Msg::Api(poll))) if done(&poll) => return poll,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the source stopped"),
            Err(_) => panic!("never {what}"),
        }
    }
}

fn has_order(poll: &ApiPoll, order: &str) -> bool {
    poll.orders
        .as_ref()
        .is_ok_and(|o| o.orders.iter().any(|o| o.order_id.as_str() == order))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_source_rides_on_the_stream_resubscribes_and_falls_back_to_polling() {
    let logs = tempfile::tempdir().expect("logs");
    let mut spine = Spine::start("tui_push", logs.path()).await;
    let client = ApiClient::new(&spine.api_url).expect("client");
    let (tx, mut rx) = mpsc::channel(64);
    let (tenant_tx, tenant_rx) = watch::channel(None);
    let cancel = CancellationToken::new();
    tokio::spawn(stream::run(client, tx, tenant_rx, cancel.clone()));

    assert_eq!(
        next(&mut rx, Duration::from_secs(10)).await,
        Msg::Feed(Feed::Push),
        "{}",
        spine.logs()
    );
    // The reset's snapshot, then status rounds.
    round_until(&mut rx, Duration::from_secs(10), "a snapshot", |p| {
        p.orders.is_ok() && p.stats.is_ok() && p.batches.is_ok()
    })
    .await;
    let orders_before = spine.requests("/orders").await;
    assert!(orders_before >= 1.0, "the snapshot asked /orders");

    // A committed batch arrives as a round, without asking /orders.
    spine.produce_order(0, "acme", "ord-pushed");
    let produced = Instant::now();
    let round = round_until(&mut rx, Duration::from_secs(30), "the pushed order", |p| {
        has_order(p, "ord-pushed")
    })
    .await;
    eprintln!(
        "produced to on screen: {} ms (trigger 200 ms)",
        produced.elapsed().as_millis()
    );
    assert!(round.batches.as_ref().is_ok_and(|b| !b.batches.is_empty()));
    // Rounds keep coming (status, about once a second) and none of them polls.
    let quiet = Instant::now();
    let mut rounds = 0;
    while quiet.elapsed() < Duration::from_secs(3) {
        if let Msg::Api(_) = next(&mut rx, Duration::from_secs(3)).await {
            rounds += 1;
        }
    }
    assert!(rounds >= 2, "status rounds: {rounds}");
    assert_eq!(
        spine.requests("/orders").await,
        orders_before,
        "/orders was asked while the stream was up"
    );

    // A new tenant filter: a new subscription, whose snapshot has only that tenant's orders.
    tenant_tx.send_replace(Some("globex".into()));
    spine.produce_order(1, "globex", "ord-globex");
    spine.produce_order(0, "acme", "ord-acme-later");
    let round = round_until(&mut rx, Duration::from_secs(30), "globex's order", |p| {
        p.tenant.as_ref().is_some_and(|t| t.as_str() == "globex") && has_order(p, "ord-globex")
    })
    .await;
    let orders = round.orders.expect("orders").orders;
    assert!(
        orders.iter().all(|o| o.tenant.as_str() == "globex"),
        "{orders:?}"
    );

    // The API goes: polling, said before the first failed round.
    spine.api.stop();
    let mut feeds = Vec::new();
    let down = loop {
        match next(&mut rx, Duration::from_secs(20)).await {
            Msg::Feed(f) => feeds.push(f),
            Msg::Api(p) if p.orders.is_err() => break p,
            _ => {}
        }
    };
    assert_eq!(feeds, [Feed::Poll]);
    assert!(
        matches!(down.orders, Err(FetchError::Unreachable(_))),
        "{:?}",
        down.orders
    );
    cancel.cancel();
}

/// The real binary in tmux: `· push` in the header, a new order on screen at once, and no
/// `/orders` requests from it while it watches.
#[test]
fn the_real_binary_says_push_and_shows_a_commit_without_polling() {
    let logs = tempfile::Builder::new()
        .prefix("spine-tui-push-")
        .tempdir()
        .expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let spine = runtime.block_on(Spine::start("tui_push_e2e", logs.path()));
    let tui_log = logs.path().join("spine-tui.log");
    let tmux = spine_tui(&spine.api_url, &spine.bootstrap, &spine.topic, &tui_log);
    let context = || format!("{}\n{}", spine.logs(), tail_of_log(&tui_log));

    tmux.wait_for(
        "push in the header",
        Duration::from_secs(60),
        context,
        |s| s.contains(&format!("API {} ok · push", spine.api_url)),
    );
    let orders_before = runtime.block_on(spine.requests("/orders"));

    spine.produce_order(2, "initech", "ord-on-screen");
    let produced = Instant::now();
    let screen = tmux.wait_for(
        "the new order in the orders pane",
        Duration::from_secs(30),
        context,
        |s| pane(s, "Orders #").contains("ord-on-screen"),
    );
    eprintln!(
        "produced to on screen: {} ms (trigger 200 ms)\n{screen}",
        produced.elapsed().as_millis()
    );
    std::thread::sleep(Duration::from_secs(3));
    let screen = tmux.screen();
    assert!(screen.contains("ok · push"), "{screen}");
    assert_eq!(
        runtime.block_on(spine.requests("/orders")),
        orders_before,
        "spine-tui asked /orders while the stream was up\n{}",
        context()
    );
    tmux.keys("q");
}
