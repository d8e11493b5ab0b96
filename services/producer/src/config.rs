//! `spine-producer`'s configuration (docs/contracts.md, "Configuration").

use clap::{Parser, ValueEnum};
use spine_core::config::{parse_u64_in, KafkaArgs, LogArgs, MetricsArgs};
use spine_core::event::{check_identifier, MAX_ID_CHARS};

/// Writes synthetic order events to the topic, keyed by tenant.
#[derive(Parser, Debug, Clone)]
#[command(name = "spine-producer", version)]
pub struct ProducerArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// Partitions of the topic when the producer has to create it
    #[arg(long = "topic-partitions", env = "TOPIC_PARTITIONS", default_value = "3",
          value_parser = |s: &str| parse_u64_in(s, 1, 10_000, "a number of partitions").map(|v| v as i32))]
    pub topic_partitions: i32,

    /// Tenants, comma separated
    #[arg(long, env = "TENANTS", default_value = "acme,globex,initech", value_parser = parse_tenants)]
    pub tenants: Tenants,

    /// Events per second, spread evenly; 0 = as fast as the broker takes them
    #[arg(long = "events-per-second", env = "EVENTS_PER_SECOND", default_value = "20",
          value_parser = |s: &str| parse_u64_in(s, 0, 10_000_000, "a number of events per second"))]
    pub events_per_second: u64,

    /// lifecycle: orders walk placed -> paid -> shipped (some cancelled); random: the seed's
    /// independent random events (weights 5:4:3:1)
    #[arg(long, env = "PRODUCER_MODE", default_value = "lifecycle", value_enum)]
    pub mode: Mode,

    /// Produce this many events, then flush and exit (default: until stopped)
    #[arg(long, value_parser = |s: &str| parse_u64_in(s, 1, u64::MAX, "a number of events"))]
    pub count: Option<u64>,

    /// Seed for the event generator (default: random), for reproducible streams
    #[arg(long)]
    pub seed: Option<u64>,

    /// After this fraction of events (0 to 1), add a duplicate, a late event or a malformed
    /// record, to watch the processor's defences work (default 0: none)
    #[arg(long, default_value = "0", value_parser = parse_fraction)]
    pub chaos: f64,

    /// With --chaos: pad each malformed record with spaces to this many bytes (at most
    /// 900000), to flood the processor with big bad records
    #[arg(long, value_parser = |s: &str| parse_u64_in(s, 1, 900_000, "a number of bytes"))]
    pub malformed_bytes: Option<u64>,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Lifecycle,
    Random,
}

/// A non-empty list of valid tenant names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenants(pub Vec<String>);

fn parse_tenants(s: &str) -> Result<Tenants, String> {
    let tenants: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if tenants.is_empty() {
        return Err("expected a comma-separated list of tenant names".into());
    }
    for t in &tenants {
        if check_identifier(t).is_err() {
            return Err(format!(
                "expected tenant names of 1 to {MAX_ID_CHARS} characters without control characters"
            ));
        }
    }
    Ok(Tenants(tenants))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("expected a fraction from 0 to 1, e.g. 0.05".into()),
    }
}
