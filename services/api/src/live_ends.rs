//! The partitions' live ends (high watermarks), read from the broker for `GET /batches`
//! (docs/contracts.md, "HTTP API"): lag is measured against where the log ends now, not where
//! it ended when the processor last committed.
//!
//! - One broker round trip serves every request of the following second ([`MAX_AGE`]), and
//!   requests that arrive while it is under way wait for its answer rather than asking again
//!   (single flight): a thousand requests make one broker call.
//! - librdkafka's calls block, so they run on tokio's blocking pool, and a request never waits
//!   more than about [`BOUND`] for them; no answer in time counts as no answer.
//! - No answer (broker down, topic missing) is cached like an answer, for [`MAX_AGE`]: the
//!   caller falls back to the ends stored with the offsets, and says so.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use spine_core::throttle::Throttle;
use tracing::warn;

/// How long one broker answer is used.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// The longest a request waits for the broker (metadata and every partition's end together).
pub const BOUND: Duration = Duration::from_millis(1500);

/// Each partition's end, as the broker said.
pub type Ends = BTreeMap<i32, i64>;

/// Logs librdkafka's errors (a broker that is down is reported on every reconnect) at most
/// once per distinct message and interval.
struct QuietContext {
    errors: Throttle,
}

impl ClientContext for QuietContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("{error}: {reason}");
        if self.errors.allow(&text) {
            warn!(error = %text, "kafka client error; /batches uses the stored partition ends until the broker answers");
        }
    }
}

impl ConsumerContext for QuietContext {}

struct Cached {
    at: Instant,
    ends: Option<Arc<Ends>>,
}

pub struct LiveEnds {
    client: Arc<BaseConsumer<QuietContext>>,
    topic: String,
    cache: tokio::sync::Mutex<Option<Cached>>,
    broker_calls: AtomicU64,
}

impl LiveEnds {
    /// A client of `bootstrap` for `topic`'s ends. Connects lazily: a broker that is down now
    /// is not an error here.
    pub fn new(bootstrap: &str, topic: &str) -> anyhow::Result<LiveEnds> {
        let client: BaseConsumer<QuietContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("client.id", "spine-api")
            // Required by the consumer API; this client never joins the group.
            .set("group.id", "spine-api")
            .set("enable.auto.commit", "false")
            // Back soon after the broker is: reconnect at least every second.
            .set("reconnect.backoff.max.ms", "1000")
            .create_with_context(QuietContext {
                errors: Throttle::default(),
            })
            .context("creating the Kafka client that reads the partitions' ends")?;
        Ok(LiveEnds {
            client: Arc::new(client),
            topic: topic.to_owned(),
            cache: tokio::sync::Mutex::new(None),
            broker_calls: AtomicU64::new(0),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// How many times the broker was asked (each time: metadata, then every partition's end).
    pub fn broker_calls(&self) -> u64 {
        self.broker_calls.load(Ordering::Relaxed)
    }

    /// The topic's partition ends, at most [`MAX_AGE`] old; `None` when the broker did not
    /// answer within [`BOUND`].
    pub async fn get(&self) -> Option<Arc<Ends>> {
        // Held while asking: whoever comes meanwhile waits for this answer (single flight).
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref().filter(|c| c.at.elapsed() < MAX_AGE) {
            return c.ends.clone();
        }
        self.broker_calls.fetch_add(1, Ordering::Relaxed);
        let (client, topic) = (self.client.clone(), self.topic.clone());
        let deadline = Instant::now() + BOUND;
        let asked = tokio::task::spawn_blocking(move || fetch(&client, &topic, deadline));
        let ends = match tokio::time::timeout(BOUND + Duration::from_millis(100), asked).await {
            Ok(Ok(Ok(ends))) => Some(Arc::new(ends)),
            Ok(Ok(Err(e))) => {
                let text = format!("{e:#}");
                if self.client.context().errors.allow(&text) {
                    warn!(error = %text, topic = %self.topic, "cannot read the partitions' ends; /batches uses the stored ones");
                }
                None
            }
            Ok(Err(_)) | Err(_) => None, // the blocking task panicked, or overran its deadline
        };
        *cache = Some(Cached {
            at: Instant::now(),
            ends: ends.clone(),
        });
        ends
    }
}

/// Metadata, then every partition's end, all within `deadline`.
fn fetch(
    client: &BaseConsumer<QuietContext>,
    topic: &str,
    deadline: Instant,
) -> anyhow::Result<Ends> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let metadata = client
        .fetch_metadata(Some(topic), left())
        .context("reading the topic's metadata")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        anyhow::bail!("topic {topic} does not exist (or has no partitions)");
    }
    partitions
        .into_iter()
        .map(|p| {
            client
                .fetch_watermarks(topic, p, left())
                .map(|(_, end)| (p, end))
                .with_context(|| format!("reading the end of {topic}/{p}"))
        })
        .collect()
}
