//! Thousands of generated paths and query strings against the real server (port 0) and a real
//! Postgres, a fifth of them while every database permit is held (saturated): no answer is a 5xx
//! other than 503, a 503 only from a database route while saturated, and every 4xx and 503 is a
//! JSON body naming the problem.

use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use spine_api::AppState;
use spine_testkit::postgres;
use tokio_util::sync::CancellationToken;

const CASES: u32 = 3000;

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "/orders", "/stats", "/batches", "/", "/app.js", "/app.css", "/metrics", "/livez",
            "/healthz", "/readyz", "/dead_letters", "/orders/acme/ord-1",
        ])
        .prop_map(str::to_owned),
        1 => "(/[a-zA-Z0-9._~%-]{0,12}){1,4}/?",
        1 => prop::sample::select(vec!["/orders/", "//orders", "/orders/1", "/%6Frders", "/ORDERS", "/./orders", "/stats%00",
            "/orders/%ff/x", "/orders/acme/%00", "/orders/a/b/c", "/orders/%3Cscript%3E/a%2Fb", "/dead_letters/1"])
            .prop_map(str::to_owned),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["tenant", "status", "limit", "partition"]).prop_map(str::to_owned),
        1 => "[a-zA-Z%0-9_\\[\\]]{0,8}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "acme",
            "order_placed",
            "order_paid",
            "order_shipped",
            "order_cancelled",
            "1",
            "1000",
            "1001",
            "0",
            "-1",
            "",
            "%00",
            "%ff%fe",
            "%",
            "%2",
            "null",
            "NaN",
            "1e3",
            " 5",
        ])
        .prop_map(str::to_owned),
        "-?[0-9]{1,25}",
        "\\PC{0,24}",
        "(%[0-9a-fA-F]{2}){1,6}",
        "[a-z]{60,80}",
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.8,
        prop::collection::vec((key(), prop::option::weighted(0.9, value())), 0..5).prop_map(
            |pairs| {
                pairs
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => format!("{k}={v}"),
                        None => k,
                    })
                    .collect::<Vec<_>>()
                    .join("&")
            },
        ),
    )
}

#[test]
fn generated_requests_never_get_a_5xx_and_every_4xx_is_json() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (base, state, _stop) = rt.block_on(async {
        let db = postgres().fresh_database().await;
        let mut client = db.connect().await;
        spine_core::schema::migrate(&mut client)
            .await
            .expect("migrate");
        client
            .batch_execute(
                "INSERT INTO current_orders SELECT 'acme', 'ord-' || i, 'order_paid', i, 'USD',
                        now(), gen_random_uuid() FROM generate_series(1, 20) i;
                 INSERT INTO tenant_stats VALUES ('acme', 'order_paid', 20, 210)",
            )
            .await
            .expect("seed");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let state = AppState::connect(db.config()).expect("pools");
        tokio::spawn(spine_api::serve(listener, state.clone(), stop.clone()));
        (base, state, stop.drop_guard())
    });
    let http = reqwest::Client::new();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let sent = AtomicU32::new(0);
    let shed = AtomicU32::new(0);
    runner
        .run(
            &(path(), query(), prop::bool::weighted(0.2)),
            |(path, query, saturated)| {
                let raw = match &query {
                    Some(q) => format!("{base}{path}?{q}"),
                    None => format!("{base}{path}"),
                };
                // The URL parser percent-encodes what may not appear raw; what it refuses outright
                // no client could send either.
                let Ok(url) = reqwest::Url::parse(&raw) else {
                    return Ok(());
                };
                sent.fetch_add(1, Ordering::Relaxed);
                let (status, content_type, retry_after, body) = rt.block_on(async {
                    // As if POOL_SIZE requests were in flight.
                    let _held = match saturated {
                        true => Some(
                            state
                                .permits
                                .clone()
                                .acquire_many_owned(spine_api::db::POOL_SIZE as u32)
                                .await
                                .expect("permits"),
                        ),
                        false => None,
                    };
                    let r = http
                        .get(url.clone())
                        .send()
                        .await
                        .expect("the server answers");
                    let status = r.status();
                    let ct = r
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let retry_after = r.headers().get("retry-after").cloned();
                    (
                        status,
                        ct,
                        retry_after,
                        r.bytes().await.expect("a whole body"),
                    )
                });
                let what = format!(
                    "GET {url} (saturated: {saturated}) -> {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                prop_assert!(
                    !status.is_server_error() || status.as_u16() == 503,
                    "{what}"
                );
                if status.as_u16() == 503 {
                    prop_assert!(
                        saturated
                            && (["/orders", "/stats", "/batches", "/dead_letters"]
                                .contains(&url.path())
                                || url.path().starts_with("/orders/")),
                        "only a saturated database route sheds: {what}"
                    );
                    prop_assert!(retry_after.is_some(), "{what}");
                    shed.fetch_add(1, Ordering::Relaxed);
                }
                if status.is_client_error() || status.as_u16() == 503 {
                    prop_assert_eq!(content_type.as_str(), "application/json", "{}", what);
                    let v: serde_json::Value = serde_json::from_slice(&body)
                        .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                    prop_assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}");
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let (sent, shed) = (sent.into_inner(), shed.into_inner());
    assert!(shed > 0, "no request met a saturated database route");
    assert!(
        sent > CASES / 2,
        "only {sent} of {CASES} generated URLs were sent"
    );
}
