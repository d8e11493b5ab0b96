//! The API against a real Postgres, served on port 0 and called over HTTP.

mod stream_support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use spine_api::AppState;
use spine_testkit::postgres;
use stream_support::Server;

/// Orders and one batch, as the processor would have left them.
const SEED: &str = "
INSERT INTO current_orders (tenant, order_id, status, amount_cents, currency, updated_at, last_event_id) VALUES
 ('acme',    'ord-1', 'order_placed',    1000, 'USD', '2026-11-25T12:00:01Z', '00000000-0000-0000-0000-000000000001'),
 ('acme',    'ord-2', 'order_paid',      2000, 'USD', '2026-11-25T12:00:02Z', '00000000-0000-0000-0000-000000000002'),
 ('acme',    'ord-3', 'order_shipped',   3000, 'USD', '2026-11-25T12:00:03Z', '00000000-0000-0000-0000-000000000003'),
 ('globex',  'ord-1', 'order_cancelled', 4000, 'EUR', '2026-11-25T12:00:04.123456Z', '00000000-0000-0000-0000-000000000004'),
 ('<img src=x onerror=alert(1)>', 'ord-\"><script>alert(2)</script>', 'order_paid', 5000, 'USD', '2026-11-25T12:00:05Z', '00000000-0000-0000-0000-000000000005');
INSERT INTO stream_batches (batch_id, consumer_group, topic, started_at, finished_at, input_rows, events_inserted,
  duplicates, orders_upserted, stale_skipped, dead_lettered, fetch_ms, write_ms, total_ms)
 VALUES (7, 'stream-processor', 'events', '2026-11-25T12:00:06Z', '2026-11-25T12:00:06.5Z', 12, 9, 1, 5, 1, 2, 1.5, 3.25, 4.75);
INSERT INTO stream_batch_partitions VALUES (7, 0, 0, 5), (7, 2, 3, 10);
INSERT INTO tenant_stats SELECT tenant, status, count(*), sum(amount_cents) FROM current_orders GROUP BY 1, 2;
INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset, high_watermark) VALUES
 ('stream-processor', 'events', 0, 5, 8), ('stream-processor', 'events', 1, 0, NULL), ('stream-processor', 'events', 2, 10, 10);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_newest_first_with_the_spec_shape() {
    let s = Server::start().await;
    let empty = s.json("/orders").await;
    assert_eq!(
        empty,
        json!({"orders": [], "as_of_batch": 0, "as_of_batch_at": null})
    );
    s.sql(SEED).await;

    let all = s.json("/orders").await;
    assert_eq!(all["as_of_batch"], 7);
    let orders = all["orders"].as_array().expect("array");
    assert_eq!(orders.len(), 5);
    assert_eq!(
        orders[1],
        json!({"tenant": "globex", "order_id": "ord-1", "status": "order_cancelled",
               "amount_cents": 4000, "currency": "EUR", "updated_at": "2026-11-25T12:00:04.123456Z"})
    );
    let times: Vec<&str> = orders
        .iter()
        .map(|o| o["updated_at"].as_str().expect("time"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    let acme = s.json("/orders?tenant=acme").await;
    assert_eq!(acme["orders"].as_array().expect("array").len(), 3);
    let paid = s.json("/orders?status=order_paid").await;
    let tenants: Vec<&str> = paid["orders"]
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["tenant"].as_str().expect("t"))
        .collect();
    assert_eq!(tenants, vec!["<img src=x onerror=alert(1)>", "acme"]);
    let both = s
        .json("/orders?tenant=acme&status=order_shipped&limit=1")
        .await;
    assert_eq!(both["orders"][0]["order_id"], "ord-3");
    let limited = s.json("/orders?limit=2").await;
    assert_eq!(limited["orders"].as_array().expect("array").len(), 2);
    let nobody = s.json("/orders?tenant=nobody").await;
    assert_eq!(
        nobody,
        json!({"orders": [], "as_of_batch": 7, "as_of_batch_at": "2026-11-25T12:00:06.500000Z"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_orders_revenue_and_statuses_and_follow_new_batches() {
    let s = Server::start().await;
    assert_eq!(
        s.json("/stats").await,
        json!({"tenants": [], "as_of_batch": 0, "as_of_batch_at": null})
    );
    s.sql(SEED).await;
    let stats = s.json("/stats").await;
    assert_eq!(stats["as_of_batch"], 7);
    assert_eq!(
        stats["tenants"][1],
        json!({"tenant": "acme", "orders": 3, "revenue_cents": 5000,
               "by_status": {"order_placed": 1, "order_paid": 1, "order_shipped": 1, "order_cancelled": 0}})
    );
    assert_eq!(
        stats["tenants"][2]["revenue_cents"], 0,
        "a cancelled order is no revenue"
    );
    assert_eq!(
        s.json("/stats?tenant=globex").await["tenants"]
            .as_array()
            .expect("array")
            .len(),
        1
    );

    // A new batch lands (as the processor writes one: the order and its tenant's counts).
    s.sql("UPDATE current_orders SET status = 'order_shipped' WHERE tenant = 'acme' AND order_id = 'ord-1';
           UPDATE tenant_stats SET orders = orders - 1, amount_cents = amount_cents - 1000
            WHERE tenant = 'acme' AND status = 'order_placed';
           UPDATE tenant_stats SET orders = orders + 1, amount_cents = amount_cents + 1000
            WHERE tenant = 'acme' AND status = 'order_shipped';
           INSERT INTO stream_batches SELECT 8, consumer_group, topic, started_at, finished_at, 1, 0, 0, 1, 0, 0, 1, 1, 2
             FROM stream_batches WHERE batch_id = 7;")
        .await;
    let after = s.json("/stats").await;
    assert_eq!(after["as_of_batch"], 8);
    assert_eq!(after["tenants"][1]["revenue_cents"], 6000);
    assert_eq!(after["tenants"][1]["by_status"]["order_placed"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_show_the_gaps_of_the_last_day() {
    let s = Server::start().await;
    assert_eq!(s.json("/batches").await["gaps"], json!([]));
    s.sql(SEED).await;
    s.sql(
        "INSERT INTO stream_gaps (consumer_group, topic, kafka_partition, from_offset, to_offset, detected_at, reason) VALUES
          ('stream-processor', 'events', 1, 20000, 0, now() - interval '2 days', 'offset_beyond_log_end'),
          ('stream-processor', 'events', 0, 40, 100, '2099-01-01T00:00:00Z', 'offset_before_log_start'),
          ('stream-processor', 'events', 2, 20000, 0, now() - interval '1 hour', 'offset_beyond_log_end');",
    )
    .await;
    let b = s.json("/batches").await;
    let gaps = b["gaps"].as_array().expect("gaps array");
    assert_eq!(
        gaps.len(),
        2,
        "the one of two days ago is left out: {gaps:?}"
    );
    assert_eq!(
        gaps[0],
        json!({"consumer_group": "stream-processor", "topic": "events", "partition": 0,
               "from_offset": 40, "to_offset": 100, "detected_at": "2099-01-01T00:00:00.000000Z",
               "reason": "offset_before_log_start"}),
        "newest first"
    );
    assert_eq!(gaps[1]["partition"], 2);
    assert_eq!(gaps[1]["reason"], "offset_beyond_log_end");
    assert_eq!(b["batches"][0]["batch_id"], 7, "the other fields stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_show_ranges_and_each_partitions_lag() {
    let s = Server::start().await;
    s.sql(SEED).await;
    let b = s.json("/batches").await;
    let batch = &b["batches"][0];
    assert_eq!(batch["batch_id"], 7);
    assert_eq!(batch["input_rows"], 12);
    assert_eq!(batch["dead_lettered"], 2);
    assert_eq!(batch["total_ms"], 4.75);
    assert_eq!(batch["started_at"], "2026-11-25T12:00:06.000000Z");
    assert_eq!(
        batch["partitions"],
        json!([{"partition": 0, "start_offset": 0, "end_offset": 5}, {"partition": 2, "start_offset": 3, "end_offset": 10}])
    );
    let parts = b["partitions"].as_array().expect("array");
    assert_eq!(parts.len(), 3);
    assert_eq!(
        (
            parts[0]["next_offset"].clone(),
            parts[0]["high_watermark"].clone(),
            parts[0]["lag"].clone()
        ),
        (json!(5), json!(8), json!(3))
    );
    assert_eq!(parts[1]["lag"], Value::Null, "unknown end, unknown lag");
    assert_eq!(parts[2]["lag"], 0);
    for p in parts {
        assert_eq!(
            p["high_watermark_source"], "stored",
            "no broker configured: the ends stored with the offsets"
        );
        assert_eq!(p["lag_error"], Value::Null);
    }
    // Written before the batches had these figures: null, not made up.
    for field in [
        "max_event_time",
        "max_broker_timestamp",
        "commit_lag_s",
        "input_rate",
        "queued_ms",
        "commit_ms",
    ] {
        assert_eq!(batch[field], Value::Null, "{field}");
    }
    assert_eq!(batch["process_rate"], 2526.3, "12 rows in 4.75 ms");
    assert_eq!(
        s.json("/batches?limit=1").await["batches"]
            .as_array()
            .expect("array")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_carry_freshness_and_rates_and_an_offset_ahead_of_the_log_is_an_error() {
    let s = Server::start().await;
    s.sql(SEED).await;
    s.sql(
        "UPDATE stream_batches SET max_event_time = '2026-11-25T12:00:05Z',
                max_broker_timestamp = '2026-11-25T12:00:06.2Z', input_rate = 33.333
          WHERE batch_id = 7;
         UPDATE stream_offsets SET next_offset = 940, high_watermark = 931 WHERE kafka_partition = 1;",
    )
    .await;
    let b = s.json("/batches").await;
    let batch = &b["batches"][0];
    assert_eq!(batch["max_event_time"], "2026-11-25T12:00:05.000000Z");
    assert_eq!(batch["max_broker_timestamp"], "2026-11-25T12:00:06.200000Z");
    assert_eq!(batch["commit_lag_s"], 0.3, "finished 12:00:06.5");
    assert_eq!(batch["input_rate"], 33.3);
    let p1 = &b["partitions"][1];
    assert_eq!(p1["lag"], Value::Null, "never clamped to 0");
    assert_eq!(
        p1["lag_error"],
        "stored offset 940 is ahead of the log's end 931"
    );
    assert_eq!(
        b["processor"]["lag_records"], 3,
        "3 + 0; partition 1 has no lag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_processor_state_follows_the_rule() {
    let s = Server::start().await;
    let p = s.json("/batches").await["processor"].clone();
    assert_eq!(
        p,
        json!({"state": "down", "last_batch_at": null, "last_batch_age_s": null,
               "trigger_interval_ms": null, "lag_records": null, "event_time_lag_s": null,
               "replicas": []}),
        "nothing at all: down"
    );
    s.sql(SEED).await; // the last batch is from 2026-11-25, and partition 0 has lag 3
    let p = s.json("/batches").await["processor"].clone();
    assert_eq!(p["state"], "stalled", "{p}");
    assert_eq!(p["last_batch_at"], "2026-11-25T12:00:06.500000Z");
    assert!(p["last_batch_age_s"].as_f64().expect("age") > 3600.0, "{p}");
    s.sql(
        "INSERT INTO processor_heartbeats VALUES
           ('host-1', 'stream-processor', 'events', '{0,2}', 200, now() - interval '1 hour', now()),
           ('host-2', 'stream-processor', 'events', '{1}', 9000, now() - interval '1 hour', now() - interval '1 minute')",
    )
    .await;
    let p = s.json("/batches").await["processor"].clone();
    assert_eq!(
        p["state"], "stalled",
        "records waiting and no batch for long: stalled, whatever the heartbeats say"
    );
    assert_eq!(p["trigger_interval_ms"], 200, "from the freshest heartbeat");
    let replicas = p["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 2);
    assert_eq!(replicas[0]["replica_id"], "host-1");
    assert_eq!(replicas[0]["assigned_partitions"], json!([0, 2]));
    assert!(replicas[1]["heartbeat_age_s"].as_f64().expect("age") >= 60.0);

    s.sql("UPDATE stream_offsets SET high_watermark = next_offset")
        .await;
    let p = s.json("/batches").await["processor"].clone();
    assert_eq!(p["lag_records"], 0);
    assert_eq!(
        p["state"], "idle",
        "alive, nothing waiting, no recent batch"
    );

    s.sql("UPDATE stream_batches SET finished_at = now()").await;
    assert_eq!(s.json("/batches").await["processor"]["state"], "running");

    s.sql("UPDATE processor_heartbeats SET heartbeat_at = now() - interval '16 seconds'")
        .await;
    assert_eq!(
        s.json("/batches").await["processor"]["state"],
        "down",
        "no heartbeat within max(3 x 200 ms, 15 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_parameter_is_a_400_naming_it() {
    let s = Server::start().await;
    let long_tenant = format!("/orders?tenant={}", "x".repeat(10_240));
    let cases: Vec<(&str, &str)> = vec![
        ("/orders?limit=0", "limit"),
        ("/orders?limit=abc", "limit"),
        ("/orders?limit=100000", "limit"),
        ("/orders?limit=1.5", "limit"),
        ("/orders?status=nope", "status"),
        (&long_tenant, "tenant"),
        ("/orders?tenant=", "tenant"),
        ("/orders?tenant=a%00b", "tenant"),
        ("/orders?limt=5", "limt"),
        ("/orders?limit=5&limit=6", "limit"),
        ("/batches?limit=501", "limit"),
        ("/batches?limit=0", "limit"),
        ("/stats?status=order_paid", "status"),
    ];
    for (path, name) in cases {
        let (status, headers, body) = s.text(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        let v: Value = serde_json::from_str(&body).expect("json error");
        let error = v["error"].as_str().expect("error text");
        assert!(error.contains(name), "{path}: {error}");
        assert!(error.len() < 300, "the error stays short: {error}");
    }
    let (status, _, body) = s.text("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"error":"not found"}"#);
    let r = s
        .http
        .post(format!("{}/orders", s.base))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Whatever a client sends, nothing answers 500.
    for path in [
        "/orders?%ff=1",
        "/orders?tenant=%ff%fe",
        "/orders?&&&",
        "/orders?=",
        "/%2e%2e/etc/passwd",
        "/orders?limit=99999999999999999999",
    ] {
        let (status, _, body) = s.text(path).await;
        assert!(
            status.is_client_error() || status.is_success(),
            "{path}: {status} {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_reach_the_page_only_as_text() {
    let s = Server::start().await;
    s.sql(SEED).await;
    // The data path: JSON carries the exact characters; the page is static and its script
    // only ever inserts values as text.
    let body = s.text("/orders").await.2;
    let v: Value = serde_json::from_str(&body).expect("json");
    assert!(v["orders"]
        .as_array()
        .expect("array")
        .iter()
        .any(|o| o["tenant"] == "<img src=x onerror=alert(1)>"));
    let (status, headers, page) = s.text("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    assert!(headers["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("script-src 'self'"));
    assert!(!page.contains("onerror"), "the page holds no data itself");
    let (_, headers, script) = s.text("/app.js").await;
    assert!(headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/javascript"));
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!script.contains(sink), "app.js must not use {sink}");
    }
    assert!(script.contains("textContent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_uncached_and_unsniffed_and_counted() {
    let s = Server::start().await;
    for path in [
        "/",
        "/orders",
        "/stats",
        "/batches",
        "/healthz",
        "/readyz",
        "/nope",
        "/orders?limit=0",
    ] {
        let (_, headers, _) = s.text(path).await;
        // Answers kept per batch are revalidated with their ETag; everything else is live.
        let kept = ["/orders", "/stats", "/batches"].contains(&path);
        let expected = if kept { "no-cache" } else { "no-store" };
        assert_eq!(headers["cache-control"], expected, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
    let (_, _, metrics) = s.text("/metrics").await;
    assert!(
        metrics.contains(r#"spine_api_requests_total{route="/orders",status="400"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"spine_api_requests_total{route="unmatched",status="404"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("spine_api_request_duration_seconds_bucket{route=\"/stats\""),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_it_answers_503_and_stays_up() {
    let db = postgres().fresh_database().await;
    let mut nowhere = tokio_postgres::Config::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    nowhere
        .host("127.0.0.1")
        .port(closed)
        .user("postgres")
        .dbname("x");
    let s = Server::listen(db.clone(), AppState::connect(nowhere).expect("pools")).await;
    for path in [
        "/orders",
        "/stats",
        "/batches",
        "/dead_letters",
        "/orders/acme/o-1",
    ] {
        let (status, _, body) = s.text(path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body, r#"{"error":"database unavailable"}"#);
    }
    assert_eq!(s.text("/healthz").await.0, StatusCode::OK);
    assert_eq!(s.text("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    // A database without the schema yet: not ready, and the answer says why.
    let state = AppState::connect(db.config()).expect("pools");
    let s = Server::listen(db, state).await;
    let (status, _, body) = s.text("/orders").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("spine-processor creates it"), "{body}");
    assert_eq!(s.text("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
}
