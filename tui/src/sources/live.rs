//! The API's answers kept up to date from `GET /stream` (docs/contracts.md, "HTTP API" and
//! "spine-tui"): a snapshot of `/orders`, `/stats` and `/batches`, then each `batch` event
//! merged into it and each `status` event laid over it. Pure: the stream source feeds it and
//! sends [`Live::poll`] to the UI as if it had polled, so the panes cannot tell the difference.

use std::cmp::Ordering;

use chrono::DateTime;
use serde::Deserialize;

use crate::app::{ApiPoll, WallTime};
use crate::model::{
    Batch, BatchesResponse, Order, OrdersResponse, PartitionLag, ProcessorStatus, StatsResponse,
};
use crate::text::SafeText;

/// `event: batch`: one committed batch, the orders it changed (those the stream's filter
/// matches) and the stats after it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchEvent {
    pub as_of_batch: i64,
    pub batch: Batch,
    #[serde(default)]
    pub orders: Vec<Order>,
    /// More orders changed than the event carries: the list must be fetched afresh.
    #[serde(default)]
    pub orders_truncated: bool,
    pub stats: StatsResponse,
}

/// `event: status`: what `/batches` says of the processor and the partitions, about once a
/// second, so a stalled or stopped processor shows as such when no batch comes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StatusEvent {
    #[serde(default)]
    pub processor: Option<ProcessorStatus>,
    #[serde(default)]
    pub partitions: Vec<PartitionLag>,
}

/// The three answers as the screen would have polled them now.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// The tenant the stream and the snapshot were asked for.
    pub tenant: Option<SafeText>,
    pub orders: OrdersResponse,
    pub stats: StatsResponse,
    pub batches: BatchesResponse,
    /// The newest batch merged in; older events are already in the snapshot.
    pub as_of: i64,
    /// Rows kept: what `/orders?limit=` and `/batches?limit=` were asked for.
    orders_limit: usize,
    batches_limit: usize,
}

/// What [`Live::apply_batch`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Merged,
    /// Already in the snapshot (its id ≤ the snapshot's batch).
    Old,
    /// Merged, but the event did not carry every changed order: fetch `/orders` afresh.
    NeedsReload,
}

impl Live {
    /// From a poll whose three answers all came (`None` otherwise: nothing to merge into).
    pub fn from_snapshot(poll: &ApiPoll, orders_limit: u32, batches_limit: u32) -> Option<Live> {
        let (Ok(orders), Ok(stats), Ok(batches)) = (&poll.orders, &poll.stats, &poll.batches)
        else {
            return None;
        };
        Some(Live {
            tenant: poll.tenant.clone(),
            as_of: orders.as_of_batch.unwrap_or(0),
            orders: orders.clone(),
            stats: stats.clone(),
            batches: batches.clone(),
            orders_limit: orders_limit as usize,
            batches_limit: batches_limit as usize,
        })
    }

    /// Merges one batch: its changed orders upserted into the list (by tenant and order id),
    /// the list re-sorted as `/orders` sorts it and cut to its limit; the stats replaced; the
    /// batch put first in the batches.
    pub fn apply_batch(&mut self, event: BatchEvent) -> Applied {
        if event.as_of_batch <= self.as_of {
            return Applied::Old;
        }
        self.as_of = event.as_of_batch;
        let list = &mut self.orders.orders;
        for changed in event.orders {
            if self.tenant.as_ref().is_some_and(|t| *t != changed.tenant) {
                continue;
            }
            match list
                .iter_mut()
                .find(|o| o.tenant == changed.tenant && o.order_id == changed.order_id)
            {
                Some(row) => *row = changed,
                None => list.push(changed),
            }
        }
        list.sort_by(newest_first);
        list.truncate(self.orders_limit);
        self.orders.as_of_batch = Some(event.as_of_batch);
        self.stats = event.stats;
        let batches = &mut self.batches.batches;
        batches.retain(|b| b.batch_id != event.batch.batch_id);
        batches.insert(0, event.batch);
        batches.sort_by_key(|b| std::cmp::Reverse(b.batch_id));
        batches.truncate(self.batches_limit);
        if event.orders_truncated {
            Applied::NeedsReload
        } else {
            Applied::Merged
        }
    }

    pub fn apply_status(&mut self, status: StatusEvent) {
        self.batches.processor = status.processor;
        self.batches.partitions = status.partitions;
    }

    /// The three answers, as one poll made at `at`.
    pub fn poll(&self, at: WallTime) -> ApiPoll {
        ApiPoll {
            at,
            tenant: self.tenant.clone(),
            orders: Ok(self.orders.clone()),
            stats: Ok(self.stats.clone()),
            batches: Ok(self.batches.clone()),
        }
    }
}

/// `/orders`' order: `updated_at` newest first, then tenant, then order id. The times are
/// compared as instants (an offset other than the API's still sorts right).
fn newest_first(a: &Order, b: &Order) -> Ordering {
    let time = |o: &Order| DateTime::parse_from_rfc3339(o.updated_at.as_str()).ok();
    let by_time = match (time(a), time(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        _ => b.updated_at.cmp(&a.updated_at),
    };
    by_time
        .then_with(|| a.tenant.cmp(&b.tenant))
        .then_with(|| a.order_id.cmp(&b.order_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(tenant: &str, id: &str, status: &str, updated_at: &str) -> Order {
        Order {
            updated_at: updated_at.into(),
            ..crate::app::fixtures::order(tenant, id, status)
        }
    }

    fn batch(id: i64) -> Batch {
        Batch {
            batch_id: id,
            input_rows: 10 * id,
            ..Batch::default()
        }
    }

    fn stats(as_of: i64, orders: i64) -> StatsResponse {
        serde_json::from_value(serde_json::json!({
            "as_of_batch": as_of,
            "tenants": [{"tenant": "acme", "orders": orders, "revenue_cents": 0, "by_status": {}}]
        }))
        .expect("stats")
    }

    fn snapshot(tenant: Option<&str>, orders: Vec<Order>, as_of: i64) -> Live {
        let poll = ApiPoll {
            at: chrono::Local::now().fixed_offset(),
            tenant: tenant.map(SafeText::from),
            orders: Ok(OrdersResponse {
                orders,
                as_of_batch: Some(as_of),
            }),
            stats: Ok(stats(as_of, 2)),
            batches: Ok(BatchesResponse {
                batches: (1..=as_of).rev().map(batch).collect(),
                ..BatchesResponse::default()
            }),
        };
        Live::from_snapshot(&poll, 3, 2).expect("a full snapshot")
    }

    fn ids(live: &Live) -> Vec<(String, String, String)> {
        live.orders
            .orders
            .iter()
            .map(|o| {
                (
                    o.tenant.to_string(),
                    o.order_id.to_string(),
                    o.status.to_string(),
                )
            })
            .collect()
    }

    const T0: &str = "2026-11-27T12:00:00Z";
    const T1: &str = "2026-11-27T12:00:01Z";
    const T2: &str = "2026-11-27T12:00:02.5Z";

    #[test]
    fn a_batch_upserts_resorts_and_cuts_the_list_and_replaces_stats_and_batches() {
        let mut live = snapshot(
            None,
            vec![
                order("acme", "o2", "order_placed", T1),
                order("acme", "o1", "order_placed", T0),
                order("beta", "o0", "order_placed", T0),
            ],
            4,
        );
        let applied = live.apply_batch(BatchEvent {
            as_of_batch: 5,
            batch: batch(5),
            // o1 paid (moves to the top), o3 new; the list keeps 3 rows, so beta/o0 goes.
            // A time with another offset sorts by its instant: 13:00:02+01:00 is 12:00:02Z.
            orders: vec![
                order("acme", "o1", "order_paid", T2),
                order("acme", "o3", "order_placed", "2026-11-27T13:00:02+01:00"),
            ],
            orders_truncated: false,
            stats: stats(5, 4),
        });
        assert_eq!(applied, Applied::Merged);
        assert_eq!(
            ids(&live),
            [
                ("acme".into(), "o1".into(), "order_paid".into()),
                ("acme".into(), "o3".into(), "order_placed".into()),
                ("acme".into(), "o2".into(), "order_placed".into()),
            ]
        );
        assert_eq!(live.orders.as_of_batch, Some(5));
        assert_eq!(live.stats, stats(5, 4));
        let batch_ids: Vec<i64> = live.batches.batches.iter().map(|b| b.batch_id).collect();
        assert_eq!(batch_ids, [5, 4], "the newest first, cut to the limit");
        assert_eq!(live.as_of, 5);
    }

    #[test]
    fn events_already_in_the_snapshot_change_nothing() {
        let mut live = snapshot(None, vec![order("acme", "o1", "order_paid", T1)], 7);
        let before = live.clone();
        for id in [6, 7] {
            let applied = live.apply_batch(BatchEvent {
                as_of_batch: id,
                batch: batch(id),
                orders: vec![order("acme", "o1", "order_placed", T0)],
                orders_truncated: false,
                stats: stats(id, 1),
            });
            assert_eq!(applied, Applied::Old);
        }
        assert_eq!(live, before);
    }

    #[test]
    fn a_filtered_view_keeps_only_its_tenant_and_ties_sort_like_orders() {
        let mut live = snapshot(
            Some("acme"),
            vec![order("acme", "o9", "order_placed", T0)],
            1,
        );
        live.apply_batch(BatchEvent {
            as_of_batch: 2,
            batch: batch(2),
            orders: vec![
                order("beta", "x", "order_placed", T2),
                order("acme", "o2", "order_placed", T0),
            ],
            orders_truncated: true,
            stats: stats(2, 2),
        });
        assert_eq!(
            ids(&live),
            [
                ("acme".into(), "o2".into(), "order_placed".into()),
                ("acme".into(), "o9".into(), "order_placed".into()),
            ]
        );
    }

    #[test]
    fn a_truncated_batch_asks_for_a_reload_and_status_replaces_processor_and_partitions() {
        let mut live = snapshot(None, vec![], 1);
        let applied = live.apply_batch(BatchEvent {
            as_of_batch: 2,
            batch: batch(2),
            orders: vec![],
            orders_truncated: true,
            stats: stats(2, 0),
        });
        assert_eq!(applied, Applied::NeedsReload);
        let status: StatusEvent = serde_json::from_str(
            r#"{"processor": {"state": "stalled", "last_batch_age_s": 61.0, "lag_records": 5},
                "partitions": [{"partition": 0, "next_offset": 5, "high_watermark": 10, "lag": 5}]}"#,
        )
        .expect("status");
        live.apply_status(status);
        let p = live.batches.processor.as_ref().expect("processor");
        assert_eq!(p.state, crate::model::ProcessorState::Stalled);
        assert_eq!(live.batches.partitions[0].lag, Some(5));
        let at = chrono::Local::now().fixed_offset();
        assert_eq!(live.poll(at).batches, Ok(live.batches.clone()));
    }
}
