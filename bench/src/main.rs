//! `make bench`: measures the spine on this machine and prints the numbers
//! (docs/benchmarks.md says what each line means).
//!
//! Steps, each selectable with `--only` (default: all, in this order):
//! - `drain` (1-3): a backlog, the broker's ceiling (a bare consumer), and the processor
//!   draining it with `--available-now`: events/s, CPU-seconds per million events of the
//!   processor and of Postgres, the CPU above a bare consumer, peak RSS, Postgres' work by
//!   statement; beside it, the seed's kind of processor (Python).
//! - `api` (4): the API under `wrk` while ingesting, on the drained database (runs the drain).
//! - `freshness` (5): produce -> visible in `/orders` of a marker every 200 ms at 2,000 events/s
//!   with `TRIGGER_INTERVAL_MS=0`: p50/p95/p99, and where the time went in the markers' batches.
//! - `growth` (6): processor and Postgres CPU per event, `/orders` and `/stats` p99, with
//!   `current_orders` at 10^4, 10^5 and 10^6 orders, and the ratio largest/smallest.
//! - `stream`: `/stream` subscribers (bench/src/stream.rs, issue 13).
//!
//! `abuse` (the API abuse run) is scripts/bench.sh's; this binary accepts the name and skips it.
//!
//! Everything runs on fresh servers (a throwaway Postgres, a fresh Tansu database) and the
//! release binaries next to this one.

mod api_load;
mod drain;
mod freshness;
mod growth;
mod harness;
mod pgstat;
mod procstat;
mod stream;

use spine_testkit::{postgres, PgServer, TestDb};

/// One step of the bench, by the name `--only` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Drain,
    Api,
    Freshness,
    Growth,
    Stream,
    /// scripts/bench.sh's API abuse run: not this binary's.
    Abuse,
}

impl Step {
    const ALL: [(&'static str, Step); 6] = [
        ("drain", Step::Drain),
        ("api", Step::Api),
        ("freshness", Step::Freshness),
        ("growth", Step::Growth),
        ("stream", Step::Stream),
        ("abuse", Step::Abuse),
    ];
}

/// The command line: `[--events N] [--markers N] [--growth-sizes N,N...] [--only STEP,STEP...] [--skip-api]`.
#[derive(Debug, PartialEq)]
pub struct Args {
    pub events: i64,
    pub markers: usize,
    pub growth_sizes: Vec<i64>,
    pub only: Vec<Step>,
}

fn usage() -> String {
    let names: Vec<&str> = Step::ALL.iter().map(|(n, _)| *n).collect();
    format!(
        "usage: spine-bench [--events N] [--markers N] [--growth-sizes N,N...] [--only STEP[,STEP...]] [--skip-api]\n  steps: {}",
        names.join(", ")
    )
}

/// Reads the command line (without the program name).
/// `v`, the value of `flag`, as a whole number of at least 1.
fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(
    flag: &str,
    v: &str,
) -> Result<T, String> {
    v.parse()
        .ok()
        .filter(|n| *n >= T::from(1))
        .ok_or_else(|| format!("{flag}: expected a whole number ≥ 1, got {v:?}"))
}

pub fn parse_args(args: &[String]) -> Result<Args, String> {
    // The backlog of issue 14's figures; `--events 1000000` for the longer run.
    let mut events = 300_000i64;
    let mut markers = 120usize;
    let mut growth_sizes = vec![10_000i64, 100_000, 1_000_000];
    let mut only: Option<Vec<Step>> = None;
    let mut skip_api = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--events" => events = at_least_one("--events", &value("--events")?)?,
            "--markers" => markers = at_least_one("--markers", &value("--markers")?)?,
            "--growth-sizes" => {
                let v = value("--growth-sizes")?;
                growth_sizes = v
                    .split(',')
                    .map(|n| n.trim().parse::<i64>().ok().filter(|n| *n >= 1))
                    .collect::<Option<Vec<_>>>()
                    .filter(|sizes| !sizes.is_empty())
                    .ok_or_else(|| {
                        format!("--growth-sizes: expected whole numbers ≥ 1 separated by commas, got {v:?}")
                    })?;
            }
            "--only" => {
                let v = value("--only")?;
                let mut steps = Vec::new();
                for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let step = Step::ALL
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, s)| *s)
                        .ok_or_else(|| format!("--only: unknown step {name:?}\n{}", usage()))?;
                    steps.push(step);
                }
                if steps.is_empty() {
                    return Err(format!("--only: no step named\n{}", usage()));
                }
                only = Some(steps);
            }
            "--skip-api" => skip_api = true,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    let mut only = only.unwrap_or_else(|| Step::ALL.iter().map(|(_, s)| *s).collect());
    if skip_api {
        only.retain(|s| *s != Step::Api);
    }
    Ok(Args {
        events,
        markers,
        growth_sizes,
        only,
    })
}

/// What every step shares.
pub struct Bench {
    pub events: i64,
    pub python: Option<String>,
    pub pg: &'static PgServer,
}

impl Bench {
    /// Applies the schema to `db`, as the processor does at start-up.
    pub async fn migrate(&self, db: &TestDb) {
        let mut client = db.connect().await;
        spine_core::schema::migrate(&mut client)
            .await
            .unwrap_or_else(|e| panic!("migrating {}: {e:#}", db.name));
    }
}

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some(drain::BARE_CONSUMER) {
        let total = raw.get(3).and_then(|n| n.parse().ok()).unwrap_or(0);
        drain::bare_consumer(&raw[1], &raw[2], total);
        return;
    }
    let args = parse_args(&raw).unwrap_or_else(|e| {
        eprintln!("spine-bench: {e}");
        std::process::exit(2);
    });
    let has = |s: Step| args.only.contains(&s);
    let pg = postgres();
    pgstat::enable(pg).await;
    let bench = Bench {
        events: args.events,
        python: std::env::var("SPINE_BENCH_PYTHON")
            .ok()
            .filter(|p| !p.is_empty()),
        pg,
    };
    println!(
        "spine bench: {} events, {} partitions, release binaries in {}",
        bench.events,
        harness::PARTITIONS,
        harness::bins().display()
    );
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    if has(Step::Drain) || has(Step::Api) {
        let drained = drain::run(&bench).await;
        if has(Step::Api) {
            api_load::run(&drained).await;
        }
    }
    if has(Step::Freshness) {
        freshness::run(&bench, args.markers).await;
    }
    if has(Step::Growth) {
        growth::run(&bench, &args.growth_sizes).await;
    }
    if has(Step::Stream) {
        stream::run(&harness::bins()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn every_step_runs_by_default() {
        let a = args(&[]).expect("no arguments are fine");
        assert_eq!(a.events, 300_000);
        assert_eq!(a.markers, 120);
        assert_eq!(a.only.len(), Step::ALL.len());
    }

    #[test]
    fn only_selects_steps_and_skip_api_removes_one() {
        let a = args(&["--only", "api,drain", "--events=2000", "--markers", "7"]).expect("valid");
        assert_eq!(a.only, vec![Step::Api, Step::Drain]);
        assert_eq!(a.events, 2000);
        assert_eq!(a.markers, 7);
        let a = args(&["--growth-sizes", "100,1000"]).expect("valid");
        assert_eq!(a.growth_sizes, [100, 1000]);
        let a = args(&["--only=drain,api", "--skip-api"]).expect("valid");
        assert_eq!(a.only, vec![Step::Drain]);
        let a = args(&["--skip-api"]).expect("valid");
        assert!(!a.only.contains(&Step::Api) && a.only.contains(&Step::Drain));
    }

    #[test]
    fn bad_arguments_are_named() {
        let e = args(&["--only", "drain,nope"]).expect_err("unknown step");
        assert!(
            e.contains("unknown step \"nope\"") && e.contains("steps: drain"),
            "{e}"
        );
        assert!(args(&["--only", ","])
            .expect_err("empty")
            .contains("no step"));
        assert!(args(&["--only"])
            .expect_err("missing")
            .contains("needs a value"));
        assert!(args(&["--events", "0"])
            .expect_err("zero")
            .contains("--events"));
        assert!(args(&["--growth-sizes", "10,x"])
            .expect_err("bad")
            .contains("--growth-sizes"));
        assert!(args(&["--bogus"])
            .expect_err("unknown")
            .contains("\"--bogus\""));
    }
}
