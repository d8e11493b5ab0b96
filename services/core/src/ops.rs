//! The operations listener of the producer and the processor: `/metrics` (Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (it can do its work); docs/contracts.md,
//! "Metrics".
//!
//! Three fixed routes need no router, so this is hyper's HTTP/1 server with one
//! `service_fn`, and the producer (which serves nothing else) does not compile axum. The API,
//! which is an axum app, answers its own `/metrics` and `/healthz` with [`render_metrics`] and
//! [`healthz`]: `http::Response`s that axum serves as they are.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// An answer of the operations listener: a small, fully buffered body.
pub type OpsResponse = Response<Full<Bytes>>;

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

fn text(status: StatusCode, body: &'static str) -> OpsResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `GET /metrics`: Prometheus text for everything in `registry`.
pub fn render_metrics(registry: &Registry) -> OpsResponse {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&registry.gather(), &mut buf) {
        Ok(()) => {
            let mut response = Response::new(Full::new(Bytes::from(buf)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(prometheus::TEXT_FORMAT),
            );
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the metrics");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot encode the metrics\n",
            )
        }
    }
}

/// `GET /healthz`: the process answers.
pub fn healthz() -> OpsResponse {
    text(StatusCode::OK, "ok\n")
}

/// `GET /readyz` of the producer and the processor: 200 when `readiness` says so, else 503.
pub fn readyz(readiness: &Readiness) -> OpsResponse {
    if readiness.get() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The three routes. `HEAD` is answered like `GET` (hyper leaves the body out).
fn route(request: &Request<Incoming>, registry: &Registry, readiness: &Readiness) -> OpsResponse {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
        return response;
    }
    match path {
        "/metrics" => render_metrics(registry),
        "/healthz" => healthz(),
        _ => readyz(readiness),
    }
}

/// Binds `addr` (port 0 picks a free port) and serves until `shutdown` is cancelled: then it
/// stops accepting and lets each open connection finish its request. Returns the bound address.
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
        let connections = GracefulShutdown::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: try again in a moment.
                        tracing::warn!(error = %e, "metrics listener cannot accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let registry = registry.clone();
            let readiness = readiness.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let response = route(&request, &registry, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
        drop(listener);
        connections.shutdown().await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{opts, IntCounter};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// One HTTP/1.1 request over a fresh connection; the whole answer as text.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        answer
    }

    fn status_line(answer: &str) -> &str {
        answer.lines().next().unwrap_or_default()
    }

    #[tokio::test]
    async fn the_three_routes_answer_and_nothing_else_does() {
        let registry = Registry::new();
        let counter = crate::metrics::register(
            &registry,
            IntCounter::with_opts(opts!("spine_ops_test_total", "help")).expect("valid"),
        );
        counter.inc_by(3);
        let shutdown = CancellationToken::new();
        let ops = OpsServer::start("127.0.0.1:0".parse().expect("addr"), registry, &shutdown)
            .await
            .expect("starts");

        let metrics = request(ops.addr, "GET", "/metrics").await;
        assert_eq!(status_line(&metrics), "HTTP/1.1 200 OK");
        assert!(
            metrics.contains("content-type: text/plain; version=0.0.4"),
            "{metrics}"
        );
        assert!(metrics.contains("\r\n\r\n"), "{metrics}");
        assert!(metrics.ends_with("spine_ops_test_total 3\n"), "{metrics}");

        let health = request(ops.addr, "GET", "/healthz").await;
        assert_eq!(status_line(&health), "HTTP/1.1 200 OK");
        assert!(health.ends_with("\r\n\r\nok\n"), "{health}");

        let ready = request(ops.addr, "GET", "/readyz").await;
        assert_eq!(status_line(&ready), "HTTP/1.1 503 Service Unavailable");
        ops.readiness.set(true);
        let ready = request(ops.addr, "GET", "/readyz").await;
        assert_eq!(status_line(&ready), "HTTP/1.1 200 OK");
        assert!(ready.ends_with("ready\n"), "{ready}");

        let head = request(ops.addr, "HEAD", "/healthz").await;
        assert_eq!(status_line(&head), "HTTP/1.1 200 OK");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

        let missing = request(ops.addr, "GET", "/nope").await;
        assert_eq!(status_line(&missing), "HTTP/1.1 404 Not Found");
        let post = request(ops.addr, "POST", "/metrics").await;
        assert_eq!(status_line(&post), "HTTP/1.1 405 Method Not Allowed");
        assert!(post.contains("allow: GET,HEAD"), "{post}");
    }

    #[tokio::test]
    async fn stopping_closes_the_port_and_the_parent_token_stops_it_too() {
        let shutdown = CancellationToken::new();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let ops = OpsServer::start(any, Registry::new(), &shutdown)
            .await
            .expect("starts");
        ops.stop();
        refused_soon(ops.addr).await;

        let ops = OpsServer::start(any, Registry::new(), &shutdown)
            .await
            .expect("starts");
        shutdown.cancel();
        refused_soon(ops.addr).await;
    }

    async fn refused_soon(addr: SocketAddr) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{addr} still accepts connections 5 s after the stop");
    }

    #[tokio::test]
    async fn a_taken_address_names_the_variable() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = OpsServer::start(addr, Registry::new(), &CancellationToken::new())
            .await
            .err()
            .expect("the address is taken");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on METRICS_ADDR {addr}:")),
            "{err}"
        );
    }
}
