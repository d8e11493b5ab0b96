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
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use spine_testkit::{postgres, tansu, unique_name};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

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

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
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
            let mut rest = line.as_str();
            while let Some(at) = rest.find("\"order_id\":\"m-") {
                rest = &rest[at + 15..];
                let n: u64 = rest
                    .split('"')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(u64::MAX);
                if !markers.measuring.load(Ordering::Relaxed) {
                    continue;
                }
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
        let secs = nanos / 1_000_000_000;
        let micros = (nanos / 1000) % 1_000_000;
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let days = (secs / 86_400) as i64;
        let (y, mo, d) = civil(days);
        let event = format!(
            r#"{{"event_id":"{id}","tenant":"{MARKER_TENANT}","event_type":"order_placed","order_id":"m-{n}","amount_cents":1,"event_time":"{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{micros:06}Z"}}"#
        );
        markers.sent.lock().expect("lock").insert(n, Instant::now());
        let _ = producer.send(BaseRecord::to(&topic).key(MARKER_TENANT).payload(&event));
        producer.poll(Duration::ZERO);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = producer.flush(Duration::from_secs(2));
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ…` → seconds since the epoch.
fn epoch_seconds(t: &str) -> Option<f64> {
    let num = |r: std::ops::Range<usize>| t.get(r).and_then(|s| s.parse::<i64>().ok());
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let micros = num(20..26)?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + s) as f64 + micros as f64 / 1e6)
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn spawn(bin: &Path, env: &[(&str, String)]) -> Child {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

fn stop(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn p(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// The whole step; `dir` holds the release binaries.
pub async fn run(dir: &Path) {
    let broker = tansu().bootstrap();
    let topic = unique_name("bench-stream");
    spine_testkit::kafka::create_topic(&broker, &topic, 3).await;
    let db = postgres().fresh_database().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let common = |extra: &[(&'static str, String)]| {
        let mut v = vec![
            ("KAFKA_BOOTSTRAP", broker.clone()),
            ("TOPIC", topic.clone()),
            ("METRICS_ADDR", "127.0.0.1:0".to_string()),
            ("RUST_LOG", "warn".to_string()),
            ("DATABASE_URL", db.url()),
        ];
        v.extend(extra.iter().cloned());
        v
    };
    let processor = spawn(
        &dir.join("spine-processor"),
        &common(&[("TRIGGER_INTERVAL_MS", "0".into())]),
    );
    let producer = spawn(
        &dir.join("spine-producer"),
        &common(&[("EVENTS_PER_SECOND", "2000".into())]),
    );
    let api = spawn(
        &dir.join("spine-api"),
        &common(&[("API_ADDR", addr.clone())]),
    );
    let api_pid = api.id();
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
    println!("5. GET /stream: subscribers on one spine-api while ingesting 2,000 events/s (TRIGGER_INTERVAL_MS=0), {} s each:", WINDOW.as_secs());
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
            cpu_seconds(api_pid),
            db_queries(&addr).await,
            Instant::now(),
        );
        tokio::time::sleep(WINDOW).await;
        let (cpu1, q1, secs) = (
            cpu_seconds(api_pid),
            db_queries(&addr).await,
            t0.elapsed().as_secs_f64(),
        );
        markers.measuring.store(false, Ordering::Relaxed);
        let mut lat = std::mem::take(&mut *markers.latencies_ms.lock().expect("lock"));
        lat.sort_by(f64::total_cmp);
        let mut push = std::mem::take(&mut *markers.push_ms.lock().expect("lock"));
        push.sort_by(f64::total_cmp);
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
    stop(producer);
    stop(processor);
    stop(api);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_to_epoch() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:01.500000Z\""), Some(1.5));
        assert_eq!(
            epoch_seconds("2026-11-27T12:00:00.000000Z"),
            Some(1_795_780_800.0)
        );
        assert_eq!(epoch_seconds("nope"), None);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_419), (2025, 11, 27));
        assert_eq!(civil(11_016), (2000, 2, 29));
    }
}
