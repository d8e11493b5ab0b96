//! The state of each pane: which one has the focus, the polled answers kept when the API fails,
//! the orders with what changed, and the topic tail (a ring that can be paused).

use std::collections::{HashMap, VecDeque};

use super::{Fetched, WallTime, TAIL_CAPACITY};
use crate::model::{OrdersResponse, TailRecord};
use crate::text::SafeText;

/// The four panes, in focus order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Tail,
    Orders,
    Stats,
    Batches,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Tail, Pane::Orders, Pane::Stats, Pane::Batches];

    pub(super) fn index(self) -> usize {
        match self {
            Pane::Tail => 0,
            Pane::Orders => 1,
            Pane::Stats => 2,
            Pane::Batches => 3,
        }
    }

    pub(super) fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % 4]
    }

    pub(super) fn prev(self) -> Pane {
        Pane::ALL[(self.index() + 3) % 4]
    }
}

/// The last good answer of one endpoint, when it came, and the error of the latest poll if
/// it failed (the data is then kept and shown as stale).
#[derive(Clone, Debug)]
pub struct Polled<T> {
    pub data: Option<T>,
    pub fetched_at: Option<WallTime>,
    pub error: Option<SafeText>,
}

impl<T> Default for Polled<T> {
    fn default() -> Self {
        Polled {
            data: None,
            fetched_at: None,
            error: None,
        }
    }
}

impl<T> Polled<T> {
    pub(super) fn apply(&mut self, at: WallTime, result: Fetched<T>) {
        match result {
            Ok(data) => {
                self.data = Some(data);
                self.fetched_at = Some(at);
                self.error = None;
            }
            Err(e) => self.error = Some(SafeText::new(&e.to_string())),
        }
    }
}

/// How an order row differs from the orders shown before the latest batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Same,
    /// Not among the orders shown before (newly placed, or newly updated into the window).
    New,
    StatusChanged {
        from: SafeText,
    },
}

/// `/orders` with what changed: each row is compared with the orders as they were before the
/// snapshot (`as_of_batch`) now shown, so a change stays highlighted until the next batch
/// rather than for one poll only.
#[derive(Clone, Debug, Default)]
pub struct OrdersPane {
    pub polled: Polled<OrdersResponse>,
    /// One per row of `polled.data`.
    pub changes: Vec<Change>,
    /// The statuses before the snapshot shown; `None` right after start or a filter change,
    /// when there is nothing fair to compare with.
    baseline: Option<HashMap<(SafeText, SafeText), SafeText>>,
    /// The tenant the data shown was asked for.
    tenant: Option<SafeText>,
}

impl OrdersPane {
    pub(super) fn apply(
        &mut self,
        at: WallTime,
        tenant: Option<SafeText>,
        result: Fetched<OrdersResponse>,
    ) {
        let new = match result {
            Ok(new) => new,
            Err(e) => return self.polled.apply(at, Err(e)),
        };
        let same_filter = self.tenant == tenant;
        let same_snapshot = same_filter
            && self
                .polled
                .data
                .as_ref()
                .is_some_and(|shown| shown.as_of_batch == new.as_of_batch);
        if !same_snapshot {
            self.baseline = match (&self.polled.data, same_filter) {
                (Some(shown), true) => Some(
                    shown
                        .orders
                        .iter()
                        .map(|o| ((o.tenant.clone(), o.order_id.clone()), o.status.clone()))
                        .collect(),
                ),
                _ => None,
            };
        }
        self.changes = new
            .orders
            .iter()
            .map(|o| match &self.baseline {
                None => Change::Same,
                Some(before) => match before.get(&(o.tenant.clone(), o.order_id.clone())) {
                    None => Change::New,
                    Some(status) if *status != o.status => Change::StatusChanged {
                        from: status.clone(),
                    },
                    Some(_) => Change::Same,
                },
            })
            .collect();
        self.tenant = tenant;
        self.polled.apply(at, Ok(new));
    }
}

/// The newest records of the topic, newest first, in a ring of [`TAIL_CAPACITY`]. While paused
/// the screen shows a frozen copy and the live ring keeps filling, so resuming shows the present.
#[derive(Clone, Debug)]
pub struct TailPane {
    live: VecDeque<TailRecord>,
    frozen: Option<VecDeque<TailRecord>>,
    capacity: usize,
    /// Records read since start, and how many of them were malformed.
    pub received: u64,
    pub malformed: u64,
    /// Partitions of the topic, as last seen.
    pub partitions: Option<usize>,
    /// Why the tail may be empty (the topic does not exist yet).
    pub note: Option<SafeText>,
    /// `o`: the tail shows this partition from this offset on (Esc: every partition again).
    pub seek: Option<(i32, i64)>,
    /// A seek whose first records have not come yet (they get the selection).
    pub(super) seek_pending: bool,
}

impl TailPane {
    pub fn new(capacity: usize) -> TailPane {
        TailPane {
            live: VecDeque::with_capacity(capacity.min(TAIL_CAPACITY)),
            frozen: None,
            capacity,
            received: 0,
            malformed: 0,
            partitions: None,
            note: None,
            seek: None,
            seek_pending: false,
        }
    }

    /// Starts again from `offset` of `partition`: what was read is dropped, the pause ends.
    pub(super) fn seek_to(&mut self, partition: i32, offset: i64) {
        self.live.clear();
        self.frozen = None;
        self.seek = Some((partition, offset));
        self.seek_pending = true;
    }

    /// Whether a record is within the seek (always, without one).
    pub fn in_seek(&self, r: &TailRecord) -> bool {
        self.seek
            .is_none_or(|(p, o)| r.partition == p && r.offset >= o)
    }

    /// Adds records read oldest first; returns those added, newest first.
    pub(super) fn push(&mut self, records: Vec<TailRecord>) -> impl Iterator<Item = &TailRecord> {
        self.received += records.len() as u64;
        self.malformed += records.iter().filter(|r| r.is_malformed()).count() as u64;
        let skip = records.len().saturating_sub(self.capacity);
        let added = records.len() - skip;
        for r in records.into_iter().skip(skip) {
            if self.live.len() == self.capacity {
                self.live.pop_back();
            }
            self.live.push_front(r);
        }
        self.live.iter().take(added)
    }

    /// What the pane shows, newest first.
    pub fn shown(&self) -> &VecDeque<TailRecord> {
        self.frozen.as_ref().unwrap_or(&self.live)
    }

    pub fn is_paused(&self) -> bool {
        self.frozen.is_some()
    }

    pub(super) fn toggle_pause(&mut self) {
        self.frozen = match self.frozen.take() {
            Some(_) => None,
            None => Some(self.live.clone()),
        };
    }
}

#[cfg(test)]
mod tests {
    use crate::app::fixtures::*;
    use crate::app::{Action, Change, Msg, TAIL_CAPACITY};
    use crate::model::TailRecord;

    #[test]
    fn a_new_poll_replaces_the_data_and_highlights_what_changed_in_the_new_batch() {
        let mut a = app();
        a.update(poll(
            1,
            orders(
                1,
                vec![
                    order("acme", "o1", "order_placed"),
                    order("acme", "o2", "order_placed"),
                ],
            ),
        ));
        assert!(a.api.is_up());
        assert!(
            a.visible_orders().all(|(_, c)| *c == Change::Same),
            "nothing to compare the first poll with"
        );

        let next = vec![
            order("acme", "o3", "order_placed"),
            order("acme", "o1", "order_paid"),
            order("acme", "o2", "order_placed"),
        ];
        a.update(poll(2, orders(2, next.clone())));
        let changes: Vec<Change> = a.visible_orders().map(|(_, c)| c.clone()).collect();
        assert_eq!(
            changes,
            vec![
                Change::New,
                Change::StatusChanged {
                    from: "order_placed".into()
                },
                Change::Same
            ]
        );
        // The same batch polled again: the highlights stay until the next batch.
        a.update(poll(3, orders(2, next.clone())));
        assert_eq!(
            a.visible_orders()
                .filter(|(_, c)| **c != Change::Same)
                .count(),
            2
        );
        // The next batch changes nothing: no highlight.
        a.update(poll(4, orders(3, next)));
        assert!(a.visible_orders().all(|(_, c)| *c == Change::Same));
        assert_eq!(
            a.orders.polled.data.as_ref().and_then(|d| d.as_of_batch),
            Some(3)
        );
    }

    #[test]
    fn the_tail_is_newest_first_bounded_and_keeps_malformed_records() {
        let mut a = app();
        tail(&mut a, vec![event("acme", 0), event("acme", 1)]);
        tail(
            &mut a,
            vec![
                TailRecord::decode(0, 2, None, Some(b"{oops")),
                event("globex", 3),
            ],
        );
        assert_eq!(offsets(&a), vec![3, 2, 1, 0]);
        assert_eq!(a.tail.received, 4);
        assert_eq!(a.tail.malformed, 1);
        assert!(a
            .visible_tail()
            .nth(1)
            .is_some_and(TailRecord::is_malformed));

        tail(
            &mut a,
            (10..10 + TAIL_CAPACITY as i64 + 5)
                .map(|o| event("acme", o))
                .collect(),
        );
        assert_eq!(a.tail.shown().len(), TAIL_CAPACITY);
        assert_eq!(
            a.visible_tail().next().map(|r| r.offset),
            Some(10 + TAIL_CAPACITY as i64 + 4)
        );
        assert_eq!(a.visible_tail().last().map(|r| r.offset), Some(15));
    }

    #[test]
    fn pause_keeps_what_is_shown_and_resume_shows_the_present() {
        let mut a = app();
        tail(&mut a, vec![event("acme", 0), event("acme", 1)]);
        a.update(Msg::Action(Action::TogglePause));
        assert!(a.tail.is_paused());
        tail(&mut a, vec![event("acme", 2)]);
        assert_eq!(offsets(&a), vec![1, 0], "frozen while paused");
        assert_eq!(a.tail.received, 3, "but still counting");
        a.update(Msg::Action(Action::TogglePause));
        assert_eq!(offsets(&a), vec![2, 1, 0]);
    }
}
