//! Helpers shared by spine-tui's integration tests.
#![allow(dead_code)] // each test binary uses a different part

pub mod screen;
pub mod services;
pub mod tmux;

use std::time::Instant;

use spine_testkit::kafka::Raw;
use spine_tui::app::{ApiPoll, App, Connection, FetchError, Msg, WallTime};

/// An `App` watching a local spine, as the tests start it.
pub fn local_app(started: Instant) -> App {
    App::new(
        Connection {
            api: "http://localhost:8000".into(),
            brokers: "localhost:9092".into(),
            topic: "events".into(),
        },
        started,
    )
}

/// An API poll in which every route failed to connect with `reason`.
pub fn api_unreachable(at: WallTime, reason: &str) -> Msg {
    let e = || FetchError::Unreachable(reason.into());
    Msg::Api(ApiPoll {
        at,
        tenant: None,
        orders: Err(e()),
        stats: Err(e()),
        batches: Err(e()),
    })
}

/// An order event as the producer writes it, with a given id and time.
pub fn event_json_with(
    tenant: &str,
    ty: &str,
    order: &str,
    cents: i64,
    event_id: &str,
    event_time: &str,
) -> String {
    serde_json::json!({
        "event_id": event_id, "tenant": tenant, "event_type": ty,
        "order_id": order, "amount_cents": cents, "currency": "USD",
        "event_time": event_time,
    })
    .to_string()
}

/// An order event with a fresh id, as record bytes.
pub fn event_json(tenant: &str, ty: &str, order: &str, cents: i64) -> Vec<u8> {
    let id = uuid::Uuid::new_v4().to_string();
    event_json_with(tenant, ty, order, cents, &id, "2026-11-25T12:00:00.123456Z").into_bytes()
}

pub fn raw(partition: i32, key: &str, value: &[u8]) -> Raw {
    Raw {
        partition,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.to_vec()),
    }
}
