//! `spine-producer`: synthetic order events onto the topic, keyed by tenant so each tenant's
//! events keep their order on the log.

pub mod chaos;
pub mod config;
pub mod generator;
pub mod publish;

use anyhow::Context as _;
use spine_core::ops::OpsServer;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::ProducerArgs;

/// What a run produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Produced {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// Creates the topic if needed, then produces until `shutdown` (or `--count` events), and
/// flushes everything before returning.
pub async fn run(args: ProducerArgs, shutdown: CancellationToken) -> anyhow::Result<Produced> {
    let metrics = publish::Metrics::new(&args.tenants.0);
    let ops = OpsServer::start(args.metrics.addr, metrics.registry.clone(), &shutdown).await?;
    let readiness = ops.readiness.clone();
    let properties = args.kafka.client_properties();

    let ensured = tokio::select! {
        r = publish::ensure_topic(&args.kafka.bootstrap, &properties, &args.kafka.topic, args.topic_partitions) => Some(r),
        _ = shutdown.cancelled() => None,
    };
    match ensured {
        None => return Ok(Produced::default()),
        Some(r) => r?,
    }
    readiness.set(true);

    let seed = args.seed.unwrap_or_else(rand::random);
    info!(topic = %args.kafka.topic, tenants = ?args.tenants.0, mode = ?args.mode,
          events_per_second = args.events_per_second, count = ?args.count, seed, "producing");
    let producer = publish::create_producer(&args.kafka.bootstrap, &properties, metrics)?;
    let stop = shutdown.clone();
    let produced = tokio::task::spawn_blocking(move || {
        let mut generator = generator::Generator::new(args.tenants.0.clone(), args.mode, seed);
        let mut chaos = chaos::Chaos::new(args.chaos, seed)
            .with_malformed_bytes(args.malformed_bytes.map(|n| n as usize));
        publish::produce_loop(
            &producer,
            &args.kafka.topic,
            &mut generator,
            &mut chaos,
            args.events_per_second,
            args.count,
            &stop,
        )
    })
    .await
    .context("the producing thread panicked")??;
    ops.stop();
    Ok(produced)
}
