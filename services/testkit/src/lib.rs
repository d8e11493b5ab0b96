//! The test harness every crate's tests share: real servers, started fresh, never mocks of
//! Postgres.
//!
//! - [`postgres()`]: one throwaway Postgres server per test process (`initdb` + `pg_ctl` in a
//!   temp dir, on a free port); each test takes its own database with
//!   [`PgServer::fresh_database`], so tests run in parallel without sharing state.
//! - [`tansu()`]: one local Tansu broker per test process on a fresh SQLite file; each test
//!   uses its own topic.
//! - [`kafka`]: topic creation and raw-record producing helpers that work against Tansu, a
//!   real Kafka/Redpanda, or librdkafka's in-process `MockCluster` (for broker faults).
//!
//! Servers are stopped, and their directories removed, by a watchdog when the test process
//! exits, however it exits.

mod bins;
pub mod kafka;
mod pg;
mod process;
mod tansu;

pub use bins::{bin_command, bin_path};
pub use pg::{pg_bin_dir, postgres, PgServer, TestDb};
pub use process::{free_port, sh_quote, wait_for_port, KillOnDrop};
pub use tansu::{tansu, tansu_bin, OwnedTansu, Tansu};

/// A name no other test in any process will use (topic, database, consumer group).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos:x}", std::process::id())
}
