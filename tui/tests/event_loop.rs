//! The event loop under load: a source flooding the channel with records can delay neither a
//! key nor a frame, redraws stay coalesced at the frame rate, and effects reach the sources.

use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use futures::Stream;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use spine_tui::app::{ApiPoll, App, FetchError, Msg};
use spine_tui::model::{StatsResponse, TailRecord};
use spine_tui::run::{ui_loop, FRAME};
use tokio::sync::{mpsc, watch};

mod common;

fn app() -> App {
    common::local_app(Instant::now())
}

/// Keys typed at the given times after the start, then nothing (the stream stays open).
fn typed(keys: Vec<(u64, char)>) -> impl Stream<Item = std::io::Result<Event>> + Unpin {
    let start = tokio::time::Instant::now();
    Box::pin(futures::stream::unfold(
        keys.into_iter(),
        move |mut keys| async move {
            match keys.next() {
                Some((ms, c)) => {
                    tokio::time::sleep_until(start + Duration::from_millis(ms)).await;
                    Some((
                        Ok(Event::Key(KeyEvent::new(
                            KeyCode::Char(c),
                            KeyModifiers::NONE,
                        ))),
                        keys,
                    ))
                }
                None => futures::future::pending().await,
            }
        },
    ))
}

fn screen(terminal: &Terminal<TestBackend>) -> String {
    let buf = terminal.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_records_neither_starves_the_keyboard_nor_redraws_per_message() {
    let (tx, rx) = mpsc::channel(64);
    let (tenant_tx, _tenant_rx) = watch::channel(None);
    let json = r#"{"event_id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","tenant":"acme","event_type":"order_paid",
                   "order_id":"ord-1","amount_cents":100,"event_time":"2026-11-25T12:00:00Z"}"#;
    let batch: Vec<TailRecord> = (0..500)
        .map(|o| TailRecord::decode(0, o, None, Some(json.as_bytes())))
        .collect();
    // As fast as the channel takes them: far more than any topic delivers.
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        while tx
            .send(Msg::Tail {
                at: Instant::now(),
                records: batch.clone(),
            })
            .await
            .is_ok()
        {
            sent += 1;
        }
        sent
    });

    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    let started = Instant::now();
    let stats = tokio::time::timeout(
        Duration::from_secs(10),
        ui_loop(
            &mut terminal,
            app(),
            rx,
            tenant_tx,
            typed(vec![(400, 'p'), (800, 'q')]),
            std::future::pending(),
        ),
    )
    .await
    .expect("q ends the loop while the flood goes on")
    .expect("no error");
    let elapsed = started.elapsed();
    let sent = {
        flood.abort();
        stats.messages
    };

    assert!(
        elapsed < Duration::from_millis(1500),
        "q typed at 800 ms took effect at {elapsed:?}"
    );
    assert!(
        sent > 20,
        "the flood reached the state: {sent} batches of 500 records"
    );
    let frames = elapsed.as_millis() as u64 / FRAME.as_millis() as u64;
    assert!(
        stats.draws <= frames + 3,
        "{} draws in {elapsed:?} for {} messages: redraws are not coalesced",
        stats.draws,
        stats.messages
    );
    assert!(stats.draws >= 3, "it did draw: {}", stats.draws);
    assert!(
        screen(&terminal).contains("PAUSED"),
        "p took effect:\n{}",
        screen(&terminal)
    );
}

#[tokio::test]
async fn the_tenant_filter_reaches_the_api_poller() {
    let (tx, rx) = mpsc::channel(64);
    let (tenant_tx, tenant_rx) = watch::channel(None);
    let stats: StatsResponse = serde_json::from_str(
        r#"{"tenants":[{"tenant":"acme","orders":1,"revenue_cents":0,"by_status":{}},
                      {"tenant":"globex","orders":1,"revenue_cents":0,"by_status":{}}],"as_of_batch":1}"#,
    )
    .expect("stats");
    tx.send(Msg::Api(ApiPoll {
        at: chrono::Local::now().fixed_offset(),
        tenant: None,
        orders: Err(FetchError::Unreachable("x".into())),
        stats: Ok(stats),
        batches: Err(FetchError::Unreachable("x".into())),
    }))
    .await
    .expect("send");
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    ui_loop(
        &mut terminal,
        app(),
        rx,
        tenant_tx,
        typed(vec![(200, 't'), (300, 't'), (400, 'q')]),
        std::future::pending(),
    )
    .await
    .expect("runs");
    assert_eq!(
        tenant_rx.borrow().as_ref().map(|t| t.as_str()),
        Some("globex")
    );
    assert!(
        screen(&terminal).contains("tenant globex"),
        "{}",
        screen(&terminal)
    );
}

#[tokio::test]
async fn a_shutdown_signal_ends_the_loop() {
    let (_tx, rx) = mpsc::channel(1);
    let (tenant_tx, _) = watch::channel(None);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    let signal = tokio::time::sleep(Duration::from_millis(200));
    tokio::time::timeout(
        Duration::from_secs(5),
        ui_loop(&mut terminal, app(), rx, tenant_tx, typed(vec![]), signal),
    )
    .await
    .expect("ends on the signal")
    .expect("no error");
}
