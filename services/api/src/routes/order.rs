//! `GET /orders/{tenant}/{order_id}`: one order's current state and every event of it in
//! `events`, oldest first, the one that set the current state marked (docs/contracts.md,
//! "HTTP API").

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::{identifier, Params};
use crate::AppState;

#[derive(Debug, Serialize)]
pub struct Current {
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    #[serde(serialize_with = "super::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub last_event_id: Uuid,
}

#[derive(Debug, Serialize)]
pub struct HistoryEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub amount_cents: i64,
    pub currency: String,
    #[serde(serialize_with = "super::rfc3339")]
    pub event_time: DateTime<Utc>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(serialize_with = "super::rfc3339")]
    pub ingested_at: DateTime<Utc>,
    /// This event set the order's current state.
    pub current: bool,
}

#[derive(Debug, Serialize)]
pub struct OrderHistory {
    pub tenant: String,
    pub order_id: String,
    pub current: Current,
    pub events: Vec<HistoryEvent>,
    pub as_of_batch: i64,
}

/// At most this many events of one order (its newest), so one request stays bounded whatever
/// a producer sent.
pub const MAX_EVENTS: i64 = 1000;

/// One statement, so the current state, the events and `as_of_batch` come from one snapshot.
/// The events are read through the index of migration V8 on (tenant, order_id, event_time,
/// event_id).
pub const HISTORY: &str = "
WITH b AS (SELECT coalesce(max(batch_id), 0)::bigint AS as_of FROM stream_batches),
     o AS (SELECT * FROM current_orders WHERE tenant = $1 AND order_id = $2)
SELECT b.as_of, o.status, o.amount_cents, o.currency, o.updated_at, o.last_event_id,
       e.event_id, e.event_type, e.amount_cents, e.currency, e.event_time, e.topic,
       e.kafka_partition, e.kafka_offset, e.ingested_at
  FROM b JOIN o ON true
  LEFT JOIN LATERAL (
       SELECT * FROM events WHERE tenant = $1 AND order_id = $2
        ORDER BY event_time DESC, event_id DESC LIMIT $3) e ON true
 ORDER BY e.event_time, e.event_id";

pub async fn order(
    State(app): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrderHistory>, ApiError> {
    // Axum's rejection names the segment ("Invalid UTF-8 in `tenant`").
    let Path((tenant, order_id)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Params::parse(raw.as_deref(), &[])?;
    identifier("tenant", &tenant)?;
    identifier("order_id", &order_id)?;

    let client = app.pool.get().await?;
    let stmt = client.prepare_cached(HISTORY).await?;
    let rows = client
        .query(&stmt, &[&tenant, &order_id, &MAX_EVENTS])
        .await?;
    let Some(first) = rows.first() else {
        return Err(ApiError::Missing(format!(
            "no order {} of tenant {}",
            spine_core::event::quote_value(&order_id, 64),
            spine_core::event::quote_value(&tenant, 64)
        )));
    };
    let current = Current {
        status: first.get(1),
        amount_cents: first.get(2),
        currency: first.get(3),
        updated_at: first.get(4),
        last_event_id: first.get(5),
    };
    let events = rows
        .iter()
        .filter_map(|r| {
            let event_id: Uuid = r.get::<_, Option<Uuid>>(6)?;
            Some(HistoryEvent {
                event_id,
                event_type: r.get(7),
                amount_cents: r.get(8),
                currency: r.get(9),
                event_time: r.get(10),
                topic: r.get(11),
                partition: r.get(12),
                offset: r.get(13),
                ingested_at: r.get(14),
                current: event_id == current.last_event_id,
            })
        })
        .collect();
    Ok(Json(OrderHistory {
        as_of_batch: first.get(0),
        tenant,
        order_id,
        current,
        events,
    }))
}
