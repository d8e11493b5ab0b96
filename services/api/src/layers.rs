//! What wraps every route, from tower-http where it has it (docs/contracts.md, "HTTP API"):
//!
//! - `SetResponseHeaderLayer`: `Cache-Control: no-store` (the data is live; `/orders`, `/stats`
//!   and `/batches` send `no-cache` with their `ETag` instead, see [`crate::cache`]) and
//!   `X-Content-Type-Options: nosniff` on every answer;
//! - `TraceLayer`: the access log, one `info` line per request with method, path, status and
//!   latency (JSON with `LOG_FORMAT=json`);
//! - [`observe`]: `spine_api_requests_total` / `spine_api_request_duration_seconds`;
//! - `CompressionLayer`: gzip when the client sends `Accept-Encoding: gzip`;
//! - [`json_errors`]: an error answer made below us without a body (a timeout) gets the same
//!   `{"error": ...}` body as ours, and every 503 a `Retry-After`;
//! - `TimeoutLayer`: no request runs past [`REQUEST_TIMEOUT`] (503);
//! - `CatchPanicLayer`: a panic becomes a JSON 500 and an `error` line, never a dropped
//!   connection.
//!
//! In front of the database routes only, [`shed`]: at most [`crate::db::POOL_SIZE`] requests
//! at once (tower's `GlobalConcurrencyLimit`); one more is answered 503 at once (`LoadShed`)
//! rather than queued behind the pool. `/orders` and `/stats` answer from the cache without a
//! permit and take one of the same permits ([`permit`]) only to compute an answer.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::error::ApiError;
use crate::AppState;

/// The longest any request may take; the database routes are bounded well below it by the
/// statement timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Wraps `router` (every route and the fallback) in the layers above.
pub fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    let access_log = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        })
        .on_request(())
        .on_response(|response: &Response, latency: Duration, _: &Span| {
            tracing::info!(
                status = response.status().as_u16(),
                latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3,
                "request"
            );
        })
        // A 5xx is already in the line above; no second line for it.
        .on_failure(());
    router
        .layer(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(access_log)
                .layer(middleware::from_fn_with_state(state.clone(), observe))
                .layer(CompressionLayer::new().gzip(true))
                .layer(middleware::from_fn(json_errors))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    REQUEST_TIMEOUT,
                ))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
        .with_state(state)
}

/// One of the database permits of [`shed`], taken by a handler that is not behind it (the
/// cached routes take one only to compute); none free is the same 503 at once.
pub fn permit(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Overloaded)
}

/// `router`'s routes behind the concurrency limit over `permits`, shedding the excess.
pub fn shed(router: Router<AppState>, permits: Arc<Semaphore>) -> Router<AppState> {
    router.route_layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                ApiError::Overloaded
            }))
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(permits)),
    )
}

/// Counts and times every request by its route (the pattern, never the raw path).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    state
        .metrics
        .duration
        .with_label_values(&[route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Gives an error answer without a body of ours (e.g. the timeout's bare 503) the JSON body
/// every other error has, and every 503 a `Retry-After`.
async fn json_errors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static("1"));
    }
    if (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        let headers = response.headers().clone();
        let mut json = (status, axum::Json(serde_json::json!({ "error": reason }))).into_response();
        for (name, value) in &headers {
            if name != header::CONTENT_LENGTH {
                json.headers_mut().insert(name, value.clone());
            }
        }
        return json;
    }
    response
}

/// A panicking handler: one `error` line, and a JSON 500 for the client.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::Internal.into_response()
}
