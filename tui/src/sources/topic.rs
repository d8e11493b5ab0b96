//! The topic tail: a plain consumer that `assign()`s every partition of the topic at its end
//! minus a little history, reads forward, and never commits. It joins no consumer group (no
//! `subscribe`), so it cannot take partitions from the processor or move its offsets.
//!
//! librdkafka's consumer blocks in `poll`, so it runs on a thread of its own and hands the UI
//! batches of records every [`BATCH_INTERVAL`]: at 5,000 events/s that is a few messages a
//! second on the channel, not thousands. Every [`METADATA_INTERVAL`] it re-reads the topic's
//! metadata: that finds new partitions, and it is how a dead broker is noticed (and its return).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message, Timestamp};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use spine_core::config::KafkaProperties;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::wall_now;
use crate::app::{BrokerReport, Msg, TAIL_CAPACITY};
use crate::model::TailRecord;

pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);
pub const METADATA_INTERVAL: Duration = Duration::from_secs(2);
const BROKER_TIMEOUT: Duration = Duration::from_millis(1500);
/// The most records in one message to the UI (the UI keeps [`TAIL_CAPACITY`] anyway).
const MAX_BATCH: usize = 2 * TAIL_CAPACITY;

#[derive(Clone, Debug)]
pub struct TailConfig {
    pub bootstrap: String,
    pub topic: String,
    /// History read at start, shared among the partitions.
    pub backfill: usize,
    /// `-X`/`KAFKA_PROPERTIES` (SASL, TLS).
    pub properties: KafkaProperties,
    /// The consumer's `group.id`: librdkafka wants one, but it is never joined nor committed to.
    pub group: String,
}

impl TailConfig {
    pub fn new(bootstrap: &str, topic: &str) -> TailConfig {
        TailConfig {
            bootstrap: bootstrap.to_owned(),
            topic: topic.to_owned(),
            backfill: TAIL_CAPACITY,
            group: throwaway_group(),
            properties: KafkaProperties::default(),
        }
    }

    pub fn with_properties(mut self, properties: KafkaProperties) -> TailConfig {
        self.properties = properties;
        self
    }
}

/// A group id no one else uses.
pub fn throwaway_group() -> String {
    format!(
        "spine-tui-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default()
    )
}

/// Remembers librdkafka's latest error, the most telling reason to show for a dead broker.
#[derive(Default)]
pub struct TailContext {
    last_error: Mutex<Option<String>>,
}

impl ClientContext for TailContext {
    fn error(&self, error: KafkaError, reason: &str) {
        debug!(%error, reason, "kafka client error");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_owned());
        }
    }
}

impl ConsumerContext for TailContext {}

impl TailContext {
    pub fn take_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut e| e.take())
    }
}

/// A consumer that reads without ever committing. Its group id is unused: no `subscribe`, no
/// commit, so the broker never even hears of it as a group. With `partition_eof`, reaching the
/// end of a partition is reported (peek needs to know).
pub fn consumer(
    bootstrap: &str,
    properties: &KafkaProperties,
    group: &str,
    partition_eof: bool,
) -> Result<BaseConsumer<TailContext>, KafkaError> {
    properties
        .client_config()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        .set("enable.partition.eof", partition_eof.to_string())
        .set("allow.auto.create.topics", "false")
        .set("client.id", "spine-tui")
        // Bounded prefetch: memory stays small whatever the topic's rate.
        .set("queued.max.messages.kbytes", "4096")
        .set("fetch.wait.max.ms", "100")
        // Notice a returning broker within seconds.
        .set("reconnect.backoff.ms", "200")
        .set("reconnect.backoff.max.ms", "2000")
        .set("socket.connection.setup.timeout.ms", "3000")
        .set_log_level(RDKafkaLogLevel::Warning)
        .create_with_context(TailContext::default())
}

/// Starts the tail on its own thread. It ends when `cancel` is cancelled or the UI has gone.
pub fn spawn(
    config: TailConfig,
    tx: mpsc::Sender<Msg>,
    cancel: CancellationToken,
) -> std::thread::JoinHandle<()> {
    spawn_seekable(config, tx, cancel, std::sync::mpsc::channel().1)
}

/// [`spawn`], and each `(partition, offset)` sent on `seeks` moves that partition there
/// (the TUI's `o`).
pub fn spawn_seekable(
    config: TailConfig,
    tx: mpsc::Sender<Msg>,
    cancel: CancellationToken,
    seeks: std::sync::mpsc::Receiver<(i32, i64)>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("topic-tail".into())
        .spawn(move || run(&config, &tx, &cancel, &seeks))
        .unwrap_or_else(|e| panic!("cannot start the topic tail thread: {e}"))
}

/// Where each assigned partition stands.
struct Position {
    /// The next offset to read.
    next: i64,
    /// The end of the partition when the tail began: records before it are backfill.
    initial_end: i64,
}

fn run(
    config: &TailConfig,
    tx: &mpsc::Sender<Msg>,
    cancel: &CancellationToken,
    seeks: &std::sync::mpsc::Receiver<(i32, i64)>,
) {
    let report = |report: BrokerReport| {
        tx.blocking_send(Msg::Broker {
            at: wall_now(),
            report,
        })
        .is_ok()
    };
    let consumer = match consumer(&config.bootstrap, &config.properties, &config.group, false) {
        Ok(c) => c,
        Err(e) => {
            report(BrokerReport::Down {
                error: format!("cannot create a Kafka client: {e}"),
            });
            return;
        }
    };
    let mut positions: BTreeMap<i32, Position> = BTreeMap::new();
    let mut next_metadata = Instant::now();
    let mut was_up: Option<bool> = None;
    let mut batch: Vec<TailRecord> = Vec::new();
    let mut batch_started = Instant::now();

    while !cancel.is_cancelled() {
        if Instant::now() >= next_metadata {
            let status = refresh(config, &consumer, &mut positions);
            let up = !matches!(status, BrokerReport::Down { .. });
            if was_up != Some(up) {
                match &status {
                    BrokerReport::Down { error } => {
                        warn!(bootstrap = %config.bootstrap, %error, "broker unreachable; retrying")
                    }
                    _ => {
                        info!(bootstrap = %config.bootstrap, topic = %config.topic, partitions = positions.len(), "tailing")
                    }
                }
                was_up = Some(up);
            }
            if !report(status) {
                return;
            }
            next_metadata = Instant::now()
                + if up {
                    METADATA_INTERVAL
                } else {
                    Duration::from_secs(1)
                };
        }
        while let Ok((partition, offset)) = seeks.try_recv() {
            seek(config, &consumer, &mut positions, partition, offset);
            batch.clear(); // read before the seek: the UI has dropped those
        }
        if positions.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let mut record = record_of(&m);
                if let Some(p) = positions.get_mut(&m.partition()) {
                    record.backfill = m.offset() < p.initial_end;
                    p.next = m.offset() + 1;
                }
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                batch.push(record);
            }
            Some(Err(e)) => debug!(error = %e, "consume error"),
            None => {}
        }
        if !batch.is_empty()
            && (batch_started.elapsed() >= BATCH_INTERVAL || batch.len() >= MAX_BATCH)
        {
            let records = std::mem::take(&mut batch);
            if tx
                .blocking_send(Msg::Tail {
                    at: Instant::now(),
                    records,
                })
                .is_err()
            {
                return;
            }
        }
    }
}

/// Moves one partition to `offset` (the others read on from where they are).
fn seek(
    config: &TailConfig,
    consumer: &BaseConsumer<TailContext>,
    positions: &mut BTreeMap<i32, Position>,
    partition: i32,
    offset: i64,
) {
    let Some(p) = positions.get_mut(&partition) else {
        warn!(partition, "seek to a partition not assigned (yet)");
        return;
    };
    p.next = offset;
    let mut tpl = TopicPartitionList::new();
    for (&p, pos) in positions.iter() {
        if let Err(e) = tpl.add_partition_offset(&config.topic, p, Offset::Offset(pos.next)) {
            warn!(partition = p, error = %e, "cannot add partition");
        }
    }
    match consumer.assign(&tpl) {
        Ok(()) => info!(partition, offset, "seek"),
        Err(e) => warn!(partition, offset, error = %e, "seek failed"),
    }
}

/// A record as the tail keeps it: decoded, with its timestamp and headers for the detail view.
fn record_of(m: &BorrowedMessage<'_>) -> TailRecord {
    let mut record = TailRecord::decode(m.partition(), m.offset(), m.key(), m.payload());
    record.raw.timestamp_ms = match m.timestamp() {
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        Timestamp::NotAvailable => None,
    };
    if let Some(headers) = m.headers() {
        record.raw.headers = headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect();
    }
    record
}

/// Reads the topic's metadata; assigns partitions not yet assigned (at their end minus their
/// share of the backfill) and keeps the others where they are.
fn refresh(
    config: &TailConfig,
    consumer: &BaseConsumer<TailContext>,
    positions: &mut BTreeMap<i32, Position>,
) -> BrokerReport {
    let down = |e: &dyn std::fmt::Display| BrokerReport::Down {
        error: consumer
            .context()
            .take_error()
            .unwrap_or_else(|| e.to_string()),
    };
    let metadata = match consumer.fetch_metadata(Some(&config.topic), BROKER_TIMEOUT) {
        Ok(m) => {
            consumer.context().take_error(); // errors before this answer are history
            m
        }
        Err(e) => return down(&e),
    };
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == config.topic) else {
        return BrokerReport::TopicMissing;
    };
    let missing = matches!(
        topic.error().map(RDKafkaErrorCode::from),
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic)
    );
    if missing || topic.partitions().is_empty() {
        if !positions.is_empty() {
            // The topic went away (deleted and maybe re-created): start afresh when it is back.
            positions.clear();
            let _ = consumer.unassign();
        }
        return BrokerReport::TopicMissing;
    }
    let partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    let new: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|p| !positions.contains_key(p))
        .collect();
    if !new.is_empty() {
        let share = (config.backfill / partitions.len()).max(1) as i64;
        for &p in &new {
            let (low, high) = match consumer.fetch_watermarks(&config.topic, p, BROKER_TIMEOUT) {
                Ok(w) => w,
                Err(e) => return down(&e),
            };
            positions.insert(
                p,
                Position {
                    next: (high - share).max(low).max(0),
                    initial_end: high,
                },
            );
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, pos) in positions.iter() {
            if let Err(e) = tpl.add_partition_offset(&config.topic, p, Offset::Offset(pos.next)) {
                warn!(partition = p, error = %e, "cannot add partition");
            }
        }
        if let Err(e) = consumer.assign(&tpl) {
            return down(&e);
        }
        info!(partitions = ?new, "assigned new partitions");
    }
    BrokerReport::Up {
        partitions: partitions.len(),
    }
}
