//! Events for tests, written once: this crate's unit tests and other crates' tests (which
//! enable the `test-fixtures` feature in their dev-dependencies) build them the same way.
//! (spine-testkit cannot hold these: spine-core's own tests depend on it.)

use chrono::{TimeZone, Utc};
use uuid::Uuid;

use crate::event::{Currency, Event, EventType};

/// A valid event of `tenant`'s `order`: `secs` seconds after a fixed instant, an amount that
/// grows with `secs`, and the event id `id` (so ties of time are broken predictably).
pub fn event(tenant: &str, order: &str, ty: EventType, secs: i64, id: u128) -> Event {
    Event {
        event_id: Uuid::from_u128(id),
        tenant: tenant.into(),
        event_type: ty,
        order_id: order.into(),
        amount_cents: 1000 + secs,
        currency: Currency::USD,
        event_time: Utc
            .timestamp_opt(1_764_000_000 + secs, 0)
            .single()
            .expect("valid time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_is_a_valid_event_on_the_wire() {
        let e = event("acme", "o1", EventType::OrderPaid, 5, 7);
        assert_eq!(crate::event::parse_event(&e.to_json()), Ok(e));
    }
}
