//! `spine-api`: the live orders view over the processor's tables (SPEC.md "HTTP API").
//!
//! [`app`] builds the whole router from a pool, so tests drive it with `oneshot` or serve it
//! on port 0; [`run`] is the binary: bind, serve, stop on the shutdown token.

pub mod config;
pub mod error;
pub mod live_ends;
pub mod metrics;
pub mod params;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::error::ApiError;
use crate::live_ends::LiveEnds;
use crate::metrics::ApiMetrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub metrics: ApiMetrics,
    /// The partitions' live ends, for lag; without it lag uses the stored ends.
    pub live_ends: Option<Arc<LiveEnds>>,
}

impl AppState {
    pub fn new(pool: Pool) -> AppState {
        AppState {
            pool,
            metrics: ApiMetrics::new(),
            live_ends: None,
        }
    }

    /// Measures lag against the live ends `live_ends` reads from the broker.
    pub fn with_live_ends(self, live_ends: LiveEnds) -> AppState {
        AppState {
            live_ends: Some(Arc::new(live_ends)),
            ..self
        }
    }
}

/// Every route of SPEC.md's table, plus the page's script and stylesheet.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(routes::page::index))
        .route("/app.js", get(routes::page::script))
        .route("/app.css", get(routes::page::style))
        .route("/orders", get(routes::orders::orders))
        .route("/stats", get(routes::stats::stats))
        .route("/batches", get(routes::batches::batches))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                spine_core::ops::render_metrics(&s.metrics.registry)
            }),
        )
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts and times every request, and sets the headers every answer carries: nothing is
/// cached (the data is live) and no answer is content-sniffed.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
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

/// Serves `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The binary: a pool (queries bounded by a 5 s statement timeout), the listener, and a log
/// line saying where it listens.
pub async fn run(args: config::ApiArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = spine_core::db::pool(
        args.postgres.pg_config("spine-api"),
        16,
        Duration::from_secs(5),
    )?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on API_ADDR {}: {e}", args.addr))?;
    let addr: SocketAddr = listener.local_addr()?;
    let live_ends = LiveEnds::new(&args.kafka.bootstrap, &args.kafka.topic)?;
    info!(%addr, postgres = %args.postgres.describe(), kafka = %args.kafka.bootstrap,
          topic = %args.kafka.topic, "listening");
    serve(
        listener,
        AppState::new(pool).with_live_ends(live_ends),
        shutdown,
    )
    .await?;
    info!("stopped");
    Ok(())
}
