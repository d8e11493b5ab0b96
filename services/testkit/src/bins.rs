//! The workspace's binaries, for tests that run several of them (an integration test only
//! gets `CARGO_BIN_EXE_*` for its own package's binaries).

use std::path::PathBuf;

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
