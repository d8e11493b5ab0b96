//! `make bench`: measures the spine on this machine and prints the numbers.
//!
//! 1. The broker's ceiling: a bare consumer that only reads the backlog.
//! 2. The processor draining the same backlog with `--available-now`: events/s, and
//!    CPU-seconds per million events of the processor and of the Postgres server.
//! 3. The API under load (wrk) while the producer and processor ingest: requests/s and p99
//!    for `/orders?limit=100` and `/stats`.
//!
//! Everything runs on fresh servers (a throwaway Postgres, a fresh Tansu database) and the
//! release binaries next to this one.

mod stream;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use spine_testkit::{postgres, tansu, unique_name, TestDb};

const PARTITIONS: i32 = 3;

/// CPU seconds (user + system) a process has used, and optionally its waited-for children.
fn cpu_seconds(pid: u32, with_children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the ")" that ends the command name; utime is field 14 (index 11 here).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let ticks = 100.0; // USER_HZ on Linux
    let own = f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0);
    let children = if with_children {
        f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0)
    } else {
        0.0
    };
    (own + children) / ticks
}

/// The Postgres server's CPU: the postmaster and its children, live or reaped.
fn postgres_cpu(postmaster: u32) -> f64 {
    let mut total = cpu_seconds(postmaster, true);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let ppid: u32 = rest
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            if ppid == postmaster {
                total += cpu_seconds(pid, false);
            }
        }
    }
    total
}

fn postmaster_pid(db_port: u16) -> u32 {
    // The test Postgres' data dir is found through the server's own view of itself.
    let out = Command::new("bash")
        .args([
            "-c",
            &format!(
                "ss -ltnp 'sport = :{db_port}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2"
            ),
        ])
        .output()
        .expect("ss");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("postmaster pid (is iproute2's ss installed?)")
}

fn bins() -> PathBuf {
    std::env::current_exe()
        .expect("own path")
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

fn command(bin: &Path, env: &[(&str, String)]) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

fn run_to_end(mut cmd: Command, what: &str) -> (Duration, f64) {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = pid;
    // The child was waited for: its CPU is now in our children's counters.
    (elapsed, cpu_seconds(std::process::id(), true))
}

fn bare_drain(bootstrap: &str, topic: &str, total: i64) -> (Duration, f64) {
    let cpu_before = cpu_seconds(std::process::id(), false);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "spine-bench-bare")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut n = 0i64;
    let mut bytes = 0usize;
    while n < total {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            use rdkafka::message::Message;
            bytes += m.payload().map_or(0, <[u8]>::len);
            n += 1;
        }
    }
    let _ = bytes;
    (
        started.elapsed(),
        cpu_seconds(std::process::id(), false) - cpu_before,
    )
}

struct Wrk {
    rps: f64,
    p50: String,
    p99: String,
}

fn wrk(url: &str, seconds: u32) -> Wrk {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .expect("wrk (scripts/setup.sh apt installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let find = |prefix: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let rps = find("Requests/sec:").parse().unwrap_or(0.0);
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .map(str::to_owned);
    assert!(non2xx.is_none(), "{url}: {}", non2xx.unwrap_or_default());
    Wrk {
        rps,
        p50: find("50%"),
        p99: find("99%"),
    }
}

fn kill(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

#[tokio::main]
async fn main() {
    let events: i64 = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = bins();
    println!(
        "spine bench: {events} events, {PARTITIONS} partitions, release binaries in {}",
        dir.display()
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let broker = tansu().bootstrap();
    let topic = unique_name("bench");
    let db: TestDb = postgres().fresh_database().await;
    let base_env = |extra: &[(&str, String)]| -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = vec![
            ("KAFKA_BOOTSTRAP", broker.clone()),
            ("TOPIC", topic.clone()),
            ("METRICS_ADDR", "127.0.0.1:0".into()),
            ("RUST_LOG", "warn".into()),
        ];
        for (k, val) in extra {
            let k: &'static str = Box::leak(k.to_string().into_boxed_str());
            v.push((k, val.clone()));
        }
        v
    };

    // The backlog.
    let mut producer = command(&dir.join("spine-producer"), &base_env(&[]));
    producer.args([
        "--count",
        &events.to_string(),
        "--events-per-second",
        "0",
        "--seed",
        "1",
    ]);
    let cpu0 = cpu_seconds(std::process::id(), true);
    let (took, cpu1) = run_to_end(producer, "spine-producer");
    println!("\n1. backlog: spine-producer wrote {events} events in {:.1} s ({:.0} events/s, {:.1} CPU-s)",
             took.as_secs_f64(), events as f64 / took.as_secs_f64(), cpu1 - cpu0);

    // The broker's ceiling.
    let (took, cpu) = bare_drain(&broker, &topic, events);
    let ceiling = events as f64 / took.as_secs_f64();
    println!("2. broker ceiling: a bare consumer read it in {:.1} s: {ceiling:.0} events/s ({:.1} CPU-s in the reader)",
             took.as_secs_f64(), cpu);

    // The processor draining it.
    let postmaster = postmaster_pid(db.port);
    let pg_before = postgres_cpu(postmaster);
    let tansu_before = cpu_seconds(tansu().pid, false);
    let cpu_before = cpu_seconds(std::process::id(), true);
    let mut processor = command(
        &dir.join("spine-processor"),
        &base_env(&[("DATABASE_URL", db.url())]),
    );
    processor.arg("--available-now");
    let (took, cpu_after) = run_to_end(processor, "spine-processor --available-now");
    let proc_cpu = cpu_after - cpu_before;
    let pg_cpu = postgres_cpu(postmaster) - pg_before;
    let tansu_cpu = cpu_seconds(tansu().pid, false) - tansu_before;
    let per_million = 1_000_000.0 / events as f64;
    let client = db.connect().await;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("count")
        .get(0);
    let batches: i64 = client
        .query_one("SELECT count(*) FROM stream_batches", &[])
        .await
        .expect("count")
        .get(0);
    let orders: i64 = client
        .query_one("SELECT count(*) FROM current_orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, events, "every event stored");
    let rate = events as f64 / took.as_secs_f64();
    println!("3. spine-processor --available-now drained it in {:.1} s: {rate:.0} events/s ({:.0}% of the broker ceiling), {batches} batches, {orders} orders",
             took.as_secs_f64(), 100.0 * rate / ceiling);
    println!("   CPU-seconds per million events: processor {:.2}, Postgres server {:.2}, broker (Tansu) {:.2}",
             proc_cpu * per_million, pg_cpu * per_million, tansu_cpu * per_million);

    // The seed's kind of processor (Python), on the same backlog and the same Postgres.
    match std::env::var("SPINE_BENCH_PYTHON") {
        Ok(python) if !python.is_empty() => {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench/seed_processor.py");
            let pg_before = postgres_cpu(postmaster);
            let cpu_before = cpu_seconds(std::process::id(), true);
            let mut seed = Command::new(python);
            seed.arg(script)
                .args([
                    broker.as_str(),
                    topic.as_str(),
                    &PARTITIONS.to_string(),
                    &db.url(),
                    &events.to_string(),
                ])
                .stdin(Stdio::null());
            let (took, cpu_after) = run_to_end(seed, "the seed-style Python processor");
            let py_cpu = cpu_after - cpu_before;
            let pg_cpu = postgres_cpu(postmaster) - pg_before;
            let py_rate = events as f64 / took.as_secs_f64();
            println!("   beside it, the seed's kind (Python: confluent-kafka + psycopg2 execute_values, same batches) took {:.1} s: {py_rate:.0} events/s",
                     took.as_secs_f64());
            println!(
                "   CPU-seconds per million events: Python processor {:.2}, Postgres server {:.2}",
                py_cpu * per_million,
                pg_cpu * per_million
            );
        }
        _ => println!("   (no Python baseline: set SPINE_BENCH_PYTHON, as scripts/bench.sh does)"),
    }

    if std::env::args().any(|a| a == "--skip-api") {
        return;
    }
    // The API under load while ingesting. First let Postgres settle after the bulk load (what
    // autovacuum would do within minutes), so this measures the API, not the aftermath.
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .expect("vacuum");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let api = command(
        &dir.join("spine-api"),
        &base_env(&[
            ("DATABASE_URL", db.url()),
            ("API_ADDR", format!("127.0.0.1:{port}")),
        ]),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spine-api");
    let live_processor = command(
        &dir.join("spine-processor"),
        &base_env(&[
            ("DATABASE_URL", db.url()),
            ("TRIGGER_INTERVAL_MS", "1000".into()),
        ]),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spine-processor");
    let live_producer = command(
        &dir.join("spine-producer"),
        &base_env(&[("EVENTS_PER_SECOND", "1000".into())]),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spine-producer");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let base = format!("http://127.0.0.1:{port}");
    println!("4. spine-api under wrk (2 threads, 32 connections, 10 s each) while ingesting 1,000 events/s, {orders}+ orders:");
    for path in ["/orders?limit=100", "/stats"] {
        let w = wrk(&format!("{base}{path}"), 10);
        println!(
            "   {path:<20} {:>8.0} requests/s   p50 {:>8}   p99 {:>8}",
            w.rps, w.p50, w.p99
        );
    }
    let batches_after: i64 = client
        .query_one("SELECT count(*) FROM stream_batches", &[])
        .await
        .expect("count")
        .get(0);
    println!(
        "   (the processor committed {} batches meanwhile)",
        batches_after - batches
    );
    kill(live_producer);
    kill(live_processor);
    kill(api);
    if !std::env::args().any(|a| a == "--skip-stream") {
        stream::run(&dir).await;
    }
}
