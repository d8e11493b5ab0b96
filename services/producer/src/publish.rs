//! Getting events onto the topic: topic creation, an idempotent producer, pacing, flushing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::{opts, IntCounter, IntCounterVec, Registry};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use spine_core::backoff::{sleep_blocking, Backoff};
use spine_core::config::KafkaProperties;
use spine_core::event::EventType;
use spine_core::metrics::register;
use spine_core::throttle::Throttle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::chaos::{Chaos, Kind};
use crate::generator::Generator;
use crate::Produced;

/// `spine_producer_events_total{tenant,event_type}` and, with `--chaos`,
/// `spine_producer_chaos_total{kind}`, counted on delivery.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// One counter per (tenant, event type), then one per chaos kind, so the delivery
    /// callback finds its counter by index with no lookups.
    by_label: Vec<IntCounter>,
    tenants: usize,
}

impl Metrics {
    pub fn new(tenants: &[String]) -> Metrics {
        let registry = Registry::new();
        let events = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_producer_events_total",
                    "Events acknowledged by the broker"
                ),
                &["tenant", "event_type"],
            )
            .expect("valid metric"),
        );
        let chaos = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_producer_chaos_total",
                    "Extra records sent by --chaos: duplicate, late, malformed"
                ),
                &["kind"],
            )
            .expect("valid metric"),
        );
        let by_label = tenants
            .iter()
            .flat_map(|t| EventType::ALL.iter().map(move |ty| (t, ty)))
            .map(|(t, ty)| events.with_label_values(&[t.as_str(), ty.as_str()]))
            .chain(
                Kind::ALL
                    .iter()
                    .map(|k| chaos.with_label_values(&[k.as_str()])),
            )
            .collect();
        Metrics {
            registry,
            by_label,
            tenants: tenants.len(),
        }
    }

    fn event_label(&self, tenant: usize, event_type: EventType) -> usize {
        let ty = EventType::ALL
            .iter()
            .position(|t| *t == event_type)
            .unwrap_or(0);
        tenant * EventType::ALL.len() + ty
    }

    fn chaos_label(&self, kind: Kind) -> usize {
        let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
        self.tenants * EventType::ALL.len() + k
    }
}

pub struct DeliveryContext {
    metrics: Metrics,
    delivered: AtomicU64,
    failed: AtomicU64,
    errors: Throttle,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if self.errors.allow(reason) {
            warn!(error = %error, reason, "kafka client error (retrying)");
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, label: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = self.metrics.by_label.get(label) {
                    c.inc();
                }
            }
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!(error = %e, "an event could not be delivered");
                }
            }
        }
    }
}

pub type EventProducer = ThreadedProducer<DeliveryContext>;

/// `properties` are `-X`/`KAFKA_PROPERTIES` (SASL, TLS); the settings below win over them.
pub fn create_producer(
    bootstrap: &str,
    properties: &KafkaProperties,
    metrics: Metrics,
) -> anyhow::Result<EventProducer> {
    properties
        .client_config()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "spine-producer")
        // Exactly one copy of each event per send, in order per partition, even on retries.
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // lz4 or nothing: the local broker (Tansu) cannot read snappy-compressed batches back
        // (docs/architecture.md, "The local broker").
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        // Keep retrying while the broker is away; the generator pauses when the queue is full.
        .set("message.timeout.ms", "0")
        .create_with_context(DeliveryContext {
            metrics,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: Throttle::default(),
        })
        .context("creating the Kafka producer")
}

/// Creates `topic` with `partitions` partitions unless it exists. Retries while the broker
/// does not answer or is not ready yet; gives up at once, with the broker's reason, on an
/// answer that retrying cannot change (not authorised, an invalid partition count,
/// replication factor or topic name: see [`is_permanent`]).
pub async fn ensure_topic(
    bootstrap: &str,
    properties: &KafkaProperties,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = properties
        .client_config()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating the Kafka admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let code = match admin.create_topics([&new], &opts).await {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) => {
                    info!(topic, partitions, "created the topic");
                    return Ok(());
                }
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => return Ok(()),
                Some(Err((_, code))) => code,
            },
            Err(KafkaError::AdminOp(code)) => code,
            // The client refused to build the request: the arguments are wrong, for good.
            Err(KafkaError::AdminOpCreation(reason)) => {
                anyhow::bail!(
                    "cannot ask to create topic {topic} with {partitions} partitions: {reason}"
                )
            }
            Err(e) => {
                warn!(topic, error = %e, retry_in_ms = backoff.peek().as_millis() as u64,
                      "cannot reach the broker to create the topic yet");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        if is_permanent(code) {
            anyhow::bail!(
                "the broker refuses to create topic {topic} with {partitions} partitions: \
                 {code} (retrying cannot change that)"
            );
        }
        warn!(topic, error = %code, retry_in_ms = backoff.peek().as_millis() as u64,
              "cannot create the topic yet");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Whether the broker's answer to creating a topic stays the same however often it is asked:
/// the client is not allowed to, or the request itself is wrong. Everything else (timeouts,
/// no controller yet, a broker restarting) passes with time.
pub fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::InvalidPartitions
            | C::InvalidReplicationFactor
            | C::InvalidReplicaAssignment
            | C::InvalidTopic
            | C::InvalidConfig
            | C::PolicyViolation
            | C::InvalidRequest
            | C::UnsupportedVersion
    )
}

/// Generates and sends events at `rate` per second (0 = as fast as possible) until `count`
/// or shutdown, then flushes.
pub fn produce_loop(
    producer: &EventProducer,
    topic: &str,
    generator: &mut Generator,
    chaos: &mut Chaos,
    rate: u64,
    count: Option<u64>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Produced> {
    let started = Instant::now();
    let mut sent = 0u64;
    let mut last_report = Instant::now();
    while count.is_none_or(|c| sent < c) && !shutdown.is_cancelled() {
        if rate > 0 {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            if sent >= due {
                let next = Duration::from_secs_f64((sent + 1) as f64 / rate as f64);
                let wait = next
                    .saturating_sub(started.elapsed())
                    .min(Duration::from_millis(50));
                std::thread::sleep(wait);
                continue;
            }
        }
        let event = generator.next_event(chrono::Utc::now());
        let metrics = &producer.context().metrics;
        let label = metrics.event_label(generator.tenant_index(&event.tenant), event.event_type);
        if !send(
            producer,
            topic,
            &event.tenant,
            &event.to_json(),
            label,
            shutdown,
        )? {
            return finish(producer, sent);
        }
        if let Some((kind, value)) = chaos.after(&event) {
            if !send(
                producer,
                topic,
                &event.tenant,
                &value,
                metrics.chaos_label(kind),
                shutdown,
            )? {
                return finish(producer, sent);
            }
        }
        sent += 1;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            info!(
                sent,
                delivered = producer.context().delivered.load(Ordering::Relaxed),
                rate = (sent as f64 / started.elapsed().as_secs_f64()) as u64,
                "producing"
            );
        }
    }
    finish(producer, sent)
}

/// Sends one record keyed by `tenant`, waiting while the local queue is full (the broker is
/// slow or away). False when shutdown came first.
fn send(
    producer: &EventProducer,
    topic: &str,
    tenant: &str,
    value: &[u8],
    label: usize,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let mut record = BaseRecord::with_opaque_to(topic, label)
        .key(tenant)
        .payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                if !sleep_blocking(shutdown, Duration::from_millis(5)) {
                    return Ok(false);
                }
            }
            Err((e, _)) => return Err(anyhow::anyhow!(e).context("sending an event")),
        }
    }
}

fn finish(producer: &EventProducer, sent: u64) -> anyhow::Result<Produced> {
    info!(sent, "flushing");
    if let Err(e) = producer.flush(Duration::from_secs(30)) {
        warn!(error = %e, "not everything was delivered within 30 s of stopping");
    }
    let ctx = producer.context();
    let produced = Produced {
        sent,
        delivered: ctx.delivered.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed),
    };
    info!(
        sent = produced.sent,
        delivered = produced.delivered,
        failed = produced.failed,
        "stopped"
    );
    Ok(produced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_retrying_cannot_change_are_permanent() {
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::SaslAuthenticationFailed,
            RDKafkaErrorCode::InvalidPartitions,
            RDKafkaErrorCode::InvalidReplicationFactor,
            RDKafkaErrorCode::InvalidTopic,
            RDKafkaErrorCode::PolicyViolation,
        ] {
            assert!(is_permanent(code), "{code:?} should stop the retries");
        }
    }

    #[test]
    fn a_broker_away_or_not_ready_is_retried() {
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::OperationTimedOut,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotController,
            RDKafkaErrorCode::BrokerNotAvailable,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::CoordinatorLoadInProgress,
            RDKafkaErrorCode::Resolve,
        ] {
            assert!(!is_permanent(code), "{code:?} should be retried");
        }
    }
}
