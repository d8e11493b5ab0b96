//! Rate-limited logging for errors a client reports over and over while it retries by itself
//! (librdkafka calls its error callback on every failed reconnect): say each distinct message
//! once, then at most once per interval.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Remembers the last message let through and when.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Mutex<Option<(String, Instant)>>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: Mutex::new(None),
        }
    }

    /// Whether `message` should be logged now: yes when it differs from the last one let
    /// through, or when that was at least the interval ago.
    pub fn allow(&self, message: &str) -> bool {
        self.allow_at(message, Instant::now())
    }

    fn allow_at(&self, message: &str, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let repeat =
            matches!(&*last, Some((m, at)) if m == message && now.duration_since(*at) < self.every);
        if !repeat {
            *last = Some((message.to_owned(), now));
        }
        !repeat
    }
}

/// The interval spine's Kafka clients use.
impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_message_is_let_through_once_per_interval() {
        let t = Throttle::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(t.allow_at("broker down", t0));
        assert!(!t.allow_at("broker down", t0 + Duration::from_secs(29)));
        assert!(t.allow_at("broker down", t0 + Duration::from_secs(30)));
    }

    #[test]
    fn a_different_message_is_let_through_at_once() {
        let t = Throttle::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert!(t.allow_at("a", t0));
        assert!(t.allow_at("b", t0 + Duration::from_secs(1)));
        assert!(t.allow_at("a", t0 + Duration::from_secs(2)));
    }
}
