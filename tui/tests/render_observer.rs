//! Rendering with ratatui's `TestBackend`: what the screen says of the processor. The header's
//! state in words (running, idle, stalled, down, and unknown when the API does not answer),
//! the lag measured against the live end of the log (never 0 for a stale stored end, an error
//! for an offset past the end), and the sparklines of the last minutes. Reviewed `insta`
//! snapshots are in `tests/snapshots/` (`cargo insta review`).

use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone};
use ratatui::style::{Color, Modifier};
use spine_tui::app::{ApiPoll, App, BrokerReport, Feed, LogEnd, Msg, WallTime};
use spine_tui::model::{
    Batch, BatchesResponse, OrdersResponse, PartitionLag, ProcessorState, ProcessorStatus,
    TailRecord,
};

mod common;

use common::screen::{
    api_down, at, batches, draw, event_json, find, fixture, lines, live_ends, processor, render,
    stats, text,
};

/// The fixture after one more poll whose `/batches` describes the processor as `p`.
fn with_processor(p: Option<ProcessorStatus>) -> App {
    let mut app = fixture();
    app.update(Msg::Api(ApiPoll {
        at: at(4),
        tenant: None,
        orders: Ok(OrdersResponse {
            orders: vec![],
            as_of_batch: Some(42),
        }),
        stats: Ok(stats()),
        batches: Ok(BatchesResponse {
            processor: p,
            ..batches()
        }),
    }));
    app.update(live_ends(5, &[(0, 650), (1, 600), (2, 500)]));
    app
}

fn top(app: &App, width: u16, rows: usize) -> String {
    lines(&render(app, width, 24))[..rows].join("\n")
}

#[test]
fn the_header_says_the_processors_state_in_words() {
    let cases = [
        (
            "running",
            with_processor(Some(processor(
                ProcessorState::Running,
                Some(0.4),
                Some(1.23),
            ))),
        ),
        (
            "idle",
            with_processor(Some(processor(
                ProcessorState::Idle,
                Some(3600.0),
                Some(3601.0),
            ))),
        ),
        (
            "stalled",
            with_processor(Some(processor(
                ProcessorState::Stalled,
                Some(41.0),
                Some(45.2),
            ))),
        ),
        (
            "down",
            with_processor(Some(ProcessorState::Down).map(|s| ProcessorStatus {
                last_batch_at: None,
                last_batch_age_s: None,
                event_time_lag_s: None,
                ..processor(s, None, None)
            })),
        ),
        ("an API that does not say", with_processor(None)),
        ("API unreachable", {
            let mut app = with_processor(Some(processor(
                ProcessorState::Running,
                Some(0.4),
                Some(1.2),
            )));
            // The stream broke with the API: the source polls, and says so.
            app.update(Msg::Feed(Feed::Poll));
            app.update(api_down(6));
            app
        }),
    ];
    let mut all = String::new();
    for (name, app) in &cases {
        all.push_str(&format!("--- {name}, 80 columns\n{}\n", top(app, 80, 2)));
    }
    all.push_str(&format!(
        "--- stalled, 200 columns\n{}\n",
        top(&cases[2].1, 200, 1)
    ));
    insta::assert_snapshot!("header_states", all);

    let header = |i: usize| lines(&render(&cases[i].1, 80, 24))[1].clone();
    assert_eq!(
        header(0),
        "Processor running · last batch 0s ago · fresh 1.2 s · lag 80"
    );
    assert_eq!(
        header(1),
        "Processor idle · last batch 60m ago · fresh 60 min · lag 80"
    );
    assert_eq!(
        header(2),
        "Processor stalled · last batch 41s ago · fresh 45 s · lag 80"
    );
    assert_eq!(header(3), "Processor down · no batch yet · lag 80");
    assert_eq!(header(4), "Processor unknown (the API does not say)");
    // With the API gone, the last state heard is not shown as if it were still true.
    // (" · polling" pushes the Kafka part onto the second line at 80 columns.)
    assert_eq!(
        header(5),
        "Kafka localhost:9092 events ok │ Processor unknown (API unreachable)"
    );

    // In colour as well as in words: stalled and down on red, running green.
    for (i, word, fg, bg) in [
        (0, "running", Color::Green, Color::Reset),
        (2, "stalled", Color::White, Color::Red),
        (3, "down", Color::White, Color::Red),
        (5, "unknown", Color::Yellow, Color::Reset),
    ] {
        let buf = render(&cases[i].1, 80, 24);
        let (x, y) = find(&buf, &format!("Processor {word}")).expect(word);
        let cell = &buf[(x + 10, y)];
        assert_eq!((cell.fg, cell.bg), (fg, bg), "{word}");
        assert!(cell.modifier.contains(Modifier::BOLD), "{word}");
    }
}

/// The API line ends with how its answers come: pushed by `GET /stream`, or polled while the
/// stream is unavailable; nothing is claimed before the source has said.
#[test]
fn the_header_says_whether_the_api_is_pushed_or_polled() {
    let mut app = fixture();
    assert_eq!(
        lines(&render(&app, 80, 24))[0],
        "API http://localhost:8000 ok · push │ Kafka localhost:9092 events ok"
    );
    let buf = render(&app, 80, 24);
    let (x, y) = find(&buf, "· push").expect("push");
    assert_eq!(buf[(x + 2, y)].fg, Color::Green);

    app.update(Msg::Feed(Feed::Poll));
    let buf = render(&app, 80, 24);
    assert_eq!(
        lines(&buf)[0],
        "API http://localhost:8000 ok · polling │ Kafka localhost:9092 events ok"
    );
    let (x, y) = find(&buf, "· polling").expect("polling");
    assert_eq!(buf[(x + 2, y)].fg, Color::Yellow);

    let unsaid = common::local_app(Instant::now());
    let header = lines(&render(&unsaid, 80, 24))[0].clone();
    assert_eq!(header.trim_end(), "API http://localhost:8000 connecting…");
}

/// Wall time `secs` seconds after 12:00:00.
fn wall(secs: u32) -> WallTime {
    FixedOffset::east_opt(0)
        .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).single())
        .expect("valid time")
        + chrono::Duration::seconds(i64::from(secs))
}

/// Two minutes of a spine: 200 records/s arrive on partition 0; the processor commits them each
/// second until `stop` (if any), then commits nothing while they keep coming.
fn two_minutes(stop: Option<u32>) -> App {
    let t0 = Instant::now();
    let mut app = common::local_app(t0);
    app.update(Msg::Broker {
        at: wall(0),
        report: BrokerReport::Up { partitions: 1 },
    });
    let json = event_json("acme", "order_paid", "ord-1", 100, 0);
    let mut batches: Vec<Batch> = Vec::new();
    let mut committed = 0;
    for s in 0..=120u32 {
        let end = 200 * i64::from(s);
        let records = (0..200)
            .map(|i| TailRecord::decode(0, end - 200 + i, Some(b"acme"), Some(json.as_bytes())))
            .collect();
        let instant = t0 + Duration::from_secs(u64::from(s));
        app.update(Msg::Tail {
            at: instant,
            records,
        });
        let running = stop.is_none_or(|stop| s < stop);
        if running {
            committed = end;
            batches.insert(
                0,
                Batch {
                    batch_id: i64::from(s) + 1,
                    input_rows: 200,
                    total_ms: 20.0 + f64::from(s % 9) * 10.0,
                    ..Batch::default()
                },
            );
            batches.truncate(20);
        }
        let last = stop.map_or(s, |stop| s.min(stop - 1));
        let age = f64::from(s - last);
        let state = match age {
            a if a < 15.0 => ProcessorState::Running,
            _ => ProcessorState::Stalled,
        };
        app.update(Msg::Watermarks {
            at: wall(s),
            ends: [(0, LogEnd { low: 0, high: end })].into(),
        });
        app.update(Msg::Api(ApiPoll {
            at: wall(s) + chrono::Duration::milliseconds(500),
            tenant: None,
            orders: Ok(OrdersResponse {
                orders: vec![],
                as_of_batch: Some(i64::from(last)),
            }),
            stats: Ok(stats()),
            batches: Ok(BatchesResponse {
                batches: batches.clone(),
                partitions: vec![PartitionLag {
                    partition: 0,
                    next_offset: committed,
                    // What the processor stored at its last commit: no help once it stops.
                    high_watermark: Some(committed),
                    lag: Some(0),
                    ..PartitionLag::default()
                }],
                processor: Some(ProcessorStatus {
                    trigger_interval_ms: Some(1000),
                    ..processor(state, Some(age + 0.5), Some(age + 0.9))
                }),
            }),
        }));
        app.update(Msg::Tick(instant + Duration::from_millis(900)));
    }
    app
}

#[test]
fn a_stalled_processor_shows_in_the_header_the_lag_and_the_sparklines() {
    let app = two_minutes(Some(60));
    insta::assert_snapshot!("stalled_80x24", draw(&app, 80, 24));
    insta::assert_snapshot!("stalled_200x50", draw(&app, 200, 50));
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    let rows = lines(&buf);
    assert_eq!(
        rows[1], "Processor stalled · last batch 62s ago · fresh 62 s · lag 12200",
        "{screen}"
    );
    // The lag is the live end (24000) minus the committed offset (11800), though the API's
    // stored end says 0.
    assert!(screen.contains("Batches · lag 12200"), "{screen}");
    assert!(
        screen.lines().any(|l| l.contains('│')
            && l.split('│')
                .nth(1)
                .is_some_and(|r| r.split_whitespace().eq(["0", "11800", "24000", "12200"]))),
        "{screen}"
    );

    // The strip: in at 200/s, done at 0/s now; the lag climbing; sparklines drawn.
    assert!(rows[2].starts_with("in   200/s "), "{screen}");
    assert!(rows[3].starts_with("done 0.0/s "), "{screen}");
    assert!(rows[2].contains("│ lag  12.2k "), "{screen}");
    // The left column's cells: the sparkline after the label, up to the rule.
    let left = |row: &str| -> String {
        row.split('│')
            .next()
            .unwrap_or_default()
            .chars()
            .skip(11)
            .collect()
    };
    let done = left(&rows[3]);
    assert!(
        done.ends_with("     ") && done.contains('█'),
        "full bars while it kept up, nothing committed lately\n{screen}"
    );
    assert!(
        left(&rows[2]).trim_end().ends_with("█████"),
        "records keep arriving\n{screen}"
    );
    let lag_cells: String = rows[2].split('│').nth(1).unwrap_or_default().to_owned();
    assert!(
        lag_cells.trim_end().ends_with('█'),
        "the lag is at its highest now\n{screen}"
    );
    assert!(!screen.contains(" lag 0"), "no lag of 0 anywhere\n{screen}");
}

#[test]
fn a_running_processor_that_keeps_up_shows_equal_rates_and_no_lag() {
    let app = two_minutes(None);
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    let rows = lines(&buf);
    assert!(
        rows[1].starts_with("Processor running · last batch 1s ago · fresh 0.9 s · lag 0"),
        "{screen}"
    );
    assert!(rows[2].starts_with("in   200/s "), "{screen}");
    assert!(rows[3].starts_with("done 200/s "), "{screen}");
    let cells = |row: &str| -> String {
        row.split('│')
            .next()
            .unwrap_or_default()
            .chars()
            .skip(11)
            .collect()
    };
    assert_eq!(
        cells(&rows[2]),
        cells(&rows[3]),
        "in and done on one scale\n{screen}"
    );
}

#[test]
fn an_offset_ahead_of_the_log_is_an_error_on_screen_not_zero() {
    let mut app = fixture();
    // The topic was re-created: its end is now 12, the processor's offset 600.
    app.update(live_ends(9, &[(0, 12), (1, 600), (2, 500)]));
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    assert!(screen.contains("Batches · lag error"), "{screen}");
    assert!(
        screen
            .lines()
            .nth(1)
            .is_some_and(|l| l.ends_with(" · lag error")),
        "the header says it\n{screen}"
    );
    assert!(
        screen.lines().any(|l| l
            .split('│')
            .nth(1)
            .is_some_and(|r| r.split_whitespace().eq(["0", "600", "12", "ahead!"]))),
        "{screen}"
    );
    assert!(
        screen.contains("partition 0: committed offset 600 is\n")
            && screen.contains("│ahead of the log's end 12\n"),
        "{screen}"
    );
    let (x, y) = find(&buf, "ahead!").expect("ahead");
    assert_eq!(buf[(x, y)].fg, Color::Red);
}

#[test]
fn without_the_broker_the_lag_is_unknown_not_zero() {
    let mut app = fixture();
    app.update(Msg::Broker {
        at: at(9),
        report: BrokerReport::Down {
            error: "all brokers down".into(),
        },
    });
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("Batches · lag ?"), "{screen}");
    assert!(
        screen.lines().any(|l| l
            .split('│')
            .nth(1)
            .is_some_and(|r| r.split_whitespace().eq(["0", "600", "?", "?"]))),
        "{screen}"
    );
}

#[test]
fn secondary_text_is_dim_not_dark_grey() {
    for app in [fixture(), two_minutes(Some(60))] {
        for (w, h) in [(80, 24), (200, 50)] {
            let buf = render(&app, w, h);
            for y in 0..h {
                for x in 0..w {
                    assert_ne!(buf[(x, y)].fg, Color::DarkGray, "({x}, {y})");
                }
            }
        }
    }
}
