//! Rendering with ratatui's `TestBackend`, continued: an unreachable API, a dead broker, a
//! missing topic, pause, the tenant filter, focus and help, terminals too small, and numbers too
//! big for 80 columns.

use std::collections::BTreeMap;
use std::time::Instant;

use ratatui::style::{Color, Modifier};
use spine_tui::app::{Action, ApiPoll, BrokerReport, Feed, Msg};
use spine_tui::model::{OrdersResponse, StatsResponse, TailRecord, TenantStats};

mod common;

use common::screen::{
    api_down, at, batches, event_json, find, fixture, lines, order, poll, render, text,
};

#[test]
fn an_unreachable_api_is_said_in_the_header_and_the_panes_keep_their_data() {
    let mut app = fixture();
    // The stream broke with the API: the source falls back to polling, and says so.
    app.update(Msg::Feed(Feed::Poll));
    app.update(api_down(5));
    app.update(api_down(6));
    for (w, h) in [(80, 24), (200, 50)] {
        let buf = render(&app, w, h);
        let screen = text(&buf);
        assert!(
            lines(&buf)[0].starts_with("API http://localhost:8000 DOWN since 12:00:05 · polling"),
            "{screen}"
        );
        let (x, y) = find(&buf, "DOWN since").expect("down");
        assert_eq!(buf[(x, y)].bg, Color::Red);
        assert!(
            screen.contains("data of 12:00:02; API down since"),
            "{screen}"
        );
        if w == 200 {
            assert!(
                screen.contains(
                    "data of 12:00:02; API down since 12:00:05: Connection refused (os error 111)"
                ),
                "{screen}"
            );
        }
        assert!(screen.contains("ord-4"), "the last orders stay\n{screen}");
        assert!(
            screen.contains("0:100..600"),
            "the last batches stay\n{screen}"
        );
    }
    // It comes back by itself.
    app.update(poll(
        9,
        43,
        vec![order("acme", "ord-1", "order_shipped", 12999)],
    ));
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.starts_with("API http://localhost:8000 ok"),
        "{screen}"
    );
    assert!(!screen.contains("unreachable"), "{screen}");
}

#[test]
fn an_api_never_reached_and_a_dead_broker() {
    let mut app = common::local_app(Instant::now());
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.starts_with(
            "API http://localhost:8000 connecting…\nKafka localhost:9092 events connecting…"
        ),
        "{screen}"
    );
    assert!(
        screen.contains("waiting for /orders…") && screen.contains("waiting for records…"),
        "{screen}"
    );

    app.update(api_down(3));
    app.update(Msg::Broker {
        at: at(4),
        report: BrokerReport::Down {
            error: "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused".into(),
        },
    });
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    assert_eq!(
        lines(&buf)[0],
        "API http://localhost:8000 DOWN since 12:00:03",
        "{screen}"
    );
    assert_eq!(
        lines(&buf)[1],
        "Kafka localhost:9092 events DOWN since 12:00:04",
        "{screen}"
    );
    assert!(screen.contains("broker down since 12:00:04:"), "{screen}");
    assert!(
        screen.contains("127.0.0.1:9092/bootstrap: Connect to"),
        "{screen}"
    );
    assert_eq!(
        screen
            .matches("API down since 12:00:03: Connection")
            .count(),
        3,
        "orders, stats, batches\n{screen}"
    );

    app.update(Msg::Broker {
        at: at(7),
        report: BrokerReport::TopicMissing,
    });
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains("Kafka localhost:9092 events ok"),
        "{screen}"
    );
    assert!(
        screen.contains("topic events does not exist (yet)"),
        "{screen}"
    );
}

#[test]
fn pause_filter_focus_and_help_show() {
    let mut app = fixture();
    app.update(Msg::Action(Action::TogglePause));
    app.update(Msg::Action(Action::CycleTenant)); // the first tenant in order: "<img ..." sorts before "acme"
    app.update(Msg::Action(Action::CycleTenant));
    assert_eq!(app.filter.as_ref().map(|t| t.as_str()), Some("acme"));
    app.update(Msg::Action(Action::FocusNext));
    app.update(Msg::Action(Action::FocusNext));
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    assert!(screen.contains("PAUSED"), "{screen}");
    assert!(screen.contains("p resume"), "{screen}");
    assert!(
        screen.contains("Orders #42 · *1 · +1 · tenant acme"),
        "{screen}"
    );
    assert!(screen.contains("Stats #42 · tenant acme"), "{screen}");
    assert!(
        !screen.contains("ord-2") && !screen.contains("1008"),
        "other tenants are filtered out\n{screen}"
    );
    assert!(
        screen.contains("Batches · lag 80 · all tenants"),
        "{screen}"
    );
    // The focused pane has a thick cyan border.
    let (_, y) = find(&buf, "Stats").expect("stats title");
    assert_eq!(
        (buf[(40, y)].symbol(), buf[(40, y)].fg),
        ("━", Color::Cyan),
        "focused"
    );
    assert_eq!(buf[(79, y)].symbol(), "─", "not focused");
    assert!(
        buf[(79, y)].modifier.contains(Modifier::DIM),
        "not focused: dim"
    );

    app.update(Msg::Action(Action::ToggleHelp));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("Help: ? or Esc to close"), "{screen}");
    assert!(screen.contains("without committing any"), "{screen}");
    assert!(
        screen.contains("Connected to http://localhost:8000"),
        "all of it fits at 80×24\n{screen}"
    );
}

#[test]
fn tiny_terminals_do_not_panic() {
    let app = fixture();
    for (w, h) in [(1, 1), (10, 3), (40, 10), (79, 23), (81, 25), (300, 100)] {
        render(&app, w, h);
    }
}

#[test]
fn at_80_columns_order_ids_stay_whole_and_big_counts_shrink() {
    let mut app = fixture();
    let big = |name: &str| TenantStats {
        tenant: name.into(),
        orders: 74806,
        revenue_cents: 1_609_967_914,
        by_status: BTreeMap::from([
            ("order_placed".to_owned(), 99),
            ("order_paid".to_owned(), 97),
            ("order_shipped".to_owned(), 63805),
            ("order_cancelled".to_owned(), 10805),
        ]),
    };
    app.update(Msg::Api(ApiPoll {
        at: at(3),
        tenant: None,
        orders: Ok(OrdersResponse {
            orders: vec![order("initech", "ord-72f65a64", "order_shipped", 42154)],
            as_of_batch: Some(43),
        }),
        stats: Ok(StatsResponse {
            tenants: vec![big("initech")],
            as_of_batch: Some(43),
        }),
        batches: Ok(batches()),
    }));
    let json = event_json("initech", "order_shipped", "ord-72f65a64", 42154, 1);
    app.update(Msg::Tail {
        at: app.now,
        records: vec![TailRecord::decode(
            2,
            353501,
            Some(b"initech"),
            Some(json.as_bytes()),
        )],
    });
    let screen = text(&render(&app, 80, 24));
    let row = |needle: &str| {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("353501").contains(" ord-72f65a64 "), "{screen}");
    assert!(row("421.54").contains("ord-72f65a64"), "{screen}");
    assert!(row("74806").starts_with("initech"), "{screen}");
    assert!(
        screen.contains("\nplc 99 paid 97 shp 63.8k cxl 10.8k "),
        "{screen}"
    );
}

#[test]
fn on_a_short_screen_every_tenant_stays_in_the_stats_before_the_counts_per_status() {
    let app = fixture();
    for h in [21, 22] {
        let screen = text(&render(&app, 80, h));
        for tenant in ["acme ", "globex ", "initech ", "all "] {
            assert!(
                screen.lines().any(|l| l.starts_with(tenant)),
                "{tenant}at 80×{h}:\n{screen}"
            );
        }
        assert!(
            !screen.contains("placed 10  paid 50"),
            "no room for the counts at 80×{h}:\n{screen}"
        );
    }
}
