//! `spine-tui`: the terminal observer of the whole spine (docs/contracts.md, "spine-tui").
//!
//! - [`app`]: the state and every transition, pure (no IO, time passed in);
//! - [`ui`]: draws the state, one file per pane;
//! - [`run`]: the event loop that owns the state, folding keys, ticks and source messages;
//! - [`sources`]: the API poller (a task) and the topic tail (a thread), reporting by message;
//! - [`inspect`]: what the detail views show (a record, an order's history, a batch, a dead
//!   letter) and the JSON `y` copies;
//! - [`peek`]: `spine-tui peek --num N`, the newest records as JSON lines;
//! - [`model`], [`text`], [`rate`], [`keys`], [`config`]: the data, safe strings, the events/s
//!   meter, the key bindings and the command line;
//! - `faults` (only with the `test-hooks` feature, which tests enable): fault injection.

pub mod app;
pub mod config;
#[cfg(feature = "test-hooks")]
pub mod faults;
pub mod inspect;
pub mod keys;
pub mod model;
pub mod peek;
pub mod rate;
pub mod run;
pub mod sources;
pub mod text;
pub mod ui;

pub use config::TuiArgs;
