//! One module per route family; each handler parses its parameters strictly, runs one
//! snapshot-consistent query and answers JSON.

pub mod batches;
pub mod dead_letters;
pub mod health;
pub mod order;
pub mod orders;
pub mod page;
pub mod processor;
pub mod stats;

use std::future::Future;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serializer;

use crate::cache::Answer;
use crate::error::ApiError;
use crate::AppState;

/// Timestamps as RFC 3339 UTC with microseconds, like the events carry them.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&spine_core::event::format_time(t))
}

/// [`rfc3339`], or `null`.
pub fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// The newest committed batch: everything up to it is visible (batch ids are handed out in
/// commit order, see the processor's sink).
pub const AS_OF_BATCH: &str =
    "SELECT coalesce(max(batch_id), 0)::bigint AS as_of FROM stream_batches";

/// [`AS_OF_BATCH`] and that batch's `finished_at` (`NULL` before the first batch): `as_of` and
/// `as_of_at`.
pub const AS_OF_BATCH_AT: &str =
    "SELECT coalesce(l.batch_id, 0)::bigint AS as_of, l.finished_at AS as_of_at
   FROM (SELECT 1) one LEFT JOIN LATERAL (
        SELECT batch_id, finished_at FROM stream_batches ORDER BY batch_id DESC LIMIT 1) l ON true";

/// The answer of `route` for the normalized query `key`, sent with its tag (304 to a matching
/// `If-None-Match`), see [`answer`].
pub async fn cached<Fut>(
    app: &AppState,
    route: &str,
    key: String,
    headers: &HeaderMap,
    compute: Fut,
) -> Result<Response, ApiError>
where
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    Ok(answer(app, route, key, compute).await?.respond(headers))
}

/// The answer of `route` for the normalized query `key`: from the cache when the batch
/// listener knows the newest batch and the answer as of it is there, else computed by `compute`
/// (and kept, when the listener is connected; otherwise the cache is bypassed).
pub async fn answer<Fut>(
    app: &AppState,
    route: &str,
    key: String,
    compute: Fut,
) -> Result<Arc<Answer>, ApiError>
where
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let Some(batch) = app.push.cacheable_batch() else {
        app.metrics
            .cache
            .with_label_values(&[route, "bypass"])
            .inc();
        return Ok(Arc::new(compute.await?));
    };
    match app.cache.get_or_compute(key, batch, compute).await {
        Ok((answer, computed)) => {
            let outcome = if computed { "miss" } else { "hit" };
            app.metrics.cache.with_label_values(&[route, outcome]).inc();
            Ok(answer)
        }
        // Every request that waited for this computation gets its error.
        Err(e) => Err(match &*e {
            ApiError::BadRequest(m) => ApiError::BadRequest(m.clone()),
            ApiError::Missing(m) => ApiError::Missing(m.clone()),
            ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
            ApiError::NotFound => ApiError::NotFound,
            ApiError::MethodNotAllowed => ApiError::MethodNotAllowed,
            ApiError::Overloaded => ApiError::Overloaded,
            ApiError::Internal => ApiError::Internal,
        }),
    }
}

/// `key=value&…` of the parameters a route was given, in name order, each once: two queries
/// asking the same thing share a cache entry.
pub fn normalized(route: &str, pairs: &[(&str, Option<String>)]) -> String {
    let start = format!("{route}?");
    let at = start.len();
    let mut key = form_urlencoded::Serializer::for_suffix(start, at);
    for (name, value) in pairs {
        if let Some(v) = value {
            key.append_pair(name, v);
        }
    }
    key.finish()
}
