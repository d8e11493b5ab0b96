//! A local Tansu broker (Kafka wire protocol) on a fresh SQLite file. See SPEC.md "The local
//! broker" for why Tansu, and its known limits.

use std::path::PathBuf;
use std::process::{Command, Stdio};
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

impl Tansu {
    pub fn start() -> Result<Tansu, String> {
        let bin = tansu_bin();
        if !bin.is_file() {
            return Err(format!(
                "the local broker is missing: {} does not exist. Run `scripts/setup.sh tansu` \
                 (make test does) to build it, or set TANSU_BIN",
                bin.display()
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("spine-tansu-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir for Tansu: {e}"))?
            .keep();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let url = format!("tcp://127.0.0.1:{port}");
            let log = std::fs::File::create(dir.join(format!("tansu-{port}.log")))
                .map_err(|e| format!("creating Tansu's log: {e}"))?;
            let child = Command::new(&bin)
                .current_dir(&dir)
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
            let pid = child.id();
            watchdog(&format!(
                "kill -9 {pid} 2>/dev/null; rm -rf {}",
                sh_quote(&dir)
            ));
            if wait_for_port(port, Duration::from_secs(30)) {
                return Ok(Tansu { port, pid, dir });
            }
            last_error = format!("Tansu did not listen on {port} within 30 s");
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
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
