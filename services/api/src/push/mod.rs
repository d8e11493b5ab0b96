//! `GET /stream`: each committed batch pushed to every subscriber (docs/contracts.md,
//! "HTTP API", and docs/architecture.md).
//!
//! One [`listener`] learns of each commit (`LISTEN spine_batches`, or a poll of
//! `max(batch_id)` when it cannot listen), builds each batch's [`event`] once and publishes it,
//! and a status once a second, through one bounded broadcast channel; each subscriber's
//! [`sse`] stream only filters and writes. What the database does is the same for one
//! subscriber or ten thousand.

pub mod event;
pub mod listener;
pub mod sse;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use self::event::BatchEvent;

/// Frames queued for subscribers; one behind by more is dropped (it reconnects and replays).
pub const CHANNEL_CAPACITY: usize = 256;
/// Default of `API_STREAM_MAX_SUBSCRIBERS`.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 10_000;

/// What the listener publishes.
#[derive(Debug)]
pub enum Frame {
    /// A committed batch.
    Batch(Arc<BatchEvent>),
    /// The processor's state and the partitions, as JSON (`event: status`).
    Status(Arc<str>),
    /// The batch ids went backwards (a database wiped) or too many batches to build: start
    /// over from `as_of_batch`.
    Reset {
        as_of_batch: i64,
        reason: &'static str,
    },
}

/// The newest committed batch as the listener knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Newest {
    pub batch: i64,
    /// Heard by `LISTEN` (cache answers by it) rather than polled.
    pub listening: bool,
}

/// Shared by the listener, the subscribers and the cached routes.
pub struct Hub {
    pub(crate) tx: broadcast::Sender<Arc<Frame>>,
    pub(crate) newest: watch::Sender<Option<Newest>>,
    /// The last status published, and when.
    pub(crate) status: Mutex<Option<(Instant, Arc<str>)>>,
    /// Held while a status is computed: subscribers arriving together wait for one answer.
    pub(crate) status_flight: tokio::sync::Mutex<()>,
    subscribers: AtomicUsize,
    /// `spine_api_stream_subscribers`.
    gauge: IntGauge,
    pub max_subscribers: usize,
    /// Cancelled when the server stops: every stream ends, so a graceful shutdown finishes.
    pub stop: CancellationToken,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("newest", &*self.newest.borrow())
            .field("subscribers", &self.subscribers.load(Ordering::Relaxed))
            .finish()
    }
}

impl Hub {
    /// A hub admitting `max_subscribers`, queueing `capacity` frames, counting its subscribers
    /// in `gauge`.
    pub fn new(max_subscribers: usize, capacity: usize, gauge: IntGauge) -> Hub {
        Hub {
            gauge,
            tx: broadcast::channel(capacity).0,
            newest: watch::channel(None).0,
            status: Mutex::new(None),
            status_flight: tokio::sync::Mutex::new(()),
            subscribers: AtomicUsize::new(0),
            max_subscribers,
            stop: CancellationToken::new(),
        }
    }

    /// The newest batch when the listener hears commits as they happen: answers as of it may
    /// be served from the cache. `None` while it polls or is not connected.
    pub fn cacheable_batch(&self) -> Option<i64> {
        self.newest
            .borrow()
            .filter(|n| n.listening)
            .map(|n| n.batch)
    }

    /// The newest batch the listener knows of, `None` before it first read it.
    pub fn newest(&self) -> Option<i64> {
        self.newest.borrow().map(|n| n.batch)
    }

    /// Whether anyone would read a published frame.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// The last status, if published within `max_age`.
    pub fn recent_status(&self, max_age: Duration) -> Option<Arc<str>> {
        let status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status
            .as_ref()
            .filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, s)| s.clone())
    }

    /// A place among the subscribers, or `None` when all `max_subscribers` are taken.
    pub fn admit(self: &Arc<Hub>) -> Option<Admission> {
        self.subscribers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_subscribers).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                self.gauge.inc();
                Admission { hub: self.clone() }
            })
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Acquire)
    }
}

/// A subscriber's place; given back when dropped (the stream ended or the client left).
#[derive(Debug)]
pub struct Admission {
    hub: Arc<Hub>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::AcqRel);
        self.hub.gauge.dec();
    }
}

/// `API_STREAM_MAX_SUBSCRIBERS`: a whole number from 1.
pub fn parse_max_subscribers(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "expected a whole number of subscribers from 1, got {}",
            spine_core::event::quote_value(s, 32)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_capped_and_give_their_place_back() {
        let gauge = IntGauge::new("subscribers", "test").expect("gauge");
        let hub = Arc::new(Hub::new(2, 4, gauge.clone()));
        let a = hub.admit().expect("first");
        let b = hub.admit().expect("second");
        assert!(hub.admit().is_none(), "the third is refused");
        drop(a);
        assert_eq!(hub.subscribers(), 1);
        let _c = hub.admit().expect("a place came free");
        assert_eq!(gauge.get(), 2);
        drop(b);
        assert_eq!((hub.subscribers(), gauge.get()), (1, 1));
    }

    #[test]
    fn only_a_listening_hub_lets_the_cache_answer() {
        let hub = Hub::new(1, 4, IntGauge::new("s", "test").expect("gauge"));
        assert_eq!(hub.cacheable_batch(), None);
        hub.newest.send_replace(Some(Newest {
            batch: 4,
            listening: false,
        }));
        assert_eq!((hub.cacheable_batch(), hub.newest()), (None, Some(4)));
        hub.newest.send_replace(Some(Newest {
            batch: 5,
            listening: true,
        }));
        assert_eq!(hub.cacheable_batch(), Some(5));
    }

    #[test]
    fn the_subscriber_cap_is_a_whole_number_from_one() {
        assert_eq!(parse_max_subscribers("10000"), Ok(10_000));
        assert!(parse_max_subscribers("0").is_err());
        assert!(parse_max_subscribers("lots")
            .expect_err("not a number")
            .contains("\"lots\""));
    }
}
