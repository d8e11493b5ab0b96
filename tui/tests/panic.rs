//! The real `spine-tui` in a real terminal (tmux), made to panic: the panic hook leaves the
//! terminal as it found it and the message readable. The panic is armed by the `test-hooks`
//! feature (`src/faults.rs`), which `cargo test` builds the binary with.

mod common;

use std::time::Duration;

use common::tmux::{shell_is_back, terminal_restored, Tmux};
use spine_testkit::free_port;
use spine_testkit::sh_quote;
use spine_tui::faults::PANIC_AFTER_MS;

#[test]
fn a_panic_restores_the_terminal() {
    let logs = tempfile::Builder::new()
        .prefix("spine-tui-panic-")
        .tempdir()
        .expect("temp dir");
    let log = logs.path().join("tui.log");
    let command = format!(
        "env RUST_BACKTRACE=0 {PANIC_AFTER_MS}=1500 {} --api http://127.0.0.1:{} --brokers 127.0.0.1:{} --log-file {}",
        sh_quote(env!("CARGO_BIN_EXE_spine-tui")),
        free_port(),
        free_port(),
        sh_quote(&log)
    );
    let tmux = Tmux::start(80, 24, &command);
    tmux.wait_for("the UI", Duration::from_secs(10), String::new, |s| {
        s.contains("Tail ·")
    });
    let after = tmux.wait_for(
        "the panic (a binary built without the test-hooks feature never panics)",
        Duration::from_secs(10),
        String::new,
        shell_is_back,
    );
    assert!(
        after.contains(&format!("test panic ({PANIC_AFTER_MS})")),
        "the panic message is readable:\n{after}"
    );
    assert!(!after.contains("exit=0"), "{after}");
    assert!(terminal_restored(&after), "raw mode left on:\n{after}");
    assert!(
        !after.contains("Tail ·"),
        "the alternate screen was left:\n{after}"
    );
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("spine-tui panicked"), "{logged}");
}
