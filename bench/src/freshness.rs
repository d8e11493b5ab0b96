//! Step 5: how fresh `/orders` is. On fresh servers, `spine-producer` writes 2,000 events/s,
//! `spine-processor` runs with `TRIGGER_INTERVAL_MS=0` and `spine-api` serves; every 200 ms the
//! bench produces a marker event of its own (a new order of tenant `bench-marker`) and times it
//! from the produce call to the first `/orders` answer that lists it. Then, for the batches that
//! carried the markers, where the time went (their `stream_batches` rows).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use spine_testkit::{unique_name, OwnedTansu};

use crate::harness::{bins, command, p50_95_99, quantile, spine_env, start_api, Service};
use crate::{pgstat, procstat, Bench};

/// The tenant of the markers: no producer's tenant, so `/orders?tenant=` lists only markers.
const MARKER_TENANT: &str = "bench-marker";
/// Time between two markers.
const MARKER_EVERY: Duration = Duration::from_millis(200);
/// Time between two polls of `/orders`.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// The background load.
const EVENTS_PER_SECOND: u32 = 2000;

/// One marker's times.
struct Marker {
    order_id: String,
    sent: Instant,
    acked: Instant,
}

/// A marker event as the producer writes one (docs/contracts.md, "The event").
fn marker_event(order_id: &str) -> String {
    serde_json::json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "tenant": MARKER_TENANT,
        "event_type": "order_placed",
        "order_id": order_id,
        "amount_cents": 1,
        "currency": "USD",
        "event_time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    })
    .to_string()
}

/// The order ids an `/orders` answer lists.
fn listed_orders(body: &serde_json::Value) -> impl Iterator<Item = &str> {
    body.get("orders")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("order_id")?.as_str())
}

/// What the poller saw: when each order id first appeared, and how long each poll took.
#[derive(Default)]
struct Seen {
    first: HashMap<String, Instant>,
    poll_ms: Vec<f64>,
    errors: usize,
}

/// Polls `url` every [`POLL_EVERY`] (one request at a time, on one kept-alive connection)
/// until `stop` is set.
async fn poll(url: String, seen: Arc<Mutex<Seen>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        tick.tick().await;
        let asked = Instant::now();
        let answer = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
            _ => None,
        };
        let now = Instant::now();
        let mut seen = seen.lock().expect("poller state");
        seen.poll_ms
            .push(now.duration_since(asked).as_secs_f64() * 1000.0);
        match answer {
            Some(body) => {
                for id in listed_orders(&body) {
                    seen.first.entry(id.to_owned()).or_insert(now);
                }
            }
            None => seen.errors += 1,
        }
    }
}

/// Every numeric per-batch duration (columns ending in `_ms`, plus `commit_lag_ms`
/// computed as `/batches` computes `commit_lag_s`) of the batches in `rows`, with what each
/// means, in the order a batch spends them; columns this list does not know follow by name.
/// Columns added later appear without a change to this code; `NULL`s are left out (V10's
/// `commit_ms` is filled in by the writer's next batch).
fn durations(rows: &[serde_json::Value]) -> Vec<(String, Vec<f64>)> {
    const KNOWN: [(&str, &str); 6] = [
        ("queued_ms", "broker timestamp -> write start"),
        ("fetch_ms", "polling and parsing"),
        ("write_ms", "the write, before COMMIT"),
        ("commit_ms", "the COMMIT"),
        ("total_ms", "fetch + write"),
        ("commit_lag_ms", "broker timestamp -> committed"),
    ];
    let mut by_name: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in rows {
        let Some(obj) = row.as_object() else { continue };
        for (k, v) in obj {
            if let (true, Some(x)) = (k.ends_with("_ms"), v.as_f64()) {
                by_name.entry(k.clone()).or_default().push(x);
            }
        }
    }
    let mut out = Vec::new();
    for (name, meaning) in KNOWN {
        if let Some(values) = by_name.remove(name) {
            out.push((format!("{name} ({meaning})"), values));
        }
    }
    out.extend(by_name);
    out
}

/// How many batches are committed, and how many records they read.
async fn batch_totals(client: &tokio_postgres::Client) -> (i64, i64) {
    let r = client
        .query_one(
            "SELECT count(*), coalesce(sum(input_rows), 0)::bigint FROM stream_batches",
            &[],
        )
        .await
        .expect("stream_batches");
    (r.get(0), r.get(1))
}

pub async fn run(bench: &Bench, markers: usize) {
    let dir = bins();
    let broker_server = OwnedTansu::start();
    let broker = broker_server.bootstrap();
    let topic = unique_name("fresh");
    let db = bench.pg.fresh_database().await;
    bench.migrate(&db).await;
    let client = db.connect().await;
    let env = |extra: &[(&str, String)]| spine_env(&broker, &topic, extra);
    println!(
        "\n5. freshness: spine-producer at {EVENTS_PER_SECOND} events/s, spine-processor with TRIGGER_INTERVAL_MS=0, a marker every {} ms ({markers} markers)",
        MARKER_EVERY.as_millis()
    );

    let producer = Service::spawn(
        command(
            &dir.join("spine-producer"),
            &env(&[("EVENTS_PER_SECOND", EVENTS_PER_SECOND.to_string())]),
        ),
        "spine-producer",
    );
    let processor = Service::spawn(
        command(
            &dir.join("spine-processor"),
            &env(&[
                ("DATABASE_URL", db.url()),
                ("TRIGGER_INTERVAL_MS", "0".into()),
            ]),
        ),
        "spine-processor",
    );
    let (api, base) = start_api(&dir, &env(&[("DATABASE_URL", db.url())]));
    // Running: the first batches are committed.
    // Running: the first batches are committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while batch_totals(&client).await.0 < 3 {
        assert!(
            Instant::now() < deadline,
            "the processor committed no batch within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let marker_producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .expect("the markers' producer");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = tokio::spawn(poll(
        format!("{base}/orders?tenant={MARKER_TENANT}&limit=20"),
        seen.clone(),
        stop.clone(),
    ));

    let postmaster = procstat::postmaster_pid(&pgstat::data_dir(bench.pg));
    pgstat::reset(&client).await;
    let (_, rows_before) = batch_totals(&client).await;
    let cpu_before = procstat::cpu_seconds(processor.pid(), false);
    let pg_before = procstat::postgres_cpu(postmaster);
    let run_id = std::process::id();
    let mut sent = Vec::with_capacity(markers);
    let mut tick = tokio::time::interval(MARKER_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for i in 0..markers {
        tick.tick().await;
        let order_id = format!("mk-{run_id}-{i}");
        let payload = marker_event(&order_id);
        let started = Instant::now();
        marker_producer
            .send(
                FutureRecord::to(&topic)
                    .key(MARKER_TENANT)
                    .payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing marker {i}: {e}"));
        sent.push(Marker {
            order_id,
            sent: started,
            acked: Instant::now(),
        });
    }
    // The last markers: give them up to 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && sent.iter().any(|m| {
            !seen
                .lock()
                .expect("poller state")
                .first
                .contains_key(&m.order_id)
        })
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = poller.await;
    let cpu = procstat::cpu_seconds(processor.pid(), false) - cpu_before;
    let pg_cpu = procstat::postgres_cpu(postmaster) - pg_before;
    let statements = pgstat::snapshot(&client).await;
    let (_, rows_after) = batch_totals(&client).await;
    let rows = (rows_after - rows_before).max(1);

    let seen = std::mem::take(&mut *seen.lock().expect("poller state"));
    let mut visible_ms = Vec::new();
    let mut after_ack_ms = Vec::new();
    let mut ack_ms = Vec::new();
    for m in &sent {
        ack_ms.push(m.acked.duration_since(m.sent).as_secs_f64() * 1000.0);
        if let Some(at) = seen.first.get(&m.order_id) {
            visible_ms.push(at.duration_since(m.sent).as_secs_f64() * 1000.0);
            after_ack_ms.push(at.saturating_duration_since(m.acked).as_secs_f64() * 1000.0);
        }
    }
    println!(
        "   produce -> visible in /orders: {}   ({} of {} markers seen)",
        p50_95_99(&visible_ms, "ms"),
        visible_ms.len(),
        sent.len()
    );
    println!(
        "   broker ack -> visible:          {}",
        p50_95_99(&after_ack_ms, "ms")
    );
    println!(
        "   produce -> broker ack:          {}",
        p50_95_99(&ack_ms, "ms")
    );
    println!(
        "   (polled: GET /orders?tenant={MARKER_TENANT}&limit=20 every {} ms, one request at a time on one connection; a poll took p50 {:.1} ms, p99 {:.1} ms, so a time is late by at most ~{:.0} ms; {} polls failed)",
        POLL_EVERY.as_millis(),
        quantile(&seen.poll_ms, 0.5).unwrap_or(f64::NAN),
        quantile(&seen.poll_ms, 0.99).unwrap_or(f64::NAN),
        POLL_EVERY.as_secs_f64() * 1000.0 + quantile(&seen.poll_ms, 0.5).unwrap_or(0.0),
        seen.errors
    );

    // The batches that carried the markers: each marker's order row names the batch that
    // wrote it (`current_orders.last_batch_id`, migration V9).
    let batch_rows: Vec<serde_json::Value> = client
        .query(
            "SELECT to_jsonb(b) || jsonb_build_object('commit_lag_ms',
                    extract(epoch FROM b.finished_at - b.max_broker_timestamp) * 1000)
               FROM stream_batches b
              WHERE b.batch_id IN (SELECT last_batch_id FROM current_orders WHERE tenant = $1)",
            &[&MARKER_TENANT],
        )
        .await
        .expect("the markers' batches")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let input_rows: Vec<f64> = batch_rows
        .iter()
        .filter_map(|b| b.get("input_rows")?.as_f64())
        .collect();
    println!(
        "   the {} batches that carried them (stream_batches), rows per batch p50 {:.0}:",
        batch_rows.len(),
        quantile(&input_rows, 0.5).unwrap_or(f64::NAN)
    );
    for (name, values) in durations(&batch_rows) {
        println!("     {name:<46} {}", p50_95_99(&values, "ms"));
    }
    println!(
        "   meanwhile: {rows} records, CPU-seconds per million events: processor {:.2}, Postgres server {:.2} (with the poller's queries)",
        cpu * 1_000_000.0 / rows as f64,
        pg_cpu * 1_000_000.0 / rows as f64
    );
    statements.print(rows, "   ");

    producer.stop();
    processor.stop();
    api.stop();
    drop(broker_server);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_valid_event_of_the_marker_tenant() {
        let e: serde_json::Value = serde_json::from_str(&marker_event("mk-1-0")).expect("JSON");
        assert_eq!(e["tenant"], MARKER_TENANT);
        assert_eq!(e["order_id"], "mk-1-0");
        assert!(uuid::Uuid::parse_str(e["event_id"].as_str().expect("id")).is_ok());
        let t = e["event_time"].as_str().expect("time");
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
        assert_eq!(t.len(), "2026-11-25T15:40:43.416212Z".len());
    }

    #[test]
    fn listed_orders_and_batch_durations_are_read_from_json() {
        let body = serde_json::json!({"orders": [{"order_id": "a"}, {"order_id": "b"}, {}], "as_of_batch": 3});
        assert_eq!(listed_orders(&body).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(listed_orders(&serde_json::json!({})).count(), 0);
        let rows = [
            serde_json::json!({"batch_id": 1, "fetch_ms": 1.5, "write_ms": 3.0, "commit_lag_ms": 40.0, "total_ms": null}),
            serde_json::json!({"batch_id": 2, "fetch_ms": 2.5, "write_ms": 5.0, "commit_lag_ms": 60.0, "wait_ms": 7}),
        ];
        let d = durations(&rows);
        let names: Vec<&str> = d.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "fetch_ms (polling and parsing)",
                "write_ms (the write, before COMMIT)",
                "commit_lag_ms (broker timestamp -> committed)",
                "wait_ms"
            ]
        );
        assert_eq!(d[0].1, [1.5, 2.5]);
        assert_eq!(d[2].1, [40.0, 60.0]);
        assert_eq!(d[3].1, [7.0]);
    }
}
