//! A real `spine-processor` run by a test, its log kept (included with `#[path]` by the
//! test files that need it; they also declare `mod common`).
#![allow(dead_code)] // each test binary uses a different part

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, KillOnDrop};

/// A real `spine-processor` whose log lines are kept (and echoed with a prefix).
pub struct Replica {
    pub child: KillOnDrop,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Replica {
    pub fn spawn(name: &'static str, env: &[(String, String)], extra: &[(&str, &str)]) -> Replica {
        let mut cmd = common::processor_command(env);
        cmd.env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn spine-processor");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    eprintln!("{name}| {line}");
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Replica {
            child: KillOnDrop(child),
            lines,
        }
    }

    pub fn pid(&self) -> String {
        self.child.0.id().to_string()
    }

    /// The last line containing `needle`, if any.
    pub fn last(&self, needle: &str) -> Option<String> {
        let lines = self.lines.lock().expect("lines");
        lines.iter().rev().find(|l| l.contains(needle)).cloned()
    }

    /// Waits until a line contains `needle`.
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.last(needle) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "the replica never logged {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many partitions the last assignment gave it (0 before any).
    pub fn owned(&self) -> usize {
        self.last("partitions assigned")
            .and_then(|l| {
                l.split("partitions=")
                    .nth(1)
                    .map(|s| s.matches('@').count())
            })
            .unwrap_or(0)
    }
}

/// Waits for `child` to exit within `within`; kills it (and fails) when it does not.
pub fn exit_within(
    child: &mut KillOnDrop,
    within: Duration,
    what: &str,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
