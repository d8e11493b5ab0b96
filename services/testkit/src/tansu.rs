//! A local Tansu broker (Kafka wire protocol) on a fresh SQLite file. See docs/architecture.md,
//! "The local broker", for why Tansu, and its known limits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{free_port, sh_quote, wait_for_port, watchdog};

#[derive(Debug)]
pub struct Tansu {
    pub port: u16,
    pub pid: u32,
    dir: PathBuf,
}

/// The one broker of this test process, started on first use. Tests share it and keep apart
/// by using their own topics (Tansu deletes every topic when one is deleted, so none is).
pub fn tansu() -> &'static Tansu {
    static BROKER: OnceLock<Tansu> = OnceLock::new();
    BROKER.get_or_init(|| Tansu::start().unwrap_or_else(|e| panic!("{e}")))
}

/// The binary `scripts/setup.sh tansu` installs (outside the clone, shared by all clones).
pub fn tansu_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let cache = std::env::var_os("SPINE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
                });
            base.join("spine")
        });
    cache.join("tansu-0.6.0/bin/tansu")
}

/// Starts the broker in `dir` (its SQLite file lives there) on `port`, logging to a file in
/// `dir`, and waits until it listens.
fn spawn(dir: &Path, port: u16) -> Result<Child, String> {
    let bin = tansu_bin();
    if !bin.is_file() {
        return Err(format!(
            "the local broker is missing: {} does not exist. Run `scripts/setup.sh tansu` \
             (make test does) to build it, or set TANSU_BIN",
            bin.display()
        ));
    }
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .map_err(|e| format!("creating Tansu's log: {e}"))?;
    let mut child = Command::new(&bin)
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    if wait_for_port(port, Duration::from_secs(30)) {
        Ok(child)
    } else {
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("Tansu did not listen on {port} within 30 s"))
    }
}

impl Tansu {
    pub fn start() -> Result<Tansu, String> {
        let dir = tempfile::Builder::new()
            .prefix("spine-tansu-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir for Tansu: {e}"))?
            .keep();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(&dir, port) {
                Ok(child) => {
                    let pid = child.id();
                    watchdog(&format!(
                        "kill -9 {pid} 2>/dev/null; rm -rf {}",
                        sh_quote(&dir)
                    ));
                    return Ok(Tansu { port, pid, dir });
                }
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// A broker one test owns: it can stop it and start it again on the same port and data (the
/// shared [`tansu()`] must stay up for the other tests). Stopped when dropped.
pub struct OwnedTansu {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnedTansu {
    pub fn start() -> OwnedTansu {
        let dir = tempfile::Builder::new()
            .prefix("spine-tansu-owned-")
            .tempdir()
            .expect("a temp dir for Tansu");
        let mut broker = OwnedTansu {
            port: free_port(),
            dir,
            child: None,
        };
        broker.resume();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and the same SQLite file.
    pub fn resume(&mut self) {
        let child = spawn(self.dir.path(), self.port).unwrap_or_else(|e| panic!("{e}"));
        self.child = Some(child);
    }

    /// Kills the broker (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for OwnedTansu {
    fn drop(&mut self) {
        self.stop();
    }
}
