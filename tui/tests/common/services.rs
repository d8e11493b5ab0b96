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

    /// `spine-api` with `env`, once it listens on `port` (the port of its `API_ADDR`).
    pub fn start_api(env: &[(&str, String)], port: u16, logs: &Path) -> Service {
        let api = Service::start("spine-api", env, &[], logs);
        assert!(
            spine_testkit::wait_for_port(port, std::time::Duration::from_secs(60)),
            "spine-api does not listen\n{}",
            api.tail_of_log()
        );
        api
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

/// The last lines of each of `logs`, for a failure message.
pub fn tails(logs: &[PathBuf]) -> String {
    logs.iter()
        .map(|p| tail_of_log(p))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The environment every Kafka-talking service of a test gets, plus `extra`.
pub fn kafka_env(
    bootstrap: &str,
    topic: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("KAFKA_BOOTSTRAP", bootstrap.to_owned()),
        ("TOPIC", topic.to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    env
}

/// Runs `spine-producer --count n` to the end (it creates the topic) and checks that exactly
/// `n` records landed on the topic's three partitions.
pub fn produce_history(
    env: &[(&'static str, String)],
    n: u64,
    bootstrap: &str,
    topic: &str,
    logs: &Path,
) {
    let count = n.to_string();
    let mut history = Service::start("spine-producer", env, &["--count", &count], logs);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = history.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "spine-producer --count {n} did not finish\n{}",
            history.tail_of_log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "spine-producer --count {n} failed\n{}",
        history.tail_of_log()
    );
    let produced: i64 = spine_testkit::kafka::high_watermarks(bootstrap, topic, 3)
        .iter()
        .sum();
    assert_eq!(
        produced,
        n as i64,
        "spine-producer --count {n} produced {produced} records\n{}",
        history.tail_of_log()
    );
}
