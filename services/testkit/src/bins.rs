//! The workspace's binaries, for tests that run several of them (an integration test only
//! gets `CARGO_BIN_EXE_*` for its own package's binaries).

use std::path::PathBuf;
use std::process::Command;

/// The variables spine's binaries read that a test sets for itself when it needs them. A
/// test's own environment (a shell that ran `make up`, a CI job) must not reach the binaries
/// it starts.
const SPINE_VARS: [&str; 23] = [
    "KAFKA_BOOTSTRAP",
    "TOPIC",
    "CONSUMER_GROUP",
    "DATABASE_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "API_DATABASE_URL",
    "POSTGRES_API_USER",
    "POSTGRES_API_PASSWORD",
    "API_ADDR",
    "METRICS_ADDR",
    "TENANTS",
    "EVENTS_PER_SECOND",
    "TRIGGER_INTERVAL_MS",
    "MAX_BATCH_ROWS",
    "MAX_BATCH_BYTES",
    "ON_DATA_LOSS",
    "SPINE_CRASH_AT",
    "LOG_FORMAT",
    "NO_COLOR",
];

/// [`bin_path`]`(name)` as a command, with none of [`SPINE_VARS`] inherited.
pub fn bin_command(name: &str) -> Command {
    let mut cmd = Command::new(bin_path(name));
    for var in SPINE_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// `target/<profile>/<name>`, next to the running test's `deps/` directory.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (make test does) before this test",
        path.display()
    );
    path
}
