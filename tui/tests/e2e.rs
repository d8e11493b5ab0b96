//! The real `spine-tui` in a real terminal (tmux), against the real `spine-api`, `spine-processor`
//! and `spine-producer` on a Tansu broker and a throwaway Postgres: the four panes' content is
//! read off the screen, then the keys, a resize, the API going down and coming back, and the
//! terminal as it is left after `q` (after a panic: `panic.rs`).
//!
//! The sibling binaries must be built first: `cargo build --workspace --bins`.

mod common;

use std::time::Duration;

use common::services::{kafka_env, produce_history, tails, Service};
use common::tmux::{pane, shell_is_back, spine_tui, terminal_restored};
use common::{event_json, raw};
use spine_testkit::kafka::produce;
use spine_testkit::{free_port, postgres, tansu, unique_name};

#[test]
fn the_real_binary_shows_the_four_panes_against_the_real_services() {
    let logs = tempfile::Builder::new()
        .prefix("spine-tui-e2e-")
        .tempdir()
        .expect("temp dir");
    let logs = logs.path();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(postgres().fresh_database());
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_e2e");
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
            ("CONSUMER_GROUP", unique_name("tui-e2e")),
            ("DATABASE_URL", db.url()),
            ("TRIGGER_INTERVAL_MS", "300".into()),
        ]),
        &[],
        logs,
    );
    let api_env = [
        ("DATABASE_URL", db.url()),
        ("API_ADDR", format!("127.0.0.1:{api_port}")),
        ("KAFKA_BOOTSTRAP", bootstrap.clone()),
        ("TOPIC", topic.clone()),
    ];
    let mut api = Service::start_api(&api_env, api_port, logs);

    let tui_log = logs.join("spine-tui.log");
    let tmux = spine_tui(&api_url, &bootstrap, &topic, &tui_log);
    let service_logs = [processor.log.clone(), api.log.clone(), tui_log.clone()];
    let context = || tails(&service_logs);

    // Live records, a malformed one among them: they land on top of the tail.
    tmux.wait_for("the tail to start", Duration::from_secs(60), context, |s| {
        s.contains("LIVE") && s.contains("Kafka") && s.contains(" ok")
    });
    std::thread::sleep(Duration::from_secs(1));
    produce(
        &bootstrap,
        &topic,
        &[
            raw(
                0,
                "globex",
                &event_json("globex", "order_paid", "ord-live-1", 4711),
            ),
            raw(1, "acme", b"{\"event_id\": \"oops\""),
            raw(
                2,
                "initech",
                &event_json("initech", "order_placed", "ord-live-2", 1),
            ),
        ],
    );

    // All four panes, read off one 80×24 screen.
    let screen = tmux.wait_for(
        "all four panes with data",
        Duration::from_secs(120),
        context,
        |s| {
            s.contains(&format!("API {api_url} ok"))
                && s.contains("malformed (key acme)")
                && s.contains("ord-live-1")
                && s.contains("Orders #")
                && s.contains("Stats #")
                && s.contains("Batches · lag")
                && s.lines().any(|l| l.starts_with("acme ") && l.contains('│'))
                && s.lines()
                    .any(|l| l.starts_with("  placed ") && l.contains("  paid "))
                && s.lines().any(|l| l.contains("rows") && l.contains(" ms"))
        },
    );
    eprintln!("the screen at 80×24:\n{screen}");
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(lines.len(), 24, "{screen}");
    assert!(
        screen.contains(&format!("Kafka {bootstrap} {topic} ok")),
        "{screen}"
    );
    assert!(
        lines[23].contains("q/Esc quit") && lines[23].contains("? help"),
        "{screen}"
    );

    let tail = pane(&screen, "Tail ·");
    assert!(
        tail.lines().next().is_some_and(|l| l
            .split_whitespace()
            .eq(["p", "offset", "tenant", "type", "order", "amount"])),
        "{tail}\n{screen}"
    );
    // The producer keys by tenant, so the offsets are whatever its history left: only the
    // partitions are known.
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert!(
        tail.lines().any(|l| {
            let w = words(l);
            w[0] == "1"
                && w[1].parse::<i64>().is_ok()
                && l.contains(" malformed (key acme): not a valid")
        }),
        "the malformed record on partition 1:\n{tail}"
    );
    assert!(
        tail.lines().any(|l| {
            let w = words(l);
            w.len() == 6 && w[0] == "0" && w[2..] == ["globex", "paid", "ord-live-1", "47.11"]
        }),
        "{tail}"
    );

    let orders = pane(&screen, "Orders #");
    let order_rows: Vec<&str> = orders
        .lines()
        .skip(1)
        .filter(|l| l.contains("ord-"))
        .collect();
    assert!(order_rows.len() >= 5, "orders listed:\n{orders}");
    assert!(
        order_rows
            .iter()
            .all(|l| ["acme", "globex", "inite"].iter().any(|t| l.contains(t))),
        "{orders}"
    );

    let stats = pane(&screen, "Stats #");
    assert!(
        stats.lines().next().is_some_and(|l| l
            .split_whitespace()
            .eq(["tenant", "orders", "revenue", "ev/s"])),
        "{stats}"
    );
    for tenant in ["acme", "globex", "initech"] {
        assert!(
            stats.lines().any(|l| l.starts_with(tenant)),
            "{tenant} in stats:\n{stats}"
        );
    }
    assert!(stats.lines().any(|l| l.starts_with("all ")), "{stats}");

    let batches = pane(&screen, "Batches · lag");
    assert!(
        batches
            .lines()
            .next()
            .is_some_and(|l| l
                .split_whitespace()
                .eq(["part", "committed", "high", "wm", "lag"])),
        "{batches}"
    );
    for p in 0..3 {
        assert!(
            batches
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&p.to_string())),
            "partition {p}:\n{batches}"
        );
    }
    assert!(
        batches
            .lines()
            .any(|l| l.starts_with('#') && l.contains(" rows ") && l.contains(" ms")),
        "{batches}"
    );
    assert!(
        batches
            .lines()
            .any(|l| l.trim_start().starts_with("0:") || l.contains(" 0:")),
        "offset ranges:\n{batches}"
    );

    // Orders moving: a producer at 20 events/s walks orders through their lifecycle.
    let live_env = kafka_env(&[
        ("TOPIC_PARTITIONS", "3".into()),
        ("TENANTS", "acme,globex,initech".into()),
        ("EVENTS_PER_SECOND", "20".into()),
    ]);
    let _live = Service::start("spine-producer", &live_env, &[], logs);
    tmux.wait_for(
        "a rate and changed orders",
        Duration::from_secs(60),
        context,
        |s| {
            let rate_shown = s.lines().next().is_some() && !s.contains(" 0.0 ev/s");
            rate_shown
                && s.lines().any(|l| {
                    l.contains("┃* ") || l.contains("┃+ ") || l.contains("│* ") || l.contains("│+ ")
                })
        },
    );

    // p: the tail holds still while records keep coming; p again: live.
    tmux.keys("p");
    let paused = tmux.wait_for("PAUSED", Duration::from_secs(5), context, |s| {
        s.contains("PAUSED")
    });
    std::thread::sleep(Duration::from_secs(2));
    let still = tmux.screen();
    assert_eq!(
        pane(&paused, "Tail ·").lines().skip(1).collect::<Vec<_>>(),
        pane(&still, "Tail ·").lines().skip(1).collect::<Vec<_>>()
    );
    tmux.keys("p");
    tmux.wait_for("LIVE again", Duration::from_secs(5), context, |s| {
        s.contains("LIVE") && s.contains("p pause")
    });

    // t: one tenant everywhere.
    tmux.keys("t");
    let acme = tmux.wait_for("the acme filter", Duration::from_secs(5), context, |s| {
        s.contains("tenant acme")
            && pane(s, "Orders #")
                .lines()
                .skip(1)
                .filter(|l| l.contains("ord-"))
                .all(|l| l.contains("acme"))
    });
    assert!(
        pane(&acme, "Stats #")
            .lines()
            .filter(|l| l.starts_with("globex") || l.starts_with("initech"))
            .count()
            == 0,
        "{acme}"
    );
    tmux.keys("t");
    tmux.keys("t");
    tmux.keys("t");
    tmux.wait_for("all tenants again", Duration::from_secs(5), context, |s| {
        !s.contains("tenant acme") && !s.contains("tenant initech")
    });

    // Tab moves the focus; ? opens the help, Esc closes it.
    tmux.keys("Tab");
    tmux.keys("?");
    tmux.wait_for("the help", Duration::from_secs(5), context, |s| {
        s.contains("Help: ? or Esc to close")
    });
    tmux.keys("Escape");
    tmux.wait_for("the help to close", Duration::from_secs(5), context, |s| {
        !s.contains("Help:")
    });

    // More room: wider formats, more rows.
    tmux.resize(160, 48);
    let wide = tmux.wait_for("the wide layout", Duration::from_secs(5), context, |s| {
        s.contains("Topic tail · 3 partitions")
            && s.contains("offsets per partition")
            && s.contains("event time")
    });
    eprintln!("the screen at 160×48:\n{wide}");
    assert!(wide.lines().count() == 48, "{wide}");
    assert!(
        wide.contains("committed offset") && wide.contains("high watermark"),
        "{wide}"
    );
    assert!(
        wide.lines().filter(|l| l.contains("order_")).count() > 20,
        "more rows:\n{wide}"
    );

    // And back: the compact layout again. (Also, leaving the alternate screen at another size
    // than it was entered at makes tmux pull the UI's lines back into the shell's screen.)
    tmux.resize(80, 24);
    tmux.wait_for("the compact layout", Duration::from_secs(5), context, |s| {
        s.lines().count() == 24 && s.contains("Tail ·") && s.contains("Batches ·")
    });

    // The API goes down: said in the header, the data stays; it comes back by itself.
    api.stop();
    let down = tmux.wait_for("the API down", Duration::from_secs(10), context, |s| {
        s.contains(&format!("API {api_url} DOWN since"))
    });
    assert!(down.contains("API down since"), "{down}");
    assert!(down.contains("ord-"), "the last orders stay:\n{down}");
    let _api_again = Service::start("spine-api", &api_env, &[], logs);
    tmux.wait_for("the API back", Duration::from_secs(60), context, |s| {
        s.contains(&format!("API {api_url} ok")) && !s.contains("API down")
    });

    // q: the UI exits 0 and leaves the terminal as it found it.
    tmux.keys("q");
    let after = tmux.wait_for("the exit", Duration::from_secs(10), context, |s| {
        shell_is_back(s)
    });
    assert_eq!(
        after.lines().find(|l| !l.trim().is_empty()),
        Some("exit=0"),
        "the shell's screen is as it was:\n{after}"
    );
    assert!(terminal_restored(&after), "raw mode left on:\n{after}");
    assert!(
        !after.contains("Tail ·"),
        "the alternate screen was left:\n{after}"
    );

    // Logs went to the file, never to the screen.
    let log = std::fs::read_to_string(&tui_log).expect("the log file");
    assert!(
        log.contains("UI started") && log.contains("UI stopped"),
        "{log}"
    );
    assert!(log.contains("API does not answer"), "{log}");
}
