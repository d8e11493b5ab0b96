//! Helpers shared by spine-tui's integration tests.
#![allow(dead_code)] // each test binary uses a different part

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spine_testkit::kafka::Raw;

pub fn event_json(tenant: &str, ty: &str, order: &str, cents: i64) -> Vec<u8> {
    serde_json::json!({
        "event_id": uuid::Uuid::new_v4().to_string(), "tenant": tenant, "event_type": ty,
        "order_id": order, "amount_cents": cents, "currency": "USD",
        "event_time": "2026-11-25T12:00:00.123456Z",
    })
    .to_string()
    .into_bytes()
}

pub fn raw(partition: i32, key: &str, value: &[u8]) -> Raw {
    Raw {
        partition,
        key: Some(key.as_bytes().to_vec()),
        value: Some(value.to_vec()),
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

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

/// The Tansu binary the testkit uses (`scripts/setup.sh tansu` installs it).
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

/// A Tansu broker of this test's own, that the test can stop and start again on the same
/// port and data (the shared one of the testkit must stay up for the other tests).
pub struct OwnBroker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnBroker {
    pub fn start() -> OwnBroker {
        let bin = tansu_bin();
        assert!(
            bin.is_file(),
            "{} missing: run scripts/setup.sh tansu (or set TANSU_BIN)",
            bin.display()
        );
        let mut broker = OwnBroker {
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("spine-tui-tansu-")
                .tempdir()
                .expect("temp dir"),
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
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("log");
        let child = Command::new(tansu_bin())
            .current_dir(self.dir.path())
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
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(30)),
            "tansu listens on {}",
            self.port
        );
    }

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

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
