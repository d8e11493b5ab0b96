//! `GET /stream` under load: 1, 10, 100 and 1,000 concurrent subscribers on one release
//! `spine-api` while the producer ingests 2,000 events/s and the processor commits with
//! `TRIGGER_INTERVAL_MS=0`. For each count: the API's RSS and CPU, the API's Postgres
//! statements per second (its own `spine_api_db_queries_total`), the p50/p99 from a marker
//! event produced with a known send time to its arrival at a subscriber (the whole pipeline),
//! and from each batch's commit (`finished_at`) to its event's arrival (the API's part).
//!
//! Subscribers are plain HTTP/1.1 connections reading `text/event-stream` (every tenth
//! unfiltered, the others `?tenant=<marker tenant>`, as a page showing one tenant would).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spine_testkit::{postgres, tansu, unique_name};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::harness::{command, quantile, spine_env, Service};
use crate::procstat::{cpu_seconds, rss_mib};

const MARKER_TENANT: &str = "bench-marker";
const COUNTS: [usize; 4] = [1, 10, 100, 1000];
const WINDOW: Duration = Duration::from_secs(10);

/// Marker number → when it was produced; and the latencies seen while measuring.
#[derive(Default)]
struct Markers {
    sent: Mutex<HashMap<u64, Instant>>,
    latencies_ms: Mutex<Vec<f64>>,
    /// Commit (`finished_at`, wall clock) to arrival, per batch event and subscriber.
    push_ms: Mutex<Vec<f64>>,
    measuring: AtomicBool,
}

/// A GET over a fresh connection; the body.
async fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// The sum of `spine_api_db_queries_total` over every purpose.
async fn db_queries(addr: &str) -> f64 {
    http_get(addr, "/metrics")
        .await
        .lines()
        .filter(|l| l.starts_with("spine_api_db_queries_total{"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// One subscriber: reads events until the process ends; records each marker's latency.
async fn subscriber(addr: String, path: String, markers: Arc<Markers>) {
    loop {
        let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            continue;
        }
        let mut lines = BufReader::new(s).lines();
        // Not 200 (a 503 while the API starts): try again.
        match lines.next_line().await {
            Ok(Some(status)) if status.starts_with("HTTP/1.1 200") => {}
            _ => {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        }
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.starts_with("data: {\"as_of_batch\"") {
                continue;
            }
            let arrived = Instant::now();
            if markers.measuring.load(Ordering::Relaxed) {
                if let Some(finished) = line
                    .find("\"finished_at\":\"")
                    .and_then(|at| epoch_seconds(&line[at + 15..]))
                {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    markers
                        .push_ms
                        .lock()
                        .expect("lock")
                        .push((now - finished) * 1e3);
                }
            }
            if !markers.measuring.load(Ordering::Relaxed) {
                continue;
            }
            for n in marker_numbers(&line) {
                let sent = markers.sent.lock().expect("lock").get(&n).copied();
                if let Some(sent) = sent {
                    let ms = arrived.duration_since(sent).as_secs_f64() * 1e3;
                    markers.latencies_ms.lock().expect("lock").push(ms);
                }
            }
        }
        // Dropped (fell behind) or the server went away: reconnect as a browser would.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A marker order every 100 ms, each with its send time noted.
fn markers_thread(bootstrap: String, topic: String, markers: Arc<Markers>, stop: Arc<AtomicBool>) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("marker producer");
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (nanos >> 32) as u32,
            (nanos >> 16) as u16,
            n & 0xfff,
            (n >> 12) & 0xfff,
            nanos as u64 & 0xffff_ffff_ffff
        );
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let event = format!(
            r#"{{"event_id":"{id}","tenant":"{MARKER_TENANT}","event_type":"order_placed","order_id":"m-{n}","amount_cents":1,"event_time":"{now}"}}"#
        );
        markers.sent.lock().expect("lock").insert(n, Instant::now());
        let _ = producer.send(BaseRecord::to(&topic).key(MARKER_TENANT).payload(&event));
        producer.poll(Duration::ZERO);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = producer.flush(Duration::from_secs(2));
}

/// The numbers N of the marker orders (`"order_id":"m-N"`) in an event's data line.
fn marker_numbers(line: &str) -> Vec<u64> {
    const MARKER: &str = "\"order_id\":\"m-";
    line.match_indices(MARKER)
        .filter_map(|(at, _)| line[at + MARKER.len()..].split('"').next()?.parse().ok())
        .collect()
}

/// The RFC 3339 time at the start of `t` (up to its closing quote) in seconds since the epoch.
fn epoch_seconds(t: &str) -> Option<f64> {
    let t = t.split('"').next()?;
    let at = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    Some(at.timestamp_micros() as f64 / 1e6)
}

/// The whole step; `dir` holds the release binaries.
pub async fn run(dir: &Path) {
    let broker = tansu().bootstrap();
    let topic = unique_name("bench-stream");
    spine_testkit::kafka::create_topic(&broker, &topic, 3).await;
    let db = postgres().fresh_database().await;
    let addr = format!("127.0.0.1:{}", spine_testkit::free_port());
    let env = |extra: &[(&str, String)]| {
        let mut extra = extra.to_vec();
        extra.push(("DATABASE_URL", db.url()));
        spine_env(&broker, &topic, &extra)
    };
    let start = |bin: &str, extra: &[(&str, String)]| {
        Service::spawn(command(&dir.join(bin), &env(extra)), bin)
    };
    let processor = start("spine-processor", &[("TRIGGER_INTERVAL_MS", "0".into())]);
    let producer = start("spine-producer", &[("EVENTS_PER_SECOND", "2000".into())]);
    let api = start("spine-api", &[("API_ADDR", addr.clone())]);
    let api_pid = api.pid();
    // Wait for the schema and the first batches.
    let ready = Instant::now() + Duration::from_secs(60);
    while !http_get(&addr, "/orders?limit=1")
        .await
        .starts_with("HTTP/1.1 200")
        && Instant::now() < ready
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let markers = Arc::new(Markers::default());
    let stop_markers = Arc::new(AtomicBool::new(false));
    let marker_thread = {
        let (b, t, m, s) = (
            broker.clone(),
            topic.clone(),
            markers.clone(),
            stop_markers.clone(),
        );
        std::thread::spawn(move || markers_thread(b, t, m, s))
    };
    println!("7. GET /stream: subscribers on one spine-api while ingesting 2,000 events/s (TRIGGER_INTERVAL_MS=0), {} s each:", WINDOW.as_secs());
    println!("   subscribers   API RSS   API CPU   API Postgres statements/s   commit→subscriber p50 / p99   marker produce→subscriber p50 / p99");
    let mut tasks = Vec::new();
    for count in COUNTS {
        while tasks.len() < count {
            let i = tasks.len();
            let path = if i % 10 == 0 {
                "/stream".to_string()
            } else {
                format!("/stream?tenant={MARKER_TENANT}")
            };
            tasks.push(tokio::spawn(subscriber(
                addr.clone(),
                path,
                markers.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        markers.latencies_ms.lock().expect("lock").clear();
        markers.push_ms.lock().expect("lock").clear();
        markers.measuring.store(true, Ordering::Relaxed);
        let (cpu0, q0, t0) = (
            cpu_seconds(api_pid, false),
            db_queries(&addr).await,
            Instant::now(),
        );
        tokio::time::sleep(WINDOW).await;
        let (cpu1, q1, secs) = (
            cpu_seconds(api_pid, false),
            db_queries(&addr).await,
            t0.elapsed().as_secs_f64(),
        );
        markers.measuring.store(false, Ordering::Relaxed);
        let lat = std::mem::take(&mut *markers.latencies_ms.lock().expect("lock"));
        let push = std::mem::take(&mut *markers.push_ms.lock().expect("lock"));
        let p = |v: &[f64], q| quantile(v, q).unwrap_or(f64::NAN);
        println!(
            "   {count:>11}   {:>5.0} MiB   {:>6.0}%   {:>25.1}   {:>12.0} / {:.0} ms ({} events)   {:>8.0} / {:.0} ms ({} arrivals)",
            rss_mib(api_pid),
            100.0 * (cpu1 - cpu0) / secs,
            (q1 - q0) / secs,
            p(&push, 0.5),
            p(&push, 0.99),
            push.len(),
            p(&lat, 0.5),
            p(&lat, 0.99),
            lat.len()
        );
    }
    let dropped = http_get(&addr, "/metrics")
        .await
        .lines()
        .find(|l| l.starts_with("spine_api_stream_dropped_total "))
        .map(|l| l.to_string())
        .unwrap_or_default();
    println!("   ({dropped}: subscribers closed for falling behind, each reconnected)");
    for t in tasks {
        t.abort();
    }
    stop_markers.store(true, Ordering::Relaxed);
    let _ = marker_thread.join();
    // Where a marker's time went: from its event_time (its send) to the start of the
    // transaction that stored it (`events.ingested_at`), i.e. waiting on the broker and the
    // processor rather than on the API.
    let stored: Vec<f64> = db
        .connect()
        .await
        .query(
            "SELECT extract(epoch FROM ingested_at - event_time)::float8 * 1000 FROM events
              WHERE tenant = $1",
            &[&MARKER_TENANT],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    println!(
        "   markers, produce → stored by the processor (events.ingested_at): {}",
        crate::harness::p50_95_99(&stored, "ms")
    );
    drop((producer, processor, api));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_marker_number_is_read_whole() {
        let line = r#"data: {"orders":[{"order_id":"m-123","tenant":"x"},{"order_id":"ord-1"},{"order_id":"m-7"}]}"#;
        assert_eq!(marker_numbers(line), vec![123, 7]);
        assert!(marker_numbers("data: {}").is_empty());
    }

    #[test]
    fn rfc3339_to_epoch() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:01.500000Z\""), Some(1.5));
        assert_eq!(
            epoch_seconds("2026-11-27T12:00:00.000000Z"),
            Some(1_795_780_800.0)
        );
        assert_eq!(epoch_seconds("nope"), None);
    }
}
