//! `--chaos F`: after a fraction F of the events, one extra record that exercises the
//! processor's defences, so they can be watched working (dead letters, duplicates, stale
//! events in `/batches` and the processor's metrics):
//!
//! - `duplicate`: the same event again, byte for byte (a producer retry);
//! - `late`: an older event for the same order, an hour before it (must never win);
//! - `malformed`: a record that is not a valid event (must become a dead letter), padded
//!   with spaces to `--malformed-bytes` when given (a flood of big bad records).

use chrono::Duration;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spine_core::event::{Event, EventType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Duplicate,
    Late,
    Malformed,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Duplicate, Kind::Late, Kind::Malformed];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Duplicate => "duplicate",
            Kind::Late => "late",
            Kind::Malformed => "malformed",
        }
    }
}

pub struct Chaos {
    rng: StdRng,
    fraction: f64,
    malformed_bytes: Option<usize>,
}

impl Chaos {
    pub fn new(fraction: f64, seed: u64) -> Chaos {
        Chaos {
            rng: StdRng::seed_from_u64(seed ^ 0xc4a0_5c4a_05c4_a05c),
            fraction: fraction.clamp(0.0, 1.0),
            malformed_bytes: None,
        }
    }

    /// Malformed records padded with spaces to `bytes` (spaces keep them as invalid as they
    /// were).
    pub fn with_malformed_bytes(self, bytes: Option<usize>) -> Chaos {
        Chaos {
            malformed_bytes: bytes,
            ..self
        }
    }

    /// The extra record to send right after `event`, if any: its kind and its value.
    pub fn after(&mut self, event: &Event) -> Option<(Kind, Vec<u8>)> {
        if self.fraction <= 0.0 || !self.rng.random_bool(self.fraction) {
            return None;
        }
        let kind = Kind::ALL[self.rng.random_range(0..Kind::ALL.len())];
        let value = match kind {
            Kind::Duplicate => event.to_json(),
            Kind::Late => Event {
                event_id: uuid::Builder::from_random_bytes(self.rng.random()).into_uuid(),
                event_type: EventType::OrderPlaced,
                event_time: event.event_time - Duration::hours(1),
                ..event.clone()
            }
            .to_json(),
            Kind::Malformed => {
                let samples: [String; 6] = [
                    "this is not json".into(),
                    format!(r#"{{"tenant":"{}","event_type":"order_paid"}}"#, event.tenant),
                    event.to_json().iter().map(|&b| if b == b'"' { b'\'' } else { b }).map(char::from).collect(),
                    serde_json::json!({"event_id": "not-a-uuid", "tenant": event.tenant, "event_type": "order_paid",
                        "order_id": event.order_id, "amount_cents": 1, "event_time": "2026-01-01T00:00:00Z"}).to_string(),
                    serde_json::json!({"event_id": event.event_id, "tenant": event.tenant, "event_type": "order_refunded",
                        "order_id": event.order_id, "amount_cents": 1, "event_time": "2026-01-01T00:00:00Z"}).to_string(),
                    serde_json::json!({"event_id": event.event_id, "tenant": event.tenant, "event_type": "order_paid",
                        "order_id": event.order_id, "amount_cents": -100, "event_time": "yesterday"}).to_string(),
                ];
                let mut value = samples[self.rng.random_range(0..samples.len())]
                    .clone()
                    .into_bytes();
                if let Some(bytes) = self.malformed_bytes {
                    value.resize(value.len().max(bytes), b' ');
                }
                value
            }
        };
        Some((kind, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::generator::Generator;
    use spine_core::event::parse_event;

    #[test]
    fn each_kind_is_what_it_says() {
        let mut g = Generator::new(vec!["acme".into()], Mode::Lifecycle, 1);
        let mut chaos = Chaos::new(1.0, 1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let e = g.next_event(chrono::Utc::now());
            let (kind, value) = chaos.after(&e).expect("fraction 1 always adds one");
            seen.insert(kind.as_str());
            match kind {
                Kind::Duplicate => assert_eq!(value, e.to_json()),
                Kind::Late => {
                    let late = parse_event(&value).expect("a valid event");
                    assert_eq!(
                        (late.tenant.as_str(), late.order_id.as_str()),
                        (e.tenant.as_str(), e.order_id.as_str())
                    );
                    assert!(late.event_time < e.event_time);
                    assert_ne!(late.event_id, e.event_id);
                }
                Kind::Malformed => assert!(
                    parse_event(&value).is_err(),
                    "{}",
                    String::from_utf8_lossy(&value)
                ),
            }
        }
        assert_eq!(seen.len(), 3, "all three kinds come up");
    }

    #[test]
    fn malformed_records_can_be_padded_to_a_size() {
        let mut g = Generator::new(vec!["acme".into()], Mode::Lifecycle, 1);
        let mut chaos = Chaos::new(1.0, 1).with_malformed_bytes(Some(900_000));
        let mut malformed = 0;
        for _ in 0..30 {
            let e = g.next_event(chrono::Utc::now());
            if let Some((Kind::Malformed, value)) = chaos.after(&e) {
                assert_eq!(value.len(), 900_000);
                assert!(parse_event(&value).is_err());
                malformed += 1;
            }
        }
        assert!(malformed > 0);
    }

    #[test]
    fn no_chaos_by_default() {
        let mut g = Generator::new(vec!["acme".into()], Mode::Random, 1);
        let mut chaos = Chaos::new(0.0, 1);
        for _ in 0..100 {
            assert!(chaos.after(&g.next_event(chrono::Utc::now())).is_none());
        }
    }
}
