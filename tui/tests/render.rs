//! Rendering with ratatui's `TestBackend`: what each pane shows for known data, at 80×24 (the
//! smallest the issue asks for) and at a large size, including an unreachable API, a dead
//! broker, a malformed record and hostile strings. Two full screens are kept as snapshots in
//! `tests/snapshots/` (`UPDATE_SNAPSHOTS=1 cargo test -p spine-tui --test render` rewrites them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;
use spine_tui::app::{Action, ApiPoll, App, BrokerReport, Msg, WallTime};
use spine_tui::model::{
    Batch, BatchesResponse, Order, OrdersResponse, PartitionLag, PartitionRange, StatsResponse,
    TailRecord, TenantStats,
};

mod common;

fn at(secs: u32) -> WallTime {
    FixedOffset::east_opt(0)
        .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 12, 0, secs).single())
        .expect("valid time")
}

fn event_json(tenant: &str, ty: &str, order: &str, cents: i64, secs: u32) -> String {
    serde_json::json!({
        "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "tenant": tenant, "event_type": ty,
        "order_id": order, "amount_cents": cents, "currency": "USD",
        "event_time": format!("2026-11-25T11:59:{secs:02}.250Z"),
    })
    .to_string()
}

fn order(tenant: &str, id: &str, status: &str, cents: i64) -> Order {
    serde_json::from_value(serde_json::json!({
        "tenant": tenant, "order_id": id, "status": status, "amount_cents": cents,
        "currency": "USD", "updated_at": "2026-11-25T11:59:58.123456Z"
    }))
    .expect("order")
}

fn stats() -> StatsResponse {
    let tenant = |name: &str, orders, revenue, s: [i64; 4]| TenantStats {
        tenant: name.into(),
        orders,
        revenue_cents: revenue,
        by_status: BTreeMap::from([
            ("order_placed".to_owned(), s[0]),
            ("order_paid".to_owned(), s[1]),
            ("order_shipped".to_owned(), s[2]),
            ("order_cancelled".to_owned(), s[3]),
        ]),
    };
    StatsResponse {
        tenants: vec![
            tenant("acme", 120, 123456, [10, 50, 55, 5]),
            tenant("globex", 80, 98700, [20, 30, 25, 5]),
            tenant("initech", 7, 0, [7, 0, 0, 0]),
        ],
        as_of_batch: Some(42),
    }
}

fn batches() -> BatchesResponse {
    let batch = |id: i64, rows, ms, ranges: &[(i32, i64, i64)]| Batch {
        batch_id: id,
        started_at: "2026-11-25T11:59:59.000000Z".into(),
        finished_at: format!("2026-11-25T12:00:{:02}.000000Z", id - 40)
            .as_str()
            .into(),
        input_rows: rows,
        events_inserted: rows - 5,
        duplicates: 5,
        orders_upserted: rows / 2,
        stale_skipped: 2,
        dead_lettered: if id == 42 { 1 } else { 0 },
        fetch_ms: 12.5,
        write_ms: 30.1,
        total_ms: ms,
        partitions: ranges
            .iter()
            .map(|&(partition, start_offset, end_offset)| PartitionRange {
                partition,
                start_offset,
                end_offset,
            })
            .collect(),
    };
    BatchesResponse {
        batches: vec![
            batch(42, 1500, 42.6, &[(0, 100, 600), (1, 80, 590), (2, 70, 480)]),
            batch(41, 900, 30.2, &[(0, 20, 100), (1, 10, 80)]),
            batch(40, 30, 8.0, &[(2, 40, 70)]),
        ],
        partitions: vec![
            PartitionLag {
                partition: 0,
                next_offset: 600,
                high_watermark: Some(650),
                lag: Some(50),
            },
            PartitionLag {
                partition: 1,
                next_offset: 590,
                high_watermark: Some(590),
                lag: Some(0),
            },
            PartitionLag {
                partition: 2,
                next_offset: 480,
                high_watermark: None,
                lag: None,
            },
        ],
    }
}

fn poll(secs: u32, batch: i64, orders: Vec<Order>) -> Msg {
    Msg::Api(ApiPoll {
        at: at(secs),
        tenant: None,
        orders: Ok(OrdersResponse {
            orders,
            as_of_batch: Some(batch),
        }),
        stats: Ok(stats()),
        batches: Ok(batches()),
    })
}

fn api_down(secs: u32) -> Msg {
    common::api_unreachable(at(secs), "Connection refused (os error 111)")
}

/// A screen with everything on it: two polls (so one order changed status and one is new),
/// twelve records on the tail (one malformed, one with a hostile tenant), both sources up.
fn fixture() -> App {
    let t0 = Instant::now();
    let mut app = common::local_app(t0);
    app.update(Msg::Broker {
        at: at(0),
        report: BrokerReport::Up { partitions: 3 },
    });
    app.update(poll(
        1,
        41,
        vec![
            order("acme", "ord-1", "order_placed", 12999),
            order("globex", "ord-2", "order_paid", 500),
            order("initech", "ord-3", "order_shipped", 4200),
        ],
    ));
    app.update(poll(
        2,
        42,
        vec![
            order("acme", "ord-4", "order_placed", 100),
            order("acme", "ord-1", "order_paid", 12999),
            order("globex", "ord-2", "order_paid", 500),
            order("\u{1b}[2J", "ord-5\u{7}", "order_cancelled", 1),
            order("initech", "ord-3", "order_shipped", 4200),
        ],
    ));
    let mut records = Vec::new();
    let types = [
        "order_placed",
        "order_paid",
        "order_shipped",
        "order_cancelled",
    ];
    for i in 0..10i64 {
        let tenant = ["acme", "globex", "initech"][(i % 3) as usize];
        let json = event_json(
            tenant,
            types[(i % 4) as usize],
            &format!("ord-{}", 100 + i),
            12999 + i,
            i as u32,
        );
        records.push(TailRecord::decode(
            (i % 3) as i32,
            1000 + i,
            Some(tenant.as_bytes()),
            Some(json.as_bytes()),
        ));
    }
    records.push(TailRecord::decode(
        1,
        2000,
        Some(b"acme"),
        Some(b"{\"event_id\": 42"),
    ));
    let hostile = event_json("<img src=x onerror=alert(1)>", "order_paid", "ord-x", 1, 30);
    records.push(TailRecord::decode(
        2,
        2001,
        Some(b"x"),
        Some(hostile.as_bytes()),
    ));
    app.update(Msg::Tail { at: t0, records });
    app.update(Msg::Tick(t0 + Duration::from_secs(2)));
    app
}

fn render(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| spine_tui::ui::draw(f, app))
        .expect("draws");
    terminal.backend().buffer().clone()
}

fn lines(buf: &Buffer) -> Vec<String> {
    let area = buf.area;
    (0..area.height)
        .map(|y| {
            let mut line = String::new();
            let mut x = 0;
            while x < area.width {
                let cell = &buf[(x, y)];
                line.push_str(cell.symbol());
                // A wide character covers the next cell, which holds nothing of its own.
                x += (unicode_width(cell.symbol())).max(1);
            }
            line.trim_end().to_owned()
        })
        .collect()
}

fn unicode_width(s: &str) -> u16 {
    ratatui::text::Span::raw(s).width() as u16
}

fn text(buf: &Buffer) -> String {
    lines(buf).join("\n")
}

/// The text of the region of a pane: the rows between `top` and `bottom` (exclusive), columns
/// from `left` to `right`.
fn region(buf: &Buffer, left: u16, top: u16, right: u16, bottom: u16) -> String {
    (top..bottom)
        .map(|y| {
            (left..right)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where `needle` is on screen: (x, y) of its first character.
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    for y in 0..buf.area.height {
        let row: Vec<&str> = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        let joined: String = row.concat();
        if let Some(byte) = joined.find(needle) {
            // Map the byte offset back to a column (all cells hold one symbol each).
            let mut acc = 0;
            for (x, s) in row.iter().enumerate() {
                if acc == byte {
                    return Some((x as u16, y));
                }
                acc += s.len();
            }
        }
    }
    None
}

fn snapshot(name: &str, buf: &Buffer) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    let actual = text(buf) + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("snapshot dir");
        std::fs::write(&path, &actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from the snapshot (UPDATE_SNAPSHOTS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

#[test]
fn at_80x24_every_pane_shows_its_data() {
    let app = fixture();
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    let rows = lines(&buf);
    snapshot("all_panes_80x24.txt", &buf);

    // Header: what it is connected to, and that both answer.
    assert!(
        rows[0].starts_with("API http://localhost:8000 ok │ Kafka localhost:9092 events ok"),
        "{}",
        rows[0]
    );
    // Footer: the keys.
    for key in [
        " q/Esc quit",
        " Tab focus",
        " ↑↓ PgUp/PgDn scroll",
        " p pause",
        " t tenant",
        " ? help",
    ] {
        assert!(rows[23].contains(key), "footer lacks {key}: {}", rows[23]);
    }

    // The 2×2 grid: tail top-left, orders top-right, stats bottom-left, batches bottom-right.
    let (tail_x, tail_y) = find(&buf, "Tail · ").expect("tail pane");
    let (orders_x, orders_y) = find(&buf, "Orders #42").expect("orders pane");
    let (stats_x, stats_y) = find(&buf, "Stats #42").expect("stats pane");
    let (batches_x, batches_y) = find(&buf, "Batches · lag 50").expect("batches pane");
    assert_eq!(tail_y, orders_y);
    assert_eq!(stats_y, batches_y);
    assert!(tail_y < stats_y && tail_x < orders_x && stats_x < batches_x);

    // Tail: newest first, partition, offset, tenant, type, order, amount; malformed in red.
    // Each title starts one column into its pane; the left panes end with a rule.
    let tail = region(&buf, 0, tail_y + 1, orders_x - 2, stats_y);
    let tail_rows: Vec<&str> = tail.lines().collect();
    let words = |row: &str| {
        row.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        words(tail_rows[0]),
        ["p", "offset", "tenant", "type", "order", "amount"],
        "{tail}"
    );
    assert!(
        tail_rows[1].starts_with("2   2001 <img src=x") && tail_rows[1].contains(" paid    ord-x "),
        "{tail}"
    );
    assert!(
        tail_rows[2].starts_with("1   2000 malformed (key acme): not a valid"),
        "{tail}"
    );
    assert_eq!(
        words(tail_rows[3]),
        ["0", "1009", "acme", "paid", "ord-109", "130.08"],
        "{tail}"
    );
    assert_eq!(
        words(tail_rows[4]),
        ["2", "1008", "initech", "placed", "ord-108", "130.07"],
        "{tail}"
    );
    let (mx, my) = find(&buf, "malformed").expect("malformed row");
    assert_eq!(buf[(mx, my)].fg, Color::Red);
    assert!(
        screen.contains("6.0 ev/s · LIVE"),
        "12 records over 2 s\n{screen}"
    );

    // Orders: the changed and the new row highlighted, the hostile tenant harmless.
    let orders = region(&buf, orders_x - 1, orders_y + 1, 80, stats_y);
    assert!(
        orders.contains("+ acme") && orders.contains("ord-4"),
        "{orders}"
    );
    assert!(
        orders.contains("* acme") && orders.contains("ord-1"),
        "{orders}"
    );
    assert!(
        orders.contains("␛[2J") && orders.contains("ord-5␇"),
        "{orders}"
    );
    let (cx, cy) = find(&buf, "* acme").expect("changed row");
    assert_eq!(buf[(cx, cy)].bg, Color::Yellow);
    assert!(screen.contains("Orders #42 · *1 · +2"), "{screen}");

    // Stats: per tenant orders, revenue, the status split and the rate seen on the topic.
    let stats = region(&buf, 0, stats_y + 1, batches_x - 2, 23);
    assert!(
        stats.contains("tenant") && stats.contains("revenue") && stats.contains("ev/s"),
        "{stats}"
    );
    assert!(
        stats.lines().any(|l| l.contains("acme")
            && l.contains("120")
            && l.contains("1234.56")
            && l.contains("2.0")),
        "{stats}"
    );
    assert!(
        stats.contains("placed 10  paid 50  shipped 55  cancel 5"),
        "{stats}"
    );
    assert!(
        stats.lines().any(|l| l.contains("all")
            && l.contains("207")
            && l.contains("2221.56")
            && l.contains("6.0")),
        "{stats}"
    );

    // Batches: each partition's committed offset, high watermark and lag; the batches with
    // their offset ranges.
    let batches = region(&buf, batches_x - 1, batches_y + 1, 80, 23);
    assert!(
        batches
            .lines()
            .any(|l| l.split_whitespace().eq(["0", "600", "650", "50"])),
        "{batches}"
    );
    assert!(
        batches
            .lines()
            .any(|l| l.split_whitespace().eq(["2", "480", "-", "-"])),
        "{batches}"
    );
    assert!(batches.contains("#42 1500 rows 42.6 ms"), "{batches}");
    assert!(batches.contains("0:100..600 1:80..590"), "{batches}");

    // Nothing that reached the screen can drive the terminal.
    assert!(
        !screen.chars().any(|c| c.is_control() && c != '\n'),
        "{screen:?}"
    );
}

#[test]
fn at_a_large_size_the_panes_use_the_room() {
    let app = fixture();
    let buf = render(&app, 200, 50);
    let screen = text(&buf);
    snapshot("all_panes_200x50.txt", &buf);
    // Wider: full type names, event times, currencies, the status a row had, batch details.
    assert!(
        screen.contains("Topic tail · 3 partitions · 6.0 ev/s · LIVE"),
        "{screen}"
    );
    for header in [
        "event time",
        "cur",
        "updated",
        "change",
        "placed",
        "cancelled",
        "offsets per partition",
    ] {
        assert!(screen.contains(header), "{header}\n{screen}");
    }
    assert!(
        screen
            .lines()
            .any(|l| l.contains("1009") && l.contains("11:59:09.250Z") && l.contains("order_paid")),
        "{screen}"
    );
    assert!(screen.contains("was placed"), "{screen}");
    assert!(
        screen.contains("Orders · batch 42 · changed 1 · new 2"),
        "{screen}"
    );
    assert!(
        screen.lines().any(|l| l.contains("#42")
            && l.contains("12:00:02")
            && l.contains("0:100..600 1:80..590 2:70..480")),
        "{screen}"
    );
    assert!(
        screen
            .contains("malformed (key acme): not a valid event JSON object: invalid type: integer"),
        "{screen}"
    );
    // Taller: every tail row and every batch fits.
    for offset in 1000..1010 {
        assert!(
            screen.contains(&format!(" {offset} ")),
            "offset {offset}\n{screen}"
        );
    }
    assert!(screen.contains("#40"), "{screen}");
}

#[test]
fn an_unreachable_api_is_said_in_the_header_and_the_panes_keep_their_data() {
    let mut app = fixture();
    app.update(api_down(5));
    app.update(api_down(6));
    for (w, h) in [(80, 24), (200, 50)] {
        let buf = render(&app, w, h);
        let screen = text(&buf);
        assert!(
            lines(&buf)[0].starts_with("API http://localhost:8000 DOWN since 12:00:05 │ Kafka"),
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
        screen.contains("Batches · lag 50 · all tenants"),
        "{screen}"
    );
    // The focused pane has a thick cyan border.
    let (_, y) = find(&buf, "Stats").expect("stats title");
    assert_eq!(
        (buf[(40, y)].symbol(), buf[(40, y)].fg),
        ("━", Color::Cyan),
        "focused"
    );
    assert_eq!(
        (buf[(79, y)].symbol(), buf[(79, y)].fg),
        ("─", Color::DarkGray),
        "not focused"
    );

    app.update(Msg::Action(Action::ToggleHelp));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("Help: ? or Esc to close"), "{screen}");
    assert!(screen.contains("never moved"), "{screen}");
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
