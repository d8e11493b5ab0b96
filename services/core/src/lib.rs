//! What every spine binary shares.
//!
//! - [`config`]: the environment/flag contract (docs/contracts.md, "Configuration") and its
//!   one-line start-up errors;
//! - [`event`]: the order event, its wire format and its validation (what becomes a dead letter);
//! - [`reduce`]: the pure "latest event per order" reducer and the rule a row is replaced by;
//! - [`telemetry`], [`shutdown`]: logging and signal handling;
//! - [`backoff`], [`throttle`]: waiting before a retry, and logging a repeated error rarely.
//!
//! Behind cargo features, so a binary compiles only what it uses:
//! - `postgres`: [`db`] (connection pools), [`schema`] (the migrations, applied by the processor
//!   and awaited by the API) and `config::PostgresArgs`;
//! - `ops`: [`ops`] (the `/metrics`, `/healthz`, `/readyz` listener) and [`metrics`] (metric
//!   registration);
//! - `test-fixtures`: `fixtures`, events for tests.

pub mod backoff;
pub mod config;
#[cfg(feature = "postgres")]
pub mod db;
pub mod event;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
#[cfg(feature = "ops")]
pub mod metrics;
#[cfg(feature = "ops")]
pub mod ops;
pub mod reduce;
#[cfg(feature = "postgres")]
pub mod schema;
pub mod shutdown;
pub mod telemetry;
pub mod throttle;

pub use event::{Event, EventType, InvalidEvent};
