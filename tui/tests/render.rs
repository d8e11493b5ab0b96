//! Rendering with ratatui's `TestBackend`: what each pane shows for known data, at 80×24 (the
//! smallest the issue asks for) and at a large size, including a malformed record and hostile
//! strings. The two full screens are also kept as `insta` snapshots in `tests/snapshots/`: a
//! changed render fails until the new one is reviewed (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test -p spine-tui --test render` and a look at the diff).
//! Other states (sources down, pause, filter, help, small terminals) are in `render_states.rs`.

use ratatui::style::Color;

mod common;

use common::screen::{draw, find, fixture, lines, region, render, text};

#[test]
fn at_80x24_every_pane_shows_its_data() {
    let app = fixture();
    insta::assert_snapshot!("all_panes_80x24", draw(&app, 80, 24));
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    let rows = lines(&buf);

    // Header: what it is connected to, that both answer, and that the API pushes.
    assert!(
        rows[0].starts_with("API http://localhost:8000 ok · push │ Kafka localhost:9092 events ok"),
        "{}",
        rows[0]
    );
    assert_eq!(
        rows[1],
        "Processor running · last batch 1s ago · fresh 1.2 s · lag 80"
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
    let (batches_x, batches_y) = find(&buf, "Batches · lag 80").expect("batches pane");
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

    // Batches: each partition's committed offset, the live end of its log and the lag between
    // them (partition 1: 10, though the API's stored end said 0); the batches with their
    // offset ranges.
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
            .any(|l| l.split_whitespace().eq(["2", "480", "500", "20"])),
        "{batches}"
    );
    assert!(
        batches
            .lines()
            .any(|l| l.split_whitespace().eq(["1", "590", "600", "10"])),
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
    insta::assert_snapshot!("all_panes_200x50", draw(&app, 200, 50));
    let screen = text(&render(&app, 200, 50));
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
