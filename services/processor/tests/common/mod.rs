//! Helpers shared by the processor's integration tests.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::time::Duration;

use spine_core::event::Event;
use spine_testkit::kafka::Raw;
use spine_testkit::TestDb;
use uuid::Uuid;

pub use spine_core::fixtures::event;
pub use spine_testkit::KillOnDrop;

/// A record carrying `e`, keyed by tenant as the producer does.
pub fn raw(partition: i32, e: &Event) -> Raw {
    Raw {
        partition,
        key: Some(e.tenant.clone().into_bytes()),
        value: Some(e.to_json()),
    }
}

pub fn raw_bytes(partition: i32, value: &[u8]) -> Raw {
    Raw {
        partition,
        key: Some(b"junk".to_vec()),
        value: Some(value.to_vec()),
    }
}

/// Processor arguments for a test: port 0 for metrics, the test's database, a fast trigger.
pub fn args(
    bootstrap: &str,
    topic: &str,
    group: &str,
    db: &TestDb,
    extra: &[&str],
) -> spine_processor::ProcessorArgs {
    use clap::Parser;
    let url = db.url();
    let mut argv = vec![
        "spine-processor",
        "--kafka-bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--consumer-group",
        group,
        "--database-url",
        &url,
        "--metrics-addr",
        "127.0.0.1:0",
        "--trigger-interval-ms",
        "200",
    ];
    argv.extend_from_slice(extra);
    spine_processor::ProcessorArgs::try_parse_from(argv).expect("valid test arguments")
}

/// Environment for running the real binary against the test's broker and database.
pub fn env(bootstrap: &str, topic: &str, group: &str, db: &TestDb) -> Vec<(String, String)> {
    vec![
        ("KAFKA_BOOTSTRAP".into(), bootstrap.into()),
        ("TOPIC".into(), topic.into()),
        ("CONSUMER_GROUP".into(), group.into()),
        ("DATABASE_URL".into(), db.url()),
        ("METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ("TRIGGER_INTERVAL_MS".into(), "100".into()),
        ("RUST_LOG".into(), "info".into()),
    ]
}

/// The processor binary, with the test's environment and nothing inherited that could
/// change its configuration.
pub fn processor_command(env: &[(String, String)]) -> std::process::Command {
    let mut cmd = spine_testkit::bin_command("spine-processor");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Everything the processor wrote, read back for assertions.
#[derive(Debug)]
pub struct Stored {
    /// event_id -> (partition, offset)
    pub events: BTreeMap<Uuid, (i32, i64)>,
    pub event_rows: i64,
    /// (tenant, order_id) -> (status, last_event_id)
    pub orders: BTreeMap<(String, String), (String, Uuid)>,
    /// (partition, offset) -> error
    pub dead_letters: BTreeMap<(i32, i64), String>,
    pub dead_letter_rows: i64,
    pub offsets: BTreeMap<i32, i64>,
}

pub async fn stored(db: &TestDb, group: &str, topic: &str) -> Stored {
    let c = db.connect().await;
    let events = c
        .query(
            "SELECT event_id, kafka_partition, kafka_offset FROM events",
            &[],
        )
        .await
        .expect("events");
    let orders = c
        .query(
            "SELECT tenant, order_id, status, last_event_id FROM current_orders",
            &[],
        )
        .await
        .expect("orders");
    let dead = c
        .query(
            "SELECT kafka_partition, kafka_offset, error FROM dead_letters",
            &[],
        )
        .await
        .expect("dead letters");
    let offsets = c
        .query(
            "SELECT kafka_partition, next_offset FROM stream_offsets WHERE consumer_group = $1 AND topic = $2",
            &[&group, &topic],
        )
        .await
        .expect("offsets");
    Stored {
        event_rows: events.len() as i64,
        events: events
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect(),
        orders: orders
            .iter()
            .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
            .collect(),
        dead_letter_rows: dead.len() as i64,
        dead_letters: dead
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect(),
        offsets: offsets.iter().map(|r| (r.get(0), r.get(1))).collect(),
    }
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The records all committed batches took, summed: equals the records on the topic exactly
/// when every record was in exactly one committed batch.
pub async fn batched_rows(db: &TestDb) -> i64 {
    db.connect()
        .await
        .query_one(
            "SELECT coalesce(sum(input_rows), 0)::bigint FROM stream_batches",
            &[],
        )
        .await
        .expect("sum of input_rows")
        .get(0)
}

/// `tenant_stats` must always equal the grouping of `current_orders` it summarises.
pub async fn assert_tenant_stats_match(db: &TestDb) {
    let c = db.connect().await;
    let differences: i64 = c
        .query_one(
            "SELECT count(*) FROM (
                (SELECT tenant, status, orders, amount_cents FROM tenant_stats WHERE orders <> 0
                 EXCEPT SELECT tenant, status, count(*), sum(amount_cents)::bigint FROM current_orders GROUP BY 1, 2)
                UNION ALL
                (SELECT tenant, status, count(*), sum(amount_cents)::bigint FROM current_orders GROUP BY 1, 2
                 EXCEPT SELECT tenant, status, orders, amount_cents FROM tenant_stats WHERE orders <> 0)
             ) AS d",
            &[],
        )
        .await
        .expect("compare tenant_stats")
        .get(0);
    assert_eq!(
        differences, 0,
        "tenant_stats = the counts of current_orders by tenant and status"
    );
}
