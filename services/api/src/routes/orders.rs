//! `GET /orders?tenant=&status=&limit=`: the live orders, newest `updated_at` first.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;

use spine_core::event::EventType;

use crate::cache::Answer;
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
    /// That batch's `finished_at`; `null` before the first batch.
    #[serde(serialize_with = "super::rfc3339_opt")]
    pub as_of_batch_at: Option<DateTime<Utc>>,
}

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// One statement, so the orders and `as_of_batch` come from the same snapshot. The orders come
/// from one index range per status (migration V3: `(status, updated_at DESC, …)` and
/// `(tenant, status, updated_at DESC, …)`), newest first and at most `limit` each, merged: the
/// statement reads at most `limit` rows of `current_orders` per status, whatever the filters
/// match. (Without a status filter, all four statuses; no index of its own for that, because
/// every index is one more entry written for every order a batch changes, migration V11.)
pub fn sql(tenant: bool, status: bool) -> String {
    let tenant_condition = if tenant { "tenant = $2 AND " } else { "" };
    let statuses: Vec<String> = if status {
        vec![format!("${}", if tenant { 3 } else { 2 })]
    } else {
        EventType::ALL
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect()
    };
    let branches: Vec<String> = statuses
        .iter()
        .map(|s| {
            format!(
                "(SELECT * FROM current_orders WHERE {tenant_condition}status = {s}
                   ORDER BY updated_at DESC, tenant, order_id LIMIT $1)"
            )
        })
        .collect();
    format!(
        "WITH b AS ({as_of})
         SELECT b.as_of, b.as_of_at, o.tenant, o.order_id, o.status, o.amount_cents, o.currency, o.updated_at
           FROM b LEFT JOIN LATERAL (
                SELECT * FROM ({branches}) u
                 ORDER BY updated_at DESC, tenant, order_id LIMIT $1) o ON true",
        as_of = super::AS_OF_BATCH_AT,
        branches = branches.join(" UNION ALL ")
    )
}

pub async fn orders(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["tenant", "status", "limit"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let tenant = params.tenant()?.map(str::to_owned);
    let status = params.status()?.map(|s| s.as_str());
    let key = super::normalized(
        "/orders",
        &[
            ("limit", Some(limit.to_string())),
            ("status", status.map(str::to_owned)),
            ("tenant", tenant.clone()),
        ],
    );
    let compute = async {
        let r = query(&app, tenant.as_deref(), status, limit).await?;
        let body = serde_json::to_vec(&r).map_err(|_| ApiError::Internal)?;
        Ok(Answer::new(body, r.as_of_batch, r.as_of_batch_at))
    };
    super::cached(&app, "/orders", key, &headers, compute).await
}

/// The orders as of the newest batch, filtered, newest first.
pub async fn query(
    app: &AppState,
    tenant: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> Result<OrdersResponse, ApiError> {
    let _permit = crate::layers::permit(app)?;
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
    app.metrics.queries("orders", 1);
    let rows = client.query(&stmt, &args).await?;
    let as_of_batch = rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let as_of_batch_at = rows.first().and_then(|r| r.get(1));
    let orders = rows
        .iter()
        .filter(|r| r.get::<_, Option<String>>(2).is_some())
        .map(|r| Order {
            tenant: r.get(2),
            order_id: r.get(3),
            status: r.get(4),
            amount_cents: r.get(5),
            currency: r.get(6),
            updated_at: r.get(7),
        })
        .collect();
    Ok(OrdersResponse {
        orders,
        as_of_batch,
        as_of_batch_at,
    })
}
