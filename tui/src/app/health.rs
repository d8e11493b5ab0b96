//! Whether each source answers and since when, and what the header says the UI is connected to.

use super::WallTime;
use crate::text::SafeText;

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
    pub(super) fn up(&mut self, at: WallTime) {
        if !matches!(self, Health::Up { .. }) {
            *self = Health::Up { since: at };
        }
    }

    /// A source that stays down keeps the time it went down; only the reason is refreshed.
    pub(super) fn down(&mut self, at: WallTime, error: SafeText) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::fixtures::*;
    use crate::app::{ApiPoll, BrokerReport, Change, FetchError, Msg};

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
}
