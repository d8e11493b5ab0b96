//! The screen the render tests draw: one `App` with everything on it, drawn into ratatui's
//! `TestBackend`, and ways to read the result (lines, regions, where a text is).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use spine_tui::app::{ApiPoll, App, BrokerReport, Feed, LogEnd, Msg, WallTime};
use spine_tui::model::{
    Batch, BatchesResponse, Order, OrdersResponse, PartitionLag, PartitionRange, ProcessorState,
    ProcessorStatus, StatsResponse, TailRecord, TenantStats,
};

pub fn at(secs: u32) -> WallTime {
    FixedOffset::east_opt(0)
        .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 12, 0, secs).single())
        .expect("valid time")
}

/// An event with a fixed id and a time `secs` into the minute, so snapshots stay the same.
pub fn event_json(tenant: &str, ty: &str, order: &str, cents: i64, secs: u32) -> String {
    super::event_json_with(
        tenant,
        ty,
        order,
        cents,
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        &format!("2026-11-25T11:59:{secs:02}.250Z"),
    )
}

pub fn order(tenant: &str, id: &str, status: &str, cents: i64) -> Order {
    serde_json::from_value(serde_json::json!({
        "tenant": tenant, "order_id": id, "status": status, "amount_cents": cents,
        "currency": "USD", "updated_at": "2026-11-25T11:59:58.123456Z"
    }))
    .expect("order")
}

pub fn stats() -> StatsResponse {
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

pub fn batches() -> BatchesResponse {
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
        input_rate: Some(300.0),
        process_rate: Some(35_000.0),
        commit_lag_s: Some(0.4),
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
                ..PartitionLag::default()
            },
            // The API's stored end says 0; the live end (`live_ends`) says 10.
            PartitionLag {
                partition: 1,
                next_offset: 590,
                high_watermark: Some(590),
                lag: Some(0),
                ..PartitionLag::default()
            },
            PartitionLag {
                partition: 2,
                next_offset: 480,
                high_watermark: None,
                lag: None,
                ..PartitionLag::default()
            },
            // Another topic's offsets: not this screen's.
            PartitionLag {
                topic: Some("other".into()),
                partition: 7,
                next_offset: 5,
                ..PartitionLag::default()
            },
        ],
        processor: Some(processor(ProcessorState::Running, Some(1.0), Some(1.2))),
    }
}

/// The processor as `/batches` describes it.
pub fn processor(
    state: ProcessorState,
    last_batch_age_s: Option<f64>,
    event_time_lag_s: Option<f64>,
) -> ProcessorStatus {
    ProcessorStatus {
        state,
        last_batch_at: last_batch_age_s.map(|_| "2026-11-25T12:00:02Z".into()),
        last_batch_age_s,
        trigger_interval_ms: Some(1000),
        lag_records: Some(80),
        event_time_lag_s,
        replicas: vec![],
    }
}

/// The ends of the topic's partitions as the topic source read them at `secs`.
pub fn live_ends(secs: u32, ends: &[(i32, i64)]) -> Msg {
    Msg::Watermarks {
        at: at(secs),
        ends: ends
            .iter()
            .map(|&(p, high)| (p, LogEnd { low: 0, high }))
            .collect(),
    }
}

pub fn poll(secs: u32, batch: i64, orders: Vec<Order>) -> Msg {
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

pub fn api_down(secs: u32) -> Msg {
    super::api_unreachable(at(secs), "Connection refused (os error 111)")
}

/// A screen with everything on it: the API's answers pushed by its stream, two rounds (so one order changed status and one is new),
/// twelve records on the tail (one malformed, one with a hostile tenant), both sources up, the
/// processor running, and the live ends of the partitions read after the polls (lag 50 + 10 +
/// 20).
pub fn fixture() -> App {
    let t0 = Instant::now();
    let mut app = super::local_app(t0);
    app.update(Msg::Broker {
        at: at(0),
        report: BrokerReport::Up { partitions: 3 },
    });
    // As spine-tui runs against an API that serves GET /stream.
    app.update(Msg::Feed(Feed::Push));
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
    app.update(live_ends(3, &[(0, 650), (1, 600), (2, 500)]));
    app.update(Msg::Tick(t0 + Duration::from_secs(2)));
    app
}

/// `app` drawn on a `width`×`height` terminal; its `Display` is what snapshots keep.
pub fn draw(app: &App, width: u16, height: u16) -> TestBackend {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| spine_tui::ui::draw(f, app))
        .expect("draws");
    terminal.backend().clone()
}

pub fn render(app: &App, width: u16, height: u16) -> Buffer {
    draw(app, width, height).buffer().clone()
}

pub fn lines(buf: &Buffer) -> Vec<String> {
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

pub fn unicode_width(s: &str) -> u16 {
    ratatui::text::Span::raw(s).width() as u16
}

pub fn text(buf: &Buffer) -> String {
    lines(buf).join("\n")
}

/// The text of the region of a pane: the rows between `top` and `bottom` (exclusive), columns
/// from `left` to `right`.
pub fn region(buf: &Buffer, left: u16, top: u16, right: u16, bottom: u16) -> String {
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
pub fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
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
