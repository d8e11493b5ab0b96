//! The synthetic event stream, as a pure, seedable generator.
//!
//! `lifecycle` mode keeps a pool of open orders per tenant and either opens a new one
//! (`order_placed`) or moves an open one forward: placed -> paid -> shipped, with some
//! cancelled along the way. So the live view shows statuses moving, and every order's events
//! appear in order. `random` mode is the seed's `make_event`: independent events with types
//! weighted 5:4:3:1, order ids from 1 to 100,000.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spine_core::event::{Currency, Event, EventType};
use uuid::Uuid;

use crate::config::Mode;

/// Open orders per tenant: fewer than this and a new order is always opened.
const MIN_OPEN: usize = 8;
/// More than this and an open order is always advanced.
const MAX_OPEN: usize = 200;
/// Chance of opening a new order when the pool is between the two.
const NEW_ORDER: f64 = 0.35;
/// Chance a placed order is cancelled instead of paid, and a paid one instead of shipped.
const CANCEL_PLACED: f64 = 0.10;
const CANCEL_PAID: f64 = 0.05;

#[derive(Debug, Clone)]
struct OpenOrder {
    id: String,
    amount_cents: i64,
    status: EventType,
}

pub struct Generator {
    rng: StdRng,
    mode: Mode,
    tenants: Vec<String>,
    open: Vec<Vec<OpenOrder>>,
    last_time: Option<DateTime<Utc>>,
}

impl Generator {
    pub fn new(tenants: Vec<String>, mode: Mode, seed: u64) -> Generator {
        let open = vec![Vec::new(); tenants.len()];
        Generator {
            rng: StdRng::seed_from_u64(seed),
            mode,
            tenants,
            open,
            last_time: None,
        }
    }

    /// Index of `event`'s tenant in the configured list (for per-tenant metrics).
    pub fn tenant_index(&self, tenant: &str) -> usize {
        self.tenants.iter().position(|t| t == tenant).unwrap_or(0)
    }

    /// The next event, stamped `now` or, if the clock did not move, one microsecond after the
    /// previous one: event times strictly increase, so an order's events never tie.
    pub fn next_event(&mut self, now: DateTime<Utc>) -> Event {
        let now = spine_core::event::to_postgres_precision(now);
        let time = match self.last_time {
            Some(last) if now <= last => last + Duration::microseconds(1),
            _ => now,
        };
        self.last_time = Some(time);
        match self.mode {
            Mode::Lifecycle => self.lifecycle_event(time),
            Mode::Random => self.random_event(time),
        }
    }

    /// A UUIDv7 (RFC 9562) of the event's time: ids minted in time order, so the primary key
    /// of `events` grows at its right edge instead of taking every insert at a random page
    /// (docs/benchmarks.md, issue 14). Any UUID is a valid `event_id`; this is the cheap kind.
    fn event_id(&mut self, time: DateTime<Utc>) -> Uuid {
        let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0);
        uuid::Builder::from_unix_timestamp_millis(millis, &self.rng.random()).into_uuid()
    }

    fn lifecycle_event(&mut self, time: DateTime<Utc>) -> Event {
        let t = self.rng.random_range(0..self.tenants.len());
        let open = self.open[t].len();
        let new_order = open < MIN_OPEN || (open < MAX_OPEN && self.rng.random_bool(NEW_ORDER));
        let (order, event_type) = if new_order {
            let order = OpenOrder {
                id: format!("ord-{:08x}", self.rng.random::<u32>()),
                amount_cents: self.rng.random_range(500..=50_000),
                status: EventType::OrderPlaced,
            };
            self.open[t].push(order.clone());
            (order, EventType::OrderPlaced)
        } else {
            let i = self.rng.random_range(0..open);
            let next = match self.open[t][i].status {
                EventType::OrderPlaced if self.rng.random_bool(CANCEL_PLACED) => {
                    EventType::OrderCancelled
                }
                EventType::OrderPlaced => EventType::OrderPaid,
                EventType::OrderPaid if self.rng.random_bool(CANCEL_PAID) => {
                    EventType::OrderCancelled
                }
                _ => EventType::OrderShipped,
            };
            self.open[t][i].status = next;
            let order = self.open[t][i].clone();
            if matches!(next, EventType::OrderShipped | EventType::OrderCancelled) {
                self.open[t].swap_remove(i);
            }
            (order, next)
        };
        Event {
            event_id: self.event_id(time),
            tenant: self.tenants[t].clone(),
            event_type,
            order_id: order.id,
            amount_cents: order.amount_cents,
            currency: Currency::USD,
            event_time: time,
        }
    }

    fn random_event(&mut self, time: DateTime<Utc>) -> Event {
        let t = self.rng.random_range(0..self.tenants.len());
        let event_type = match self.rng.random_range(0..13) {
            0..5 => EventType::OrderPlaced,
            5..9 => EventType::OrderPaid,
            9..12 => EventType::OrderShipped,
            _ => EventType::OrderCancelled,
        };
        Event {
            event_id: self.event_id(time),
            tenant: self.tenants[t].clone(),
            event_type,
            order_id: format!("ord-{}", self.rng.random_range(1..=100_000)),
            amount_cents: self.rng.random_range(500..=50_000),
            currency: Currency::USD,
            event_time: time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn tenants() -> Vec<String> {
        vec!["acme".into(), "globex".into(), "initech".into()]
    }

    fn stream(mode: Mode, n: usize) -> Vec<Event> {
        let mut g = Generator::new(tenants(), mode, 42);
        let now = Utc::now();
        (0..n).map(|_| g.next_event(now)).collect()
    }

    #[test]
    fn every_event_is_valid_on_the_wire() {
        for mode in [Mode::Lifecycle, Mode::Random] {
            for e in stream(mode, 2000) {
                assert_eq!(
                    spine_core::event::parse_event(&e.to_json()).expect("valid"),
                    e
                );
            }
        }
    }

    #[test]
    fn event_ids_are_distinct_uuidv7s_in_the_order_of_their_times() {
        let mut g = Generator::new(tenants(), Mode::Lifecycle, 42);
        let start = Utc::now();
        let events: Vec<Event> = (0..2000)
            .map(|i| g.next_event(start + chrono::Duration::milliseconds(i)))
            .collect();
        let mut previous: Option<&Event> = None;
        for e in &events {
            assert_eq!(e.event_id.get_version_num(), 7, "{}", e.event_id);
            if let Some(p) = previous {
                assert!(
                    p.event_id < e.event_id,
                    "{} then {}",
                    p.event_id,
                    e.event_id
                );
            }
            previous = Some(e);
        }
    }

    #[test]
    fn lifecycles_move_forward_and_end() {
        let mut last: HashMap<(String, String), EventType> = HashMap::new();
        let events = stream(Mode::Lifecycle, 20_000);
        for e in &events {
            let key = (e.tenant.clone(), e.order_id.clone());
            let allowed = match last.get(&key) {
                None => e.event_type == EventType::OrderPlaced,
                Some(EventType::OrderPlaced) => {
                    matches!(
                        e.event_type,
                        EventType::OrderPaid | EventType::OrderCancelled
                    )
                }
                Some(EventType::OrderPaid) => {
                    matches!(
                        e.event_type,
                        EventType::OrderShipped | EventType::OrderCancelled
                    )
                }
                Some(_) => false, // shipped and cancelled are final
            };
            assert!(
                allowed,
                "{:?} after {:?} for {key:?}",
                e.event_type,
                last.get(&key)
            );
            last.insert(key, e.event_type);
        }
        let finals = last
            .values()
            .filter(|s| matches!(s, EventType::OrderShipped | EventType::OrderCancelled))
            .count();
        assert!(
            finals * 2 > last.len(),
            "most orders complete: {finals} of {}",
            last.len()
        );
        let cancelled = last
            .values()
            .filter(|s| **s == EventType::OrderCancelled)
            .count();
        assert!(
            cancelled > 0 && cancelled * 5 < last.len(),
            "a few cancelled: {cancelled}"
        );
    }

    #[test]
    fn event_times_strictly_increase_even_when_the_clock_stands_still() {
        let events = stream(Mode::Lifecycle, 1000);
        for pair in events.windows(2) {
            assert!(pair[0].event_time < pair[1].event_time);
        }
    }

    #[test]
    fn random_mode_weights_types_5_4_3_1() {
        let events = stream(Mode::Random, 13_000);
        let count = |t| events.iter().filter(|e| e.event_type == t).count() as f64;
        for (t, expected) in [
            (EventType::OrderPlaced, 5000.0),
            (EventType::OrderPaid, 4000.0),
            (EventType::OrderShipped, 3000.0),
            (EventType::OrderCancelled, 1000.0),
        ] {
            let got = count(t);
            assert!(
                (got - expected).abs() < expected * 0.1,
                "{t}: {got} vs {expected}"
            );
        }
        assert!(events
            .iter()
            .all(|e| (500..=50_000).contains(&e.amount_cents)));
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let now = Utc::now();
        let mut a = Generator::new(tenants(), Mode::Lifecycle, 7);
        let mut b = Generator::new(tenants(), Mode::Lifecycle, 7);
        for _ in 0..100 {
            assert_eq!(a.next_event(now), b.next_event(now));
        }
    }
}
