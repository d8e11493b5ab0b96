//! `GET /orders?tenant=&status=&limit=`: the live orders, newest `updated_at` first.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

#[derive(Debug, Serialize)]
pub struct Order {
    pub tenant: String,
    pub order_id: String,
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    #[serde(serialize_with = "super::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct OrdersResponse {
    pub orders: Vec<Order>,
    pub as_of_batch: i64,
}

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// One statement, so the orders and `as_of_batch` come from the same snapshot. Each of the four
/// filter combinations has an index in this order (migrations V1 and V3), so the statement reads
/// at most `limit` rows of `current_orders` whatever the filters match.
pub fn sql(tenant: bool, status: bool) -> String {
    let mut conditions = vec!["true".to_string()];
    let mut n = 1;
    if tenant {
        n += 1;
        conditions.push(format!("tenant = ${n}"));
    }
    if status {
        n += 1;
        conditions.push(format!("status = ${n}"));
    }
    format!(
        "WITH b AS ({as_of})
         SELECT b.as_of, o.tenant, o.order_id, o.status, o.amount_cents, o.currency, o.updated_at
           FROM b LEFT JOIN LATERAL (
                SELECT * FROM current_orders WHERE {conditions}
                 ORDER BY updated_at DESC, tenant, order_id LIMIT $1) o ON true",
        as_of = super::AS_OF_BATCH,
        conditions = conditions.join(" AND ")
    )
}

pub async fn orders(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<OrdersResponse>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["tenant", "status", "limit"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let tenant = params.tenant()?;
    let status = params.status()?.map(|s| s.as_str());

    let client = app.pool.get().await?;
    let stmt = client
        .prepare_cached(&sql(tenant.is_some(), status.is_some()))
        .await?;
    let mut args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&limit];
    if let Some(t) = &tenant {
        args.push(t);
    }
    if let Some(s) = &status {
        args.push(s);
    }
    let rows = client.query(&stmt, &args).await?;
    let as_of_batch = rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let orders = rows
        .iter()
        .filter(|r| r.get::<_, Option<String>>(1).is_some())
        .map(|r| Order {
            tenant: r.get(1),
            order_id: r.get(2),
            status: r.get(3),
            amount_cents: r.get(4),
            currency: r.get(5),
            updated_at: r.get(6),
        })
        .collect();
    Ok(Json(OrdersResponse {
        orders,
        as_of_batch,
    }))
}
