//! `GET /stats?tenant=`: orders, revenue and counts by status per tenant.

use std::collections::BTreeMap;

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

/// Counts and sums are `i128`: `tenant_stats` keeps them as `numeric`, which no sum of
/// amounts (each at most 10^12 cents) outgrows, and the JSON numbers are exact. Up to
/// `i64::MAX` they are the same numbers as before.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ByStatus {
    pub order_placed: i128,
    pub order_paid: i128,
    pub order_shipped: i128,
    pub order_cancelled: i128,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TenantStats {
    pub tenant: String,
    pub orders: i128,
    pub revenue_cents: i128,
    pub by_status: ByStatus,
}

/// The body of `/stats`; `T` is `TenantStats` or a reference to one (the stream's events
/// filter a shared list).
#[derive(Debug, Serialize)]
pub struct StatsResponse<T = TenantStats> {
    pub tenants: Vec<T>,
    pub as_of_batch: i64,
    /// That batch's `finished_at`; `null` before the first batch.
    #[serde(serialize_with = "super::rfc3339_opt")]
    pub as_of_batch_at: Option<DateTime<Utc>>,
}

/// One statement, so the counts and `as_of_batch` come from the same snapshot. `tenant_stats`
/// holds a row per tenant and status, kept by the processor in each batch's transaction, so
/// this reads a few rows however many orders there are.
fn sql(tenant: bool) -> String {
    format!(
        "WITH b AS ({as_of})
         SELECT b.as_of, b.as_of_at, s.tenant, s.status, s.orders::text, s.amount_cents::text
           FROM b LEFT JOIN LATERAL (SELECT * FROM tenant_stats {filter}) s ON true",
        as_of = super::AS_OF_BATCH_AT,
        filter = if tenant { "WHERE tenant = $1" } else { "" }
    )
}

/// Folds `(tenant, status, count, amount)` rows into per-tenant stats, sorted by tenant. Every
/// addition is checked: a total past `i128` is an error naming the tenant, never a wrapped
/// (negative) number or a panic.
pub fn fold(
    rows: impl IntoIterator<Item = (String, String, i128, i128)>,
) -> Result<Vec<TenantStats>, String> {
    let mut by_tenant: BTreeMap<String, TenantStats> = BTreeMap::new();
    for (tenant, status, n, amount) in rows {
        let overflow = || format!("the totals of tenant {tenant:?} are out of range");
        let s = by_tenant
            .entry(tenant.clone())
            .or_insert_with(|| TenantStats {
                tenant: tenant.clone(),
                orders: 0,
                revenue_cents: 0,
                by_status: ByStatus::default(),
            });
        s.orders = s.orders.checked_add(n).ok_or_else(overflow)?;
        let Ok(status) = status.parse::<EventType>() else {
            continue;
        };
        if status.counts_as_revenue() {
            s.revenue_cents = s.revenue_cents.checked_add(amount).ok_or_else(overflow)?;
        }
        let count = match status {
            EventType::OrderPlaced => &mut s.by_status.order_placed,
            EventType::OrderPaid => &mut s.by_status.order_paid,
            EventType::OrderShipped => &mut s.by_status.order_shipped,
            EventType::OrderCancelled => &mut s.by_status.order_cancelled,
        };
        *count = count.checked_add(n).ok_or_else(overflow)?;
    }
    Ok(by_tenant.into_values().collect())
}

/// A `numeric` read as text: a whole number (counts and sums of whole cents).
fn whole(text: Option<String>) -> Result<i128, ApiError> {
    let text = text.unwrap_or_else(|| "0".into());
    text.parse().map_err(|_| {
        tracing::error!(value = %text, "tenant_stats holds a number out of range");
        ApiError::Unavailable(format!("a total in tenant_stats is out of range: {text}"))
    })
}

pub async fn stats(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["tenant"])?;
    let tenant = params.tenant()?.map(str::to_owned);
    let key = super::normalized("/stats", &[("tenant", tenant.clone())]);
    let compute = async {
        let _permit = crate::layers::permit(&app)?;
        let client = app.pool.get().await?;
        app.metrics.queries("stats", 1);
        let r = query(&**client, tenant.as_deref()).await?;
        let body = serde_json::to_vec(&r).map_err(|_| ApiError::Internal)?;
        Ok(Answer::new(body, r.as_of_batch, r.as_of_batch_at))
    };
    super::cached(&app, "/stats", key, &headers, compute).await
}

/// The stats as of the newest batch `client` sees, of one tenant or all (one statement).
pub async fn query(
    client: &impl tokio_postgres::GenericClient,
    tenant: Option<&str>,
) -> Result<StatsResponse, ApiError> {
    let sql = sql(tenant.is_some());
    let rows = match tenant {
        Some(t) => client.query(&sql, &[&t]).await?,
        None => client.query(&sql, &[]).await?,
    };
    let as_of_batch = rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let as_of_batch_at = rows.first().and_then(|r| r.get(1));
    let mut folded = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(tenant) = r.get::<_, Option<String>>(2) else {
            continue; // no tenant_stats rows: only as_of_batch
        };
        folded.push((tenant, r.get(3), whole(r.get(4))?, whole(r.get(5))?));
    }
    let tenants = fold(folded)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot total tenant_stats");
            ApiError::Unavailable(e)
        })?
        .into_iter()
        .filter(|t| t.orders > 0)
        .collect();
    Ok(StatsResponse {
        tenants,
        as_of_batch,
        as_of_batch_at,
    })
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
        let stats = fold(rows).expect("in range");
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

    #[test]
    fn totals_past_i64_are_exact_and_past_i128_an_error_not_a_wrap() {
        let big = i64::MAX as i128;
        let rows = vec![
            ("acme".to_string(), "order_paid".to_string(), big, big),
            ("acme".to_string(), "order_shipped".to_string(), big, big),
        ];
        let stats = fold(rows).expect("exact past i64");
        assert_eq!(stats[0].orders, 2 * big);
        assert_eq!(stats[0].revenue_cents, 2 * big, "no wrap to negative");
        let json = serde_json::to_string(&stats[0]).expect("json");
        assert!(
            json.contains("\"revenue_cents\":18446744073709551614"),
            "{json}"
        );

        let rows = vec![
            ("acme".to_string(), "order_paid".to_string(), 1, i128::MAX),
            ("acme".to_string(), "order_shipped".to_string(), 1, 1),
        ];
        let err = fold(rows).expect_err("past i128");
        assert!(err.contains("\"acme\""), "{err}");
        assert!(whole(Some("1e40".into())).is_err());
        assert_eq!(whole(Some("12".into())).expect("whole"), 12);
    }
}
