//! `spine-api`: the live orders view over the processor's tables (docs/contracts.md,
//! "HTTP API").
//!
//! [`app`] builds the whole router from an [`AppState`], so tests drive it with `oneshot` or
//! serve it on port 0; [`run`] is the binary: bind, serve, stop on the shutdown token.

pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod layers;
pub mod live_ends;
pub mod metrics;
pub mod params;
pub mod push;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use deadpool_postgres::Pool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cache::AnswerCache;
use crate::error::ApiError;
use crate::live_ends::LiveEnds;
use crate::metrics::ApiMetrics;
use crate::push::Hub;

/// What the API's Postgres sessions are called (`pg_stat_activity.application_name`).
pub const APPLICATION_NAME: &str = "spine-api";

#[derive(Clone)]
pub struct AppState {
    /// The data routes' connections.
    pub pool: Pool,
    /// `/readyz`'s own connections.
    pub ready_pool: Pool,
    /// One per data request in flight; as many as the data pool has connections.
    pub permits: Arc<Semaphore>,
    pub metrics: ApiMetrics,
    /// The partitions' live ends, for lag; without it lag uses the stored ends.
    pub live_ends: Option<Arc<LiveEnds>>,
    /// `/stream`'s listener and subscribers.
    pub push: Arc<Hub>,
    /// `/orders`, `/stats` and `/batches` answers per batch.
    pub cache: AnswerCache,
    /// The batch listener's own session (the API's role, outside the pools).
    pub listen_config: tokio_postgres::Config,
}

impl AppState {
    /// Both pools over `config` (the API's role), with the sizes and timeouts of [`db`].
    pub fn connect(config: tokio_postgres::Config) -> anyhow::Result<AppState> {
        let metrics = ApiMetrics::new();
        Ok(AppState {
            pool: db::pool(config.clone(), db::POOL_SIZE, Duration::from_secs(1))?,
            ready_pool: db::pool(config.clone(), db::READY_POOL_SIZE, Duration::from_secs(1))?,
            permits: Arc::new(Semaphore::new(db::POOL_SIZE)),
            push: Arc::new(Hub::new(
                push::DEFAULT_MAX_SUBSCRIBERS,
                push::CHANNEL_CAPACITY,
                metrics.stream_subscribers.clone(),
            )),
            metrics,
            live_ends: None,
            cache: AnswerCache::default(),
            listen_config: config,
        })
    }

    /// At most `max_subscribers` on `/stream`, each at most `capacity` frames behind.
    pub fn with_stream_limits(self, max_subscribers: usize, capacity: usize) -> AppState {
        AppState {
            push: Arc::new(Hub::new(
                max_subscribers,
                capacity,
                self.metrics.stream_subscribers.clone(),
            )),
            ..self
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

/// Every route of docs/contracts.md ("HTTP API"), plus the page's script and stylesheet, in
/// the layers of [`layers`].
pub fn app(state: AppState) -> Router {
    let data = layers::shed(
        Router::new()
            .route("/orders/{tenant}/{order_id}", get(routes::order::order))
            .route("/dead_letters", get(routes::dead_letters::dead_letters))
            .route("/batches", get(routes::batches::batches)),
        state.permits.clone(),
    );
    let router = Router::new()
        .route("/", get(routes::page::index))
        .route("/app.js", get(routes::page::script))
        .route("/app.css", get(routes::page::style))
        .merge(data)
        // Served from the cache without a database permit; a computation takes one
        // (`layers::permit`), so a miss is shed like any database request.
        .route("/orders", get(routes::orders::orders))
        .route("/stats", get(routes::stats::stats))
        // Outside the load shedding: a subscriber holds no database permit while it listens.
        .route("/stream", get(push::sse::stream))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                spine_core::ops::render_metrics(&s.metrics.registry)
            }),
        )
        .route("/livez", get(|| async { spine_core::ops::healthz() }))
        .route("/healthz", get(|| async { spine_core::ops::healthz() }))
        .route("/readyz", get(routes::health::readyz))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    layers::with_layers(router, state)
}

/// Serves `app` on `listener` until `shutdown` is cancelled, with the batch listener of
/// `/stream` and the cache running; at shutdown every stream ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    push::listener::start(&state);
    let stop = state.push.stop.clone();
    let linked = shutdown.clone();
    tokio::spawn(async move {
        linked.cancelled().await;
        stop.cancel();
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// The binary: the pools (read-only sessions as the API's role), the listener, and a log line
/// saying where it listens and as whom.
pub async fn run(args: config::ApiArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (pg, role) = args.pg_config().map_err(|e| anyhow::anyhow!(e))?;
    if role == config::Role::Writer {
        warn!(
            user = pg.get_user().unwrap_or("?"),
            "POSTGRES_API_USER / API_DATABASE_URL not set: reading as the writer's role \
             (sessions are still read-only; give the API a role of its own in production)"
        );
    }
    let state = AppState::connect(pg)?
        .with_stream_limits(args.stream_max_subscribers, push::CHANNEL_CAPACITY);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on API_ADDR {}: {e}", args.addr))?;
    let addr: SocketAddr = listener.local_addr()?;
    let live_ends = LiveEnds::new(&args.kafka.bootstrap, &args.kafka.topic)?;
    info!(%addr, postgres = %args.describe(), kafka = %args.kafka.bootstrap,
          topic = %args.kafka.topic, "listening");
    serve(listener, state.with_live_ends(live_ends), shutdown).await?;
    info!("stopped");
    Ok(())
}
