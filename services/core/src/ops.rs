//! The operations listener of the producer and the processor: `/metrics` (Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (it can do its work).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// Readiness, flipped by the service as its dependencies come and go.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Prometheus text for everything in `registry`.
pub fn render_metrics(registry: &Registry) -> Response {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], buf).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

#[derive(Clone)]
struct OpsState {
    registry: Registry,
    readiness: Readiness,
}

fn router(registry: Registry, readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<OpsState>| async move { render_metrics(&s.registry) }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<OpsState>| async move {
                if s.readiness.get() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
        .with_state(OpsState {
            registry,
            readiness,
        })
}

/// Binds `addr` (port 0 picks a free port) and serves until `shutdown` is cancelled.
/// Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on METRICS_ADDR {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let app = router(registry, readiness);
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        {
            tracing::warn!(error = %e, "metrics listener stopped");
        }
    });
    Ok(bound)
}

/// A running operations listener: where it listens, the readiness it reports, and its stop.
pub struct OpsServer {
    pub addr: SocketAddr,
    pub readiness: Readiness,
    stop: CancellationToken,
}

impl OpsServer {
    /// Starts the listener; it stops with `shutdown` or with [`OpsServer::stop`], whichever
    /// comes first. Readiness starts false.
    pub async fn start(
        addr: SocketAddr,
        registry: Registry,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<OpsServer> {
        let readiness = Readiness::default();
        let stop = shutdown.child_token();
        let addr = serve(addr, registry, readiness.clone(), stop.clone()).await?;
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
        Ok(OpsServer {
            addr,
            readiness,
            stop,
        })
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}
