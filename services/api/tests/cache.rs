//! Answers computed once per batch (docs/contracts.md, "HTTP API"): `/orders`, `/stats` and
//! `/batches` against a real Postgres on port 0, with batches committed as the processor
//! commits them.

mod stream_support;

use std::time::Duration;

use stream_support::Server;

async fn get_if(s: &Server, path: &str, etag: Option<&str>) -> reqwest::Response {
    let mut r = s.http.get(format!("{}{path}", s.base));
    if let Some(t) = etag {
        r = r.header("If-None-Match", t);
    }
    r.send().await.expect("request")
}

fn etag(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().expect("ascii").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_answer_is_a_304_and_a_commit_gives_a_new_etag() {
    let s = Server::start().await;
    s.commit(1, &[("acme", "o-1", "order_placed")]).await;
    s.settle().await;
    for path in ["/orders?limit=100", "/stats", "/orders?tenant=acme"] {
        let first = get_if(&s, path, None).await;
        assert_eq!(first.status(), 200, "{path}");
        assert_eq!(first.headers()["cache-control"], "no-cache", "{path}");
        let tag = etag(&first);
        assert!(tag.starts_with("\"1-"), "{path}: {tag}");
        let again = get_if(&s, path, Some(&tag)).await;
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(etag(&again), tag);
        assert!(again.bytes().await.expect("body").is_empty());
        // Another tag is no match.
        let other = get_if(&s, path, Some("\"1-0000000000000000\"")).await;
        assert_eq!(other.status(), 200, "{path}");
    }
    let tags: Vec<String> = {
        let mut t = Vec::new();
        for path in ["/orders?limit=100", "/stats"] {
            t.push(etag(&get_if(&s, path, None).await));
        }
        t
    };
    s.commit(2, &[("acme", "o-2", "order_paid")]).await;
    s.settle().await;
    for (path, old) in ["/orders?limit=100", "/stats"].iter().zip(&tags) {
        let r = get_if(&s, path, Some(old)).await;
        assert_eq!(r.status(), 200, "{path}: a new batch is a new answer");
        let tag = etag(&r);
        assert!(tag.starts_with("\"2-"), "{path}: {tag}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["as_of_batch"], 2, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_two_commits_the_database_is_asked_once_per_query() {
    let s = Server::start().await;
    s.commit(1, &[("acme", "o-1", "order_placed")]).await;
    s.settle().await;
    let asked = |s: &Server| {
        let s = s.base.clone();
        async move {
            let text = reqwest::get(format!("{s}/metrics"))
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            text.lines()
                .find(|l| l.starts_with("spine_api_db_queries_total{purpose=\"orders\"}"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        }
    };
    let before = asked(&s).await;
    // The same question in two spellings, 20 times.
    for i in 0..20 {
        let path = if i % 2 == 0 {
            "/orders?tenant=acme&limit=100"
        } else {
            "/orders?tenant=acme"
        };
        let body = s.json(path).await;
        assert_eq!(body["orders"][0]["order_id"], "o-1");
    }
    assert_eq!(
        asked(&s).await - before,
        1.0,
        "asked Postgres more than once"
    );
    assert!(
        s.metric("spine_api_cache_total{outcome=\"hit\",route=\"/orders\"}")
            .await
            >= 19.0
    );
    s.commit(2, &[("acme", "o-2", "order_placed")]).await;
    s.settle().await;
    let body = s.json("/orders?tenant=acme").await;
    assert_eq!(
        body["orders"][0]["order_id"], "o-2",
        "a stale answer after a commit"
    );
    assert_eq!(asked(&s).await - before, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_stats_say_how_old_their_batch_is() {
    let s = Server::start().await;
    let r = s.get("/orders").await;
    assert!(
        r.headers().get("spine-batch-age").is_none(),
        "no batch, no age"
    );
    s.commit(1, &[("acme", "o-1", "order_placed")]).await;
    s.settle().await;
    let finished: String = s
        .db
        .connect()
        .await
        .query_one(
            "SELECT to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
               FROM stream_batches WHERE batch_id = 1",
            &[],
        )
        .await
        .expect("finished_at")
        .get(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/orders", "/stats"] {
        let r = s.get(path).await;
        let age: f64 = r.headers()["spine-batch-age"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!(age >= 0.3, "{path}: {age}");
        let text = r.headers()["spine-batch-age"]
            .to_str()
            .expect("a")
            .to_string();
        assert_eq!(text.split('.').nth(1).map(str::len), Some(3), "{text}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["as_of_batch_at"], finished.as_str(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_answer_304_with_a_stale_processor_state() {
    let s = Server::start().await;
    s.commit(1, &[("acme", "o-1", "order_placed")]).await;
    s.settle().await;
    let first = get_if(&s, "/batches", None).await;
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let tag = etag(&first);
    let body: serde_json::Value = first.json().await.expect("json");
    assert_eq!(body["batches"][0]["batch_id"], 1);
    // A second on, no new batch, but the ages moved: a new body, never a 304.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = get_if(&s, "/batches", Some(&tag)).await;
    assert_eq!(later.status(), 200);
    assert_ne!(etag(&later), tag);
    let body: serde_json::Value = later.json().await.expect("json");
    assert_eq!(body["batches"][0]["batch_id"], 1);
    assert!(body["processor"]["last_batch_age_s"].as_f64().expect("age") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_parameter_is_still_a_400_and_never_cached() {
    let s = Server::start().await;
    for (path, says) in [
        ("/orders?limit=0", "limit must be"),
        ("/orders?limt=5", "unknown query parameter"),
        ("/stats?tenant=", "tenant must be"),
        ("/batches?limit=x", "limit must be"),
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert!(r.headers().get("etag").is_none(), "{path}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert!(body["error"].as_str().expect("e").contains(says), "{path}");
    }
}
