//! The `batch` event of `GET /stream` (docs/contracts.md, "HTTP API"): built once per batch
//! from the tables, its parts serialized once; each subscriber's filter only picks and
//! concatenates (and equal filters share one rendering).
//!
//! Also the reconnect rule ([`plan`]): replay the missed batches when they and the orders they
//! changed are all still there and few enough, else `reset`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use spine_core::event::EventType;
use tokio_postgres::GenericClient;

use crate::error::ApiError;
use crate::routes::batches::{self, Select};
use crate::routes::orders::Order;
use crate::routes::stats::{self, StatsResponse, TenantStats};

/// At most this many orders in one event (the newest), and changed since a reconnecting
/// client's batch for a replay.
pub const MAX_ORDERS: usize = 1000;
/// At most this many batches are built at once or replayed; more is a `reset`.
pub const MAX_BATCHES: i64 = 1000;
/// Distinct filters whose rendering one event keeps.
const MAX_RENDERINGS: usize = 64;

/// What a subscriber asked for: `/stream?tenant=&status=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub tenant: Option<String>,
    pub status: Option<EventType>,
}

impl Filter {
    fn order(&self, o: &OrderPart) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == o.tenant)
            && self.status.is_none_or(|s| s.as_str() == o.status)
    }
}

#[derive(Debug)]
struct OrderPart {
    tenant: String,
    status: String,
    json: String,
}

/// One committed batch, ready to send.
#[derive(Debug)]
pub struct BatchEvent {
    pub id: i64,
    /// The element of `/batches` `"batches"`.
    batch: String,
    /// The orders it changed that still carry its id, newest first, at most [`MAX_ORDERS`].
    orders: Vec<OrderPart>,
    /// It changed more than it carries.
    more_orders: bool,
    stats: Arc<StatsResponse>,
    rendered: Mutex<HashMap<Filter, Arc<str>>>,
}

impl BatchEvent {
    /// The event's `data` for `filter`: `{"as_of_batch", "batch", "orders",
    /// "orders_truncated", "stats"}`.
    pub fn data(&self, filter: &Filter) -> Arc<str> {
        let mut rendered = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = rendered.get(filter) {
            return s.clone();
        }
        let s: Arc<str> = self.render(filter).into();
        if rendered.len() < MAX_RENDERINGS {
            rendered.insert(filter.clone(), s.clone());
        }
        s
    }

    fn render(&self, filter: &Filter) -> String {
        let mut s = String::with_capacity(self.batch.len() + 256 * (self.orders.len() + 4));
        let _ = write!(
            s,
            "{{\"as_of_batch\":{},\"batch\":{},\"orders\":[",
            self.id, self.batch
        );
        let mut first = true;
        for o in self.orders.iter().filter(|o| filter.order(o)) {
            if !first {
                s.push(',');
            }
            first = false;
            s.push_str(&o.json);
        }
        let stats = StatsResponse::<&TenantStats> {
            tenants: self
                .stats
                .tenants
                .iter()
                .filter(|t| filter.tenant.as_ref().is_none_or(|f| *f == t.tenant))
                .collect(),
            as_of_batch: self.stats.as_of_batch,
            as_of_batch_at: self.stats.as_of_batch_at,
        };
        let stats = serde_json::to_string(&stats).unwrap_or_else(|_| "null".into());
        let _ = write!(
            s,
            "],\"orders_truncated\":{},\"stats\":{stats}}}",
            self.more_orders
        );
        s
    }
}

/// Changed orders of batches `from..=to`, at most `MAX_ORDERS + 1` per batch (to know when
/// there are more), newest first within each.
const CHANGED: &str = "
SELECT last_batch_id, tenant, order_id, status, amount_cents, currency, updated_at
  FROM (SELECT o.*, row_number() OVER (PARTITION BY last_batch_id
                                       ORDER BY updated_at DESC, tenant, order_id) AS n
          FROM current_orders o WHERE last_batch_id BETWEEN $1 AND $2) c
 WHERE n <= $3
 ORDER BY last_batch_id, updated_at DESC, tenant, order_id";

/// Statements one [`build`] sends (for `spine_api_db_queries_total`).
pub const BUILD_STATEMENTS: u64 = 6;

/// The events of batches `from..=to` (only those still in `stream_batches`), from one
/// snapshot. `stats` is read once: as of the newest batch of that snapshot, which its
/// `as_of_batch` says.
pub async fn build(
    client: &impl GenericClient,
    from: i64,
    to: i64,
) -> Result<Vec<Arc<BatchEvent>>, ApiError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let built = build_in_snapshot(client, from, to).await;
    let end = client.batch_execute("COMMIT").await;
    let built = built?;
    end?;
    Ok(built)
}

async fn build_in_snapshot(
    client: &impl GenericClient,
    from: i64,
    to: i64,
) -> Result<Vec<Arc<BatchEvent>>, ApiError> {
    let list = batches::load(client, Select::Range(from, to)).await?;
    let limit = MAX_ORDERS as i64 + 1;
    let mut changed: HashMap<i64, Vec<OrderPart>> = HashMap::new();
    for r in client.query(CHANGED, &[&from, &to, &limit]).await? {
        let order = Order {
            tenant: r.get(1),
            order_id: r.get(2),
            status: r.get(3),
            amount_cents: r.get(4),
            currency: r.get(5),
            updated_at: r.get(6),
        };
        let json = serde_json::to_string(&order).map_err(|_| ApiError::Internal)?;
        changed.entry(r.get(0)).or_default().push(OrderPart {
            tenant: order.tenant,
            status: order.status,
            json,
        });
    }
    let stats = Arc::new(stats::query(client, None).await?);
    let mut events = Vec::with_capacity(list.len());
    for b in list {
        let mut orders = changed.remove(&b.batch_id).unwrap_or_default();
        let more_orders = orders.len() > MAX_ORDERS;
        orders.truncate(MAX_ORDERS);
        events.push(Arc::new(BatchEvent {
            id: b.batch_id,
            batch: serde_json::to_string(&b).map_err(|_| ApiError::Internal)?,
            orders,
            more_orders,
            stats: stats.clone(),
            rendered: Mutex::new(HashMap::new()),
        }));
    }
    Ok(events)
}

/// What a client reconnecting with `Last-Event-ID` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Batches `from..=to` (empty when it missed none), then the live ones.
    Replay { from: i64, to: i64 },
    /// `event: reset` with this reason.
    Reset(&'static str),
}

/// What the database says about the batches after `last` (see [`facts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// Batches with ids in `last+1..=newest` still in `stream_batches`.
    pub batches_kept: i64,
    /// Orders with `last_batch_id > last` (counted up to `MAX_ORDERS + 1`).
    pub orders_changed: i64,
}

/// The reconnect rule: replay only when every missed batch and every order changed since are
/// still known, and they are few enough; a `last` past the newest batch means the database
/// was wiped under the client.
pub fn plan(last: i64, newest: i64, facts: Option<Facts>) -> Plan {
    if last > newest {
        return Plan::Reset("ahead");
    }
    if last == newest {
        return Plan::Replay {
            from: last + 1,
            to: newest,
        };
    }
    if newest - last > MAX_BATCHES {
        return Plan::Reset("too_far_behind");
    }
    let Some(f) = facts else {
        return Plan::Reset("unavailable");
    };
    if f.batches_kept != newest - last {
        Plan::Reset("batches_gone")
    } else if f.orders_changed > MAX_ORDERS as i64 {
        Plan::Reset("too_many_changes")
    } else {
        Plan::Replay {
            from: last + 1,
            to: newest,
        }
    }
}

const FACTS: &str = "
SELECT (SELECT count(*) FROM stream_batches WHERE batch_id > $1 AND batch_id <= $2),
       (SELECT count(*) FROM (SELECT 1 FROM current_orders WHERE last_batch_id > $1 LIMIT $3) c)";

/// [`Facts`] about the batches `last+1..=newest` (one statement).
pub async fn facts(
    client: &impl GenericClient,
    last: i64,
    newest: i64,
) -> Result<Facts, tokio_postgres::Error> {
    let limit = MAX_ORDERS as i64 + 1;
    let r = client.query_one(FACTS, &[&last, &newest, &limit]).await?;
    Ok(Facts {
        batches_kept: r.get(0),
        orders_changed: r.get(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(tenant: &str, status: &str) -> OrderPart {
        OrderPart {
            tenant: tenant.into(),
            status: status.into(),
            json: format!("{{\"tenant\":\"{tenant}\",\"status\":\"{status}\"}}"),
        }
    }

    fn tenant(name: &str, n: i128) -> TenantStats {
        TenantStats {
            tenant: name.into(),
            orders: n,
            revenue_cents: 0,
            by_status: stats::ByStatus {
                order_placed: n,
                ..Default::default()
            },
        }
    }

    fn event() -> BatchEvent {
        BatchEvent {
            id: 9,
            batch: "{\"batch_id\":9}".into(),
            orders: vec![
                order("acme", "order_paid"),
                order("globex", "order_paid"),
                order("acme", "order_placed"),
            ],
            more_orders: false,
            stats: Arc::new(StatsResponse {
                tenants: vec![tenant("acme", 2), tenant("globex", 1)],
                as_of_batch: 9,
                as_of_batch_at: None,
            }),
            rendered: Mutex::new(HashMap::new()),
        }
    }

    fn json(data: &str) -> serde_json::Value {
        serde_json::from_str(data).expect("valid JSON")
    }

    #[test]
    fn a_filter_keeps_only_matching_orders_and_its_tenants_stats() {
        let e = event();
        let all = json(&e.data(&Filter::default()));
        assert_eq!(all["as_of_batch"], 9);
        assert_eq!(all["batch"]["batch_id"], 9);
        assert_eq!(all["orders"].as_array().expect("orders").len(), 3);
        assert_eq!(all["orders_truncated"], false);
        assert_eq!(
            all["stats"]["tenants"].as_array().expect("tenants").len(),
            2
        );
        assert_eq!(all["stats"]["as_of_batch"], 9);

        let acme = Filter {
            tenant: Some("acme".into()),
            status: None,
        };
        let v = json(&e.data(&acme));
        let orders = v["orders"].as_array().expect("orders");
        assert_eq!(orders.len(), 2);
        assert!(orders.iter().all(|o| o["tenant"] == "acme"), "{v}");
        assert_eq!(v["stats"]["tenants"][0]["tenant"], "acme");
        assert_eq!(v["stats"]["tenants"].as_array().expect("tenants").len(), 1);

        let paid_globex = Filter {
            tenant: Some("globex".into()),
            status: Some(EventType::OrderPaid),
        };
        let v = json(&e.data(&paid_globex));
        assert_eq!(
            v["orders"],
            serde_json::json!([{"tenant": "globex", "status": "order_paid"}])
        );

        let nobody = Filter {
            tenant: Some("initech".into()),
            status: None,
        };
        let v = json(&e.data(&nobody));
        assert_eq!(v["orders"], serde_json::json!([]));
        assert_eq!(v["stats"]["tenants"], serde_json::json!([]));
    }

    #[test]
    fn equal_filters_share_one_rendering() {
        let e = event();
        let a = e.data(&Filter::default());
        let b = e.data(&Filter::default());
        assert!(Arc::ptr_eq(&a, &b));
    }

    fn facts(batches_kept: i64, orders_changed: i64) -> Option<Facts> {
        Some(Facts {
            batches_kept,
            orders_changed,
        })
    }

    #[test]
    fn replay_only_what_is_all_still_there() {
        assert_eq!(plan(5, 8, facts(3, 40)), Plan::Replay { from: 6, to: 8 });
        assert_eq!(plan(8, 8, None), Plan::Replay { from: 9, to: 8 });
        assert_eq!(plan(9, 8, None), Plan::Reset("ahead"));
        assert_eq!(plan(5, 8, facts(2, 40)), Plan::Reset("batches_gone"));
        assert_eq!(plan(5, 8, facts(3, 1001)), Plan::Reset("too_many_changes"));
        assert_eq!(plan(5, 8, facts(3, 1000)), Plan::Replay { from: 6, to: 8 });
        assert_eq!(plan(0, 5000, None), Plan::Reset("too_far_behind"));
        assert_eq!(plan(5, 8, None), Plan::Reset("unavailable"));
    }
}
