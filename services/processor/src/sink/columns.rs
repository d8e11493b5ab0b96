//! A batch's rows as the column arrays the sink's statements take (one `unnest()` each).

use chrono::{DateTime, Utc};
use spine_core::event::Event;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::batch::{Batch, Kept, Located};

/// The three columns of a dead letter's key or payload: its kept bytes, full length and
/// SHA-256 (all NULL when the record had none).
type KeptColumns<'a> = (
    Vec<Option<&'a [u8]>>,
    Vec<Option<i32>>,
    Vec<Option<&'a [u8]>>,
);

fn kept_columns<'a>(values: impl Iterator<Item = Option<&'a Kept>>) -> KeptColumns<'a> {
    let mut columns: KeptColumns<'a> = (Vec::new(), Vec::new(), Vec::new());
    for v in values {
        columns.0.push(v.map(|k| k.head.as_slice()));
        // A Kafka record is at most 2 GiB.
        columns
            .1
            .push(v.map(|k| i32::try_from(k.length).unwrap_or(i32::MAX)));
        columns.2.push(v.map(|k| k.sha256.as_slice()));
    }
    columns
}

pub(super) type Params<'a, const N: usize> = [&'a (dyn ToSql + Sync); N];

/// The events of a batch as column arrays (`INSERT_EVENTS`).
pub(super) struct EventColumns<'a> {
    ids: Vec<Uuid>,
    tenants: Vec<&'a str>,
    types: Vec<&'a str>,
    orders: Vec<&'a str>,
    amounts: Vec<i64>,
    currencies: Vec<&'a str>,
    times: Vec<DateTime<Utc>>,
    partitions: Vec<i32>,
    offsets: Vec<i64>,
}

impl<'a> EventColumns<'a> {
    pub(super) fn new(events: &'a [Located]) -> Self {
        let n = events.len();
        let mut c = EventColumns {
            ids: Vec::with_capacity(n),
            tenants: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            orders: Vec::with_capacity(n),
            amounts: Vec::with_capacity(n),
            currencies: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
            partitions: Vec::with_capacity(n),
            offsets: Vec::with_capacity(n),
        };
        for located in events {
            let e = &located.event;
            c.ids.push(e.event_id);
            c.tenants.push(e.tenant.as_str());
            c.types.push(e.event_type.as_str());
            c.orders.push(e.order_id.as_str());
            c.amounts.push(e.amount_cents);
            c.currencies.push(e.currency.as_str());
            c.times.push(e.event_time);
            c.partitions.push(located.partition);
            c.offsets.push(located.offset);
        }
        c
    }

    pub(super) fn params<'b>(&'b self, topic: &'b String) -> Params<'b, 10> {
        [
            &self.ids,
            &self.tenants,
            &self.types,
            &self.orders,
            &self.amounts,
            &self.currencies,
            &self.times,
            topic,
            &self.partitions,
            &self.offsets,
        ]
    }
}

/// The newest event of each order, as column arrays (`UPSERT_ORDERS`).
pub(super) struct OrderColumns<'a> {
    tenants: Vec<&'a str>,
    orders: Vec<&'a str>,
    statuses: Vec<&'a str>,
    amounts: Vec<i64>,
    currencies: Vec<&'a str>,
    times: Vec<DateTime<Utc>>,
    ids: Vec<Uuid>,
}

impl<'a> OrderColumns<'a> {
    pub(super) fn new(latest: &[&'a Event]) -> Self {
        OrderColumns {
            tenants: latest.iter().map(|e| e.tenant.as_str()).collect(),
            orders: latest.iter().map(|e| e.order_id.as_str()).collect(),
            statuses: latest.iter().map(|e| e.event_type.as_str()).collect(),
            amounts: latest.iter().map(|e| e.amount_cents).collect(),
            currencies: latest.iter().map(|e| e.currency.as_str()).collect(),
            times: latest.iter().map(|e| e.event_time).collect(),
            ids: latest.iter().map(|e| e.event_id).collect(),
        }
    }

    pub(super) fn params(&self) -> Params<'_, 7> {
        [
            &self.tenants,
            &self.orders,
            &self.statuses,
            &self.amounts,
            &self.currencies,
            &self.times,
            &self.ids,
        ]
    }
}

/// A batch's dead letters as column arrays (`INSERT_DEAD_LETTERS`): at most 64 KiB of key and
/// payload each, with lengths and hashes.
pub(super) struct DeadLetterColumns<'a> {
    partitions: Vec<i32>,
    offsets: Vec<i64>,
    keys: KeptColumns<'a>,
    payloads: KeptColumns<'a>,
    errors: Vec<&'a str>,
}

impl<'a> DeadLetterColumns<'a> {
    pub(super) fn new(batch: &'a Batch) -> Self {
        let d = &batch.dead_letters;
        DeadLetterColumns {
            partitions: d.iter().map(|x| x.partition).collect(),
            offsets: d.iter().map(|x| x.offset).collect(),
            keys: kept_columns(d.iter().map(|x| x.key.as_ref())),
            payloads: kept_columns(d.iter().map(|x| x.payload.as_ref())),
            errors: d.iter().map(|x| x.error.as_str()).collect(),
        }
    }

    pub(super) fn params<'b>(&'b self, topic: &'b String) -> Params<'b, 10> {
        [
            topic,
            &self.partitions,
            &self.offsets,
            &self.keys.0,
            &self.keys.1,
            &self.keys.2,
            &self.payloads.0,
            &self.payloads.1,
            &self.payloads.2,
            &self.errors,
        ]
    }
}

/// A batch's gaps as column arrays (`INSERT_GAPS`, see [`crate::gaps`]).
pub(super) struct GapColumns<'a> {
    partitions: Vec<i32>,
    from: Vec<i64>,
    to: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    reasons: Vec<&'a str>,
}

impl<'a> GapColumns<'a> {
    pub(super) fn new(batch: &'a Batch) -> Self {
        let g = &batch.gaps;
        GapColumns {
            partitions: g.iter().map(|x| x.partition).collect(),
            from: g.iter().map(|x| x.from_offset).collect(),
            to: g.iter().map(|x| x.to_offset).collect(),
            at: g.iter().map(|x| x.detected_at).collect(),
            reasons: g.iter().map(|x| x.reason.as_str()).collect(),
        }
    }

    pub(super) fn params<'b>(&'b self, group: &'b String, topic: &'b String) -> Params<'b, 7> {
        [
            group,
            topic,
            &self.partitions,
            &self.from,
            &self.to,
            &self.at,
            &self.reasons,
        ]
    }
}
