//! `GET /stream` against a real Postgres, served on port 0: batches committed as the processor
//! commits them (in one transaction whose `stream_batches` row notifies), read by an HTTP
//! streaming client. The wire format is docs/contracts.md, "HTTP API".

mod stream_support;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;
use stream_support::{Server, Sse};

const SOON: Duration = Duration::from_secs(5);

async fn expect_batch(sse: &mut Sse, id: i64) -> Value {
    let e = sse
        .next_data_within(SOON)
        .await
        .expect("the stream goes on");
    assert_eq!((e.event.as_str(), e.id()), ("batch", id), "{e:?}");
    let data = e.json();
    assert_eq!(data["as_of_batch"], id);
    assert_eq!(data["batch"]["batch_id"], id);
    data
}

fn order_ids(data: &Value) -> Vec<String> {
    data["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o["order_id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_reset_then_status_then_each_batch_once_in_order() {
    let s = Server::start().await;
    s.commit(1, &[("acme", "o-1", "order_placed")]).await;
    s.settle().await;
    let mut sse = s.subscribe("/stream", None).await;
    let reset = sse.next_within(SOON).await.expect("reset");
    assert_eq!((reset.event.as_str(), reset.id()), ("reset", 1));
    assert_eq!(
        reset.json(),
        serde_json::json!({"as_of_batch": 1, "reason": "subscribed"})
    );
    let status = sse.next_within(SOON).await.expect("status");
    assert_eq!(status.event, "status");
    assert_eq!(status.id, None, "a status never moves Last-Event-ID");
    let st = status.json();
    assert!(st["processor"]["state"].is_string(), "{st}");
    assert!(st["partitions"].is_array(), "{st}");

    for id in 2..=4 {
        s.commit(
            id,
            &[
                ("acme", &format!("o-{id}"), "order_paid"),
                ("globex", "g-1", "order_placed"),
            ],
        )
        .await;
        let data = expect_batch(&mut sse, id).await;
        // Exactly the orders this batch wrote, as /orders shows them, newest first.
        assert_eq!(order_ids(&data).len(), 2, "{data}");
        assert!(order_ids(&data).contains(&format!("o-{id}")));
        assert_eq!(data["orders_truncated"], false);
        assert_eq!(data["batch"]["partitions"][0]["end_offset"], id * 10 + 10);
        let orders = s.json("/orders").await;
        let first = &data["orders"][0];
        assert!(
            orders["orders"].as_array().expect("orders").contains(first),
            "an order as /orders shows it: {first}"
        );
        // The stats as /stats shows them.
        assert_eq!(data["stats"], s.json("/stats").await);
    }
    // Several batches in one go (notifications may coalesce): each once, in order.
    for id in 5..=9 {
        s.commit(id, &[("acme", &format!("o-{id}"), "order_shipped")])
            .await;
    }
    for id in 5..=9 {
        expect_batch(&mut sse, id).await;
    }
    assert!(
        s.metric("spine_api_stream_events_total{event=\"batch\"}")
            .await
            >= 8.0
    );
    assert_eq!(s.metric("spine_api_stream_subscribers ").await, 1.0);
    assert_eq!(
        s.metric("spine_api_stream_listener{mode=\"listen\"}").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_gets_what_it_missed_or_a_reset_saying_why() {
    let s = Server::start().await;
    for id in 1..=3 {
        s.commit(id, &[("acme", &format!("o-{id}"), "order_placed")])
            .await;
    }
    s.settle().await;
    // Missed 4 and 5; o-1 was rewritten by 5, so 5 carries it, and 1 no longer does.
    s.commit(4, &[("acme", "o-4", "order_placed")]).await;
    s.commit(
        5,
        &[
            ("acme", "o-5", "order_placed"),
            ("acme", "o-1", "order_paid"),
        ],
    )
    .await;
    s.settle().await;
    let mut sse = s.subscribe("/stream", Some(3)).await;
    let four = expect_batch(&mut sse, 4).await;
    assert_eq!(order_ids(&four), vec!["o-4"]);
    let five = expect_batch(&mut sse, 5).await;
    let mut ids = order_ids(&five);
    ids.sort();
    assert_eq!(ids, vec!["o-1", "o-5"]);
    // Then live, without a gap or a repeat.
    s.commit(6, &[("acme", "o-6", "order_placed")]).await;
    expect_batch(&mut sse, 6).await;
    drop(sse);

    // Up to date: nothing to replay, no reset; the next live batch.
    let mut sse = s.subscribe("/stream", Some(6)).await;
    s.commit(7, &[("acme", "o-7", "order_placed")]).await;
    expect_batch(&mut sse, 7).await;
    drop(sse);

    // The query parameter does the same for curl.
    let mut sse = s.subscribe("/stream?last_event_id=5", None).await;
    expect_batch(&mut sse, 6).await;
    expect_batch(&mut sse, 7).await;
    drop(sse);

    let reset_reason = |mut sse: Sse| async move {
        let e = sse.next_within(SOON).await.expect("an event");
        assert_eq!((e.event.as_str(), e.id()), ("reset", 7), "{e:?}");
        e.json()["reason"].as_str().expect("reason").to_string()
    };
    // From the future: the database was wiped under the client.
    assert_eq!(
        reset_reason(s.subscribe("/stream", Some(99)).await).await,
        "ahead"
    );
    // Batches gone (retention): cannot say what changed.
    s.db.connect()
        .await
        .batch_execute("DELETE FROM stream_batches WHERE batch_id = 2")
        .await
        .expect("delete");
    assert_eq!(
        reset_reason(s.subscribe("/stream", Some(1)).await).await,
        "batches_gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_more_than_1000_orders_is_cut_and_not_replayed() {
    let s = Server::start().await;
    let mut sse = s.subscribe("/stream", None).await;
    assert_eq!(sse.next_within(SOON).await.expect("reset").event, "reset");
    let names: Vec<String> = (0..1001).map(|i| format!("o-{i:04}")).collect();
    let orders: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|n| ("acme", n.as_str(), "order_placed"))
        .collect();
    s.commit(1, &orders).await;
    let data = expect_batch(&mut sse, 1).await;
    assert_eq!(order_ids(&data).len(), 1000);
    assert_eq!(data["orders_truncated"], true);
    s.settle().await;
    let mut again = s.subscribe("/stream", Some(0)).await;
    let e = again.next_within(SOON).await.expect("reset");
    assert_eq!(e.event, "reset");
    assert_eq!(e.json()["reason"], "too_many_changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_stream_carries_only_matching_orders_and_its_tenants_stats() {
    let s = Server::start().await;
    let mut all = s.subscribe("/stream", None).await;
    let mut paid_acme = s
        .subscribe("/stream?tenant=acme&status=order_paid", None)
        .await;
    for sse in [&mut all, &mut paid_acme] {
        assert_eq!(sse.next_within(SOON).await.expect("reset").event, "reset");
    }
    s.commit(
        1,
        &[
            ("acme", "a-1", "order_paid"),
            ("acme", "a-2", "order_placed"),
            ("globex", "g-1", "order_paid"),
        ],
    )
    .await;
    let everything = expect_batch(&mut all, 1).await;
    assert_eq!(order_ids(&everything).len(), 3);
    assert_eq!(
        everything["stats"]["tenants"].as_array().expect("t").len(),
        2
    );
    let filtered = expect_batch(&mut paid_acme, 1).await;
    assert_eq!(order_ids(&filtered), vec!["a-1"]);
    assert_eq!(filtered["stats"], s.json("/stats?tenant=acme").await);
    // A batch with nothing for the filter still comes (the batch and the stats moved on).
    s.commit(2, &[("globex", "g-2", "order_paid")]).await;
    let filtered = expect_batch(&mut paid_acme, 2).await;
    assert_eq!(filtered["orders"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_and_bad_last_event_ids_are_400s_naming_them() {
    let s = Server::start().await;
    for (path, id, says) in [
        ("/stream?tenant=", None, "tenant must be"),
        ("/stream?status=nope", None, "status must be one of"),
        ("/stream?limit=5", None, "unknown query parameter \"limit\""),
        ("/stream?tenant=a&tenant=b", None, "given more than once"),
        (
            "/stream?last_event_id=x",
            None,
            "Last-Event-ID must be a batch id",
        ),
        ("/stream", Some("-3"), "Last-Event-ID must be a batch id"),
    ] {
        let mut r = s.http.get(format!("{}{path}", s.base));
        if let Some(id) = id {
            r = r.header("Last-Event-ID", id);
        }
        let r = r.send().await.expect("request");
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.expect("json");
        assert!(
            body["error"].as_str().expect("error").contains(says),
            "{path}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_subscriber_cap_is_a_503_with_retry_after() {
    let s = Server::serve(stream_support::migrated_db().await, |a| {
        a.with_stream_limits(2, 16)
    })
    .await;
    let _a = s.subscribe("/stream", None).await;
    let b = s.subscribe("/stream", None).await;
    let r = s.get("/stream").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    drop(b);
    // Its place comes free once the server sees it gone.
    let mut ok = false;
    for _ in 0..100 {
        if s.get("/stream").await.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "the place of a client that left is never given back");
}

/// A client that stops reading is closed, not buffered for: with 4 frames of room, one that
/// sleeps while 200 large batches commit finds its stream ended when it reads again, having
/// received far less than was published, and the drop is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_falls_behind_is_dropped_not_buffered() {
    let s = Server::serve(stream_support::migrated_db().await, |a| {
        a.with_stream_limits(10, 4)
    })
    .await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let mut stream = stream.into_std().expect("std");
    stream.set_nonblocking(false).expect("blocking");
    write!(
        stream,
        "GET /stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("request");
    for _ in 0..100 {
        if s.state.push.subscribers() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 200 batches of 200 orders each (~8 MB of events) while it does not read.
    let names: Vec<String> = (0..200)
        .map(|i| format!("order-with-a-longish-id-{i:04}"))
        .collect();
    let orders: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|n| ("acme", n.as_str(), "order_placed"))
        .collect();
    for id in 1..=200 {
        s.commit(id, &orders).await;
    }
    s.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = tokio::task::spawn_blocking(move || {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        // Keep-alive comments would keep a stream that is never closed reading forever.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if std::time::Instant::now() > deadline {
                return (all, false);
            }
            match stream.read(&mut buf) {
                Ok(0) => return (all, true),
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    // The chunked body's end: the server closed the stream.
                    if all.ends_with(b"0\r\n\r\n") {
                        return (all, true);
                    }
                }
                Err(_) => return (all, false),
            }
        }
    })
    .await
    .expect("reader");
    let (bytes, ended) = received;
    let text = String::from_utf8_lossy(&bytes);
    let batches = text.matches("event: batch").count();
    assert!(
        ended,
        "the stream of a client that fell behind was kept open"
    );
    assert!(
        batches < 200,
        "all {batches} events were buffered for a client that did not read"
    );
    assert_eq!(s.metric("spine_api_stream_dropped_total").await, 1.0);
    assert_eq!(s.state.push.subscribers(), 0);
}

/// An API started before the processor created the schema: `/stream` says it is starting, and
/// serves as soon as the tables are there, without waiting for a first commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_starts_once_the_schema_is_there() {
    let db = spine_testkit::postgres().fresh_database().await;
    let state = spine_api::AppState::connect(db.config()).expect("pools");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = tokio_util::sync::CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    tokio::spawn(spine_api::serve(listener, state, stop));
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/stream"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "the stream is starting: retry shortly");

    spine_core::schema::migrate(&mut db.connect().await)
        .await
        .expect("migrate");
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = http
            .get(format!("{base}/stream"))
            .send()
            .await
            .expect("request");
        status = r.status().as_u16();
        if status == 200 {
            let mut sse = Sse::from(r);
            let e = sse.next_within(SOON).await.expect("reset");
            assert_eq!((e.event.as_str(), e.id()), ("reset", 0));
            return;
        }
    }
    panic!("/stream still answers {status} 5 s after the schema appeared");
}
