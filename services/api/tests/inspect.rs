//! The two inspection routes, `GET /orders/{tenant}/{order_id}` and `GET /dead_letters`,
//! against a real Postgres, served on port 0 as the read-only role and called over HTTP.

use reqwest::StatusCode;
use serde_json::{json, Value};
use spine_api::AppState;
use spine_testkit::{postgres, unique_name, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

struct Server {
    addr: std::net::SocketAddr,
    db: TestDb,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

impl Server {
    /// A migrated, seeded database and the API reading it as a login role in spine_reader.
    async fn start() -> Server {
        let db = postgres().fresh_database().await;
        let mut admin = db.connect().await;
        spine_core::schema::migrate(&mut admin)
            .await
            .expect("migrate");
        let role = unique_name("api").to_lowercase();
        admin
            .batch_execute(&format!("CREATE ROLE {role} LOGIN IN ROLE spine_reader"))
            .await
            .expect("create the API's role");
        admin.batch_execute(SEED).await.expect("seed");
        let mut config = db.config();
        config.user(&role);
        let state = AppState::connect(config).expect("pools");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        tokio::spawn(spine_api::serve(listener, state, stop.clone()));
        Server {
            addr,
            db,
            http: reqwest::Client::new(),
            _stop: stop.drop_guard(),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("http://{}{}", self.addr, path))
            .send()
            .await
            .expect("request");
        let status = r.status();
        assert_eq!(r.headers()["content-type"], "application/json", "{path}");
        (status, r.text().await.expect("body"))
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// The path sent byte for byte, as no URL library would (`..` stays `..`): status line and
    /// body.
    async fn raw_get(&self, path: &str) -> (String, String) {
        let mut tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send");
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.expect("read");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.lines().next().unwrap_or_default().to_owned();
        let body = answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        (status, body)
    }
}

const E1: &str = "00000000-0000-0000-0000-0000000000e1";
const E2: &str = "00000000-0000-0000-0000-0000000000e2";
const E3: &str = "00000000-0000-0000-0000-0000000000e3";

/// One order with three events, the newest of which (by event time) set its state though it
/// arrived first; a hostile order; and dead letters of every kind.
const SEED: &str = "
INSERT INTO events (event_id, tenant, event_type, order_id, amount_cents, currency, event_time, topic, kafka_partition, kafka_offset, ingested_at) VALUES
 ('00000000-0000-0000-0000-0000000000e3', 'acme', 'order_shipped', 'ord-1', 1299, 'USD', '2026-11-25T12:00:03Z', 'events', 0, 40, '2026-11-25T12:00:04Z'),
 ('00000000-0000-0000-0000-0000000000e1', 'acme', 'order_placed',  'ord-1', 1299, 'USD', '2026-11-25T12:00:01Z', 'events', 0, 41, '2026-11-25T12:00:05Z'),
 ('00000000-0000-0000-0000-0000000000e2', 'acme', 'order_paid',    'ord-1', 1299, 'USD', '2026-11-25T12:00:02.5Z', 'events', 2, 7, '2026-11-25T12:00:05Z'),
 ('00000000-0000-0000-0000-0000000000f1', 'globex', 'order_placed', 'ord-1', 5, 'EUR', '2026-11-25T12:00:01Z', 'events', 1, 1, '2026-11-25T12:00:05Z'),
 ('00000000-0000-0000-0000-0000000000f2', '<script>alert(1)</script>', 'order_paid', 'a/b', 7, 'USD', '2026-11-25T12:00:01Z', 'events', 1, 2, '2026-11-25T12:00:05Z');
INSERT INTO current_orders VALUES
 ('acme', 'ord-1', 'order_shipped', 1299, 'USD', '2026-11-25T12:00:03Z', '00000000-0000-0000-0000-0000000000e3'),
 ('globex', 'ord-1', 'order_placed', 5, 'EUR', '2026-11-25T12:00:01Z', '00000000-0000-0000-0000-0000000000f1'),
 ('<script>alert(1)</script>', 'a/b', 'order_paid', 7, 'USD', '2026-11-25T12:00:01Z', '00000000-0000-0000-0000-0000000000f2'),
 ('acme', '..', 'order_paid', 8, 'USD', '2026-11-25T12:00:01Z', '00000000-0000-0000-0000-0000000000f3');
INSERT INTO stream_batches (batch_id, consumer_group, topic, started_at, finished_at, input_rows, events_inserted,
  duplicates, orders_upserted, stale_skipped, dead_lettered, fetch_ms, write_ms, total_ms)
 VALUES (17, 'stream-processor', 'events', '2026-11-25T12:00:06Z', '2026-11-25T12:00:06.5Z', 12, 9, 1, 5, 1, 2, 1.5, 3.25, 4.75);
INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, key, payload, error, received_at) VALUES
 ('events', 0, 10, 'acme'::bytea, '{\"tenant\": 1}'::bytea, 'field tenant: expected a string', '2026-11-25T12:00:07Z'),
 ('events', 1, 77, '\\xff00'::bytea, '\\x00ff10'::bytea, 'not UTF-8', '2026-11-25T12:00:08Z'),
 ('events', 1, 78, NULL, convert_to(repeat('é', 3000), 'UTF8'), 'too long', '2026-11-25T12:00:09Z'),
 ('events', 2, 79, NULL, NULL, 'empty record', '2026-11-25T12:00:10Z'),
 ('events', 2, 80, NULL, decode(repeat('ff', 10000), 'hex'), 'binary', '2026-11-25T12:00:11Z');
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_history_is_every_event_oldest_first_with_the_current_one_marked() {
    let s = Server::start().await;
    let h = s.json("/orders/acme/ord-1").await;
    let event = |id: &str, t: &str, time: &str, p: i32, o: i64, ingested: &str, current: bool| {
        json!({"event_id": id, "event_type": t, "amount_cents": 1299, "currency": "USD",
               "event_time": time, "topic": "events", "partition": p, "offset": o,
               "ingested_at": ingested, "current": current})
    };
    assert_eq!(
        h,
        json!({"tenant": "acme", "order_id": "ord-1",
               "current": {"status": "order_shipped", "amount_cents": 1299, "currency": "USD",
                           "updated_at": "2026-11-25T12:00:03.000000Z", "last_event_id": E3},
               "events": [
                   event(E1, "order_placed", "2026-11-25T12:00:01.000000Z", 0, 41, "2026-11-25T12:00:05.000000Z", false),
                   event(E2, "order_paid", "2026-11-25T12:00:02.500000Z", 2, 7, "2026-11-25T12:00:05.000000Z", false),
                   event(E3, "order_shipped", "2026-11-25T12:00:03.000000Z", 0, 40, "2026-11-25T12:00:04.000000Z", true),
               ],
               "as_of_batch": 17})
    );
    // Another tenant's order of the same id is its own.
    let g = s.json("/orders/globex/ord-1").await;
    assert_eq!(g["events"].as_array().expect("events").len(), 1);
    assert_eq!(g["current"]["currency"], "EUR");

    // A new event of it lands: the history follows.
    s.db.connect()
        .await
        .batch_execute(
            "INSERT INTO events VALUES ('00000000-0000-0000-0000-0000000000e4', 'acme', 'order_cancelled', 'ord-1', 1299, 'USD', '2026-11-25T12:00:09Z', 'events', 0, 50, now());
             UPDATE current_orders SET status = 'order_cancelled', updated_at = '2026-11-25T12:00:09Z', last_event_id = '00000000-0000-0000-0000-0000000000e4' WHERE tenant = 'acme' AND order_id = 'ord-1';",
        )
        .await
        .expect("a new event");
    let h = s.json("/orders/acme/ord-1").await;
    let marks: Vec<(&str, bool)> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().expect("type"),
                e["current"] == true,
            )
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("order_placed", false),
            ("order_paid", false),
            ("order_shipped", false),
            ("order_cancelled", true)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_order_ids_are_decoded_checked_and_never_a_500() {
    let s = Server::start().await;
    // Percent-encoded markup and a percent-encoded slash are one segment each, decoded exactly.
    let h = s
        .json("/orders/%3Cscript%3Ealert(1)%3C%2Fscript%3E/a%2Fb")
        .await;
    assert_eq!(h["tenant"], "<script>alert(1)</script>");
    assert_eq!(h["order_id"], "a/b");
    assert_eq!(h["events"][0]["amount_cents"], 7);

    // Unknown: a 404 in JSON saying which.
    let (status, body) = s.get("/orders/acme/ord-404").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body,
        r#"{"error":"no order \"ord-404\" of tenant \"acme\""}"#
    );
    let (status, body) = s.get("/orders/nobody/ord-1").await;
    assert_eq!(
        (status, body.contains(r#"tenant \"nobody\""#)),
        (StatusCode::NOT_FOUND, true)
    );

    // Bad ids: a 400 naming the part.
    let long = "x".repeat(65);
    let cases = [
        (format!("/orders/acme/{long}"), "order_id"),
        (format!("/orders/{long}/ord-1"), "tenant"),
        ("/orders/acme/a%01b".to_string(), "order_id"),
        ("/orders/a%1Bb/ord-1".to_string(), "tenant"),
        ("/orders/acme/a%00".to_string(), "order_id"),
        ("/orders/acme/%ff%fe".to_string(), "order_id"),
        ("/orders/%ff/ord-1".to_string(), "tenant"),
        ("/orders/acme/ord-1?x=1".to_string(), "\"x\""),
    ];
    for (path, name) in &cases {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let error = v["error"].as_str().expect("error");
        assert!(error.contains(name), "{path}: {error}");
        assert!(
            error.len() < 200 && !error.chars().any(char::is_control),
            "{error}"
        );
    }
    // 64 characters is still an id (just not a known one).
    assert_eq!(
        s.get(&format!("/orders/acme/{}", "x".repeat(64))).await.0,
        StatusCode::NOT_FOUND
    );

    // `..` sent as is: a segment like any other, never a path outside the route (the order
    // has no events left in `events` and still shows its state).
    let (status, body) = s.raw_get("/orders/acme/..").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains(r#""order_id":"..""#), "{body}");
    assert!(body.contains(r#""events":[]"#), "{body}");
    let (status, body) = s.raw_get("/orders/../orders/acme/ord-1").await;
    assert!(!status.contains(" 500 "), "{status} {body}");
    // Missing or extra segments: the fallback's JSON 404.
    for path in [
        "/orders/acme",
        "/orders/acme/",
        "/orders/acme/ord-1/x",
        "/orders//ord-1",
    ] {
        let (status, body) = s.get(path).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(body.starts_with("{\"error\":"), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_newest_first_with_bytes_shown_safely() {
    let s = Server::start().await;
    let d = s.json("/dead_letters").await;
    assert_eq!(d["as_of_batch"], 17);
    let all = d["dead_letters"].as_array().expect("array");
    let offsets: Vec<i64> = all
        .iter()
        .map(|x| x["offset"].as_i64().expect("offset"))
        .collect();
    assert_eq!(offsets, [80, 79, 78, 77, 10], "newest first");
    let id = all[4]["id"].as_i64().expect("id");
    assert_eq!(
        all[4],
        json!({"id": id, "topic": "events", "partition": 0, "offset": 10,
               "received_at": "2026-11-25T12:00:07.000000Z", "reason": "field tenant: expected a string",
               "key": "acme", "key_encoding": "utf8",
               "payload": "{\"tenant\": 1}", "payload_encoding": "utf8",
               "payload_bytes": 13, "truncated": false})
    );
    // Not UTF-8: base64, key and payload alike.
    assert_eq!(
        (
            &all[3]["key"],
            &all[3]["key_encoding"],
            &all[3]["payload"],
            &all[3]["payload_encoding"]
        ),
        (
            &json!("/wA="),
            &json!("base64"),
            &json!("AP8Q"),
            &json!("base64")
        )
    );
    // Long text: cut at 4 KiB on a character boundary, flagged.
    let long = &all[2];
    assert_eq!(
        (&long["key"], &long["key_encoding"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(long["payload_bytes"], 6000);
    assert_eq!(long["truncated"], true);
    assert_eq!(long["payload"], "é".repeat(2048));
    // No payload at all.
    assert_eq!(
        (
            &all[1]["payload"],
            &all[1]["payload_bytes"],
            &all[1]["truncated"]
        ),
        (&json!(""), &json!(0), &json!(false))
    );
    // Long binary: 4 KiB of base64.
    assert_eq!(all[0]["payload_encoding"], "base64");
    assert_eq!(all[0]["payload"].as_str().expect("text").len(), 4096);
    assert_eq!(
        (&all[0]["payload_bytes"], &all[0]["truncated"]),
        (&json!(10000), &json!(true))
    );

    // Filters.
    let p1 = s.json("/dead_letters?partition=1").await;
    let offsets: Vec<i64> = p1["dead_letters"]
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x["offset"].as_i64().expect("o"))
        .collect();
    assert_eq!(offsets, [78, 77]);
    assert_eq!(
        s.json("/dead_letters?limit=2").await["dead_letters"]
            .as_array()
            .expect("a")
            .len(),
        2
    );
    assert_eq!(
        s.json("/dead_letters?partition=9").await,
        json!({"dead_letters": [], "as_of_batch": 17})
    );
    assert_eq!(
        s.json("/dead_letters?limit=1&partition=2").await["dead_letters"][0]["offset"],
        80
    );

    // Strict parameters: a 400 naming each.
    for (path, name) in [
        ("/dead_letters?limit=0", "limit"),
        ("/dead_letters?limit=501", "limit"),
        ("/dead_letters?limit=x", "limit"),
        ("/dead_letters?partition=-1", "partition"),
        ("/dead_letters?partition=1.5", "partition"),
        ("/dead_letters?partition=", "partition"),
        ("/dead_letters?partition=99999999999", "partition"),
        ("/dead_letters?partition=1&partition=2", "partition"),
        ("/dead_letters?tenant=acme", "tenant"),
    ] {
        let (status, body) = s.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        assert!(
            v["error"].as_str().expect("error").contains(name),
            "{path}: {body}"
        );
    }
}

/// Every node of an `EXPLAIN (FORMAT JSON)` plan.
fn nodes<'a>(plan: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(plan);
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_routes_read_an_index_range_never_a_table_scan() {
    let s = Server::start().await;
    let admin = s.db.connect().await;
    // 100,000 events over 20,000 orders, 50,000 dead letters over 3 partitions.
    admin
        .batch_execute(
            "INSERT INTO events
             SELECT gen_random_uuid(), 'tenant-' || (i % 7), 'order_placed', 'ord-' || (i % 20000), i,
                    'USD', timestamptz '2026-01-01' + i * interval '1 second', 'events', i % 3, i, now()
               FROM generate_series(1, 100000) i;
             INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, error)
             -- Offsets past the fixtures': a record is one dead letter (topic, partition, offset).
             SELECT 'events', i % 3, 1000000 + i, 'x'::bytea, 'bad' FROM generate_series(1, 50000) i;
             ANALYZE;",
        )
        .await
        .expect("seed");
    let cases = [
        (
            spine_api::routes::order::HISTORY.to_string(),
            "'acme', 'ord-1', 1000",
            "events",
        ),
        (
            spine_api::routes::dead_letters::sql(true),
            "50, 1",
            "dead_letters",
        ),
        (
            spine_api::routes::dead_letters::sql(false),
            "50",
            "dead_letters",
        ),
    ];
    for (sql, args, table) in cases {
        let name = unique_name("q");
        admin
            .batch_execute(&format!("PREPARE {name} AS {sql}"))
            .await
            .expect("prepare");
        for mode in ["force_custom_plan", "force_generic_plan"] {
            admin
                .batch_execute(&format!("SET plan_cache_mode = {mode}"))
                .await
                .expect("mode");
            let row = admin
                .query_one(
                    &format!("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({args})"),
                    &[],
                )
                .await
                .expect("explain");
            let plan: Value = row.get(0);
            let mut all = Vec::new();
            nodes(&plan[0]["Plan"], &mut all);
            let on_table: Vec<&&Value> =
                all.iter().filter(|n| n["Relation Name"] == table).collect();
            let what = format!("{table} ({mode}): {plan}");
            assert!(!on_table.is_empty(), "{what}");
            for n in on_table {
                let kind = n["Node Type"].as_str().unwrap_or("?");
                assert!(
                    kind.starts_with("Index") || kind.starts_with("Bitmap"),
                    "{kind}: {what}"
                );
                let read = n["Actual Rows"].as_f64().unwrap_or(0.0)
                    + n["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
                assert!(read <= 1000.0, "read {read} rows: {what}");
            }
        }
    }
}
