//! "Latest event per order wins", as pure functions.
//!
//! An order's row in `current_orders` is replaced only by an event that is strictly newer by
//! `(event_time, event_id)` ([`Version`]). That order is total (event ids are unique), so the
//! final state does not depend on how events are split into batches or interleaved across
//! partitions: late events lose, replays are no-ops. [`latest_per_order`] reduces one batch;
//! [`apply`] is the rule the Postgres upsert implements, used as its model in tests.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::event::{Currency, Event, EventType};

/// The version of an order's state: newer means greater. `Uuid`'s order is byte order, the
/// same as Postgres' `uuid` comparison, so Rust and SQL agree on ties of `event_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub event_time: DateTime<Utc>,
    pub event_id: Uuid,
}

impl Version {
    pub fn of(event: &Event) -> Version {
        Version {
            event_time: event.event_time,
            event_id: event.event_id,
        }
    }
}

/// An order's identity: an order id is only unique within its tenant.
pub type OrderKey = (String, String);

/// A row of `current_orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    pub status: EventType,
    pub amount_cents: i64,
    pub currency: Currency,
    pub version: Version,
}

impl OrderState {
    pub fn of(event: &Event) -> OrderState {
        OrderState {
            status: event.event_type,
            amount_cents: event.amount_cents,
            currency: event.currency,
            version: Version::of(event),
        }
    }
}

/// The newest event of each `(tenant, order_id)` among `events`, sorted by that key (a fixed
/// order, so concurrent upserts lock rows in the same order and cannot deadlock).
pub fn latest_per_order<'a, I>(events: I) -> Vec<&'a Event>
where
    I: IntoIterator<Item = &'a Event>,
{
    let mut latest: HashMap<(&'a str, &'a str), &'a Event> = HashMap::new();
    for event in events {
        latest
            .entry((event.tenant.as_str(), event.order_id.as_str()))
            .and_modify(|current| {
                if Version::of(event) > Version::of(current) {
                    *current = event;
                }
            })
            .or_insert(event);
    }
    let mut out: Vec<&Event> = latest.into_values().collect();
    out.sort_unstable_by(|a, b| (&a.tenant, &a.order_id).cmp(&(&b.tenant, &b.order_id)));
    out
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Rows inserted or replaced.
    pub upserted: usize,
    /// Candidates that lost to a row at least as new (late or replayed events).
    pub stale: usize,
}

/// Applies one batch's reduced events to `current`: insert when absent, replace only when
/// strictly newer. This is the model of the processor's upsert.
pub fn apply(current: &mut BTreeMap<OrderKey, OrderState>, latest: &[&Event]) -> ApplyOutcome {
    let mut outcome = ApplyOutcome::default();
    for event in latest {
        let key = (event.tenant.clone(), event.order_id.clone());
        match current.get_mut(&key) {
            Some(row) if Version::of(event) <= row.version => outcome.stale += 1,
            Some(row) => {
                *row = OrderState::of(event);
                outcome.upserted += 1;
            }
            None => {
                current.insert(key, OrderState::of(event));
                outcome.upserted += 1;
            }
        }
    }
    outcome
}

/// The state every correct processing of `events` must end in: each order's newest event.
pub fn fold_all<'a, I>(events: I) -> BTreeMap<OrderKey, OrderState>
where
    I: IntoIterator<Item = &'a Event>,
{
    let mut state = BTreeMap::new();
    let all: Vec<&Event> = events.into_iter().collect();
    apply(&mut state, &latest_per_order(all));
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::event;
    use proptest::prelude::*;

    fn statuses(state: &BTreeMap<OrderKey, OrderState>) -> Vec<(String, String, EventType)> {
        state
            .iter()
            .map(|((t, o), s)| (t.clone(), o.clone(), s.status))
            .collect()
    }

    #[test]
    fn out_of_order_events_in_one_batch_keep_the_newest() {
        let placed = event("acme", "o1", EventType::OrderPlaced, 1, 1);
        let paid = event("acme", "o1", EventType::OrderPaid, 2, 2);
        let shipped = event("acme", "o1", EventType::OrderShipped, 3, 3);
        let batch = [shipped.clone(), placed, paid];
        let latest = latest_per_order(&batch);
        assert_eq!(latest, vec![&shipped]);
    }

    #[test]
    fn equal_event_times_are_broken_by_event_id() {
        let a = event("acme", "o1", EventType::OrderPaid, 5, 10);
        let b = event("acme", "o1", EventType::OrderCancelled, 5, 20);
        assert_eq!(latest_per_order([&a, &b]), vec![&b]);
        assert_eq!(latest_per_order([&b, &a]), vec![&b]);
        // And across batches: the lower id never replaces the higher one.
        let mut state = BTreeMap::new();
        apply(&mut state, &[&b]);
        let outcome = apply(&mut state, &[&a]);
        assert_eq!(
            outcome,
            ApplyOutcome {
                upserted: 0,
                stale: 1
            }
        );
        assert_eq!(
            state[&("acme".into(), "o1".into())].status,
            EventType::OrderCancelled
        );
    }

    #[test]
    fn the_same_order_id_under_two_tenants_is_two_orders() {
        let a = event("acme", "ord-1", EventType::OrderPaid, 1, 1);
        let g = event("globex", "ord-1", EventType::OrderPlaced, 2, 2);
        let latest = latest_per_order([&g, &a]);
        assert_eq!(latest, vec![&a, &g], "both kept, sorted by tenant");
        let state = fold_all([&a, &g]);
        assert_eq!(
            statuses(&state),
            vec![
                ("acme".into(), "ord-1".into(), EventType::OrderPaid),
                ("globex".into(), "ord-1".into(), EventType::OrderPlaced)
            ]
        );
    }

    #[test]
    fn a_late_event_never_overwrites_a_newer_status() {
        let mut state = BTreeMap::new();
        let shipped = event("acme", "o1", EventType::OrderShipped, 3, 3);
        let placed_late = event("acme", "o1", EventType::OrderPlaced, 1, 1);
        assert_eq!(apply(&mut state, &[&shipped]).upserted, 1);
        assert_eq!(
            apply(&mut state, &[&placed_late]),
            ApplyOutcome {
                upserted: 0,
                stale: 1
            }
        );
        assert_eq!(
            state[&("acme".into(), "o1".into())].status,
            EventType::OrderShipped
        );
    }

    #[test]
    fn replaying_an_applied_event_is_a_no_op() {
        let mut state = BTreeMap::new();
        let paid = event("acme", "o1", EventType::OrderPaid, 2, 2);
        apply(&mut state, &[&paid]);
        let before = state.clone();
        assert_eq!(
            apply(&mut state, &[&paid]),
            ApplyOutcome {
                upserted: 0,
                stale: 1
            }
        );
        assert_eq!(state, before);
        // A duplicate inside one batch collapses to one candidate.
        assert_eq!(latest_per_order([&paid, &paid]).len(), 1);
    }

    #[test]
    fn an_empty_batch_changes_nothing() {
        let mut state = BTreeMap::new();
        assert_eq!(
            apply(&mut state, &latest_per_order([])),
            ApplyOutcome::default()
        );
        assert!(state.is_empty());
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        // The same event id is always the same event (a replay), so everything else is
        // derived from the id: 2 tenants x 3 orders, 6 distinct times (ties are common).
        (0..40u128).prop_map(|id| {
            let tenant = ["acme", "globex"][(id % 2) as usize];
            let order = format!("o{}", (id / 2) % 3);
            let ty = EventType::ALL[(id % 4) as usize];
            event(tenant, &order, ty, (id as i64 * 7) % 6, id)
        })
    }

    /// Events spread over partitions (order kept within each), then delivered as an arbitrary
    /// interleaving cut into arbitrary batches.
    fn arb_delivery() -> impl Strategy<Value = (Vec<Event>, Vec<Vec<Event>>)> {
        proptest::collection::vec((arb_event(), 0..3usize), 0..60).prop_flat_map(|tagged| {
            let n = tagged.len();
            (
                Just(tagged),
                proptest::collection::vec(0..3usize, n),
                proptest::collection::vec(any::<bool>(), n),
            )
                .prop_map(|(tagged, picks, cuts)| {
                    let all: Vec<Event> = tagged.iter().map(|(e, _)| e.clone()).collect();
                    let mut partitions: Vec<std::collections::VecDeque<Event>> =
                        vec![Default::default(); 3];
                    for (e, p) in tagged {
                        partitions[p].push_back(e);
                    }
                    // Interleave: at each step take the head of the picked partition, or of
                    // the next non-empty one.
                    let mut delivered = Vec::new();
                    for pick in picks {
                        let p = (0..3)
                            .map(|k| (pick + k) % 3)
                            .find(|&p| !partitions[p].is_empty());
                        if let Some(p) = p {
                            delivered.push(partitions[p].pop_front().expect("non-empty"));
                        }
                    }
                    let mut batches = vec![Vec::new()];
                    for (e, cut) in delivered.into_iter().zip(cuts) {
                        batches.last_mut().expect("one batch").push(e);
                        if cut {
                            batches.push(Vec::new());
                        }
                    }
                    (all, batches)
                })
        })
    }

    proptest! {
        #[test]
        fn any_split_and_interleaving_ends_in_the_fold_of_all_events((all, batches) in arb_delivery()) {
            let mut state = BTreeMap::new();
            for batch in &batches {
                apply(&mut state, &latest_per_order(batch));
            }
            prop_assert_eq!(state, fold_all(&all));
        }

        #[test]
        fn replaying_any_suffix_of_batches_changes_nothing((_all, batches) in arb_delivery(), from in 0..10usize) {
            let mut state = BTreeMap::new();
            for batch in &batches {
                apply(&mut state, &latest_per_order(batch));
            }
            let after = state.clone();
            for batch in batches.iter().skip(from.min(batches.len())) {
                let outcome = apply(&mut state, &latest_per_order(batch));
                prop_assert_eq!(outcome.upserted, 0);
            }
            prop_assert_eq!(state, after);
        }

        #[test]
        fn the_reduced_batch_holds_one_newest_event_per_order(events in proptest::collection::vec(arb_event(), 0..40)) {
            let latest = latest_per_order(&events);
            for chosen in &latest {
                for e in &events {
                    if e.tenant == chosen.tenant && e.order_id == chosen.order_id {
                        prop_assert!(Version::of(e) <= Version::of(chosen));
                    }
                }
            }
            let keys: std::collections::BTreeSet<_> = events.iter().map(|e| (&e.tenant, &e.order_id)).collect();
            prop_assert_eq!(keys.len(), latest.len());
        }
    }
}
