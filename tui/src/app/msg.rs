//! The messages: everything that changes the state comes in as one [`Msg`]; what the sources
//! must do after it goes out as an [`Effect`].

use std::fmt;
use std::time::Instant;

use super::WallTime;
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
