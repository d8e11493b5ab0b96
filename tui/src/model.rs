//! What the sources deliver: the API's JSON answers (docs/contracts.md, "HTTP API") and the
//! topic's records. Every string in them is a [`SafeText`], cleaned as it is decoded.
//!
//! Fields the panes can do without default when missing, so an API that adds or drops a
//! column degrades one cell, not the whole pane.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use spine_core::event::{parse_event, EventType};

use crate::text::SafeText;

/// `GET /orders`
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrdersResponse {
    pub orders: Vec<Order>,
    #[serde(default)]
    pub as_of_batch: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    pub tenant: SafeText,
    pub order_id: SafeText,
    pub status: SafeText,
    #[serde(default)]
    pub amount_cents: i64,
    #[serde(default)]
    pub currency: SafeText,
    #[serde(default)]
    pub updated_at: SafeText,
}

/// `GET /stats`
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatsResponse {
    pub tenants: Vec<TenantStats>,
    #[serde(default)]
    pub as_of_batch: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TenantStats {
    pub tenant: SafeText,
    #[serde(default)]
    pub orders: i64,
    #[serde(default)]
    pub revenue_cents: i64,
    #[serde(default)]
    pub by_status: BTreeMap<String, i64>,
}

impl TenantStats {
    pub fn count(&self, status: EventType) -> i64 {
        self.by_status.get(status.as_str()).copied().unwrap_or(0)
    }
}

/// `GET /batches`
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchesResponse {
    pub batches: Vec<Batch>,
    #[serde(default)]
    pub partitions: Vec<PartitionLag>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Batch {
    pub batch_id: i64,
    #[serde(default)]
    pub started_at: SafeText,
    #[serde(default)]
    pub finished_at: SafeText,
    #[serde(default)]
    pub input_rows: i64,
    #[serde(default)]
    pub events_inserted: i64,
    #[serde(default)]
    pub duplicates: i64,
    #[serde(default)]
    pub orders_upserted: i64,
    #[serde(default)]
    pub stale_skipped: i64,
    #[serde(default)]
    pub dead_lettered: i64,
    #[serde(default)]
    pub fetch_ms: f64,
    #[serde(default)]
    pub write_ms: f64,
    #[serde(default)]
    pub total_ms: f64,
    #[serde(default)]
    pub partitions: Vec<PartitionRange>,
}

/// The offsets one batch read from one partition: `start_offset..end_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionRange {
    pub partition: i32,
    pub start_offset: i64,
    pub end_offset: i64,
}

/// One partition as the processor left it: its committed `next_offset`, the end of the log as
/// last seen, and the difference. `high_watermark` (and so `lag`) is null until known.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionLag {
    pub partition: i32,
    pub next_offset: i64,
    #[serde(default)]
    pub high_watermark: Option<i64>,
    #[serde(default)]
    pub lag: Option<i64>,
}

/// One record of the topic, as the tail shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TailRecord {
    pub partition: i32,
    pub offset: i64,
    /// Read while catching up at start (older than the end of the log when the tail began):
    /// shown, but not counted in the events/s rate.
    pub backfill: bool,
    pub body: TailBody,
    /// The record as it came, for its detail view (`crate::inspect`).
    pub raw: RawRecord,
}

/// What the detail view of a record shows beyond the row: the bytes as they came.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The record's timestamp (ms since the epoch), if it has one.
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TailBody {
    Event(TailEvent),
    /// Kept and shown, never dropped: the reason is the processor's dead-letter reason.
    Malformed {
        key: Option<SafeText>,
        reason: SafeText,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TailEvent {
    pub tenant: SafeText,
    pub event_type: EventType,
    pub order_id: SafeText,
    pub amount_cents: i64,
    pub currency: SafeText,
    pub event_time: DateTime<Utc>,
}

impl TailRecord {
    /// Decodes a record with the same validation as the processor (`parse_event`).
    pub fn decode(
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> TailRecord {
        let body = match parse_event(value.unwrap_or_default()) {
            Ok(e) => TailBody::Event(TailEvent {
                tenant: SafeText::new(&e.tenant),
                event_type: e.event_type,
                order_id: SafeText::new(&e.order_id),
                amount_cents: e.amount_cents,
                currency: SafeText::new(e.currency.as_str()),
                event_time: e.event_time,
            }),
            Err(reason) => TailBody::Malformed {
                key: key.map(SafeText::from_bytes),
                reason: SafeText::new(&reason.to_string()),
            },
        };
        TailRecord {
            partition,
            offset,
            backfill: false,
            body,
            raw: RawRecord {
                key: key.map(<[u8]>::to_vec),
                value: value.map(<[u8]>::to_vec),
                ..RawRecord::default()
            },
        }
    }

    /// The tenant a record belongs to: the event's, or for a malformed record its key (the
    /// producer keys by tenant).
    pub fn tenant(&self) -> Option<&SafeText> {
        match &self.body {
            TailBody::Event(e) => Some(&e.tenant),
            TailBody::Malformed { key, .. } => key.as_ref(),
        }
    }

    pub fn is_malformed(&self) -> bool {
        matches!(self.body, TailBody::Malformed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_shapes_decode() {
        let orders: OrdersResponse = serde_json::from_str(
            r#"{"orders":[{"tenant":"acme","order_id":"ord-1","status":"order_paid","amount_cents":12999,
               "currency":"USD","updated_at":"2026-11-25T12:00:00.123456Z"}],"as_of_batch":42}"#,
        )
        .expect("orders");
        assert_eq!(orders.orders[0].order_id.as_str(), "ord-1");
        assert_eq!(orders.as_of_batch, Some(42));

        let stats: StatsResponse = serde_json::from_str(
            r#"{"tenants":[{"tenant":"acme","orders":120,"revenue_cents":123456,"by_status":
               {"order_placed":10,"order_paid":50,"order_shipped":55,"order_cancelled":5}}],"as_of_batch":42}"#,
        )
        .expect("stats");
        assert_eq!(stats.tenants[0].count(EventType::OrderShipped), 55);

        let batches: BatchesResponse = serde_json::from_str(
            r#"{"batches":[{"batch_id":42,"consumer_group":"stream-processor","started_at":"2026-11-25T12:00:00Z",
               "finished_at":"2026-11-25T12:00:00.042Z","input_rows":1500,"events_inserted":1490,"duplicates":5,
               "orders_upserted":800,"stale_skipped":2,"dead_lettered":5,"fetch_ms":12.5,"write_ms":30.1,
               "total_ms":42.6,"partitions":[{"partition":0,"start_offset":100,"end_offset":600}]}],
               "partitions":[{"partition":0,"next_offset":600,"high_watermark":650,"lag":50},
                             {"partition":1,"next_offset":0,"high_watermark":null,"lag":null}]}"#,
        )
        .expect("batches");
        assert_eq!(batches.batches[0].partitions[0].end_offset, 600);
        assert_eq!(batches.partitions[1].lag, None);
    }

    #[test]
    fn records_decode_like_the_processor_reads_them() {
        let good = br#"{"event_id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","tenant":"acme","event_type":"order_paid",
                        "order_id":"ord-4711","amount_cents":12999,"event_time":"2026-11-25T12:00:00Z"}"#;
        let r = TailRecord::decode(2, 17, Some(b"acme"), Some(good));
        assert!(
            matches!(&r.body, TailBody::Event(e) if e.order_id.as_str() == "ord-4711" && e.currency.as_str() == "USD")
        );
        let bad = TailRecord::decode(0, 1, Some(b"\x1b[2J"), Some(b"not json"));
        match &bad.body {
            TailBody::Malformed { key, reason } => {
                assert_eq!(key.as_ref().map(SafeText::as_str), Some("␛[2J"));
                assert!(
                    reason.as_str().starts_with("not a valid event JSON object"),
                    "{reason}"
                );
            }
            other => panic!("expected malformed, got {other:?}"),
        }
        let tombstone = TailRecord::decode(0, 2, None, None);
        assert!(
            matches!(&tombstone.body, TailBody::Malformed { reason, .. } if reason.as_str() == "empty record value")
        );
    }
}
