//! Fault injection for the end-to-end tests. This module exists only in builds with the
//! `test-hooks` feature: `cargo test` enables it (spine-tui's dev-dependency on itself), release
//! builds (`make build`, `make up`) never do, so the shipped binary has no test code path, no
//! hidden flag and reads no test variable.
//!
//! - `SPINE_TUI_TEST_PANIC_AFTER_MS=N`: the UI panics N milliseconds after it started, which
//!   proves the panic hook leaves the terminal as it found it.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;

/// The variable that arms the panic.
pub const PANIC_AFTER_MS: &str = "SPINE_TUI_TEST_PANIC_AFTER_MS";

/// The faults armed for this run, read once at start.
#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    panic_after: Option<Duration>,
}

impl Faults {
    /// Reads the variables above; a value that is not a number is a start-up error.
    pub fn from_env() -> anyhow::Result<Faults> {
        let panic_after = match std::env::var(PANIC_AFTER_MS) {
            Err(_) => None,
            Ok(ms) => Some(Duration::from_millis(ms.trim().parse().with_context(
                || format!("invalid {PANIC_AFTER_MS} {ms:?}: expected a number of milliseconds"),
            )?)),
        };
        Ok(Faults { panic_after })
    }

    /// Runs the UI with the faults armed.
    pub async fn around<F: Future>(self, ui: F) -> F::Output {
        match self.panic_after {
            None => ui.await,
            Some(after) => tokio::select! {
                output = ui => output,
                () = tokio::time::sleep(after) => panic!("test panic ({PANIC_AFTER_MS})"),
            },
        }
    }
}
