//! The other spine binaries, started for a test and killed when it ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use spine_testkit::{bin_path, unique_name};

/// A service this test started: killed when the test ends, however it ends.
pub struct Service {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn start(
        name: &'static str,
        env: &[(&str, String)],
        args: &[&str],
        logs: &Path,
    ) -> Service {
        let log = logs.join(format!("{name}-{}.log", unique_name("run")));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin_path(name))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Service { name, child, log }
    }

    pub fn tail_of_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {} (last lines)\n{}",
            self.name,
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last lines of a log, for a failure message.
pub fn tail_of_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} (last lines)\n{}",
        path.display(),
        lines[lines.len().saturating_sub(15)..].join("\n")
    )
}
