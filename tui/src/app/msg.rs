//! The messages: everything that changes the state comes in as one [`Msg`]; what the sources
//! must do after it goes out as an [`Effect`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Instant;

use super::{LogEnd, WallTime};
use crate::inspect::{DeadLettersResponse, OrderHistory, WithJson};
use crate::model::{BatchesResponse, OrdersResponse, StatsResponse, TailRecord};
use crate::text::SafeText;

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
    /// Enter: opens the selected row (or, in a line being edited, keeps it).
    Open,
    /// `y`: copies the open record, order or dead letter as JSON (OSC 52).
    Copy,
    /// `z`: the focused pane fills the screen, and back.
    Zoom,
    /// `/`: opens the filter line.
    Filter,
    /// `d`: the dead letters.
    DeadLetters,
    /// `o`: seeks the tail (a prompt for partition:offset; on the batches, the selected batch).
    Seek,
    /// A character typed into the line being edited.
    Type(char),
    /// Backspace in the line being edited.
    Erase,
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

/// How the API's answers reach the screen (docs/contracts.md, "spine-tui"): pushed by
/// `GET /stream` as each batch commits, or polled once a second when the stream is unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    Push,
    Poll,
}

impl Feed {
    /// What the header says.
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Push => "push",
            Feed::Poll => "polling",
        }
    }
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

// An API poll is the large one; a few messages a second go through the channel, so boxing it
// would buy nothing but noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    Action(Action),
    Api(ApiPoll),
    /// The API source switched between the stream and polling.
    Feed(Feed),
    /// Records in the order they were read (oldest first).
    Tail {
        at: Instant,
        records: Vec<TailRecord>,
    },
    Broker {
        at: WallTime,
        report: BrokerReport,
    },
    /// The ends of the topic's partitions as the topic source read them at `at`.
    Watermarks {
        at: WallTime,
        ends: BTreeMap<i32, LogEnd>,
    },
    Tick(Instant),
    /// The answer to [`Effect::FetchOrder`].
    OrderHistory {
        tenant: SafeText,
        order_id: SafeText,
        result: Fetched<WithJson<OrderHistory>>,
    },
    /// The answer to [`Effect::FetchDeadLetters`].
    DeadLetters(Fetched<WithJson<DeadLettersResponse>>),
}

/// What the event loop must do for the sources after an update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Ask `/orders` for this tenant from now on (`None`: all).
    TenantFilter(Option<SafeText>),
    /// Ask `GET /orders/{tenant}/{order_id}` once; the answer comes back as
    /// [`Msg::OrderHistory`].
    FetchOrder {
        tenant: SafeText,
        order_id: SafeText,
    },
    /// Ask `GET /dead_letters` once; the answer comes back as [`Msg::DeadLetters`].
    FetchDeadLetters,
    /// Put this text on the clipboard (the terminal's, through OSC 52).
    Copy(String),
    /// Read the tail's partition from this offset on.
    Seek { partition: i32, offset: i64 },
}
