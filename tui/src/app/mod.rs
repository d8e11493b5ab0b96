//! The state of the screen and every way it changes: pure, no IO, no clock of its own.
//!
//! The event loop folds everything into one [`Msg`] stream: key actions, poll results of the
//! API, batches of topic records, broker reports and ticks. [`App::update`] applies one and, when
//! a source must change what it fetches (the tenant filter), says so with an [`Effect`]. Time
//! comes in with the messages, so every transition is testable as a plain function call.
//!
//! - `msg.rs`: what comes in ([`Msg`], [`Action`], [`ApiPoll`], [`BrokerReport`]) and what goes
//!   out ([`Effect`]);
//! - `health.rs`: whether the API and the broker answer ([`Health`]), and what the header names;
//! - `panes.rs`: the focus ([`Pane`]) and the state of each pane ([`TailPane`], [`OrdersPane`],
//!   [`Polled`]);
//! - `lag.rs`: the lag shown, from the topic's live ends and the processor's committed offsets;
//! - `trends.rs`: the last minutes of rates, lag and batch durations, for the sparklines;
//! - `state.rs`: [`App`], the whole screen, and [`App::update`];
//! - `inspect.rs`: looking closer: detail views, dead letters, the filter line, seek, zoom, copy;
//! - `fixtures.rs`: the data their unit tests share.

mod health;
mod inspect;
mod lag;
mod msg;
mod panes;
mod state;
mod trends;

#[cfg(test)]
pub(crate) mod fixtures;

use chrono::{DateTime, FixedOffset};

pub use health::{Connection, Health};
pub use inspect::{contains, Detail, LineEdit, Loading, Purpose, View};
pub use lag::{Lag, LogEnd, PartitionRow, Watermarks};
pub use msg::{Action, ApiPoll, BrokerReport, Effect, Feed, FetchError, Fetched, Msg};
pub use panes::{Change, OrdersPane, Pane, Polled, TailPane};
pub use state::App;
pub use trends::{Sample, Trends};

/// Wall-clock time as the user reads it (local time, with its offset, so tests can fix it).
pub type WallTime = DateTime<FixedOffset>;

/// The most topic records kept (the tail is a ring buffer).
pub const TAIL_CAPACITY: usize = 1000;
/// Rows moved by PgUp/PgDn.
pub const PAGE: usize = 10;
