//! Retrying with exponential backoff, the one way every spine binary waits before trying again
//! (Postgres not up yet, a broker away, a batch write that failed). A wait always ends early
//! when shutdown is requested, so a retry loop never delays a SIGTERM.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Delays that double from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// The delay the next wait will take (for the log line announcing the retry).
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Takes the next delay and doubles the one after it, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }

    /// Waits the next delay on this thread. False when shutdown was requested meanwhile.
    pub fn wait_blocking(&mut self, shutdown: &CancellationToken) -> bool {
        sleep_blocking(shutdown, self.next_delay())
    }

    /// Waits the next delay. False when shutdown was requested meanwhile.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            () = tokio::time::sleep(delay) => !shutdown.is_cancelled(),
            () = shutdown.cancelled() => false,
        }
    }
}

/// Sleeps `d` on this thread in small steps, so shutdown is noticed within 20 ms. False when
/// shutdown was requested.
pub fn sleep_blocking(shutdown: &CancellationToken, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.peek(), Duration::from_millis(100));
    }

    #[test]
    fn a_wait_ends_at_once_on_shutdown() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let started = Instant::now();
        assert!(!b.wait_blocking(&shutdown));
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn an_async_wait_ends_on_shutdown_and_completes_otherwise() {
        let shutdown = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(1));
        assert!(b.wait(&shutdown).await);
        shutdown.cancel();
        let mut long = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(!long.wait(&shutdown).await);
    }
}
