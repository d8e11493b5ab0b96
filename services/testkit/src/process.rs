//! Small process helpers: free ports, root detection, watchdogs, shell quoting, and killing a
//! child when a test ends.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind any port on 127.0.0.1")
}

/// Whether this process runs as root (then Postgres must run as the `postgres` user).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Starts a detached shell that waits for this test process to exit, then runs `cleanup`.
/// It outlives a panic or a SIGKILL of the test process, so no server is left behind.
pub fn watchdog(cleanup: &str) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        pid = std::process::id()
    );
    let spawned = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        panic!("cannot start the cleanup watchdog (setsid sh): {e}");
    }
}

/// Single-quotes a string or a path for `sh`: the shell reads it back as exactly that text.
pub fn sh_quote(s: impl AsRef<OsStr>) -> String {
    format!("'{}'", s.as_ref().to_string_lossy().replace('\'', r"'\''"))
}

/// A child process killed (and reaped) when this value is dropped: when the test ends,
/// passing or failing, and whether or not the child was stopped with SIGSTOP.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_reads_a_quoted_string_back_unchanged() {
        for text in [
            "plain",
            "with space",
            "it's",
            "'",
            "$HOME `x` \\ \"q\"",
            "a\nb",
        ] {
            let out = Command::new("sh")
                .args(["-c", &format!("printf %s {}", sh_quote(text))])
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), text);
        }
        assert_eq!(sh_quote(std::path::Path::new("/tmp/a b")), "'/tmp/a b'");
    }

    #[test]
    fn a_dropped_child_is_killed_and_reaped() {
        let child = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("sleep runs");
        let pid = child.id();
        drop(KillOnDrop(child));
        // Reaped: the pid no longer names a process of ours (not even a zombie).
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(!alive, "sleep {pid} is still there");
    }
}
