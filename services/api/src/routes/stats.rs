//! `GET /stats?tenant=`: orders, revenue and counts by status per tenant.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;
use spine_core::event::EventType;

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

/// One statement, so the counts and `as_of_batch` come from the same snapshot. `tenant_stats`
/// holds a row per tenant and status, kept by the processor in each batch's transaction, so
/// this reads a few rows however many orders there are.
fn sql(tenant: bool) -> String {
    format!(
        "WITH b AS ({as_of})
         SELECT b.as_of, s.tenant, s.status, s.orders, s.amount_cents
           FROM b LEFT JOIN LATERAL (SELECT * FROM tenant_stats {filter}) s ON true",
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

pub async fn stats(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<StatsResponse>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["tenant"])?;
    let tenant = params.tenant()?;

    let client = app.pool.get().await?;
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
    }))
    .into_iter()
    .filter(|t| t.orders > 0)
    .collect();
    Ok(Json(StatsResponse {
        tenants,
        as_of_batch,
    }))
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
