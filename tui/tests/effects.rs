//! What the keys of issue 12 make the event loop do outside the state: fetches handed to the
//! request task, `y` through the clipboard, letters typed into the filter line not taken as
//! commands; and a seek moving the real topic tail (Tansu).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{event_json, raw};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::Stream;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use spine_testkit::kafka::{create_topic, produce};
use spine_testkit::{tansu, unique_name};
use spine_tui::app::{ApiPoll, Effect, FetchError, Msg};
use spine_tui::model::{OrdersResponse, TailRecord};
use spine_tui::run::{ui_loop, Outbox};
use spine_tui::sources::topic::{self, TailConfig};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Keys typed 50 ms apart after `after` ms, then nothing (the stream stays open).
fn keys(after: u64, codes: Vec<KeyCode>) -> impl Stream<Item = std::io::Result<Event>> + Unpin {
    let start = tokio::time::Instant::now() + Duration::from_millis(after);
    Box::pin(futures::stream::unfold(
        (0u64, codes.into_iter()),
        move |(i, mut codes)| async move {
            match codes.next() {
                Some(code) => {
                    tokio::time::sleep_until(start + Duration::from_millis(50 * i)).await;
                    let key = Event::Key(KeyEvent::new(code, KeyModifiers::NONE));
                    Some((Ok(key), (i + 1, codes)))
                }
                None => futures::future::pending().await,
            }
        },
    ))
}

#[tokio::test]
async fn keys_hand_requests_to_the_sources_and_y_copies_through_the_clipboard() {
    let (tx, rx) = mpsc::channel(64);
    let (tenant_tx, _tenant_rx) = watch::channel(None);
    let (requests_tx, mut requests_rx) = mpsc::unbounded_channel();
    let copied = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = copied.clone();
    let out = Outbox {
        tenant: tenant_tx,
        requests: Some(requests_tx),
        clipboard: Some(Box::new(move |text: &str| {
            sink.lock().expect("lock").push(text.to_owned());
            Ok(())
        })),
    };
    let json = String::from_utf8(event_json("acme", "order_paid", "ord-7", 100)).expect("utf8");
    tx.send(Msg::Tail {
        at: Instant::now(),
        records: vec![TailRecord::decode(
            0,
            41,
            Some(b"acme"),
            Some(json.as_bytes()),
        )],
    })
    .await
    .expect("send");
    let order: spine_tui::model::Order = serde_json::from_value(serde_json::json!({
        "tenant": "acme", "order_id": "ord-7", "status": "order_paid"
    }))
    .expect("order");
    tx.send(Msg::Api(ApiPoll {
        at: chrono::Local::now().fixed_offset(),
        tenant: None,
        orders: Ok(OrdersResponse {
            orders: vec![order],
            as_of_batch: Some(1),
        }),
        stats: Err(FetchError::Unreachable("x".into())),
        batches: Err(FetchError::Unreachable("x".into())),
    }))
    .await
    .expect("send");

    use KeyCode::{Char, Enter, Esc, Tab};
    let script = vec![
        Enter,     // the newest record
        Char('y'), // copied
        Esc,
        Char('/'),
        Char('q'), // text in the filter line, not quit
        Esc,
        Tab,
        Enter, // the order's history: a request
        Esc,
        Char('d'), // the dead letters: a request
        Esc,
        Char('q'),
    ];
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    tokio::time::timeout(
        Duration::from_secs(10),
        ui_loop(
            &mut terminal,
            common::local_app(Instant::now()),
            rx,
            out,
            keys(300, script),
            std::future::pending(),
        ),
    )
    .await
    .expect("the last q ends the loop")
    .expect("no error");

    let copied = copied.lock().expect("lock").clone();
    assert_eq!(copied.len(), 1, "{copied:?}");
    let value: serde_json::Value = serde_json::from_str(&copied[0]).expect("JSON copied");
    assert_eq!(value["offset"], 41);
    assert_eq!(value["partition"], 0);
    assert_eq!(value["value"]["order_id"], "ord-7");
    let mut requests = Vec::new();
    while let Ok(r) = requests_rx.try_recv() {
        requests.push(r);
    }
    assert_eq!(
        requests,
        vec![
            Effect::FetchOrder {
                tenant: "acme".into(),
                order_id: "ord-7".into()
            },
            Effect::FetchDeadLetters
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_moves_the_real_tail_to_the_offset() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_seek");
    create_topic(&bootstrap, &topic, 2).await;
    let history: Vec<_> = (0..20)
        .map(|i| {
            raw(
                i % 2,
                "acme",
                &event_json("acme", "order_placed", &format!("o-{i}"), 1),
            )
        })
        .collect();
    produce(&bootstrap, &topic, &history);

    let (tx, mut rx) = mpsc::channel(64);
    let (seek_tx, seek_rx) = std::sync::mpsc::channel();
    let cancel = CancellationToken::new();
    let mut config = TailConfig::new(&bootstrap, &topic);
    config.backfill = 4; // offsets 8 and 9 of each partition
    let _tail = topic::spawn_seekable(config, tx, cancel.clone(), seek_rx);

    let mut seen: Vec<(i32, i64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut sought = false;
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; read {seen:?}"))
            .expect("the tail runs");
        if let Msg::Tail { records, .. } = msg {
            seen.extend(records.iter().map(|r| (r.partition, r.offset)));
        }
        if !sought && seen.len() >= 4 {
            assert!(seen.iter().all(|(_, o)| *o >= 8), "{seen:?}");
            seek_tx.send((1, 3)).expect("seek");
            sought = true;
            seen.clear();
        }
        if sought && seen.contains(&(1, 9)) {
            break;
        }
    }
    let partition_1: Vec<i64> = seen
        .iter()
        .filter(|(p, _)| *p == 1)
        .map(|(_, o)| *o)
        .collect();
    assert_eq!(partition_1, (3..10).collect::<Vec<_>>(), "{seen:?}");
    cancel.cancel();
}
