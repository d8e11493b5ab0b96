//! `spine-processor`: the micro-batch stream processor (docs/architecture.md; its settings,
//! tables and metrics are in docs/contracts.md).
//!
//! Every `TRIGGER_INTERVAL_MS` it takes what arrived since the last batch, validates and
//! reduces it, and writes events, order upserts, dead letters, the new offsets and the batch's
//! row in ONE Postgres transaction ([`sink`]). Offsets live in Postgres, so a processor killed
//! at any instant resumes exactly where the last committed batch ended ([`stream`]).

pub mod batch;
pub mod config;
pub mod faults;
pub mod gaps;
pub mod heartbeat;
pub mod metrics;
pub mod pg_error;
pub mod sink;
pub mod stream;
pub mod watchdog;

use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::Consumer as _;
use spine_core::backoff::Backoff;
use spine_core::ops::OpsServer;
use spine_core::{db, schema};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::ProcessorArgs;
pub use stream::Summary;

/// The processor's Postgres sessions (docs/architecture.md, "A frozen or cut-off peer"): a
/// batch's statements take well under a second, so every limit is seconds. A replica frozen or
/// cut off inside a batch's transaction loses its session (and the batch lock) after
/// `idle_in_transaction_timeout`; a writer waiting for a lock gives up after `lock_timeout`
/// and retries; keepalives and `tcp_user_timeout` notice a server gone from the network.
pub fn session_settings() -> db::SessionSettings {
    db::SessionSettings {
        statement_timeout: Duration::from_secs(20),
        lock_timeout: Some(Duration::from_secs(10)),
        idle_in_transaction_timeout: Some(Duration::from_secs(10)),
        keepalive_idle: Some(Duration::from_secs(10)),
        tcp_user_timeout: Some(Duration::from_secs(30)),
    }
}

/// Why start-up did not get past the schema.
enum Startup {
    /// Postgres is unreachable or busy: wait and try again.
    NotReady(anyhow::Error),
    /// Retrying cannot help (a migration that does not apply, a missing privilege, a table
    /// dropped by hand): stop, saying so.
    Failed(anyhow::Error),
}

/// The tables the processor writes: present whenever the migrations say they are.
const TABLES: &[&str] = &[
    "events",
    "current_orders",
    "tenant_stats",
    "dead_letters",
    "stream_offsets",
    "stream_batches",
    "stream_batch_partitions",
    "stream_gaps",
];

/// Applies pending migrations on a connection of its own (a migration may wait for another
/// replica's and rewrite a table: minutes, not the batches' seconds), then checks that every
/// table is there. The connection is closed afterwards, never handed to a batch.
async fn migrate(client: deadpool_postgres::Object) -> Result<(), Startup> {
    let mut client = deadpool_postgres::Object::take(client);
    let classify = |e: anyhow::Error| {
        let transient = e
            .chain()
            .find_map(|c| c.downcast_ref::<tokio_postgres::Error>())
            .is_some_and(pg_error::is_transient);
        if transient {
            Startup::NotReady(e)
        } else {
            Startup::Failed(
                e.context("migrating the schema failed and retrying cannot fix it; stopping"),
            )
        }
    };
    client
        .batch_execute(
            "SET statement_timeout = '10min'; SET lock_timeout = '10min'; \
             SET idle_in_transaction_session_timeout = 0",
        )
        .await
        .map_err(|e| Startup::NotReady(e.into()))?;
    schema::migrate(&mut client).await.map_err(classify)?;
    let missing: Vec<String> = client
        .query(
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL",
            &[&TABLES],
        )
        .await
        .map_err(|e| Startup::NotReady(e.into()))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !missing.is_empty() {
        return Err(Startup::Failed(anyhow::anyhow!(
            "table {} missing although the migrations that create it are recorded as applied \
             (dropped by hand?); stopping: restore it from a backup, or drop the database and \
             let the processor re-create it",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// Runs the processor until `shutdown` is cancelled (or, with `--available-now`, until the
/// topic is drained). Start-up waits for Postgres, retrying, and migrates the schema.
pub async fn run(args: ProcessorArgs, shutdown: CancellationToken) -> anyhow::Result<Summary> {
    let metrics = metrics::Metrics::new();
    let ops = OpsServer::start(args.metrics.addr, metrics.registry.clone(), &shutdown).await?;
    let readiness = ops.readiness.clone();

    let pool = db::pool_with(
        args.postgres.pg_config("spine-processor"),
        4,
        &session_settings(),
    )?;
    info!(postgres = %args.postgres.describe(), "connecting to Postgres");
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let attempt = async {
            let client = pool.get().await.map_err(|e| Startup::NotReady(e.into()))?;
            migrate(client).await
        };
        let error = tokio::select! {
            r = attempt => match r {
                Ok(()) => break,
                Err(Startup::NotReady(e)) => e,
                Err(Startup::Failed(e)) => return Err(e),
            },
            _ = shutdown.cancelled() => return Ok(Summary::default()),
        };
        warn!(
            error = format!("{error:#}"),
            retry_in_ms = backoff.peek().as_millis() as u64,
            "Postgres not ready"
        );
        if !backoff.wait(&shutdown).await {
            return Ok(Summary::default());
        }
    }
    info!("schema is current");

    let cfg = stream::LoopConfig {
        bootstrap: args.kafka.bootstrap.clone(),
        kafka_properties: args.kafka.client_properties(),
        topic: args.kafka.topic.clone(),
        consumer_group: args.consumer_group.clone(),
        trigger: if args.available_now {
            Duration::ZERO
        } else {
            args.trigger_interval()
        },
        max_batch_rows: usize::try_from(args.max_batch_rows).unwrap_or(usize::MAX),
        max_batch_bytes: usize::try_from(args.max_batch_bytes).unwrap_or(usize::MAX),
        available_now: args.available_now,
        on_data_loss: args.on_data_loss,
        crash_at: args.crash_at,
    };
    // The batches' own connections (at most two: a write, and one being replaced after a
    // deadline), on the stream thread's runtime.
    let write_pool = db::pool_with(
        args.postgres.pg_config("spine-processor"),
        2,
        &session_settings(),
    )?;
    let consumer =
        stream::create_consumer_with_writer(&cfg, pool.clone(), write_pool, shutdown.clone())?;
    let stop_beating = shutdown.child_token();
    let beating = tokio::spawn(heartbeat::run(
        pool,
        heartbeat::Identity {
            replica_id: heartbeat::replica_id(),
            consumer_group: cfg.consumer_group.clone(),
            topic: cfg.topic.clone(),
            trigger: cfg.trigger,
            started_at: chrono::Utc::now(),
        },
        consumer.context().assigned_partitions(),
        stop_beating.clone(),
    ));
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("stream".into())
        .spawn(move || {
            let result = stream::run(&consumer, &cfg, &metrics, &readiness);
            drop(consumer); // leaves the group before the result is reported
            let _ = tx.send(result);
        })
        .context("starting the stream thread")?;
    let result = rx.await.context("the stream thread panicked");
    // A replica that stops cleanly says so at once: its heartbeat row goes.
    stop_beating.cancel();
    let _ = beating.await;
    let result = result?;
    ops.stop();
    result
}
