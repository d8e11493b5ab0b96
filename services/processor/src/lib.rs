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
pub mod metrics;
pub mod sink;
pub mod stream;
pub mod watchdog;

use std::time::Duration;

use anyhow::Context as _;
use spine_core::backoff::Backoff;
use spine_core::ops::OpsServer;
use spine_core::{db, schema};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::ProcessorArgs;
pub use stream::Summary;

/// Runs the processor until `shutdown` is cancelled (or, with `--available-now`, until the
/// topic is drained). Start-up waits for Postgres, retrying, and migrates the schema.
pub async fn run(args: ProcessorArgs, shutdown: CancellationToken) -> anyhow::Result<Summary> {
    let metrics = metrics::Metrics::new();
    let ops = OpsServer::start(args.metrics.addr, metrics.registry.clone(), &shutdown).await?;
    let readiness = ops.readiness.clone();

    let pool = db::pool(
        args.postgres.pg_config("spine-processor"),
        4,
        // A 50,000-row batch takes well under a second; this only catches a hung server.
        Duration::from_secs(300),
    )?;
    info!(postgres = %args.postgres.describe(), "connecting to Postgres");
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let attempt = async {
            let mut client = pool.get().await.map_err(anyhow::Error::from)?;
            schema::migrate(&mut client).await
        };
        let error = tokio::select! {
            r = attempt => match r {
                Ok(()) => break,
                Err(e) => e,
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
    let consumer = stream::create_consumer(&cfg, pool, shutdown.clone())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("stream".into())
        .spawn(move || {
            let result = stream::run(&consumer, &cfg, &metrics, &readiness);
            drop(consumer); // leaves the group before the result is reported
            let _ = tx.send(result);
        })
        .context("starting the stream thread")?;
    let result = rx.await.context("the stream thread panicked")?;
    ops.stop();
    result
}
