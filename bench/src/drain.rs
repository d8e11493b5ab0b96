//! Steps 1 to 3: a backlog, the broker's ceiling (a bare consumer) and `spine-processor
//! --available-now` draining the backlog, with CPU per million events, peak RSS, and
//! Postgres' work by statement; beside it, the seed's kind of processor (Python).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use spine_testkit::{tansu, unique_name, TestDb};

use crate::harness::{bins, command, run_to_end, spine_env, PARTITIONS};
use crate::{pgstat, procstat, Bench};

/// The hidden sub-command that runs the bare consumer in a process of its own, so its CPU and
/// peak RSS are its own: `spine-bench --bare-consumer BOOTSTRAP TOPIC RECORDS`.
pub const BARE_CONSUMER: &str = "--bare-consumer";

/// The bare consumer: reads `total` records of `topic` from the start of every partition and
/// touches their payloads, nothing else. librdkafka's defaults, as a plain client would have.
pub fn bare_consumer(bootstrap: &str, topic: &str, total: i64) {
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
    let mut n = 0i64;
    let mut bytes = 0usize;
    while n < total {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            bytes += m.payload().map_or(0, <[u8]>::len);
            n += 1;
        }
    }
    std::hint::black_box(bytes);
}

/// What the drain left for the API step: the database, its orders and batches.
pub struct Drained {
    pub db: TestDb,
    pub topic: String,
    pub orders: i64,
    pub batches: i64,
}

pub async fn run(bench: &Bench) -> Drained {
    let events = bench.events;
    let dir = bins();
    let broker = tansu().bootstrap();
    let topic = unique_name("bench");
    let db = bench.pg.fresh_database().await;
    let env = |extra: &[(&str, String)]| spine_env(&broker, &topic, extra);
    let per_million = 1_000_000.0 / events as f64;

    // The backlog.
    let mut producer = command(&dir.join("spine-producer"), &env(&[]));
    producer.args([
        "--count",
        &events.to_string(),
        "--events-per-second",
        "0",
        "--seed",
        "1",
    ]);
    let run = run_to_end(producer, "spine-producer");
    println!(
        "\n1. backlog: spine-producer wrote {events} events in {:.1} s ({:.0} events/s, {:.1} CPU-s)",
        run.took.as_secs_f64(),
        events as f64 / run.took.as_secs_f64(),
        run.cpu
    );

    // The broker's ceiling: a bare consumer, in a process of its own.
    let tansu_before = procstat::cpu_seconds(tansu().pid, false);
    let mut bare = Command::new(std::env::current_exe().expect("own path"));
    bare.args([BARE_CONSUMER, &broker, &topic, &events.to_string()]);
    let bare = run_to_end(bare, "the bare consumer");
    let bare_tansu = procstat::cpu_seconds(tansu().pid, false) - tansu_before;
    let ceiling = events as f64 / bare.took.as_secs_f64();
    println!(
        "2. broker ceiling: a bare consumer read it in {:.1} s: {ceiling:.0} events/s ({:.2} CPU-s per million events in the reader, {:.2} in the broker; peak RSS {:.0} MiB)",
        bare.took.as_secs_f64(),
        bare.cpu * per_million,
        bare_tansu * per_million,
        bare.peak_rss_mib
    );

    // The processor draining it.
    let client = db.connect().await;
    let postmaster = procstat::postmaster_pid(&pgstat::data_dir(bench.pg));
    // The schema first (the processor migrates at start-up), so the statistics count only
    // the drain's statements.
    bench.migrate(&db).await;
    pgstat::reset(&client).await;
    let pg_before = procstat::postgres_cpu(postmaster);
    let tansu_before = procstat::cpu_seconds(tansu().pid, false);
    let mut processor = command(
        &dir.join("spine-processor"),
        &env(&[("DATABASE_URL", db.url())]),
    );
    processor.arg("--available-now");
    let run = run_to_end(processor, "spine-processor --available-now");
    pgstat::settle(&client).await;
    let pg_cpu = procstat::postgres_cpu(postmaster) - pg_before;
    let tansu_cpu = procstat::cpu_seconds(tansu().pid, false) - tansu_before;
    let statements = pgstat::snapshot(&client).await;
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(sql, &[])
                .await
                .expect("count")
                .get::<_, i64>(0)
        }
    };
    let stored = count("SELECT count(*) FROM events").await;
    let batches = count("SELECT count(*) FROM stream_batches").await;
    let orders = count("SELECT count(*) FROM current_orders").await;
    assert_eq!(stored, events, "every event stored");
    let rate = events as f64 / run.took.as_secs_f64();
    println!(
        "3. spine-processor --available-now drained it in {:.1} s: {rate:.0} events/s ({:.0}% of the broker ceiling), {batches} batches, {orders} orders",
        run.took.as_secs_f64(),
        100.0 * rate / ceiling
    );
    println!(
        "   CPU-seconds per million events: processor {:.2}, Postgres server {:.2}, broker (Tansu) {:.2}",
        run.cpu * per_million,
        pg_cpu * per_million,
        tansu_cpu * per_million
    );
    println!(
        "   above a bare consumer: (processor + Postgres) - bare consumer = {:.2} CPU-s per million events",
        (run.cpu + pg_cpu - bare.cpu) * per_million
    );
    println!(
        "   peak RSS: processor {:.0} MiB, bare consumer {:.0} MiB",
        run.peak_rss_mib, bare.peak_rss_mib
    );
    // Where the drain's time went: writing batches, or waiting for records (the rest).
    let times = client
        .query_one(
            "SELECT coalesce(sum(fetch_ms), 0), coalesce(sum(write_ms), 0),
                    coalesce(sum(commit_ms), 0), coalesce(max(input_rows), 0)
               FROM stream_batches",
            &[],
        )
        .await
        .expect("batch times");
    let (fetch_s, write_s, commit_s) = (
        times.get::<_, f64>(0) / 1000.0,
        times.get::<_, f64>(1) / 1000.0,
        times.get::<_, f64>(2) / 1000.0,
    );
    println!(
        "   its batches (largest {} rows): writing {write_s:.1} s, COMMIT {commit_s:.1} s (all but the last), \
         taking records off the client {fetch_s:.1} s; the rest of the {:.1} s waiting for records",
        times.get::<_, i32>(3),
        run.took.as_secs_f64()
    );
    statements.print(events, "   ");

    python_baseline(bench, &broker, &topic, &db, &client, postmaster).await;
    Drained {
        db,
        topic,
        orders,
        batches,
    }
}

/// The seed's kind of processor (Python), on the same backlog and the same Postgres.
async fn python_baseline(
    bench: &Bench,
    broker: &str,
    topic: &str,
    db: &TestDb,
    client: &tokio_postgres::Client,
    postmaster: u32,
) {
    let Some(python) = &bench.python else {
        println!("   (no Python baseline: set SPINE_BENCH_PYTHON, as scripts/bench.sh does)");
        return;
    };
    let events = bench.events;
    let per_million = 1_000_000.0 / events as f64;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench/seed_processor.py");
    let pg_before = procstat::postgres_cpu(postmaster);
    let mut seed = Command::new(python);
    seed.arg(script)
        .args([
            broker,
            topic,
            &PARTITIONS.to_string(),
            &db.url(),
            &events.to_string(),
        ])
        .stdin(Stdio::null());
    let run = run_to_end(seed, "the seed-style Python processor");
    pgstat::settle(client).await;
    let pg_cpu = procstat::postgres_cpu(postmaster) - pg_before;
    let rate = events as f64 / run.took.as_secs_f64();
    println!(
        "   beside it, the seed's kind (Python: confluent-kafka + psycopg2 execute_values, same batches) took {:.1} s: {rate:.0} events/s",
        run.took.as_secs_f64()
    );
    println!(
        "   CPU-seconds per million events: Python processor {:.2}, Postgres server {:.2}",
        run.cpu * per_million,
        pg_cpu * per_million
    );
}
