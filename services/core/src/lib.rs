//! What every spine binary shares.
//!
//! - [`config`]: the environment/flag contract of SPEC.md and its one-line start-up errors;
//! - [`event`]: the order event, its wire format and its validation (what becomes a dead letter);
//! - [`reduce`]: the pure "latest event per order" reducer and the rule a row is replaced by;
//! - [`schema`]: the Postgres schema, migrated by the processor and awaited by the API;
//! - [`db`], [`telemetry`], [`ops`], [`shutdown`]: connection pools, logging, the
//!   `/metrics` + `/healthz` listener, and signal handling.

pub mod config;
pub mod db;
pub mod event;
pub mod ops;
pub mod reduce;
pub mod schema;
pub mod shutdown;
pub mod telemetry;

pub use event::{Event, EventType, InvalidEvent};
