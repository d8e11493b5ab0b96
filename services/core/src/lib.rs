//! What every spine binary shares.
//!
//! - [`config`]: the environment/flag contract of SPEC.md and its one-line start-up errors;
//! - [`event`]: the order event, its wire format and its validation (what becomes a dead letter);
//! - [`reduce`]: the pure "latest event per order" reducer and the rule a row is replaced by;
//! - [`schema`]: the Postgres schema, migrated by the processor and awaited by the API;
//! - [`db`], [`telemetry`], [`ops`], [`metrics`], [`shutdown`]: connection pools, logging, the
//!   `/metrics` + `/healthz` listener, metric registration, and signal handling;
//! - [`backoff`], [`throttle`]: waiting before a retry, and logging a repeated error rarely.

pub mod backoff;
pub mod config;
pub mod db;
pub mod event;
pub mod metrics;
pub mod ops;
pub mod reduce;
pub mod schema;
pub mod shutdown;
pub mod telemetry;
pub mod throttle;

pub use event::{Event, EventType, InvalidEvent};
