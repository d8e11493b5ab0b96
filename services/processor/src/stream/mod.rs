//! The Kafka side: a consumer-group member that seeks to the offsets stored in Postgres on
//! every assignment, cuts micro-batches on the trigger, and hands each to the sink.
//!
//! It runs on a thread of its own: librdkafka calls the rebalance callback from `poll`, and
//! the callback must read Postgres before the partitions start fetching, so it blocks on the
//! async pool from there (`Handle::block_on`), which is only allowed outside the runtime.
//!
//! - [`context`]: the consumer's context: the rebalance callback (assign at the stored
//!   offsets), librdkafka's statistics (partition ends) and error reports;
//! - [`offsets`]: offsets read from Postgres and the broker, committed to Kafka, and the
//!   stall check;
//! - [`commit`]: writing one batch, retrying transient failures and resolving a fence;
//! - [`stall`]: the stall check, on a thread of its own;
//! - [`decide`]: the loop's two decisions (cut the batch? is `--available-now` done?), pure;
//! - [`rates`]: each batch's input rate (records/s arriving on its partitions);
//! - [`run`]: the poll loop and its state.

mod commit;
mod context;
pub mod decide;
mod offsets;
mod rates;
mod run;
mod stall;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

pub use context::{create_consumer, create_consumer_with_writer, StreamContext};
pub use run::run;

use crate::config::CrashPoint;
use crate::gaps::OnDataLoss;
use decide::BatchBounds;

/// What the loop needs to know.
#[derive(Debug, Clone, Default)]
pub struct LoopConfig {
    pub bootstrap: String,
    pub kafka_properties: spine_core::config::KafkaProperties,
    pub topic: String,
    pub consumer_group: String,
    pub trigger: Duration,
    pub max_batch_rows: usize,
    /// Key and payload bytes (as read) after which a batch is cut; also sizes librdkafka's
    /// pre-fetch queue (see [`context::create_consumer`]).
    pub max_batch_bytes: usize,
    pub available_now: bool,
    /// What to do when offsets to read are gone (see [`crate::gaps`]).
    pub on_data_loss: OnDataLoss,
    /// Where the test hooks fail the process, if anywhere (see [`crate::faults`]).
    pub crash_at: Option<CrashPoint>,
}

impl LoopConfig {
    pub fn batch_bounds(&self) -> BatchBounds {
        BatchBounds {
            max_rows: self.max_batch_rows,
            max_bytes: self.max_batch_bytes,
        }
    }
}

/// Totals of one run, returned when the loop ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub batches: u64,
    pub input_rows: u64,
    pub events_inserted: u64,
    pub duplicates: u64,
    pub dead_lettered: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn format_offsets(offsets: &BTreeMap<i32, i64>) -> String {
    offsets
        .iter()
        .map(|(p, o)| format!("{p}@{o}"))
        .collect::<Vec<_>>()
        .join(" ")
}
