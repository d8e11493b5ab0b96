//! End to end, with every real piece: spine-producer -> Tansu -> spine-processor -> Postgres
//! -> spine-api. What the API answers must be exactly what is on the topic.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use spine_core::event::{parse_event, Event};
use spine_core::reduce::fold_all;
use spine_testkit::kafka::read_all;
use spine_testkit::{bin_command, free_port, postgres, tansu, unique_name, KillOnDrop};

const PARTITIONS: i32 = 3;

const EVENTS: u64 = 2000;

fn run(name: &str, env: &[(&str, &str)], args: &[&str]) {
    let mut cmd = bin_command(name);
    let out = cmd
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_api_answers_is_exactly_what_was_produced() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let db = postgres().fresh_database().await;
    let url = db.url();
    let count = EVENTS.to_string();
    let partitions = PARTITIONS.to_string();

    // The producer creates the topic and writes lifecycles as fast as the broker takes them,
    // with duplicates, late events and malformed records mixed in (--chaos).
    run(
        "spine-producer",
        &[
            ("KAFKA_BOOTSTRAP", &broker),
            ("TOPIC", &topic),
            ("TOPIC_PARTITIONS", &partitions),
            ("METRICS_ADDR", "127.0.0.1:0"),
        ],
        &[
            "--count",
            &count,
            "--events-per-second",
            "0",
            "--chaos",
            "0.1",
        ],
    );
    // The processor drains it and exits; max 700 rows a batch, so there are several batches.
    run(
        "spine-processor",
        &[
            ("KAFKA_BOOTSTRAP", &broker),
            ("TOPIC", &topic),
            ("DATABASE_URL", &url),
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("MAX_BATCH_ROWS", "700"),
        ],
        &["--available-now"],
    );

    // What is on the topic, read back independently.
    let records = read_all(&broker, &topic, PARTITIONS);
    assert!(records.len() as u64 > EVENTS, "--chaos adds records");
    let mut events: Vec<Event> = Vec::new();
    let mut malformed = 0;
    for r in &records {
        assert!(r.key.is_some(), "keyed by tenant");
        match parse_event(r.value.as_deref().unwrap_or_default()) {
            Ok(e) => {
                assert_eq!(
                    r.key.as_deref(),
                    Some(e.tenant.as_bytes()),
                    "keyed by tenant"
                );
                events.push(e);
            }
            Err(_) => malformed += 1,
        }
    }
    let distinct: std::collections::BTreeSet<_> = events.iter().map(|e| e.event_id).collect();
    assert!(
        malformed > 0 && distinct.len() < events.len(),
        "malformed and duplicate records are there"
    );
    let expected = fold_all(&events);
    assert!(expected.len() < 1000, "fits one /orders page");

    // The API, as its binary runs it: reading as a role of its own (a member of spine_reader,
    // which the processor's migrations created), as `make up` runs it.
    let reader = unique_name("api").to_lowercase();
    db.connect()
        .await
        .batch_execute(&format!("CREATE ROLE {reader} LOGIN IN ROLE spine_reader"))
        .await
        .expect("the API's role");
    let reader_url = format!("postgres://{reader}@127.0.0.1:{}/{}", db.port, db.name);
    let addr = format!("127.0.0.1:{}", free_port());
    let _api = KillOnDrop(
        bin_command("spine-api")
            .env("DATABASE_URL", &url)
            .env("API_DATABASE_URL", &reader_url)
            .env("API_ADDR", &addr)
            .env("KAFKA_BOOTSTRAP", &broker)
            .env("TOPIC", &topic)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spine-api"),
    );
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            for _ in 0..100 {
                if let Ok(r) = http.get(&url).send().await {
                    assert_eq!(r.status(), 200, "{url}");
                    return r.json::<Value>().await.expect("json");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{url} never answered");
        }
    };

    // /orders: every order, with the status and amount of its newest event.
    let orders = get("/orders?limit=1000").await;
    let got: BTreeMap<(String, String), (String, i64)> = orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().expect("string").to_owned();
            (
                (s("tenant"), s("order_id")),
                (s("status"), o["amount_cents"].as_i64().expect("amount")),
            )
        })
        .collect();
    let want: BTreeMap<(String, String), (String, i64)> = expected
        .iter()
        .map(|(k, v)| (k.clone(), (v.status.as_str().to_owned(), v.amount_cents)))
        .collect();
    assert_eq!(got, want);

    // /stats: per tenant, orders, revenue (paid + shipped) and counts by status.
    let stats = get("/stats").await;
    for t in stats["tenants"].as_array().expect("tenants") {
        let tenant = t["tenant"].as_str().expect("tenant");
        let mine: Vec<_> = expected
            .iter()
            .filter(|((tn, _), _)| tn == tenant)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(t["orders"].as_u64(), Some(mine.len() as u64), "{tenant}");
        let revenue: i64 = mine
            .iter()
            .filter(|v| v.status.counts_as_revenue())
            .map(|v| v.amount_cents)
            .sum();
        assert_eq!(t["revenue_cents"].as_i64(), Some(revenue), "{tenant}");
        for status in spine_core::event::EventType::ALL {
            let n = mine.iter().filter(|v| v.status == status).count() as u64;
            assert_eq!(
                t["by_status"][status.as_str()].as_u64(),
                Some(n),
                "{tenant} {status}"
            );
        }
    }
    assert_eq!(stats["tenants"].as_array().expect("tenants").len(), 3);
    assert_eq!(stats["as_of_batch"], orders["as_of_batch"]);

    // /batches: every record in exactly one batch, every partition at the topic's end.
    let batches = get("/batches?limit=500").await;
    let list = batches["batches"].as_array().expect("batches");
    assert!(list.len() >= 3, "MAX_BATCH_ROWS=700 makes several batches");
    let rows: u64 = list
        .iter()
        .map(|b| b["input_rows"].as_u64().expect("rows"))
        .sum();
    assert_eq!(rows, records.len() as u64);
    let dead: u64 = list
        .iter()
        .map(|b| b["dead_lettered"].as_u64().expect("dead"))
        .sum();
    assert_eq!(
        dead, malformed,
        "every malformed record is a dead letter, once"
    );
    let inserted: u64 = list
        .iter()
        .map(|b| b["events_inserted"].as_u64().expect("inserted"))
        .sum();
    assert_eq!(
        inserted as usize,
        distinct.len(),
        "every distinct event stored once"
    );
    // (Late events here sit in the same batch as the newer event they trail, so the reducer
    // drops them before the upsert: /orders above shows they never won.)
    assert_eq!(list[0]["batch_id"], orders["as_of_batch"]);
    let ends = spine_testkit::kafka::high_watermarks(&broker, &topic, PARTITIONS);
    for p in batches["partitions"].as_array().expect("partitions") {
        let partition = p["partition"].as_u64().expect("partition") as usize;
        assert_eq!(p["next_offset"].as_i64(), Some(ends[partition]));
        assert_eq!(p["lag"], 0);
        assert_eq!(p["high_watermark_source"], "broker");
    }
    assert_eq!(batches["gaps"], Value::Array(vec![]), "nothing was skipped");
}
