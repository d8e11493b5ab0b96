//! What every step shares: the release binaries, starting them with a clean environment,
//! timing them, `wrk`, and percentiles.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procstat;

/// The partitions of every topic the bench writes (the producer's default).
pub const PARTITIONS: i32 = 3;

/// The directory of the release binaries: the one this binary runs from.
pub fn bins() -> PathBuf {
    std::env::current_exe()
        .expect("own path")
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

/// The environment every spine binary gets: the broker, the topic, a metrics port of its own,
/// quiet logs, and `extra`.
pub fn spine_env(broker: &str, topic: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut v = vec![
        ("KAFKA_BOOTSTRAP".to_owned(), broker.to_owned()),
        ("TOPIC".to_owned(), topic.to_owned()),
        ("METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    v.extend(extra.iter().map(|(k, val)| ((*k).to_owned(), val.clone())));
    v
}

/// A command for `bin` with only `PATH` and `env` in its environment.
pub fn command(bin: &Path, env: &[(String, String)]) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

/// A finished run: how long it took, the CPU-seconds it used (with its children), and its
/// peak resident set in MiB.
pub struct Run {
    pub took: Duration,
    pub cpu: f64,
    pub peak_rss_mib: f64,
}

/// Runs `cmd` to its end (it must succeed), sampling its peak RSS meanwhile.
pub fn run_to_end(mut cmd: Command, what: &str) -> Run {
    let cpu_before = procstat::own_cpu_with_children();
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let rss = procstat::watch_peak_rss(child.id());
    let out = child.wait_with_output().expect("wait");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child was waited for: its CPU is now in our children's counters.
    Run {
        took,
        cpu: procstat::own_cpu_with_children() - cpu_before,
        peak_rss_mib: rss.join().unwrap_or(0.0),
    }
}

/// Stops a child with SIGTERM (a clean shutdown) and reaps it.
pub fn stop(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let _ = c.wait();
}

/// A child stopped (SIGTERM) and reaped when dropped, so a failed step leaves nothing behind.
pub struct Service(Option<Child>);

impl Service {
    pub fn spawn(cmd: Command, what: &str) -> Service {
        Service::spawn_logging(cmd, what, Stdio::null())
    }

    /// Started with its stderr (the log) going to `log`.
    pub fn spawn_logging(mut cmd: Command, what: &str, log: impl Into<Stdio>) -> Service {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Service(Some(child))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Stops it now; its CPU then counts among this process's reaped children.
    pub fn stop(mut self) {
        if let Some(c) = self.0.take() {
            stop(c);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            stop(c);
        }
    }
}

/// Starts `spine-api` on a free port and waits until it is ready; returns it and its base URL.
pub fn start_api(bins: &Path, env: &[(String, String)]) -> (Service, String) {
    start_api_logging(bins, env, None)
}

/// [`start_api`], with its access log (JSON lines) written to `log` when given.
pub fn start_api_logging(
    bins: &Path,
    env: &[(String, String)],
    log: Option<&Path>,
) -> (Service, String) {
    let port = spine_testkit::free_port();
    let mut env = env.to_vec();
    env.push(("API_ADDR".to_owned(), format!("127.0.0.1:{port}")));
    let mut cmd = command(&bins.join("spine-api"), &env);
    let api = match log {
        Some(path) => {
            cmd.env("LOG_FORMAT", "json").env("RUST_LOG", "info");
            let file = std::fs::File::create(path)
                .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
            Service::spawn_logging(cmd, "spine-api", file)
        }
        None => Service::spawn(cmd, "spine-api"),
    };
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        spine_testkit::wait_for_port(port, Duration::from_secs(30)),
        "spine-api did not listen on {port}"
    );
    (api, base)
}

/// The `latency_ms` of the access-log lines (`LOG_FORMAT=json`) of requests to `path` answered
/// with `status`: the server's own time, without the client's queueing.
pub fn server_latencies(log: &str, path: &str, status: u64) -> Vec<f64> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request" && v["status"] == status && v["span"]["path"] == path)
        .filter_map(|v| v["latency_ms"].as_f64())
        .collect()
}

/// What `wrk --latency` reported.
#[derive(Debug, PartialEq)]
pub struct Wrk {
    pub rps: f64,
    pub requests: u64,
    pub p50: String,
    pub p99: String,
    pub non2xx: Option<String>,
}

/// Reads `wrk --latency`'s report.
pub fn parse_wrk(text: &str) -> Wrk {
    let find = |prefix: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    Wrk {
        rps: find("Requests/sec:").parse().unwrap_or(0.0),
        requests: text
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        p50: find("50%"),
        p99: find("99%"),
        non2xx: text
            .lines()
            .find(|l| l.contains("Non-2xx"))
            .map(|l| l.trim().to_owned()),
    }
}

/// `wrk -t2 -c32` on `url` for `seconds`. Answers other than 2xx (the API sheds load beyond
/// its 16 database requests in flight with a 503) are counted in `non2xx`.
pub fn wrk(url: &str, seconds: u32) -> Wrk {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .expect("wrk (scripts/setup.sh apt installs it)");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

impl Wrk {
    /// How many answers were not 2xx.
    pub fn non2xx_count(&self) -> Option<u64> {
        self.non2xx.as_deref()?.rsplit(' ').next()?.parse().ok()
    }

    /// `   (12 of 3400 answers not 2xx: shed with 503)`, or nothing.
    pub fn non2xx_note(&self) -> String {
        self.non2xx_count()
            .map(|n| {
                format!(
                    "   ({n} of {} answers not 2xx: shed with 503)",
                    self.requests
                )
            })
            .unwrap_or_default()
    }
}

/// The `q`-quantile (0 to 1) of `values` by the nearest-rank method: the smallest value with
/// at least `q` of them at or below it. `None` for no values.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// `p50 a  p95 b  p99 c` (with `unit`), or `n/a`.
pub fn p50_95_99(values: &[f64], unit: &str) -> String {
    match (
        quantile(values, 0.50),
        quantile(values, 0.95),
        quantile(values, 0.99),
    ) {
        (Some(a), Some(b), Some(c)) => {
            format!("p50 {a:>7.1} {unit}   p95 {b:>7.1} {unit}   p99 {c:>7.1} {unit}")
        }
        _ => "n/a".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.95), Some(95.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[f64::NAN], 0.5), None);
        assert_eq!(p50_95_99(&[], "ms"), "n/a");
    }

    #[test]
    fn access_log_latencies_are_picked_by_path_and_status() {
        let log = r#"{"timestamp":"t","level":"INFO","message":"request","status":200,"latency_ms":1.5,"span":{"method":"GET","path":"/orders","name":"http"}}
{"timestamp":"t","level":"INFO","message":"request","status":503,"latency_ms":0.02,"span":{"method":"GET","path":"/orders","name":"http"}}
{"timestamp":"t","level":"INFO","message":"request","status":200,"latency_ms":0.7,"span":{"method":"GET","path":"/stats","name":"http"}}
{"timestamp":"t","level":"INFO","message":"listening","status":200}
not json
{"timestamp":"t","level":"INFO","message":"request","status":200,"latency_ms":2.25,"span":{"method":"GET","path":"/orders","name":"http"}}"#;
        assert_eq!(server_latencies(log, "/orders", 200), [1.5, 2.25]);
        assert_eq!(server_latencies(log, "/orders", 503), [0.02]);
        assert_eq!(server_latencies(log, "/stats", 200), [0.7]);
        assert!(server_latencies("", "/stats", 200).is_empty());
    }

    #[test]
    fn wrk_reports_are_read() {
        let text = "Running 10s test @ http://127.0.0.1:1/stats
  2 threads and 32 connections
  Latency Distribution
     50%    1.10ms
     75%    1.50ms
     90%    2.00ms
     99%    4.50ms
  273000 requests in 10.00s, 100.00MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  27300.12
";
        let w = parse_wrk(text);
        assert_eq!(w.p50, "1.10ms");
        assert_eq!(w.p99, "4.50ms");
        assert!((w.rps - 27300.12).abs() < 1e-6);
        assert_eq!(w.non2xx.as_deref(), Some("Non-2xx or 3xx responses: 12"));
        assert_eq!(w.requests, 273000);
        assert_eq!(w.non2xx_count(), Some(12));
        assert_eq!(
            w.non2xx_note(),
            "   (12 of 273000 answers not 2xx: shed with 503)"
        );
        assert_eq!(parse_wrk("").non2xx_note(), "");
    }
}
