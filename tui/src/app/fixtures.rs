//! Data the unit tests of the state share.

use std::time::Instant;

use chrono::{FixedOffset, TimeZone};

use super::{ApiPoll, App, Connection, FetchError, Fetched, Msg, WallTime};
use crate::model::{
    Batch, BatchesResponse, Order, OrdersResponse, PartitionLag, StatsResponse, TailRecord,
    TenantStats,
};
use crate::text::SafeText;

pub fn at(secs: u32) -> WallTime {
    FixedOffset::east_opt(0)
        .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 12, 0, secs).single())
        .expect("valid time")
}

pub fn app() -> App {
    App::new(
        Connection {
            api: "http://localhost:8000".into(),
            brokers: "localhost:9092".into(),
            topic: "events".into(),
        },
        Instant::now(),
    )
}

pub fn order(tenant: &str, id: &str, status: &str) -> Order {
    Order {
        tenant: tenant.into(),
        order_id: id.into(),
        status: status.into(),
        amount_cents: 100,
        currency: "USD".into(),
        updated_at: "2026-11-25T12:00:00Z".into(),
    }
}

pub fn orders(batch: i64, rows: Vec<Order>) -> Fetched<OrdersResponse> {
    Ok(OrdersResponse {
        orders: rows,
        as_of_batch: Some(batch),
    })
}

pub fn stats(tenants: &[&str]) -> Fetched<StatsResponse> {
    Ok(StatsResponse {
        tenants: tenants
            .iter()
            .map(|t| TenantStats {
                tenant: (*t).into(),
                orders: 1,
                revenue_cents: 0,
                by_status: Default::default(),
            })
            .collect(),
        as_of_batch: Some(1),
    })
}

pub fn batches() -> Fetched<BatchesResponse> {
    Ok(BatchesResponse {
        batches: (1..=3)
            .map(|id| Batch {
                batch_id: id,
                started_at: SafeText::default(),
                finished_at: SafeText::default(),
                input_rows: 10,
                events_inserted: 10,
                duplicates: 0,
                orders_upserted: 5,
                stale_skipped: 0,
                dead_lettered: 0,
                fetch_ms: 1.0,
                write_ms: 2.0,
                total_ms: 3.0,
                partitions: vec![],
            })
            .collect(),
        partitions: vec![PartitionLag {
            partition: 0,
            next_offset: 10,
            high_watermark: Some(12),
            lag: Some(2),
        }],
    })
}

pub fn poll(secs: u32, o: Fetched<OrdersResponse>) -> Msg {
    Msg::Api(ApiPoll {
        at: at(secs),
        tenant: None,
        orders: o,
        stats: stats(&["acme", "globex"]),
        batches: batches(),
    })
}

pub fn unreachable(secs: u32) -> Msg {
    let e = || FetchError::Unreachable("connection refused".into());
    Msg::Api(ApiPoll {
        at: at(secs),
        tenant: None,
        orders: Err(e()),
        stats: Err(e()),
        batches: Err(e()),
    })
}

pub fn event(tenant: &str, offset: i64) -> TailRecord {
    let json = format!(
        r#"{{"event_id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","tenant":"{tenant}","event_type":"order_placed",
            "order_id":"ord-{offset}","amount_cents":100,"event_time":"2026-11-25T12:00:00Z"}}"#
    );
    TailRecord::decode(0, offset, Some(tenant.as_bytes()), Some(json.as_bytes()))
}

pub fn tail(app: &mut App, records: Vec<TailRecord>) {
    let now = app.now;
    app.update(Msg::Tail { at: now, records });
}

pub fn offsets(app: &App) -> Vec<i64> {
    app.visible_tail().map(|r| r.offset).collect()
}
