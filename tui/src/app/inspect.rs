//! Looking closer: the detail views (Enter), the dead letters (`d`), the filter line (`/`), the
//! seek prompt (`o`), zoom (`z`) and copy (`y`). Still pure: what needs the API goes out as an
//! [`Effect`] and its answer comes back as a [`Msg`].

use super::{Action, App, Effect, Fetched, Pane};
use crate::inspect::{record_json, DeadLetter, DeadLettersResponse, OrderHistory, WithJson};
use crate::model::{Batch, TailBody, TailRecord};
use crate::text::SafeText;

/// An answer the view waits for.
#[derive(Clone, Debug, PartialEq)]
pub enum Loading<T> {
    Waiting,
    Ready(T),
    Failed(SafeText),
}

impl<T> Loading<T> {
    fn from(result: Fetched<T>) -> Loading<T> {
        match result {
            Ok(t) => Loading::Ready(t),
            Err(e) => Loading::Failed(SafeText::new(&e.to_string())),
        }
    }
}

/// What a detail view shows.
#[derive(Clone, Debug, PartialEq)]
pub enum View {
    Record(Box<TailRecord>),
    Order {
        tenant: SafeText,
        order_id: SafeText,
        history: Loading<WithJson<OrderHistory>>,
    },
    Batch {
        batch: Box<Batch>,
        /// The newest dead letters (fetched only if the batch has any).
        dead: Loading<Vec<DeadLetter>>,
    },
    DeadLetters {
        list: Loading<WithJson<DeadLettersResponse>>,
        /// The one shown whole, if any.
        open: bool,
    },
}

/// The open detail view: what it shows, how far it is scrolled, the row selected (in a list).
#[derive(Clone, Debug, PartialEq)]
pub struct Detail {
    pub view: View,
    pub scroll: usize,
    pub selected: usize,
}

/// What the line being edited is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Filter,
    Seek,
}

/// The one-line editor at the bottom (`/` and `o`).
#[derive(Clone, Debug, PartialEq)]
pub struct LineEdit {
    pub purpose: Purpose,
    pub text: String,
    /// Why the text was not taken (a seek that is not `partition:offset`).
    pub error: Option<&'static str>,
}

/// The longest filter or seek text kept.
const MAX_EDIT: usize = 64;

impl Detail {
    fn new(view: View) -> Detail {
        Detail {
            view,
            scroll: 0,
            selected: 0,
        }
    }

    /// The dead letter selected in the list, if the list has come.
    pub fn selected_dead_letter(&self) -> Option<(&DeadLetter, &serde_json::Value)> {
        match &self.view {
            View::DeadLetters {
                list: Loading::Ready(l),
                ..
            } => l
                .data
                .dead_letters
                .get(self.selected)
                .zip(l.json["dead_letters"].get(self.selected)),
            _ => None,
        }
    }
}

impl App {
    /// Enter on the focused pane.
    pub(super) fn open(&mut self) -> Option<Effect> {
        let selected = self.scroll(self.focus);
        match self.focus {
            Pane::Tail => {
                let record = self.visible_tail().nth(selected)?.clone();
                self.detail = Some(Detail::new(View::Record(Box::new(record))));
                None
            }
            Pane::Orders => {
                let (order, _) = self.visible_orders().nth(selected)?;
                let (tenant, order_id) = (order.tenant.clone(), order.order_id.clone());
                self.detail = Some(Detail::new(View::Order {
                    tenant: tenant.clone(),
                    order_id: order_id.clone(),
                    history: Loading::Waiting,
                }));
                Some(Effect::FetchOrder { tenant, order_id })
            }
            Pane::Batches => {
                let batch = self.batches.data.as_ref()?.batches.get(selected)?.clone();
                let has_dead = batch.dead_lettered > 0;
                self.detail = Some(Detail::new(View::Batch {
                    batch: Box::new(batch),
                    dead: if has_dead {
                        Loading::Waiting
                    } else {
                        Loading::Ready(Vec::new())
                    },
                }));
                has_dead.then_some(Effect::FetchDeadLetters)
            }
            Pane::Stats => {
                let tenant = self.visible_stats().get(selected)?.tenant.clone();
                self.filter = Some(tenant);
                self.focus = Pane::Orders;
                self.scroll = [0; 4];
                Some(Effect::TenantFilter(self.filter.clone()))
            }
        }
    }

    pub(super) fn open_dead_letters(&mut self) -> Option<Effect> {
        self.detail = Some(Detail::new(View::DeadLetters {
            list: Loading::Waiting,
            open: false,
        }));
        Some(Effect::FetchDeadLetters)
    }

    /// A key while a detail view is open.
    pub(super) fn detail_act(&mut self, action: Action) -> Option<Effect> {
        let topic = self.conn.topic.clone();
        let detail = self.detail.as_mut()?;
        let in_list = matches!(detail.view, View::DeadLetters { open: false, .. });
        let list_len = match &detail.view {
            View::DeadLetters {
                list: Loading::Ready(l),
                ..
            } => l.data.dead_letters.len(),
            _ => 0,
        };
        let target = if in_list {
            &mut detail.selected
        } else {
            &mut detail.scroll
        };
        let max = if in_list {
            list_len.saturating_sub(1)
        } else {
            usize::MAX / 2 // the view clamps to what it holds at its height
        };
        let mut step = |delta: isize| *target = target.saturating_add_signed(delta).min(max);
        match action {
            Action::Back => match &mut detail.view {
                View::DeadLetters {
                    open: open @ true, ..
                } => {
                    *open = false;
                    detail.scroll = 0;
                }
                _ => self.detail = None,
            },
            Action::ScrollUp => step(-1),
            Action::ScrollDown => step(1),
            Action::PageUp => step(-(super::PAGE as isize)),
            Action::PageDown => step(super::PAGE as isize),
            Action::Top => *target = 0,
            Action::Bottom => *target = max,
            Action::Open => {
                if let View::DeadLetters { open, list } = &mut detail.view {
                    if matches!(list, Loading::Ready(l) if !l.data.dead_letters.is_empty()) {
                        *open = true;
                        detail.scroll = 0;
                    }
                }
            }
            Action::Copy => {
                let json = match &detail.view {
                    View::Record(r) => Some(record_json(&topic, r)),
                    View::Order {
                        history: Loading::Ready(h),
                        ..
                    } => Some(h.json.clone()),
                    View::DeadLetters { open: true, .. } => {
                        detail.selected_dead_letter().map(|(_, j)| j.clone())
                    }
                    _ => None,
                };
                return json.map(|j| Effect::Copy(j.to_string()));
            }
            Action::DeadLetters => return self.open_dead_letters(),
            Action::Quit => self.quit = true,
            Action::ToggleHelp => self.help = !self.help,
            Action::Zoom => self.zoom = !self.zoom,
            _ => {}
        }
        None
    }

    pub(super) fn on_order_history(
        &mut self,
        tenant: SafeText,
        order_id: SafeText,
        result: Fetched<WithJson<OrderHistory>>,
    ) {
        if let Some(Detail {
            view:
                View::Order {
                    tenant: t,
                    order_id: o,
                    history,
                },
            ..
        }) = &mut self.detail
        {
            if *t == tenant && *o == order_id {
                *history = Loading::from(result);
            }
        }
    }

    pub(super) fn on_dead_letters(&mut self, result: Fetched<WithJson<DeadLettersResponse>>) {
        match self.detail.as_mut().map(|d| &mut d.view) {
            Some(View::DeadLetters { list, .. }) => *list = Loading::from(result),
            Some(View::Batch { dead, .. }) => {
                *dead = Loading::from(result.map(|r| r.data.dead_letters));
            }
            _ => {}
        }
    }

    /// `/` or `o`: opens the line editor.
    pub(super) fn start_edit(&mut self, purpose: Purpose) -> Option<Effect> {
        if purpose == Purpose::Seek && self.focus == Pane::Batches {
            return self.seek_to_batch();
        }
        if purpose == Purpose::Seek && self.focus != Pane::Tail {
            return None;
        }
        let text = match purpose {
            Purpose::Filter => self.search.clone().unwrap_or_default(),
            Purpose::Seek => String::new(),
        };
        self.edit = Some(LineEdit {
            purpose,
            text,
            error: None,
        });
        None
    }

    /// A key while the line editor is open.
    pub(super) fn edit_act(&mut self, action: Action) -> Option<Effect> {
        let edit = self.edit.as_mut()?;
        match action {
            Action::Type(c) if !c.is_control() && edit.text.chars().count() < MAX_EDIT => {
                edit.text.push(c);
                edit.error = None;
            }
            Action::Erase => {
                edit.text.pop();
                edit.error = None;
            }
            Action::Back => {
                if edit.purpose == Purpose::Filter {
                    self.search = None;
                    self.reset_filtered_scroll();
                }
                self.edit = None;
                return None;
            }
            Action::Open => {
                let purpose = edit.purpose;
                let text = edit.text.clone();
                match purpose {
                    Purpose::Filter => self.edit = None,
                    Purpose::Seek => match parse_seek(&text) {
                        Some((partition, offset)) => {
                            self.edit = None;
                            return Some(self.seek(partition, offset));
                        }
                        None => edit.error = Some("expected partition:offset, e.g. 0:41"),
                    },
                }
            }
            Action::Quit => self.quit = true,
            _ => {}
        }
        if let Some(LineEdit {
            purpose: Purpose::Filter,
            text,
            ..
        }) = &self.edit
        {
            let next = (!text.is_empty()).then(|| text.clone());
            if next != self.search {
                self.search = next;
                self.reset_filtered_scroll();
            }
        }
        None
    }

    fn reset_filtered_scroll(&mut self) {
        self.scroll[Pane::Tail.index()] = 0;
        self.scroll[Pane::Orders.index()] = 0;
    }

    fn seek_to_batch(&mut self) -> Option<Effect> {
        let selected = self.scroll(Pane::Batches);
        let batch = self.batches.data.as_ref()?.batches.get(selected)?;
        let first = batch.partitions.first()?;
        let (partition, offset) = (first.partition, first.start_offset);
        self.focus = Pane::Tail;
        Some(self.seek(partition, offset))
    }

    fn seek(&mut self, partition: i32, offset: i64) -> Effect {
        self.tail.seek_to(partition, offset);
        self.scroll[Pane::Tail.index()] = 0;
        Effect::Seek { partition, offset }
    }

    /// Whether a tail record matches the `/` filter: its tenant, order id or type (or, for a
    /// malformed record, its key or reason), case-insensitive.
    pub fn search_matches_record(&self, r: &TailRecord) -> bool {
        let Some(needle) = &self.search else {
            return true;
        };
        match &r.body {
            TailBody::Event(e) => [
                e.tenant.as_str(),
                e.order_id.as_str(),
                e.event_type.as_str(),
            ]
            .iter()
            .any(|h| contains(h, needle)),
            TailBody::Malformed { key, reason } => {
                key.as_ref().is_some_and(|k| contains(k.as_str(), needle))
                    || contains(reason.as_str(), needle)
            }
        }
    }

    /// Whether an order matches the `/` filter: tenant, order id or status.
    pub fn search_matches_order(&self, o: &crate::model::Order) -> bool {
        self.search.as_ref().is_none_or(|needle| {
            [o.tenant.as_str(), o.order_id.as_str(), o.status.as_str()]
                .iter()
                .any(|h| contains(h, needle))
        })
    }
}

/// Case-insensitive `haystack.contains(needle)`.
pub fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

/// `0:41`, `0@41` or `0 41`.
fn parse_seek(text: &str) -> Option<(i32, i64)> {
    let (p, o) = text.trim().split_once([':', '@', ' '])?;
    let partition: i32 = p.trim().parse().ok()?;
    let offset: i64 = o.trim().parse().ok()?;
    (partition >= 0 && offset >= 0).then_some((partition, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::fixtures::*;
    use crate::app::{Msg, Pane};

    fn act(a: &mut App, action: Action) -> Option<Effect> {
        a.update(Msg::Action(action))
    }

    #[test]
    fn enter_on_the_tail_opens_the_selected_record_and_esc_closes_it() {
        let mut a = app();
        tail(&mut a, (0..5).map(|o| event("acme", o)).collect());
        assert_eq!(act(&mut a, Action::Open), None);
        assert!(
            matches!(&a.detail, Some(Detail { view: View::Record(r), .. }) if r.offset == 4),
            "the newest record is selected at start"
        );
        assert!(
            matches!(act(&mut a, Action::Copy), Some(Effect::Copy(j)) if j.contains("\"offset\":4"))
        );
        act(&mut a, Action::Back);
        assert!(a.detail.is_none() && !a.quit);
        act(&mut a, Action::ScrollDown);
        act(&mut a, Action::Open);
        assert!(matches!(&a.detail, Some(Detail { view: View::Record(r), .. }) if r.offset == 3));
    }

    #[test]
    fn enter_on_an_order_asks_for_its_history_and_shows_the_answer() {
        let mut a = app();
        a.update(poll(1, orders(1, vec![order("acme", "o1", "order_paid")])));
        act(&mut a, Action::FocusNext);
        assert_eq!(
            act(&mut a, Action::Open),
            Some(Effect::FetchOrder {
                tenant: "acme".into(),
                order_id: "o1".into()
            })
        );
        let history = crate::inspect::with_json(serde_json::json!({
            "tenant": "acme", "order_id": "o1", "events": []
        }))
        .expect("history");
        // An answer for another order (the user moved on) is not shown.
        a.update(Msg::OrderHistory {
            tenant: "acme".into(),
            order_id: "o2".into(),
            result: Ok(history.clone()),
        });
        assert!(matches!(
            &a.detail,
            Some(Detail {
                view: View::Order {
                    history: Loading::Waiting,
                    ..
                },
                ..
            })
        ));
        a.update(Msg::OrderHistory {
            tenant: "acme".into(),
            order_id: "o1".into(),
            result: Ok(history),
        });
        assert!(matches!(
            &a.detail,
            Some(Detail {
                view: View::Order {
                    history: Loading::Ready(_),
                    ..
                },
                ..
            })
        ));
        assert!(
            matches!(act(&mut a, Action::Copy), Some(Effect::Copy(j)) if j.contains("\"order_id\":\"o1\""))
        );
    }

    #[test]
    fn enter_on_stats_filters_the_orders_to_that_tenant() {
        let mut a = app();
        a.update(poll(1, orders(1, vec![order("acme", "o1", "order_paid")])));
        act(&mut a, Action::FocusNext);
        act(&mut a, Action::FocusNext);
        act(&mut a, Action::ScrollDown);
        assert_eq!(
            act(&mut a, Action::Open),
            Some(Effect::TenantFilter(Some("globex".into())))
        );
        assert_eq!(a.focus, Pane::Orders);
    }

    #[test]
    fn the_dead_letters_list_opens_one_whole() {
        let mut a = app();
        assert_eq!(
            act(&mut a, Action::DeadLetters),
            Some(Effect::FetchDeadLetters)
        );
        let list = crate::inspect::with_json(serde_json::json!({"dead_letters": [
            {"id": 2, "partition": 0, "offset": 9, "reason": "r2", "payload": "x"},
            {"id": 1, "partition": 1, "offset": 3, "reason": "r1", "payload": "y"}
        ]}))
        .expect("list");
        a.update(Msg::DeadLetters(Ok(list)));
        act(&mut a, Action::ScrollDown);
        act(&mut a, Action::ScrollDown);
        let d = a.detail.as_ref().expect("open");
        assert_eq!(d.selected, 1, "clamped to the list");
        act(&mut a, Action::Open);
        assert!(
            matches!(act(&mut a, Action::Copy), Some(Effect::Copy(j)) if j.contains("\"id\":1"))
        );
        act(&mut a, Action::Back);
        assert!(matches!(
            &a.detail,
            Some(Detail {
                view: View::DeadLetters { open: false, .. },
                ..
            })
        ));
        act(&mut a, Action::Back);
        assert!(a.detail.is_none());
    }

    #[test]
    fn the_filter_line_narrows_tail_and_orders_case_insensitively() {
        let mut a = app();
        a.update(poll(
            1,
            orders(
                1,
                vec![
                    order("acme", "o1", "order_paid"),
                    order("globex", "o2", "order_placed"),
                ],
            ),
        ));
        tail(&mut a, vec![event("acme", 0), event("globex", 1)]);
        act(&mut a, Action::Filter);
        for c in "GLOB".chars() {
            act(&mut a, Action::Type(c));
        }
        assert_eq!(offsets(&a), vec![1]);
        assert_eq!(a.visible_orders().count(), 1);
        act(&mut a, Action::Open);
        assert!(a.edit.is_none());
        assert_eq!(a.search.as_deref(), Some("GLOB"), "Enter keeps it");
        act(&mut a, Action::Filter);
        act(&mut a, Action::Erase);
        act(&mut a, Action::Back);
        assert_eq!(a.search, None, "Esc clears it");
        assert_eq!(offsets(&a), vec![1, 0]);
        // `q` typed into the line is text, not quit: keys.rs maps it to Type('q').
        act(&mut a, Action::Filter);
        act(&mut a, Action::Type('q'));
        assert!(!a.quit);
    }

    #[test]
    fn zoom_and_seek() {
        let mut a = app();
        act(&mut a, Action::Zoom);
        assert!(a.zoom);
        act(&mut a, Action::Zoom);
        assert!(!a.zoom);
        tail(&mut a, vec![event("acme", 5)]);
        act(&mut a, Action::Seek);
        for c in "x".chars() {
            act(&mut a, Action::Type(c));
        }
        assert_eq!(act(&mut a, Action::Open), None);
        assert!(a.edit.as_ref().is_some_and(|e| e.error.is_some()));
        act(&mut a, Action::Erase);
        for c in "0:2".chars() {
            act(&mut a, Action::Type(c));
        }
        assert_eq!(
            act(&mut a, Action::Open),
            Some(Effect::Seek {
                partition: 0,
                offset: 2
            })
        );
        assert!(
            offsets(&a).is_empty(),
            "the tail starts again from the offset"
        );
        tail(&mut a, vec![event("acme", 2), event("acme", 3)]);
        // The tail shows only that partition from the offset; the sought record selected.
        assert_eq!(offsets(&a), vec![3, 2]);
        assert_eq!(a.scroll(Pane::Tail), 1);
    }
}
