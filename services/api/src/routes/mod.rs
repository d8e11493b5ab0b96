//! One module per route family; each handler parses its parameters strictly, runs one
//! snapshot-consistent query and answers JSON.

pub mod batches;
pub mod dead_letters;
pub mod health;
pub mod order;
pub mod orders;
pub mod page;
pub mod stats;

use chrono::{DateTime, Utc};
use serde::Serializer;

/// Timestamps as RFC 3339 UTC with microseconds, like the events carry them.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&spine_core::event::format_time(t))
}

/// The newest committed batch: everything up to it is visible (batch ids are handed out in
/// commit order, see the processor's sink).
pub const AS_OF_BATCH: &str =
    "SELECT coalesce(max(batch_id), 0)::bigint AS as_of FROM stream_batches";
