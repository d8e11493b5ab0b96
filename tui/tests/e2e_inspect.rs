//! The ways to look closer (issue 12) in a real terminal (tmux), against the real `spine-api`,
//! `spine-processor` and `spine-producer` on a Tansu broker and a throwaway Postgres: Enter on
//! the newest tail record shows it whole (one JSON field a line, with its offset); `d` lists
//! the dead letters with their reasons; `/globex` + Enter leaves only globex rows in the tail
//! and the orders; `z` zooms the focused pane and back.
//!
//! The sibling binaries must be built first: `cargo build --workspace --bins`.

mod common;

use std::time::{Duration, Instant};

use common::services::{kafka_env, produce_history, tails, Service};
use common::tmux::{pane, spine_tui, Tmux};
use common::{event_json_with, raw};
use spine_testkit::kafka::{high_watermarks, produce};
use spine_testkit::{free_port, postgres, tansu, unique_name};

#[test]
fn enter_d_filter_and_zoom_in_a_real_terminal_against_the_real_services() {
    let logs = tempfile::Builder::new()
        .prefix("spine-tui-inspect-")
        .tempdir()
        .expect("temp dir");
    let logs = logs.path();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(postgres().fresh_database());
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_inspect");
    let api_port = free_port();
    let api_url = format!("http://127.0.0.1:{api_port}");
    let kafka_env = |extra: &[(&'static str, String)]| kafka_env(&bootstrap, &topic, extra);
    let producer_env = kafka_env(&[
        ("TOPIC_PARTITIONS", "3".into()),
        ("TENANTS", "acme,globex,initech".into()),
        ("EVENTS_PER_SECOND", "2000".into()),
    ]);

    // History: 300 events (the producer creates the topic).
    produce_history(&producer_env, 300, &bootstrap, &topic, logs);

    let processor = Service::start(
        "spine-processor",
        &kafka_env(&[
            ("CONSUMER_GROUP", unique_name("tui-inspect")),
            ("DATABASE_URL", db.url()),
            ("TRIGGER_INTERVAL_MS", "300".into()),
        ]),
        &[],
        logs,
    );
    let api_env = [
        ("DATABASE_URL", db.url()),
        ("API_ADDR", format!("127.0.0.1:{api_port}")),
    ];
    let api = Service::start_api(&api_env, api_port, logs);

    let tui_log = logs.join("spine-tui.log");
    let tmux = spine_tui(&api_url, &bootstrap, &topic, &tui_log);
    let service_logs = [processor.log.clone(), api.log.clone(), tui_log.clone()];
    let context = || tails(&service_logs);

    tmux.wait_for("the tail to start", Duration::from_secs(60), context, |s| {
        s.contains("LIVE") && s.contains("Kafka") && s.contains(" ok")
    });
    std::thread::sleep(Duration::from_secs(1));

    // A malformed record: the processor dead-letters it.
    let bad_offset = high_watermarks(&bootstrap, &topic, 3)[1];
    produce(
        &bootstrap,
        &topic,
        &[raw(1, "acme", b"{\"event_id\": \"oops\"")],
    );
    tmux.wait_for(
        "the malformed record",
        Duration::from_secs(30),
        context,
        |s| s.contains("malformed (key acme)"),
    );
    // Then one known event: the newest record on the tail.
    let offset = high_watermarks(&bootstrap, &topic, 3)[0];
    let event_id = uuid::Uuid::new_v4().to_string();
    let json = event_json_with(
        "globex",
        "order_paid",
        "ord-inspect-1",
        4711,
        &event_id,
        "2026-11-25T12:00:00.123456Z",
    );
    produce(&bootstrap, &topic, &[raw(0, "globex", json.as_bytes())]);
    tmux.wait_for(
        "the event on top of the tail",
        Duration::from_secs(30),
        context,
        |s| {
            pane(s, "Tail ·")
                .lines()
                .nth(1)
                .is_some_and(|l| l.contains("ord-inspect-1") && l.contains(&offset.to_string()))
        },
    );

    // p holds the selection still; Enter opens the newest record.
    tmux.keys("p");
    tmux.keys("Enter");
    // The title is drawn before the body: wait for both, or the screen may be caught between.
    let record = tmux.wait_for("the record", Duration::from_secs(15), context, |s| {
        s.contains(&format!("Record 0@{offset}")) && s.contains(&event_id.to_string())
    });
    eprintln!("the record at 80×24:\n{record}");
    let lines: Vec<&str> = record.lines().map(str::trim_end).collect();
    assert!(
        lines.contains(&format!("  \"event_id\": \"{event_id}\",").as_str()),
        "{record}"
    );
    assert!(lines.contains(&"  \"tenant\": \"globex\""), "{record}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["offset", &offset.to_string()])),
        "{record}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["partition", "0"])),
        "{record}"
    );
    // y: the record as JSON through OSC 52, which tmux (with set-clipboard on) keeps as a buffer.
    tmux.run(&["set-option", "-s", "set-clipboard", "on"]);
    tmux.keys("y");
    let deadline = Instant::now() + Duration::from_secs(5);
    let copied = loop {
        let buffers = tmux.run(&["list-buffers", "-F", "#{buffer_name}"]);
        if !buffers.trim().is_empty() {
            break tmux.run(&["show-buffer"]);
        }
        assert!(Instant::now() < deadline, "nothing copied\n{}", context());
        std::thread::sleep(Duration::from_millis(200));
    };
    let copied: serde_json::Value = serde_json::from_str(&copied).expect("the copy is JSON");
    assert_eq!(copied["offset"], offset, "{copied}");
    assert_eq!(copied["value"]["event_id"], event_id.as_str(), "{copied}");
    escape(&tmux);
    tmux.keys("p");
    tmux.wait_for("the panes again", Duration::from_secs(15), context, |s| {
        s.contains("Orders #") && s.contains("LIVE")
    });

    // Tab, Enter: the selected order's history from the API, the current event marked.
    tmux.keys("Tab");
    tmux.keys("Enter");
    let history = tmux.wait_for(
        "an order's history",
        Duration::from_secs(10),
        context,
        |s| {
            s.contains(" Order ")
                && s.lines().any(|l| l.contains("events, oldest first"))
                && s.lines().any(|l| l.starts_with("▶ ") && l.contains(" p"))
        },
    );
    eprintln!("an order's history at 80×24:\n{history}");
    escape(&tmux);
    for _ in 0..3 {
        tmux.keys("Tab"); // back to the tail
    }

    // d: the dead letters with their reasons (once the processor has written it).
    // (The list is fetched once per `d`: asked again until the processor has written it.)
    let has_dead_letter = |s: &str| {
        s.contains("Dead letters ·")
            && s.lines().any(|l| {
                l.starts_with(&format!("1@{bad_offset} "))
                    && l.contains("not a valid event JSON object")
            })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        tmux.keys("d");
        std::thread::sleep(Duration::from_secs(2));
        let screen = tmux.screen();
        if has_dead_letter(&screen) {
            break screen;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter listed:\n{screen}\n{}",
            context()
        );
        escape(&tmux);
    };
    eprintln!("the dead letters at 80×24:\n{dead}");
    tmux.keys("Enter");
    tmux.wait_for(
        "one dead letter whole",
        Duration::from_secs(5),
        context,
        |s| {
            s.contains("Dead letter ")
                && s.lines()
                    .any(|l| l.starts_with("reason") && l.contains("not a valid"))
        },
    );
    escape(&tmux);
    escape(&tmux);
    tmux.wait_for("the panes again", Duration::from_secs(15), context, |s| {
        s.contains("Orders #") && !s.contains("Dead letter")
    });

    // /globex + Enter: only globex rows in the tail and the orders.
    tmux.keys("/");
    tmux.run(&["send-keys", "-t", "tui", "-l", "globex"]);
    tmux.keys("Enter");
    // The tenant column of each row (the tail's third, the orders' first: at 80 columns it may
    // be cut, `glob…`).
    let only_globex = |s: &str, title: &str, column: usize| {
        let rows: Vec<Vec<String>> = pane(s, title)
            .lines()
            .skip(1)
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect();
        !rows.is_empty()
            && rows.iter().all(|w| {
                w.get(column)
                    .is_some_and(|t| t == "globex" || t.starts_with("glob") && t.ends_with('…'))
            })
    };
    let filtered = tmux.wait_for("only globex", Duration::from_secs(10), context, |s| {
        s.lines()
            .last()
            .is_some_and(|l| l.starts_with(" filter /globex"))
            && only_globex(s, "Tail ·", 2)
            && only_globex(s, "Orders #", 0)
    });
    eprintln!("filtered at 80×24:\n{filtered}");
    escape(&tmux);
    tmux.wait_for(
        "the filter cleared",
        Duration::from_secs(15),
        context,
        |s| !s.contains("/globex") && pane(s, "Orders #").lines().any(|l| l.contains("acme")),
    );

    // z: the tail fills the screen, and back.
    tmux.keys("z");
    let zoomed = tmux.wait_for("the zoomed tail", Duration::from_secs(15), context, |s| {
        s.contains("Topic tail · 3 partitions") && s.contains("· zoom")
    });
    eprintln!("zoomed at 80×24:\n{zoomed}");
    assert!(
        !zoomed.contains("Orders #")
            && !zoomed.contains("Stats #")
            && !zoomed.contains("Batches ·"),
        "{zoomed}"
    );
    assert!(zoomed.contains("event time"), "the wide columns:\n{zoomed}");
    tmux.keys("z");
    tmux.wait_for("the four panes", Duration::from_secs(15), context, |s| {
        s.contains("Orders #") && s.contains("Stats #") && !s.contains("· zoom")
    });

    tmux.keys("q");
    tmux.wait_for("the exit", Duration::from_secs(10), context, |s| {
        s.contains("exit=0")
    });
}

/// Esc, then a person's pause: an Esc with the next key right behind it reads as Alt+key.
fn escape(tmux: &Tmux) {
    tmux.keys("Escape");
    std::thread::sleep(Duration::from_millis(300));
}
