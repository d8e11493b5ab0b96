//! Events per second seen on the topic, over a sliding window of arrivals.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::model::TailRecord;
use crate::text::SafeText;

/// The window the rate is averaged over.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Arrivals of the last [`WINDOW`], one entry per batch the tail delivered (a few per second),
/// each with its count per tenant: memory is bounded by the window, not by the event rate.
#[derive(Debug, Default)]
pub struct RateMeter {
    first: Option<Instant>,
    arrivals: VecDeque<Arrival>,
}

#[derive(Debug)]
struct Arrival {
    at: Instant,
    total: u32,
    by_tenant: HashMap<SafeText, u32>,
}

impl RateMeter {
    /// Counts `records` as arrived at `at`. Backfill (records older than the tail's start) is
    /// history, not rate, and is left out; malformed records count in the total only.
    pub fn record(&mut self, at: Instant, records: &[TailRecord]) {
        let mut total = 0u32;
        let mut by_tenant: HashMap<SafeText, u32> = HashMap::new();
        for r in records.iter().filter(|r| !r.backfill) {
            total += 1;
            if let (false, Some(tenant)) = (r.is_malformed(), r.tenant()) {
                match by_tenant.get_mut(tenant) {
                    Some(n) => *n += 1,
                    None => {
                        by_tenant.insert(tenant.clone(), 1);
                    }
                }
            }
        }
        if total == 0 {
            return;
        }
        self.first.get_or_insert(at);
        self.arrivals.push_back(Arrival {
            at,
            total,
            by_tenant,
        });
        self.prune(at);
    }

    /// Forgets arrivals older than the window.
    pub fn prune(&mut self, now: Instant) {
        while let Some(front) = self.arrivals.front() {
            if now.saturating_duration_since(front.at) > WINDOW {
                self.arrivals.pop_front();
            } else {
                break;
            }
        }
    }

    /// Events per second at `now`, of one tenant or of all (`None`). Until a whole window has
    /// passed since the first arrival it averages over the time seen so far (at least 1 s).
    pub fn rate(&self, now: Instant, tenant: Option<&SafeText>) -> f64 {
        let Some(first) = self.first else {
            return 0.0;
        };
        let span = now
            .saturating_duration_since(first)
            .clamp(Duration::from_secs(1), WINDOW);
        let count: u64 = self
            .arrivals
            .iter()
            .filter(|a| now.saturating_duration_since(a.at) <= WINDOW)
            .map(|a| match tenant {
                None => u64::from(a.total),
                Some(t) => a.by_tenant.get(t).map_or(0, |n| u64::from(*n)),
            })
            .sum();
        count as f64 / span.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TailBody;

    fn rec(tenant: &str, backfill: bool) -> TailRecord {
        TailRecord {
            partition: 0,
            offset: 0,
            backfill,
            body: TailBody::Malformed {
                key: Some(tenant.into()),
                reason: "x".into(),
            },
            raw: Default::default(),
        }
    }

    fn event(tenant: &str) -> TailRecord {
        let json = format!(
            r#"{{"event_id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","tenant":"{tenant}","event_type":"order_paid",
                "order_id":"o","amount_cents":1,"event_time":"2026-11-25T12:00:00Z"}}"#
        );
        TailRecord::decode(0, 0, None, Some(json.as_bytes()))
    }

    #[test]
    fn steady_arrivals_give_their_rate_and_it_decays_to_zero() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.rate(t0, None), 0.0);
        // 100 events every 100 ms for 10 s: 1000 events/s, 2/3 acme.
        for i in 0..100u64 {
            let batch: Vec<_> = (0..100)
                .map(|j| {
                    if j % 3 == 2 {
                        event("globex")
                    } else {
                        event("acme")
                    }
                })
                .collect();
            m.record(t0 + Duration::from_millis(100 * i), &batch);
        }
        let now = t0 + Duration::from_millis(9_950);
        let all = m.rate(now, None);
        assert!((all - 1000.0).abs() < 30.0, "{all}");
        let acme = m.rate(now, Some(&"acme".into()));
        assert!((acme - 667.0).abs() < 30.0, "{acme}");
        assert_eq!(m.rate(now, Some(&"initech".into())), 0.0);
        let later = now + WINDOW + Duration::from_millis(1);
        m.prune(later);
        assert_eq!(m.rate(later, None), 0.0);
    }

    #[test]
    fn the_first_seconds_are_not_diluted_by_the_whole_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        let batch: Vec<_> = (0..500).map(|_| event("acme")).collect();
        m.record(t0, &batch);
        m.record(t0 + Duration::from_millis(1000), &batch);
        let r = m.rate(t0 + Duration::from_millis(1000), None);
        assert!((r - 1000.0).abs() < 1.0, "{r}");
    }

    #[test]
    fn backfill_is_not_rate_and_malformed_counts_only_in_the_total() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        m.record(t0, &[rec("acme", true), rec("acme", true)]);
        assert_eq!(m.rate(t0, None), 0.0);
        m.record(t0, &[rec("acme", false)]);
        assert_eq!(m.rate(t0, None), 1.0);
        assert_eq!(m.rate(t0, Some(&"acme".into())), 0.0);
    }
}
