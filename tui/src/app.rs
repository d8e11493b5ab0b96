//! The state of the screen and every way it changes: pure, no IO, no clock of its own.
//!
//! The event loop folds everything into one [`Msg`] stream: key actions, poll results of the
//! API, batches of topic records, broker reports and ticks. [`App::update`] applies one and, when
//! a source must change what it fetches (the tenant filter), says so with an [`Effect`]. Time
//! comes in with the messages, so every transition is testable as a plain function call.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};

use crate::model::{
    BatchesResponse, Order, OrdersResponse, StatsResponse, TailBody, TailRecord, TenantStats,
};
use crate::rate::RateMeter;
use crate::text::SafeText;

/// Wall-clock time as the user reads it (local time, with its offset, so tests can fix it).
pub type WallTime = DateTime<FixedOffset>;

/// The most topic records kept (the tail is a ring buffer).
pub const TAIL_CAPACITY: usize = 1000;
/// Rows moved by PgUp/PgDn.
pub const PAGE: usize = 10;

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

    fn index(self) -> usize {
        match self {
            Pane::Tail => 0,
            Pane::Orders => 1,
            Pane::Stats => 2,
            Pane::Batches => 3,
        }
    }

    fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % 4]
    }

    fn prev(self) -> Pane {
        Pane::ALL[(self.index() + 3) % 4]
    }
}

/// Whether a source answers, and since when it does or does not.
#[derive(Clone, Debug, PartialEq)]
pub enum Health {
    /// Nothing heard yet.
    Connecting,
    Up {
        since: WallTime,
    },
    Down {
        since: WallTime,
        error: SafeText,
    },
}

impl Health {
    fn up(&mut self, at: WallTime) {
        if !matches!(self, Health::Up { .. }) {
            *self = Health::Up { since: at };
        }
    }

    /// A source that stays down keeps the time it went down; only the reason is refreshed.
    fn down(&mut self, at: WallTime, error: SafeText) {
        match self {
            Health::Down { error: e, .. } => *e = error,
            _ => *self = Health::Down { since: at, error },
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(self, Health::Up { .. })
    }
}

/// What the header says the UI is connected to.
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub api: SafeText,
    pub brokers: SafeText,
    pub topic: SafeText,
}

/// A user intent, already decoded from a key (see `keys.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Esc: closes the help if it is open, otherwise quits.
    Back,
    FocusNext,
    FocusPrev,
    ScrollUp,
    ScrollDown,
    PageUp,
    PageDown,
    Top,
    Bottom,
    TogglePause,
    CycleTenant,
    ToggleHelp,
}

/// Why one API request brought nothing usable.
#[derive(Clone, Debug, PartialEq)]
pub enum FetchError {
    /// No answer: refused, timed out, reset.
    Unreachable(String),
    /// An answer, but not a 2xx one (`message` is the body's `error` if it had one).
    Status { code: u16, message: String },
    /// A 2xx answer that is not the documented JSON.
    Invalid(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Unreachable(e) => f.write_str(e),
            FetchError::Status { code, message } if message.is_empty() => write!(f, "HTTP {code}"),
            FetchError::Status { code, message } => write!(f, "HTTP {code}: {message}"),
            FetchError::Invalid(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

pub type Fetched<T> = Result<T, FetchError>;

/// One round of the API poller: the three requests, made together.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiPoll {
    pub at: WallTime,
    /// The tenant `/orders` was asked for.
    pub tenant: Option<SafeText>,
    pub orders: Fetched<OrdersResponse>,
    pub stats: Fetched<StatsResponse>,
    pub batches: Fetched<BatchesResponse>,
}

/// What the topic source found when it last asked the broker for the topic's metadata.
#[derive(Clone, Debug, PartialEq)]
pub enum BrokerReport {
    Up {
        partitions: usize,
    },
    /// The broker answers but the topic does not exist (the producer creates it).
    TopicMissing,
    Down {
        error: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    Action(Action),
    Api(ApiPoll),
    /// Records in the order they were read (oldest first).
    Tail {
        at: Instant,
        records: Vec<TailRecord>,
    },
    Broker {
        at: WallTime,
        report: BrokerReport,
    },
    Tick(Instant),
}

/// What the event loop must do for the sources after an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Ask `/orders` for this tenant from now on (`None`: all).
    TenantFilter(Option<SafeText>),
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
    fn apply(&mut self, at: WallTime, result: Fetched<T>) {
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
    fn apply(&mut self, at: WallTime, tenant: Option<SafeText>, result: Fetched<OrdersResponse>) {
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
        }
    }

    /// Adds records read oldest first; returns those added, newest first.
    fn push(&mut self, records: Vec<TailRecord>) -> impl Iterator<Item = &TailRecord> {
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

    fn toggle_pause(&mut self) {
        self.frozen = match self.frozen.take() {
            Some(_) => None,
            None => Some(self.live.clone()),
        };
    }
}

/// Everything the screen shows.
#[derive(Debug)]
pub struct App {
    pub conn: Connection,
    pub api: Health,
    pub broker: Health,
    pub tail: TailPane,
    pub rates: RateMeter,
    pub orders: OrdersPane,
    pub stats: Polled<StatsResponse>,
    pub batches: Polled<BatchesResponse>,
    pub focus: Pane,
    scroll: [usize; 4],
    /// The tenant every pane is narrowed to (`None`: all).
    pub filter: Option<SafeText>,
    pub help: bool,
    pub quit: bool,
    /// The latest time a message brought (for rates).
    pub now: Instant,
}

impl App {
    pub fn new(conn: Connection, now: Instant) -> App {
        App {
            conn,
            api: Health::Connecting,
            broker: Health::Connecting,
            tail: TailPane::new(TAIL_CAPACITY),
            rates: RateMeter::default(),
            orders: OrdersPane::default(),
            stats: Polled::default(),
            batches: Polled::default(),
            focus: Pane::Tail,
            scroll: [0; 4],
            filter: None,
            help: false,
            quit: false,
            now,
        }
    }

    pub fn update(&mut self, msg: Msg) -> Option<Effect> {
        match msg {
            Msg::Action(action) => return self.act(action),
            Msg::Api(poll) => self.on_api(poll),
            Msg::Tail { at, records } => self.on_tail(at, records),
            Msg::Broker { at, report } => match report {
                BrokerReport::Up { partitions } => {
                    self.broker.up(at);
                    self.tail.partitions = Some(partitions);
                    self.tail.note = None;
                }
                BrokerReport::TopicMissing => {
                    self.broker.up(at);
                    self.tail.partitions = Some(0);
                    self.tail.note = Some(SafeText::new(&format!(
                        "topic {} does not exist (yet): the producer creates it",
                        self.conn.topic
                    )));
                }
                BrokerReport::Down { error } => self.broker.down(at, SafeText::new(&error)),
            },
            Msg::Tick(now) => {
                self.now = self.now.max(now);
                self.rates.prune(self.now);
            }
        }
        None
    }

    fn on_api(&mut self, poll: ApiPoll) {
        let errors: Vec<&FetchError> = [
            poll.orders.as_ref().err(),
            poll.stats.as_ref().err(),
            poll.batches.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        // Up as soon as the API answers anything, if badly: the panes say what went wrong.
        let answered = errors.len() < 3
            || errors
                .iter()
                .any(|e| !matches!(e, FetchError::Unreachable(_)));
        if answered {
            self.api.up(poll.at);
        } else {
            let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
            self.api.down(poll.at, SafeText::new(&first));
        }
        self.orders.apply(poll.at, poll.tenant, poll.orders);
        self.stats.apply(poll.at, poll.stats);
        self.batches.apply(poll.at, poll.batches);
    }

    fn on_tail(&mut self, at: Instant, records: Vec<TailRecord>) {
        self.now = self.now.max(at);
        self.rates.record(at, &records);
        let filter = self.filter.clone();
        let paused = self.tail.is_paused();
        let added_visible = self
            .tail
            .push(records)
            .filter(|r| matches_filter(r.tenant(), filter.as_ref()))
            .count();
        // Someone reading older rows keeps them in view while new ones arrive on top.
        let scroll = &mut self.scroll[Pane::Tail.index()];
        if !paused && *scroll > 0 {
            *scroll += added_visible;
        }
    }

    fn act(&mut self, action: Action) -> Option<Effect> {
        let pane = self.focus;
        match action {
            Action::Quit => self.quit = true,
            Action::Back if self.help => self.help = false,
            Action::Back => self.quit = true,
            Action::FocusNext => self.focus = self.focus.next(),
            Action::FocusPrev => self.focus = self.focus.prev(),
            Action::ScrollUp => self.scroll_by(pane, -1),
            Action::ScrollDown => self.scroll_by(pane, 1),
            Action::PageUp => self.scroll_by(pane, -(PAGE as isize)),
            Action::PageDown => self.scroll_by(pane, PAGE as isize),
            Action::Top => self.scroll[pane.index()] = 0,
            Action::Bottom => self.scroll[pane.index()] = self.rows(pane).saturating_sub(1),
            Action::TogglePause => {
                self.tail.toggle_pause();
                self.scroll[Pane::Tail.index()] = 0;
            }
            Action::ToggleHelp => self.help = !self.help,
            Action::CycleTenant => {
                let tenants = self.tenants();
                self.filter = match &self.filter {
                    None => tenants.into_iter().next(),
                    Some(current) => tenants
                        .range((Bound::Excluded(current), Bound::Unbounded))
                        .next()
                        .cloned(),
                };
                self.scroll = [0; 4];
                return Some(Effect::TenantFilter(self.filter.clone()));
            }
        }
        None
    }

    fn scroll_by(&mut self, pane: Pane, delta: isize) {
        let max = self.rows(pane).saturating_sub(1);
        let s = &mut self.scroll[pane.index()];
        *s = s.saturating_add_signed(delta).min(max);
    }

    /// The rows a pane can scroll through.
    fn rows(&self, pane: Pane) -> usize {
        match pane {
            Pane::Tail => self.visible_tail().count(),
            Pane::Orders => self.visible_orders().count(),
            Pane::Stats => self.visible_stats().len(),
            Pane::Batches => self.batches.data.as_ref().map_or(0, |b| b.batches.len()),
        }
    }

    /// The first row a pane shows (how far it is scrolled), within what it holds now.
    pub fn scroll(&self, pane: Pane) -> usize {
        self.scroll[pane.index()].min(self.rows(pane).saturating_sub(1))
    }

    /// Every tenant seen anywhere, sorted: what `t` cycles through.
    pub fn tenants(&self) -> BTreeSet<SafeText> {
        let mut all = BTreeSet::new();
        if let Some(stats) = &self.stats.data {
            all.extend(stats.tenants.iter().map(|t| t.tenant.clone()));
        }
        if let Some(orders) = &self.orders.polled.data {
            all.extend(orders.orders.iter().map(|o| o.tenant.clone()));
        }
        all.extend(self.tail.shown().iter().filter_map(|r| match &r.body {
            TailBody::Event(e) => Some(e.tenant.clone()),
            TailBody::Malformed { .. } => None,
        }));
        all
    }

    /// The tail rows under the tenant filter, newest first.
    pub fn visible_tail(&self) -> impl Iterator<Item = &TailRecord> {
        self.tail
            .shown()
            .iter()
            .filter(move |r| matches_filter(r.tenant(), self.filter.as_ref()))
    }

    /// The orders under the tenant filter, each with how it changed.
    pub fn visible_orders(&self) -> impl Iterator<Item = (&Order, &Change)> {
        let orders = self
            .orders
            .polled
            .data
            .as_ref()
            .map(|d| d.orders.as_slice())
            .unwrap_or_default();
        orders
            .iter()
            .zip(
                self.orders
                    .changes
                    .iter()
                    .chain(std::iter::repeat(&Change::Same)),
            )
            .filter(move |(o, _)| matches_filter(Some(&o.tenant), self.filter.as_ref()))
    }

    pub fn visible_stats(&self) -> Vec<&TenantStats> {
        self.stats
            .data
            .as_ref()
            .map(|s| {
                s.tenants
                    .iter()
                    .filter(|t| matches_filter(Some(&t.tenant), self.filter.as_ref()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Events/s on the topic now, of one tenant or of all.
    pub fn rate(&self, tenant: Option<&SafeText>) -> f64 {
        self.rates.rate(self.now, tenant)
    }
}

fn matches_filter(tenant: Option<&SafeText>, filter: Option<&SafeText>) -> bool {
    match filter {
        None => true,
        Some(f) => tenant == Some(f),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::model::{Batch, PartitionLag, TenantStats};

    fn at(secs: u32) -> WallTime {
        FixedOffset::east_opt(0)
            .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 12, 0, secs).single())
            .expect("valid time")
    }

    fn app() -> App {
        App::new(
            Connection {
                api: "http://localhost:8000".into(),
                brokers: "localhost:9092".into(),
                topic: "events".into(),
            },
            Instant::now(),
        )
    }

    pub fn order(tenant: &str, id: &str, status: &str) -> Order {
        Order {
            tenant: tenant.into(),
            order_id: id.into(),
            status: status.into(),
            amount_cents: 100,
            currency: "USD".into(),
            updated_at: "2026-11-25T12:00:00Z".into(),
        }
    }

    fn orders(batch: i64, rows: Vec<Order>) -> Fetched<OrdersResponse> {
        Ok(OrdersResponse {
            orders: rows,
            as_of_batch: Some(batch),
        })
    }

    fn stats(tenants: &[&str]) -> Fetched<StatsResponse> {
        Ok(StatsResponse {
            tenants: tenants
                .iter()
                .map(|t| TenantStats {
                    tenant: (*t).into(),
                    orders: 1,
                    revenue_cents: 0,
                    by_status: Default::default(),
                })
                .collect(),
            as_of_batch: Some(1),
        })
    }

    fn batches() -> Fetched<BatchesResponse> {
        Ok(BatchesResponse {
            batches: (1..=3)
                .map(|id| Batch {
                    batch_id: id,
                    started_at: SafeText::default(),
                    finished_at: SafeText::default(),
                    input_rows: 10,
                    events_inserted: 10,
                    duplicates: 0,
                    orders_upserted: 5,
                    stale_skipped: 0,
                    dead_lettered: 0,
                    fetch_ms: 1.0,
                    write_ms: 2.0,
                    total_ms: 3.0,
                    partitions: vec![],
                })
                .collect(),
            partitions: vec![PartitionLag {
                partition: 0,
                next_offset: 10,
                high_watermark: Some(12),
                lag: Some(2),
            }],
        })
    }

    fn poll(secs: u32, o: Fetched<OrdersResponse>) -> Msg {
        Msg::Api(ApiPoll {
            at: at(secs),
            tenant: None,
            orders: o,
            stats: stats(&["acme", "globex"]),
            batches: batches(),
        })
    }

    fn unreachable(secs: u32) -> Msg {
        let e = || FetchError::Unreachable("connection refused".into());
        Msg::Api(ApiPoll {
            at: at(secs),
            tenant: None,
            orders: Err(e()),
            stats: Err(e()),
            batches: Err(e()),
        })
    }

    fn event(tenant: &str, offset: i64) -> TailRecord {
        let json = format!(
            r#"{{"event_id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","tenant":"{tenant}","event_type":"order_placed",
                "order_id":"ord-{offset}","amount_cents":100,"event_time":"2026-11-25T12:00:00Z"}}"#
        );
        TailRecord::decode(0, offset, Some(tenant.as_bytes()), Some(json.as_bytes()))
    }

    fn tail(app: &mut App, records: Vec<TailRecord>) {
        let now = app.now;
        app.update(Msg::Tail { at: now, records });
    }

    fn offsets(app: &App) -> Vec<i64> {
        app.visible_tail().map(|r| r.offset).collect()
    }

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
    fn the_api_going_down_keeps_the_data_and_the_time_it_went_down() {
        let mut a = app();
        assert_eq!(a.api, Health::Connecting);
        a.update(poll(
            1,
            orders(1, vec![order("acme", "o1", "order_placed")]),
        ));
        a.update(unreachable(5));
        a.update(unreachable(6));
        match &a.api {
            Health::Down { since, error } => {
                assert_eq!(*since, at(5), "stays the time it first failed");
                assert_eq!(error.as_str(), "connection refused");
            }
            other => panic!("expected down, got {other:?}"),
        }
        assert_eq!(
            a.visible_orders().count(),
            1,
            "the last data stays on screen"
        );
        assert_eq!(a.orders.polled.fetched_at, Some(at(1)));
        assert!(a.orders.polled.error.is_some());
        assert!(a.stats.error.is_some() && a.batches.error.is_some());

        a.update(poll(9, orders(2, vec![order("acme", "o1", "order_paid")])));
        assert_eq!(a.api, Health::Up { since: at(9) });
        assert!(a.orders.polled.error.is_none());
        assert!(matches!(
            a.visible_orders().next(),
            Some((_, Change::StatusChanged { .. }))
        ));
    }

    #[test]
    fn an_api_that_answers_badly_is_up_and_the_pane_says_why() {
        let mut a = app();
        a.update(Msg::Api(ApiPoll {
            at: at(1),
            tenant: None,
            orders: Err(FetchError::Status {
                code: 400,
                message: "limit: expected 1 to 1000".into(),
            }),
            stats: Err(FetchError::Unreachable("timed out".into())),
            batches: Err(FetchError::Invalid("missing field `batches`".into())),
        }));
        assert!(a.api.is_up());
        assert_eq!(
            a.orders.polled.error.as_ref().map(SafeText::as_str),
            Some("HTTP 400: limit: expected 1 to 1000")
        );
        assert_eq!(
            a.stats.error.as_ref().map(SafeText::as_str),
            Some("timed out")
        );
    }

    #[test]
    fn the_broker_going_down_and_up() {
        let mut a = app();
        let down = |secs| Msg::Broker {
            at: at(secs),
            report: BrokerReport::Down {
                error: "all brokers down".into(),
            },
        };
        a.update(down(3));
        a.update(down(4));
        assert!(matches!(&a.broker, Health::Down { since, .. } if *since == at(3)));
        a.update(Msg::Broker {
            at: at(8),
            report: BrokerReport::TopicMissing,
        });
        assert_eq!(a.broker, Health::Up { since: at(8) });
        assert!(a
            .tail
            .note
            .as_ref()
            .is_some_and(|n| n.as_str().contains("topic events does not exist")));
        a.update(Msg::Broker {
            at: at(9),
            report: BrokerReport::Up { partitions: 3 },
        });
        assert_eq!(
            a.broker,
            Health::Up { since: at(8) },
            "up since it first answered"
        );
        assert_eq!(a.tail.partitions, Some(3));
        assert!(a.tail.note.is_none());
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

    #[test]
    fn the_tenant_filter_cycles_through_every_tenant_then_all() {
        let mut a = app();
        a.update(poll(
            1,
            orders(
                1,
                vec![
                    order("acme", "o1", "order_placed"),
                    order("initech", "o2", "order_placed"),
                ],
            ),
        ));
        tail(
            &mut a,
            vec![
                event("hooli", 0),
                event("acme", 1),
                TailRecord::decode(0, 2, Some(b"acme"), Some(b"x")),
            ],
        );
        let mut seen = vec![];
        loop {
            let effect = a.update(Msg::Action(Action::CycleTenant));
            assert_eq!(effect, Some(Effect::TenantFilter(a.filter.clone())));
            match &a.filter {
                Some(t) => seen.push(t.as_str().to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ["acme", "globex", "hooli", "initech"]);

        a.update(Msg::Action(Action::CycleTenant)); // acme
        assert_eq!(
            offsets(&a),
            vec![2, 1],
            "a malformed record goes with its key"
        );
        assert!(a.visible_orders().all(|(o, _)| o.tenant.as_str() == "acme"));
        assert_eq!(a.visible_stats().len(), 1);
        // A poll asked for another tenant's orders does not count as a change of status.
        a.update(Msg::Api(ApiPoll {
            tenant: Some("acme".into()),
            ..match poll(2, orders(2, vec![order("acme", "o1", "order_paid")])) {
                Msg::Api(p) => p,
                _ => unreachable!(),
            }
        }));
        assert!(a.visible_orders().all(|(_, c)| *c == Change::Same));
    }

    #[test]
    fn focus_scroll_help_and_quit() {
        let mut a = app();
        assert_eq!(a.focus, Pane::Tail);
        for expected in [Pane::Orders, Pane::Stats, Pane::Batches, Pane::Tail] {
            a.update(Msg::Action(Action::FocusNext));
            assert_eq!(a.focus, expected);
        }
        a.update(Msg::Action(Action::FocusPrev));
        assert_eq!(a.focus, Pane::Batches);
        a.update(Msg::Action(Action::FocusNext));

        tail(&mut a, (0..30).map(|o| event("acme", o)).collect());
        a.update(Msg::Action(Action::ScrollUp));
        assert_eq!(a.scroll(Pane::Tail), 0);
        a.update(Msg::Action(Action::PageDown));
        a.update(Msg::Action(Action::ScrollDown));
        assert_eq!(a.scroll(Pane::Tail), 11);
        // New records arrive on top: the rows being read stay in view.
        tail(&mut a, vec![event("acme", 30), event("acme", 31)]);
        assert_eq!(a.scroll(Pane::Tail), 13);
        assert_eq!(a.visible_tail().nth(13).map(|r| r.offset), Some(18));
        a.update(Msg::Action(Action::Bottom));
        assert_eq!(a.scroll(Pane::Tail), 31);
        a.update(Msg::Action(Action::PageDown));
        assert_eq!(a.scroll(Pane::Tail), 31, "clamped at the last row");
        a.update(Msg::Action(Action::Top));
        assert_eq!(a.scroll(Pane::Tail), 0);
        assert_eq!(
            a.scroll(Pane::Orders),
            0,
            "other panes keep their own position"
        );

        a.update(Msg::Action(Action::ToggleHelp));
        assert!(a.help);
        a.update(Msg::Action(Action::Back));
        assert!(!a.help && !a.quit, "Esc closes the help first");
        a.update(Msg::Action(Action::Back));
        assert!(a.quit);
        let mut b = app();
        b.update(Msg::Action(Action::Quit));
        assert!(b.quit);
    }

    #[test]
    fn ticks_let_the_rate_fall_to_zero() {
        let mut a = app();
        let t0 = a.now;
        a.update(Msg::Tail {
            at: t0 + Duration::from_secs(1),
            records: (0..100).map(|o| event("acme", o)).collect(),
        });
        assert!(a.rate(None) > 0.0);
        assert!(a.rate(Some(&"acme".into())) > 0.0);
        a.update(Msg::Tick(t0 + Duration::from_secs(30)));
        assert_eq!(a.rate(None), 0.0);
    }
}
