//! The data sources: each runs on its own (a task, or a thread for librdkafka's blocking
//! consumer) and reports to the UI loop over one channel of [`Msg`](crate::app::Msg). They never
//! touch the UI's state. `requests.rs` serves the one-off fetches and seeks a key asks for
//! (an order's history, the dead letters, `o`), answering on the same channel.

pub mod api;
pub mod requests;
pub mod topic;

/// Wall-clock now, for "down since" times.
pub fn wall_now() -> crate::app::WallTime {
    chrono::Local::now().fixed_offset()
}
