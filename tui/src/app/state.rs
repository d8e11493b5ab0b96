//! [`App`]: everything the screen shows, and [`App::update`], the one way it changes.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::time::Instant;

use super::inspect::{Detail, LineEdit, Purpose};
use super::{
    lag, Action, ApiPoll, BrokerReport, Change, Connection, Effect, Feed, FetchError, Health, Msg,
    OrdersPane, Pane, PartitionRow, Polled, TailPane, Trends, Watermarks, PAGE, TAIL_CAPACITY,
};
use crate::model::{
    BatchesResponse, Order, PartitionLag, ProcessorStatus, StatsResponse, TailBody, TailRecord,
    TenantStats,
};
use crate::rate::RateMeter;
use crate::text::SafeText;

/// Everything the screen shows.
#[derive(Debug)]
pub struct App {
    pub conn: Connection,
    pub api: Health,
    /// Whether the API's answers are pushed or polled (`None`: not known yet).
    pub feed: Option<Feed>,
    pub broker: Health,
    pub tail: TailPane,
    pub rates: RateMeter,
    pub orders: OrdersPane,
    pub stats: Polled<StatsResponse>,
    pub batches: Polled<BatchesResponse>,
    /// The ends of the topic's partitions as the topic source last read them.
    pub watermarks: Option<Watermarks>,
    pub trends: Trends,
    pub focus: Pane,
    /// The selected row of each pane (the first one it shows).
    pub(super) scroll: [usize; 4],
    /// The tenant every pane is narrowed to (`None`: all).
    pub filter: Option<SafeText>,
    pub help: bool,
    /// The open detail view (Enter, `d`), drawn over the panes.
    pub detail: Option<Detail>,
    /// `z`: the focused pane fills the screen.
    pub zoom: bool,
    /// The `/` filter on the tail and the orders (as typed; matched case-insensitively).
    pub search: Option<String>,
    /// The line being edited (`/` or `o`), shown in the footer.
    pub edit: Option<LineEdit>,
    pub quit: bool,
    /// The latest time a message brought (for rates).
    pub now: Instant,
}

impl App {
    pub fn new(conn: Connection, now: Instant) -> App {
        App {
            conn,
            api: Health::Connecting,
            feed: None,
            broker: Health::Connecting,
            tail: TailPane::new(TAIL_CAPACITY),
            rates: RateMeter::default(),
            orders: OrdersPane::default(),
            stats: Polled::default(),
            batches: Polled::default(),
            watermarks: None,
            trends: Trends::default(),
            focus: Pane::Tail,
            scroll: [0; 4],
            filter: None,
            help: false,
            detail: None,
            zoom: false,
            search: None,
            edit: None,
            quit: false,
            now,
        }
    }

    pub fn update(&mut self, msg: Msg) -> Option<Effect> {
        match msg {
            Msg::Action(action) => return self.act(action),
            Msg::Api(poll) => self.on_api(poll),
            Msg::Feed(feed) => self.feed = Some(feed),
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
            Msg::Watermarks { at, ends } => self.watermarks = Some(Watermarks { at, ends }),
            Msg::Tick(now) => {
                self.now = self.now.max(now);
                self.rates.prune(self.now);
            }
            Msg::OrderHistory {
                tenant,
                order_id,
                result,
            } => self.on_order_history(tenant, order_id, result),
            Msg::DeadLetters(result) => self.on_dead_letters(result),
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
        let answered = poll.batches.is_ok();
        self.batches.apply(poll.at, poll.batches);
        let lag = self.lag_total().ok().flatten();
        let batches = self.batches.data.as_ref().filter(|_| answered);
        let broker_up = self.broker.is_up();
        self.trends
            .sample(poll.at, batches, lag.filter(|_| answered), broker_up);
    }

    fn on_tail(&mut self, at: Instant, records: Vec<TailRecord>) {
        self.now = self.now.max(at);
        self.rates.record(at, &records);
        self.trends
            .arrived(records.iter().filter(|r| !r.backfill).count() as u64);
        let paused = self.tail.is_paused();
        let added: Vec<TailRecord> = self.tail.push(records).cloned().collect();
        let added_visible = added.iter().filter(|r| self.shows(r)).count();
        let scroll = &mut self.scroll[Pane::Tail.index()];
        if self.tail.seek_pending && added_visible > 0 {
            // The first records after a seek: the oldest of them is the one sought.
            self.tail.seek_pending = false;
            *scroll = added_visible - 1;
        } else if !paused && *scroll > 0 {
            // Someone reading older rows keeps them in view while new ones arrive on top.
            *scroll += added_visible;
        }
    }

    fn act(&mut self, action: Action) -> Option<Effect> {
        if self.edit.is_some() {
            return self.edit_act(action);
        }
        if self.help && action == Action::Back {
            self.help = false;
            return None;
        }
        if self.detail.is_some() {
            return self.detail_act(action);
        }
        let pane = self.focus;
        match action {
            Action::Quit => self.quit = true,
            // Esc undoes what is in effect, one thing at a time, then quits.
            Action::Back if self.search.is_some() => self.search = None,
            Action::Back if self.tail.seek.is_some() => self.tail.seek = None,
            Action::Back if self.zoom => self.zoom = false,
            Action::Back => self.quit = true,
            Action::Open => return self.open(),
            Action::Copy | Action::Type(_) | Action::Erase => {}
            Action::Zoom => self.zoom = !self.zoom,
            Action::Filter => return self.start_edit(Purpose::Filter),
            Action::Seek => return self.start_edit(Purpose::Seek),
            Action::DeadLetters => return self.open_dead_letters(),
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
    pub(super) fn rows(&self, pane: Pane) -> usize {
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

    /// The tail rows under the tenant filter, the `/` filter and the seek, newest first.
    pub fn visible_tail(&self) -> impl Iterator<Item = &TailRecord> {
        self.tail.shown().iter().filter(move |r| self.shows(r))
    }

    fn shows(&self, r: &TailRecord) -> bool {
        matches_filter(r.tenant(), self.filter.as_ref())
            && self.search_matches_record(r)
            && self.tail.in_seek(r)
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
            .filter(move |(o, _)| {
                matches_filter(Some(&o.tenant), self.filter.as_ref())
                    && self.search_matches_order(o)
            })
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

    /// The processor's committed offsets on this screen's topic, as `/batches` last gave them.
    pub fn committed(&self) -> Vec<&PartitionLag> {
        self.batches
            .data
            .iter()
            .flat_map(|b| &b.partitions)
            .filter(|p| p.topic.as_ref().is_none_or(|t| *t == self.conn.topic))
            .collect()
    }

    /// Each partition's lag against the end of the log this screen's own connection reads
    /// (unknown while the broker does not answer it).
    pub fn lag_rows(&self) -> Vec<PartitionRow> {
        let ends = self.watermarks.as_ref().filter(|_| self.broker.is_up());
        lag::rows(&self.committed(), self.batches.fetched_at, ends)
    }

    /// The sum of [`App::lag_rows`]: `Ok(None)` while one is unknown, `Err` if an offset is
    /// ahead of its log.
    pub fn lag_total(&self) -> Result<Option<i64>, String> {
        lag::total(&self.lag_rows())
    }

    /// The processor's state as the latest `/batches` gave it, or why it is not known now: the
    /// API does not answer, `/batches` failed, or the API does not say.
    pub fn processor(&self) -> Result<&ProcessorStatus, String> {
        match (&self.api, &self.batches.error, &self.batches.data) {
            (Health::Down { .. }, _, _) => Err("API unreachable".into()),
            (Health::Connecting, _, _) | (_, _, None) => Err("waiting for /batches".into()),
            (_, Some(_), _) => Err("/batches failed".into()),
            (_, None, Some(b)) => b
                .processor
                .as_ref()
                .ok_or_else(|| "the API does not say".into()),
        }
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

    use crate::app::fixtures::*;
    use crate::app::{Action, ApiPoll, Change, Effect, Msg, Pane};
    use crate::model::TailRecord;

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
