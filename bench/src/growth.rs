//! Step 6: does the cost grow with the table? With `current_orders` pre-filled to 10^4, 10^5
//! and 10^6 orders (and their events and `tenant_stats`, consistent with them), the processor
//! drains the same 60,000 new events (half update existing orders, half place new ones) in
//! batches of 1,000: processor and Postgres CPU per event; then `/orders?limit=100` and
//! `/stats` under `wrk`. Printed as a table with the ratio largest/smallest.

use spine_testkit::kafka::{create_topic, produce, Raw};
use spine_testkit::{tansu, unique_name, TestDb};

use crate::harness::{
    bins, command, quantile, run_to_end, server_latencies, spine_env, start_api_logging, wrk,
    PARTITIONS,
};
use crate::{pgstat, procstat, Bench};

/// The new events each size drains.
/// (CPU times come in 10 ms ticks: 60,000 events at ~5 µs each are ~30 ticks of processor time.)
const NEW_EVENTS: usize = 60_000;
/// The batch size they are drained in (about what TRIGGER_INTERVAL_MS=0 makes at a few
/// thousand events/s).
const BATCH_ROWS: usize = 1_000;
/// Tenants of the pre-filled orders.
const TENANTS: usize = 20;
/// Seconds of `wrk` per route.
const WRK_SECONDS: u32 = 5;

/// A latency as `wrk` prints it (`850.00us`, `4.50ms`, `1.20s`, `2.00m`), in milliseconds.
pub fn wrk_ms(text: &str) -> Option<f64> {
    let units = [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)];
    units.iter().find_map(|(unit, factor)| {
        let n: f64 = text.strip_suffix(unit)?.parse().ok()?;
        Some(n * factor)
    })
}

/// Fills an empty (migrated) database with `orders` orders, one event each, and the
/// `tenant_stats` they add up to, so `/stats` tells the truth (docs/contracts.md, "Tables").
/// Order `ord-i` belongs to tenant `tenant-(i % TENANTS)`.
async fn prefill(client: &tokio_postgres::Client, orders: i64) {
    let sql = format!(
        "INSERT INTO events (event_id, tenant, event_type, order_id, amount_cents, currency,
                             event_time, topic, kafka_partition, kafka_offset)
         SELECT md5('prefill-' || i)::uuid, 'tenant-' || (i % {TENANTS}),
                (ARRAY['order_placed', 'order_paid', 'order_shipped', 'order_cancelled'])[1 + i % 4],
                'ord-' || i, i % 100000, 'USD', timestamptz '2026-01-01' + i * interval '1 second',
                'prefill', 0, i
           FROM generate_series(1, {orders}) i;
         INSERT INTO current_orders (tenant, order_id, status, amount_cents, currency, updated_at,
                                     last_event_id)
         SELECT tenant, order_id, event_type, amount_cents, currency, event_time, event_id
           FROM events;
         INSERT INTO tenant_stats (tenant, status, orders, amount_cents)
         SELECT tenant, status, count(*), sum(amount_cents) FROM current_orders GROUP BY 1, 2;"
    );
    client
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("pre-filling {orders} orders: {e}"));
    client
        .batch_execute("VACUUM ANALYZE")
        .await
        .expect("vacuum");
}

/// Spreads the updates over the table: consecutive updates hit orders `STRIDE` apart (modulo
/// the table's size), so no order is updated twice within `orders` updates (a batch never
/// folds two updates of one order into one) and every part of the table's indexes is touched.
/// A prime, so coprime with every power of ten.
const STRIDE: i64 = 7919;

/// The new events: even ones update an existing order (spread over all `orders`), odd ones
/// place a new order. Each is keyed and partitioned by its tenant, as the producer does.
fn new_events(orders: i64) -> Vec<Raw> {
    let now = chrono::Utc::now();
    (0..NEW_EVENTS)
        .map(|j| {
            let (order, event_type) = if j % 2 == 0 {
                let k = 1 + (j as i64 / 2 * STRIDE) % orders;
                (k, "order_paid")
            } else {
                (orders + 1 + j as i64, "order_placed")
            };
            let tenant_n = (order % TENANTS as i64) as i32;
            let tenant = format!("tenant-{tenant_n}");
            let time = now + chrono::Duration::microseconds(j as i64);
            let value = serde_json::json!({
                // Time-ordered, as spine-producer mints them.
                "event_id": uuid::Uuid::now_v7().to_string(),
                "tenant": tenant,
                "event_type": event_type,
                "order_id": format!("ord-{order}"),
                "amount_cents": 100 + j as i64,
                "currency": "USD",
                "event_time": time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            });
            Raw {
                partition: tenant_n % PARTITIONS,
                key: Some(tenant.into_bytes()),
                value: Some(value.to_string().into_bytes()),
            }
        })
        .collect()
}

/// One row of the table.
struct Row {
    orders: i64,
    processor_us: f64,
    postgres_us: f64,
    /// p99 as `wrk` saw it (every answer, 503s too), and as the server logged its 200s.
    orders_p99_ms: (Option<f64>, Option<f64>),
    stats_p99_ms: (Option<f64>, Option<f64>),
    notes: String,
}

async fn measure(bench: &Bench, db: &TestDb, orders: i64) -> Row {
    let dir = bins();
    let broker = tansu().bootstrap();
    let topic = unique_name("growth");
    let client = db.connect().await;
    bench.migrate(db).await;
    prefill(&client, orders).await;
    create_topic(&broker, &topic, PARTITIONS).await;
    let records = new_events(orders);
    tokio::task::spawn_blocking({
        let (broker, topic) = (broker.clone(), topic.clone());
        move || produce(&broker, &topic, &records)
    })
    .await
    .expect("producing the new events");

    let env = |extra: &[(&str, String)]| spine_env(&broker, &topic, extra);
    let postmaster = procstat::postmaster_pid(&pgstat::data_dir(bench.pg));
    pgstat::reset(&client).await;
    let pg_before = procstat::postgres_cpu(postmaster);
    let mut processor = command(
        &dir.join("spine-processor"),
        &env(&[
            ("DATABASE_URL", db.url()),
            ("MAX_BATCH_ROWS", BATCH_ROWS.to_string()),
        ]),
    );
    processor.arg("--available-now");
    let run = run_to_end(processor, "spine-processor --available-now");
    pgstat::settle(&client).await;
    let pg_cpu = procstat::postgres_cpu(postmaster) - pg_before;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM current_orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        stored,
        orders + (NEW_EVENTS / 2) as i64,
        "every new order stored"
    );

    let log_path = std::env::temp_dir().join(format!("{}.log", unique_name("spine-bench-api")));
    let (api, base) = start_api_logging(&dir, &env(&[("DATABASE_URL", db.url())]), Some(&log_path));
    let mut notes = Vec::new();
    let mut wrk_p99 = |path: &str| {
        let w = wrk(&format!("{base}{path}"), WRK_SECONDS);
        if let Some(n) = w.non2xx_count() {
            notes.push(format!("{path}: {n} of {} shed with 503", w.requests));
        }
        wrk_ms(&w.p99)
    };
    let orders_wrk = wrk_p99("/orders?limit=100");
    let stats_wrk = wrk_p99("/stats");
    api.stop();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let server_p99 = |path: &str| quantile(&server_latencies(&log, path, 200), 0.99);
    let orders_p99_ms = (orders_wrk, server_p99("/orders"));
    let stats_p99_ms = (stats_wrk, server_p99("/stats"));
    Row {
        orders,
        processor_us: run.cpu * 1e6 / NEW_EVENTS as f64,
        postgres_us: pg_cpu * 1e6 / NEW_EVENTS as f64,
        orders_p99_ms,
        stats_p99_ms,
        notes: notes.join("; "),
    }
}

/// largest / smallest of a column, as `1.23x`.
fn ratio(first: Option<f64>, last: Option<f64>) -> String {
    match (first, last) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}x", b / a),
        _ => "n/a".to_owned(),
    }
}

pub async fn run(bench: &Bench, sizes: &[i64]) {
    println!(
        "\n6. growth: {NEW_EVENTS} new events (half update existing orders, half new orders) drained in batches of {BATCH_ROWS}, then wrk -t2 -c32 {WRK_SECONDS} s per route (idle ingest):"
    );
    println!(
        "   {:>10}  {:>22}  {:>21}  {:>27}  {:>27}",
        "orders",
        "processor CPU µs/event",
        "Postgres CPU µs/event",
        "/orders?limit=100 p99 (wrk",
        "/stats p99 (wrk"
    );
    println!(
        "   {:>10}  {:>22}  {:>21}  {:>27}  {:>27}",
        "", "", "", "| server, 200s)", "| server, 200s)"
    );
    let ms = |v: (Option<f64>, Option<f64>)| {
        let one = |x: Option<f64>| x.map_or("?".to_owned(), |x| format!("{x:.2}"));
        format!("{} | {} ms", one(v.0), one(v.1))
    };
    let mut rows: Vec<Row> = Vec::new();
    for &orders in sizes {
        let db = bench.pg.fresh_database().await;
        let row = measure(bench, &db, orders).await;
        println!(
            "   {:>10}  {:>22.1}  {:>21.1}  {:>27}  {:>27}{}",
            row.orders,
            row.processor_us,
            row.postgres_us,
            ms(row.orders_p99_ms),
            ms(row.stats_p99_ms),
            if row.notes.is_empty() {
                String::new()
            } else {
                format!("   ({})", row.notes)
            }
        );
        // Free the space before the next size.
        let admin = TestDb {
            name: "postgres".to_owned(),
            port: db.port,
        };
        admin
            .connect()
            .await
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", db.name))
            .await
            .expect("dropping a growth database");
        rows.push(row);
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let both = |a: (Option<f64>, Option<f64>), b: (Option<f64>, Option<f64>)| {
            format!("{} | {}", ratio(a.0, b.0), ratio(a.1, b.1))
        };
        println!(
            "   {:>10}  {:>22}  {:>21}  {:>27}  {:>27}   (largest/smallest; goal: at most 1.5x)",
            "ratio",
            ratio(Some(first.processor_us), Some(last.processor_us)),
            ratio(Some(first.postgres_us), Some(last.postgres_us)),
            both(first.orders_p99_ms, last.orders_p99_ms),
            both(first.stats_p99_ms, last.stats_p99_ms),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latencies_are_read_in_ms() {
        assert_eq!(wrk_ms("4.50ms"), Some(4.5));
        assert_eq!(wrk_ms("850.00us"), Some(0.85));
        assert_eq!(wrk_ms("1.20s"), Some(1200.0));
        assert_eq!(wrk_ms("2.00m"), Some(120_000.0));
        assert_eq!(wrk_ms("?"), None);
    }

    #[test]
    fn half_the_new_events_update_existing_orders_spread_over_the_table() {
        let events = new_events(1_000_000);
        assert_eq!(events.len(), NEW_EVENTS);
        let parsed: Vec<serde_json::Value> = events
            .iter()
            .map(|r| serde_json::from_slice(r.value.as_deref().expect("value")).expect("JSON"))
            .collect();
        let ids: Vec<i64> = parsed
            .iter()
            .map(|e| {
                e["order_id"].as_str().expect("id")[4..]
                    .parse()
                    .expect("number")
            })
            .collect();
        let existing: Vec<i64> = ids.iter().copied().filter(|&k| k <= 1_000_000).collect();
        assert_eq!(existing.len(), NEW_EVENTS / 2);
        assert!(existing.iter().all(|&k| k >= 1));
        assert!(
            *existing.iter().max().expect("some") > 900_000,
            "spread to the end"
        );
        let new: std::collections::HashSet<i64> =
            ids.iter().copied().filter(|&k| k > 1_000_000).collect();
        assert_eq!(new.len(), NEW_EVENTS / 2, "each new order once");
        for (e, r) in parsed.iter().zip(&events) {
            let tenant = e["tenant"].as_str().expect("tenant");
            let k: i64 = e["order_id"].as_str().expect("id")[4..].parse().expect("n");
            assert_eq!(
                tenant,
                format!("tenant-{}", k % TENANTS as i64),
                "the prefill's tenant"
            );
            assert_eq!(r.key.as_deref(), Some(tenant.as_bytes()));
        }
        // Small tables: every update still names an existing order.
        assert!(new_events(10_000).iter().step_by(2).all(|r| {
            let e: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().expect("v")).expect("j");
            e["order_id"].as_str().expect("id")[4..]
                .parse::<i64>()
                .expect("n")
                <= 10_000
        }));
    }
}
