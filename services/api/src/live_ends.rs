//! The partitions' live ends (high watermarks), read from the broker for `GET /batches`
//! (docs/contracts.md, "HTTP API"): lag is measured against where the log ends now, not where
//! it ended when the processor last committed.
//!
//! - One broker round trip serves every request of the following second ([`MAX_AGE`]), and
//!   requests that arrive while it is under way share it rather than asking again (single
//!   flight): a thousand requests make one broker call.
//! - librdkafka's calls block, so they run on tokio's blocking pool, within [`BOUND`] in all.
//!   A request waits for them at most [`WAIT`]: a broker slower than that (or down) makes this
//!   request fall back, while the call goes on and its answer serves the next requests; and
//!   once a call has failed, requests stop waiting at all until one succeeds. So a client
//!   polling with a short timeout (spine-tui: 800 ms) never sees the API hang because the
//!   broker does.
//! - No answer (broker down, topic missing) is cached like an answer, for [`MAX_AGE`]: the
//!   caller falls back to the ends stored with the offsets, and says so.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use spine_core::throttle::Throttle;
use tokio::sync::watch;
use tracing::warn;

/// How long one broker answer is used.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// The longest one broker call takes (metadata and every partition's end together).
pub const BOUND: Duration = Duration::from_secs(2);
/// The longest a request waits for the broker's answer.
pub const WAIT: Duration = Duration::from_millis(500);

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

/// The answer of the call under way: `None` until it comes.
type Answer = Option<Option<Arc<Ends>>>;

#[derive(Default)]
struct Inner {
    cached: Option<Cached>,
    in_flight: Option<watch::Receiver<Answer>>,
}

pub struct LiveEnds {
    client: Arc<BaseConsumer<QuietContext>>,
    topic: String,
    inner: Arc<Mutex<Inner>>,
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
            inner: Arc::new(Mutex::new(Inner::default())),
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
    /// answer within [`WAIT`].
    pub async fn get(&self) -> Option<Arc<Ends>> {
        let mut answer = {
            let mut inner = lock(&self.inner);
            if let Some(c) = inner.cached.as_ref().filter(|c| c.at.elapsed() < MAX_AGE) {
                return c.ends.clone();
            }
            let answer = match &inner.in_flight {
                // (A closed channel: the call panicked before answering; ask again.)
                Some(answer) if answer.has_changed().is_ok() => answer.clone(),
                _ => {
                    let answer = self.ask();
                    inner.in_flight = Some(answer.clone());
                    answer
                }
            };
            if inner.cached.as_ref().is_some_and(|c| c.ends.is_none()) {
                // The broker did not answer last time: nobody waits for it until it does.
                return None;
            }
            answer
        };
        let ends = match tokio::time::timeout(WAIT, answer.wait_for(Option::is_some)).await {
            Ok(Ok(ends)) => ends.clone().flatten(),
            _ => None, // not in time: the stored ends this time
        };
        ends
    }

    /// Starts one broker call; its answer is cached and published on the returned channel.
    fn ask(&self) -> watch::Receiver<Answer> {
        self.broker_calls.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        let (client, topic, inner) = (self.client.clone(), self.topic.clone(), self.inner.clone());
        tokio::task::spawn_blocking(move || {
            let ends = match fetch(&client, &topic, Instant::now() + BOUND) {
                Ok(ends) => Some(Arc::new(ends)),
                Err(e) => {
                    let text = format!("{e:#}");
                    if client.context().errors.allow(&text) {
                        warn!(error = %text, %topic, "cannot read the partitions' ends; /batches uses the stored ones");
                    }
                    None
                }
            };
            let mut inner = lock(&inner);
            inner.cached = Some(Cached {
                at: Instant::now(),
                ends: ends.clone(),
            });
            inner.in_flight = None;
            tx.send_replace(Some(ends));
        });
        rx
    }
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
