//! The data sources: each runs on its own (a task, or a thread for librdkafka's blocking
//! consumer) and reports to the UI loop over one channel of [`Msg`](crate::app::Msg). They never
//! touch the UI's state. `requests.rs` serves the one-off fetches and seeks a key asks for
//! (an order's history, the dead letters, `o`), answering on the same channel. The API's
//! answers come from `stream.rs` (pushed by `GET /stream`, merged by `live.rs`), or from the
//! poller in `api.rs` while the stream is unavailable.

pub mod api;
pub mod live;
pub mod requests;
pub mod stream;
pub mod topic;

/// Wall-clock now, for "down since" times.
pub fn wall_now() -> crate::app::WallTime {
    chrono::Local::now().fixed_offset()
}
