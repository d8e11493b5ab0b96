//! Rendering of the ways to look closer (issue 12), in `TestBackend` at 80×24, each screen also
//! kept as an `insta` snapshot: the selected row, the record detail (an event and a malformed
//! record), an order's history, a batch with its dead letters, the dead-letter list and one dead
//! letter whole, the filter line and its highlighted matches, zoom and the seek prompt.

use ratatui::style::Modifier;
use spine_tui::app::{Action, App, Msg, Pane};
use spine_tui::inspect::with_json;

mod common;

use common::screen::{draw, find, fixture, lines, render, text};

fn act(app: &mut App, actions: &[Action]) {
    for a in actions {
        app.update(Msg::Action(*a));
    }
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(Msg::Action(Action::Type(c)));
    }
}

/// The lines of the screen between the header and the footer.
fn body(app: &App) -> Vec<String> {
    let l = lines(&render(app, 80, 24));
    l[1..23].to_vec()
}

#[test]
fn the_newest_tail_record_is_selected_at_start_and_enter_shows_it_whole() {
    let mut app = fixture();
    let buf = render(&app, 80, 24);
    let (x, y) = find(&buf, "2001").expect("the newest record");
    assert!(
        buf[(x, y)].modifier.contains(Modifier::REVERSED),
        "the newest row is selected:\n{}",
        text(&buf)
    );

    act(&mut app, &[Action::Open]);
    insta::assert_snapshot!("record_80x24", draw(&app, 80, 24));
    let rows = body(&app);
    assert!(rows[0].contains("Record 2@2001"), "{rows:#?}");
    assert!(rows
        .iter()
        .any(|l| l.starts_with("offset") && l.ends_with(" 2001")));
    assert!(rows
        .iter()
        .any(|l| l.starts_with("topic") && l.ends_with(" events")));
    assert!(rows
        .iter()
        .any(|l| l.starts_with("key") && l.ends_with(" x")));
    // One JSON field a line.
    assert!(rows.contains(&r#"  "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427","#.to_owned()));
    assert!(rows.contains(&r#"  "tenant": "<img src=x onerror=alert(1)>""#.to_owned()));

    act(&mut app, &[Action::Back]);
    assert!(
        app.detail.is_none() && !app.quit,
        "Esc closes the detail first"
    );
    // Down selects the next row, a malformed record: its bytes and its reason.
    act(&mut app, &[Action::ScrollDown, Action::Open]);
    insta::assert_snapshot!("malformed_record_80x24", draw(&app, 80, 24));
    let rows = body(&app);
    assert!(
        rows.iter()
            .any(|l| l.starts_with("malformed") && l.contains("not a valid")),
        "{rows:#?}"
    );
    assert!(rows.contains(&r#"{"event_id": 42"#.to_owned()), "{rows:#?}");
}

#[test]
fn an_order_shows_its_history_oldest_first_with_the_current_event_marked() {
    let mut app = fixture();
    act(
        &mut app,
        &[Action::FocusNext, Action::ScrollDown, Action::Open],
    );
    let waiting = text(&render(&app, 80, 24));
    assert!(waiting.contains("Order acme/ord-1"), "{waiting}");
    assert!(
        waiting.contains("waiting for /orders/acme/ord-1…"),
        "{waiting}"
    );
    let history = with_json(serde_json::json!({
        "tenant": "acme", "order_id": "ord-1",
        "current": {"status": "order_paid", "amount_cents": 12999, "currency": "USD",
                    "updated_at": "2026-11-25T11:59:58.123456Z", "last_event_id": "e2"},
        "events": [
            {"event_id": "e1", "event_type": "order_placed", "amount_cents": 12999, "currency": "USD",
             "event_time": "2026-11-25T11:59:50Z", "topic": "events", "partition": 0, "offset": 41,
             "ingested_at": "2026-11-25T11:59:51Z", "current": false},
            {"event_id": "e2", "event_type": "order_paid", "amount_cents": 12999, "currency": "USD",
             "event_time": "2026-11-25T11:59:55Z", "topic": "events", "partition": 0, "offset": 57,
             "ingested_at": "2026-11-25T11:59:56Z", "current": true}
        ],
        "as_of_batch": 42
    }))
    .expect("history");
    app.update(Msg::OrderHistory {
        tenant: "acme".into(),
        order_id: "ord-1".into(),
        result: Ok(history),
    });
    insta::assert_snapshot!("order_history_80x24", draw(&app, 80, 24));
    let rows = body(&app);
    let placed = rows
        .iter()
        .position(|l| l.contains("order_placed"))
        .expect("placed");
    let paid = rows
        .iter()
        .position(|l| l.contains("order_paid") && l.contains("p0@57"))
        .expect("paid");
    assert!(placed < paid, "oldest first:\n{rows:#?}");
    assert!(rows[paid].starts_with('▶'), "{rows:#?}");
    assert!(!rows[placed].starts_with('▶'));
}

#[test]
fn a_batch_shows_its_ranges_counts_durations_and_dead_letters() {
    let mut app = fixture();
    act(&mut app, &[Action::FocusPrev, Action::Open]);
    assert_eq!(app.focus, Pane::Batches);
    let list = with_json(serde_json::json!({"dead_letters": [
        {"id": 7, "topic": "events", "partition": 1, "offset": 100, "received_at": "2026-11-25T12:00:02Z",
         "reason": "not a valid event JSON object: EOF", "key": "acme", "payload": "{\"event_id\": 42",
         "payload_encoding": "utf8", "payload_bytes": 15, "truncated": false},
        {"id": 6, "topic": "events", "partition": 1, "offset": 5, "received_at": "2026-11-25T11:00:00Z",
         "reason": "of another batch", "key": null, "payload": "x",
         "payload_encoding": "utf8", "payload_bytes": 1, "truncated": false}
    ]}))
    .expect("dead letters");
    app.update(Msg::DeadLetters(Ok(list)));
    insta::assert_snapshot!("batch_80x24", draw(&app, 80, 24));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("Batch #42"), "{screen}");
    assert!(
        screen.contains("fetch 12.5  write 30.1  total 42.6"),
        "{screen}"
    );
    assert!(
        screen.contains("        1          80..590         510"),
        "{screen}"
    );
    assert!(
        screen.contains("p1@100: not a valid event JSON object: EOF"),
        "{screen}"
    );
    assert!(!screen.contains("of another batch"), "{screen}");
}

#[test]
fn d_lists_the_dead_letters_with_their_reasons_and_enter_shows_one_whole() {
    let mut app = fixture();
    act(&mut app, &[Action::DeadLetters]);
    assert!(text(&render(&app, 80, 24)).contains("waiting for /dead_letters…"));
    let payload = format!("{{\"event_id\": 42, \"pad\": \"{}\"}}", "y".repeat(300));
    let list = with_json(serde_json::json!({"dead_letters": [
        {"id": 9, "topic": "events", "partition": 2, "offset": 31, "received_at": "2026-11-25T12:00:03Z",
         "reason": "unknown event_type \"order_lost\"", "key": "globex", "payload": "\u{1b}[2J",
         "payload_encoding": "utf8", "payload_bytes": 4, "truncated": false},
        {"id": 8, "topic": "events", "partition": 1, "offset": 100, "received_at": "2026-11-25T12:00:02Z",
         "reason": "not a valid event JSON object", "key": "acme", "payload": payload,
         "payload_encoding": "utf8", "payload_bytes": 330, "truncated": false}
    ]}))
    .expect("dead letters");
    app.update(Msg::DeadLetters(Ok(list)));
    insta::assert_snapshot!("dead_letters_80x24", draw(&app, 80, 24));
    let rows = body(&app);
    assert!(
        rows[0].contains("Dead letters · 2 newest first"),
        "{rows:#?}"
    );
    assert!(rows
        .iter()
        .any(|l| l.starts_with("2@31") && l.contains("unknown event_type \"order_lost\"")));
    assert!(rows
        .iter()
        .any(|l| l.starts_with("1@100") && l.contains("not a valid event JSON object")));

    act(&mut app, &[Action::ScrollDown, Action::Open]);
    insta::assert_snapshot!("dead_letter_80x24", draw(&app, 80, 24));
    let rows = body(&app);
    assert!(rows
        .iter()
        .any(|l| l.starts_with("reason") && l.contains("not a valid event JSON object")));
    assert!(
        rows.contains(&r#"  "event_id": 42,"#.to_owned()),
        "{rows:#?}"
    );
    // The long field is cut at the screen's edge, never past it.
    assert!(rows.iter().all(|l| common::screen::unicode_width(l) <= 80));
    act(&mut app, &[Action::Back]);
    assert!(body(&app)[0].contains("Dead letters · 2"));
}

#[test]
fn the_filter_line_narrows_and_highlights_and_the_footer_says_so() {
    let mut app = fixture();
    act(&mut app, &[Action::Filter]);
    typed(&mut app, "GLOB");
    let buf = render(&app, 80, 24);
    insta::assert_snapshot!("filter_editing_80x24", draw(&app, 80, 24));
    assert!(
        lines(&buf)[23].starts_with("/GLOB▏  Enter keep · Esc cancel"),
        "{}",
        text(&buf)
    );
    let (x, y) = find(&buf, "globex").expect("a globex row");
    assert!(
        buf[(x, y)].modifier.contains(Modifier::BOLD)
            && buf[(x, y)].bg == ratatui::style::Color::Yellow
    );
    assert!(
        buf[(x + 5, y)].bg != ratatui::style::Color::Yellow,
        "only the match is marked"
    );

    act(&mut app, &[Action::Open]);
    let buf = render(&app, 80, 24);
    let screen = text(&buf);
    insta::assert_snapshot!("filter_kept_80x24", draw(&app, 80, 24));
    assert!(lines(&buf)[23].starts_with(" filter /GLOB "), "{screen}");
    for l in lines(&buf)[3..12].iter() {
        for tenant in ["acme", "initech"] {
            assert!(!l.contains(tenant), "{tenant} left in:\n{screen}");
        }
    }
    assert!(screen.contains("ord-2"), "{screen}");
    act(&mut app, &[Action::Back]);
    assert!(text(&render(&app, 80, 24)).contains("initech"));
}

#[test]
fn z_zooms_the_focused_pane_and_back() {
    let mut app = fixture();
    act(&mut app, &[Action::FocusNext, Action::Zoom]);
    insta::assert_snapshot!("zoom_orders_80x24", draw(&app, 80, 24));
    let screen = text(&render(&app, 80, 24));
    assert!(screen.contains("· zoom"), "{screen}");
    assert!(
        !screen.contains("Tail ·") && !screen.contains("Stats #"),
        "{screen}"
    );
    // Zoomed, the orders pane has the room for its wide columns.
    assert!(
        screen.contains("updated") && screen.contains("order_paid"),
        "{screen}"
    );
    act(&mut app, &[Action::Zoom]);
    let screen = text(&render(&app, 80, 24));
    assert!(
        screen.contains("Tail ·") && screen.contains("Stats #"),
        "{screen}"
    );
}

#[test]
fn o_asks_for_a_partition_and_offset() {
    let mut app = fixture();
    act(&mut app, &[Action::Seek]);
    typed(&mut app, "one");
    act(&mut app, &[Action::Open]);
    let buf = render(&app, 80, 24);
    assert!(
        lines(&buf)[23].starts_with("seek partition:offset one▏  expected partition:offset"),
        "{}",
        text(&buf)
    );
    for _ in 0..3 {
        act(&mut app, &[Action::Erase]);
    }
    typed(&mut app, "1:2000");
    act(&mut app, &[Action::Open]);
    assert!(text(&render(&app, 80, 24)).contains("from 1@2000"));
    insta::assert_snapshot!("seek_80x24", draw(&app, 80, 24));
}

#[test]
fn every_view_fits_a_small_terminal_without_panicking() {
    let mut app = fixture();
    act(&mut app, &[Action::Open]);
    for (w, h) in [(1, 1), (10, 3), (20, 5), (80, 24)] {
        render(&app, w, h);
    }
    act(&mut app, &[Action::Back, Action::DeadLetters]);
    for (w, h) in [(1, 1), (10, 3), (20, 5)] {
        render(&app, w, h);
    }
}

#[test]
fn the_help_lists_the_new_keys_at_80x24() {
    let mut app = fixture();
    act(&mut app, &[Action::ToggleHelp]);
    insta::assert_snapshot!("help_80x24", draw(&app, 80, 24));
    let screen = text(&render(&app, 80, 24));
    for key in ["Enter", "/", "z", "d", "o", "y"] {
        assert!(
            screen.lines().any(|l| l.contains(&format!("│{key:>12} "))),
            "{key} in the help:\n{screen}"
        );
    }
}
