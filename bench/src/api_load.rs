//! Step 4: `spine-api` under `wrk` while the producer and the processor ingest, on the
//! database the drain filled.

use std::time::Duration;

use spine_testkit::tansu;

use crate::drain::Drained;
use crate::harness::{bins, command, spine_env, start_api, wrk, Service};

pub async fn run(drained: &Drained) {
    let dir = bins();
    let broker = tansu().bootstrap();
    let env = |extra: &[(&str, String)]| spine_env(&broker, &drained.topic, extra);
    let client = drained.db.connect().await;
    // First let Postgres settle after the bulk load (what autovacuum would do within minutes),
    // so this measures the API, not the aftermath.
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .expect("vacuum");
    let (api, base) = start_api(&dir, &env(&[("DATABASE_URL", drained.db.url())]));
    let processor = Service::spawn(
        command(
            &dir.join("spine-processor"),
            &env(&[
                ("DATABASE_URL", drained.db.url()),
                ("TRIGGER_INTERVAL_MS", "1000".into()),
            ]),
        ),
        "spine-processor",
    );
    let producer = Service::spawn(
        command(
            &dir.join("spine-producer"),
            &env(&[("EVENTS_PER_SECOND", "1000".into())]),
        ),
        "spine-producer",
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "4. spine-api under wrk (2 threads, 32 connections, 10 s each) while ingesting 1,000 events/s, {}+ orders:",
        drained.orders
    );
    for path in ["/orders?limit=100", "/stats"] {
        let w = wrk(&format!("{base}{path}"), 10);
        println!(
            "   {path:<20} {:>8.0} requests/s   p50 {:>8}   p99 {:>8}{}",
            w.rps,
            w.p50,
            w.p99,
            w.non2xx_note()
        );
    }
    let batches_after: i64 = client
        .query_one("SELECT count(*) FROM stream_batches", &[])
        .await
        .expect("count")
        .get(0);
    println!(
        "   (the processor committed {} batches meanwhile)",
        batches_after - drained.batches
    );
    producer.stop();
    processor.stop();
    api.stop();
}
