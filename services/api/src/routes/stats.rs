//! `GET /stats?tenant=`: orders, revenue and counts by status per tenant.
//!
//! The answer only changes when a batch commits, so it is cached by `as_of_batch` (see
//! [`stats`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use spine_core::event::EventType;
use tokio::sync::Mutex;

use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ByStatus {
    pub order_placed: i64,
    pub order_paid: i64,
    pub order_shipped: i64,
    pub order_cancelled: i64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TenantStats {
    pub tenant: String,
    pub orders: i64,
    pub revenue_cents: i64,
    pub by_status: ByStatus,
}

#[derive(Debug, Serialize)]
pub struct StatsResponse {
    pub tenants: Vec<TenantStats>,
    pub as_of_batch: i64,
}

/// Rendered answers by tenant filter, each with the batch it is as of. Bounded: a client
/// cycling through tenant names cannot grow it without limit.
#[derive(Default)]
pub struct StatsCache(BTreeMap<Option<String>, Entry>);

struct Entry {
    as_of: i64,
    body: Bytes,
    /// A newer answer is being computed: serve this one meanwhile.
    refreshing: bool,
}

const CACHE_ENTRIES: usize = 256;

pub type SharedStatsCache = Arc<Mutex<StatsCache>>;

fn sql(tenant: bool) -> String {
    format!(
        "WITH b AS ({as_of})
         SELECT b.as_of, s.tenant, s.status, s.n, s.amount
           FROM b LEFT JOIN LATERAL (
                SELECT tenant, status, count(*)::bigint AS n, sum(amount_cents)::bigint AS amount
                  FROM current_orders {filter} GROUP BY tenant, status) s ON true",
        as_of = super::AS_OF_BATCH,
        filter = if tenant { "WHERE tenant = $1" } else { "" }
    )
}

/// Folds `(tenant, status, count, amount)` rows into per-tenant stats, sorted by tenant.
pub fn fold(rows: impl IntoIterator<Item = (String, String, i64, i64)>) -> Vec<TenantStats> {
    let mut by_tenant: BTreeMap<String, TenantStats> = BTreeMap::new();
    for (tenant, status, n, amount) in rows {
        let s = by_tenant
            .entry(tenant.clone())
            .or_insert_with(|| TenantStats {
                tenant,
                orders: 0,
                revenue_cents: 0,
                by_status: ByStatus::default(),
            });
        s.orders += n;
        let Ok(status) = status.parse::<EventType>() else {
            continue;
        };
        if status.counts_as_revenue() {
            s.revenue_cents += amount;
        }
        match status {
            EventType::OrderPlaced => s.by_status.order_placed += n,
            EventType::OrderPaid => s.by_status.order_paid += n,
            EventType::OrderShipped => s.by_status.order_shipped += n,
            EventType::OrderCancelled => s.by_status.order_cancelled += n,
        }
    }
    by_tenant.into_values().collect()
}

/// Computes the answer from one snapshot: `(as_of_batch, JSON body)`.
async fn compute(
    pool: &deadpool_postgres::Pool,
    tenant: Option<&str>,
) -> Result<(i64, Bytes), ApiError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(&sql(tenant.is_some())).await?;
    let rows = match tenant {
        Some(t) => client.query(&stmt, &[&t]).await?,
        None => client.query(&stmt, &[]).await?,
    };
    let as_of_batch = rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let tenants = fold(rows.iter().filter_map(|r| {
        Some((
            r.get::<_, Option<String>>(1)?,
            r.get(2),
            r.get(3),
            r.get::<_, Option<i64>>(4).unwrap_or(0),
        ))
    }));
    let body = serde_json::to_vec(&StatsResponse {
        tenants,
        as_of_batch,
    })
    .map_err(|e| ApiError::Unavailable(format!("encoding the answer: {e}")))?;
    Ok((as_of_batch, Bytes::from(body)))
}

fn store(cache: &mut StatsCache, tenant: Option<String>, as_of: i64, body: Bytes) {
    if cache.0.len() >= CACHE_ENTRIES && !cache.0.contains_key(&tenant) {
        cache.0.clear();
    }
    cache.0.insert(
        tenant,
        Entry {
            as_of,
            body,
            refreshing: false,
        },
    );
}

/// The answer only changes when a batch commits. Between batches a request costs one index
/// lookup (the newest batch id). When a batch lands, the first request starts recomputing in
/// the background and every request is answered from the previous batch until that is done:
/// each answer is consistent and says which batch it is as of, and no request waits behind
/// a scan of every order.
pub async fn stats(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["tenant"])?;
    let tenant = params.tenant()?.map(str::to_owned);

    let latest: i64 = {
        let client = app.pool.get().await?;
        let stmt = client.prepare_cached(super::AS_OF_BATCH).await?;
        client.query_one(&stmt, &[]).await?.get(0)
    };
    {
        let mut cache = app.stats_cache.lock().await;
        if let Some(entry) = cache.0.get_mut(&tenant) {
            if entry.as_of == latest || entry.refreshing {
                return Ok(json(entry.body.clone()));
            }
            entry.refreshing = true;
            let stale = entry.body.clone();
            let (pool, cache, key) = (app.pool.clone(), app.stats_cache.clone(), tenant.clone());
            tokio::spawn(async move {
                let fresh = compute(&pool, key.as_deref()).await;
                let mut cache = cache.lock().await;
                match fresh {
                    Ok((as_of, body)) => store(&mut cache, key, as_of, body),
                    Err(_) => {
                        if let Some(e) = cache.0.get_mut(&key) {
                            e.refreshing = false; // the next request tries again
                        }
                    }
                }
            });
            return Ok(json(stale));
        }
    }
    // Nothing cached for this filter yet: compute it now.
    let (as_of, body) = compute(&app.pool, tenant.as_deref()).await?;
    store(
        &mut *app.stats_cache.lock().await,
        tenant,
        as_of,
        body.clone(),
    );
    Ok(json(body))
}

fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revenue_counts_paid_and_shipped_only() {
        let rows = vec![
            ("acme".to_string(), "order_placed".to_string(), 2, 1000),
            ("acme".to_string(), "order_paid".to_string(), 1, 500),
            ("acme".to_string(), "order_shipped".to_string(), 3, 3000),
            ("acme".to_string(), "order_cancelled".to_string(), 1, 9999),
            ("globex".to_string(), "order_paid".to_string(), 1, 7),
        ];
        let stats = fold(rows);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].tenant, "acme");
        assert_eq!(stats[0].orders, 7);
        assert_eq!(stats[0].revenue_cents, 3500);
        assert_eq!(
            stats[0].by_status,
            ByStatus {
                order_placed: 2,
                order_paid: 1,
                order_shipped: 3,
                order_cancelled: 1
            }
        );
        assert_eq!(stats[1].revenue_cents, 7);
    }
}
