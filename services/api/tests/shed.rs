//! Overload and the middleware: a saturated API sheds with fast 503s while its probes answer,
//! a panic is a JSON 500, a stuck handler a 503, gzip when asked, and one access-log line per
//! request from the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use spine_api::AppState;
use spine_testkit::{postgres, unique_name, TestDb};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

async fn migrated() -> TestDb {
    let db = postgres().fresh_database().await;
    let mut client = db.connect().await;
    spine_core::schema::migrate(&mut client)
        .await
        .expect("migrate");
    client
        .batch_execute(
            "INSERT INTO current_orders SELECT 'acme', 'ord-' || i, 'order_placed', i, 'USD',
                    now(), gen_random_uuid() FROM generate_series(1, 50) i",
        )
        .await
        .expect("seed");
    db
}

/// Serves `state` on a free port; stops when the guard drops.
async fn serve(state: AppState) -> (String, tokio_util::sync::DropGuard) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    tokio::spawn(spine_api::serve(listener, state, stop.clone()));
    (base, stop.drop_guard())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_api_sheds_with_503_while_its_probes_answer() {
    let db = migrated().await;
    let state = AppState::connect(db.config()).expect("pools");
    let (base, _stop) = serve(state.clone()).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();

    assert_eq!(get("/orders").await.expect("orders").status(), 200);

    // Every permit taken, as by POOL_SIZE requests in flight.
    let held = state
        .permits
        .clone()
        .acquire_many_owned(spine_api::db::POOL_SIZE as u32)
        .await
        .expect("permits");
    // (Questions not asked before: an answer already computed for this batch is served from
    // the cache without a permit.)
    for path in ["/orders?limit=7", "/stats", "/batches?limit=1"] {
        let r = get(path).await.expect("request");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.headers()[header::RETRY_AFTER], "1", "{path}");
        let v: Value = r.json().await.expect("json");
        assert!(
            v["error"]
                .as_str()
                .expect("error")
                .contains("too many requests"),
            "{v}"
        );
    }
    // What needs no data connection is unaffected, and /readyz has connections of its own:
    // hold every connection of the data pool too.
    let mut connections = Vec::new();
    for _ in 0..spine_api::db::POOL_SIZE {
        connections.push(state.pool.get().await.expect("connection"));
    }
    for path in ["/livez", "/healthz", "/readyz", "/metrics", "/"] {
        assert_eq!(get(path).await.expect(path).status(), 200, "{path}");
    }
    let metrics = get("/metrics")
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(r#"spine_api_requests_total{route="/orders",status="503"} 1"#),
        "{metrics}"
    );

    // Load gone, service back.
    drop(held);
    drop(connections);
    assert_eq!(get("/orders").await.expect("orders").status(), 200);
}

async fn boom() -> &'static str {
    panic!("a bug")
}

/// The real layers around test routes that misbehave.
fn misbehaving(state: AppState) -> Router {
    spine_api::layers::with_layers(
        Router::new().route("/boom", get(boom)).route(
            "/stuck",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        ),
        state,
    )
}

async fn call(app: Router, path: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
    let r = app
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let (parts, body) = r.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (parts.status, parts.headers, v)
}

/// State whose pools are never used by the routes of [`misbehaving`].
fn unused_state() -> AppState {
    let mut nowhere = tokio_postgres::Config::new();
    nowhere
        .host("127.0.0.1")
        .port(1)
        .user("nobody")
        .dbname("none");
    AppState::connect(nowhere).expect("pools")
}

#[tokio::test]
async fn a_panic_is_a_json_500_and_a_counted_answer() {
    let state = unused_state();
    let (status, headers, body) = call(misbehaving(state.clone()), "/boom").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, serde_json::json!({"error": "internal error"}));
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        state
            .metrics
            .requests
            .with_label_values(&["/boom", "500"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_stuck_request_is_a_json_503_after_the_request_timeout() {
    let state = unused_state();
    // Tokio's clock is paused: the timeout elapses without the test waiting for it.
    let (status, headers, body) = call(misbehaving(state), "/stuck").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body, serde_json::json!({"error": "service unavailable"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_gzipped_when_asked() {
    let db = migrated().await;
    let (base, _stop) = serve(AppState::connect(db.config()).expect("pools")).await;
    let http = reqwest::Client::new();
    let gz = http
        .get(format!("{base}/orders"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .expect("request");
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    let zipped = gz.bytes().await.expect("body");
    assert_eq!(&zipped[..2], &[0x1f, 0x8b], "a gzip stream");
    let plain = http
        .get(format!("{base}/orders"))
        .send()
        .await
        .expect("request");
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let plain = plain.bytes().await.expect("body");
    assert!(
        zipped.len() < plain.len() / 2,
        "{} vs {}",
        zipped.len(),
        plain.len()
    );
}

/// A child process killed when the test ends, passing or failing.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_as_its_own_role_and_logs_every_request() {
    let db = migrated().await;
    let admin = db.connect().await;
    let role = unique_name("api").to_lowercase();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN IN ROLE spine_reader"))
        .await
        .expect("role");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spine-api"));
    for var in [
        "DATABASE_URL",
        "API_DATABASE_URL",
        "POSTGRES_PASSWORD",
        "POSTGRES_API_PASSWORD",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    let mut child = KillOnDrop(
        cmd.envs([
            ("POSTGRES_HOST", "127.0.0.1".to_string()),
            ("POSTGRES_PORT", db.port.to_string()),
            ("POSTGRES_DB", db.name.clone()),
            ("POSTGRES_USER", "postgres".to_string()),
            ("POSTGRES_API_USER", role.clone()),
            ("API_ADDR", "127.0.0.1:0".to_string()),
            ("LOG_FORMAT", "json".to_string()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spine-api"),
    );
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.0.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("spine-api did not say where it listens: {seen:#?}"));
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
        seen.push(line);
        if v["message"] == "listening" {
            break v["addr"].as_str().expect("addr").to_owned();
        }
    };
    let http = reqwest::Client::new();
    let mut expected = Vec::new();
    for (path, status) in [
        ("/orders?limit=2", 200),
        ("/nope", 404),
        ("/orders?limit=0", 400),
        ("/livez", 200),
    ] {
        let r = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), status, "{path}");
        expected.push((path.split('?').next().expect("path").to_owned(), status));
    }

    // Its sessions are named, and are the API's role.
    let rows = admin
        .query(
            "SELECT usename::text FROM pg_stat_activity WHERE application_name = 'spine-api' AND datname = current_database()",
            &[],
        )
        .await
        .expect("activity");
    assert!(!rows.is_empty(), "no spine-api session");
    for r in &rows {
        assert_eq!(r.get::<_, String>(0), role);
    }

    // One access-log line per request, in order: method, path, status, latency.
    let mut logged = Vec::new();
    while logged.len() < expected.len() {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("missing access-log lines: {logged:?} {seen:#?}"));
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
        seen.push(line);
        if v["message"] == "request" {
            assert_eq!(v["span"]["method"], "GET", "{v}");
            assert!(v["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{v}");
            logged.push((
                v["span"]["path"].as_str().expect("path").to_owned(),
                v["status"].as_u64().expect("status") as u16,
            ));
        }
    }
    assert_eq!(logged, expected);
}
