//! Postgres' CPU per statement: the bench's server runs with `pg_stat_statements`, and each
//! step reads the statements of its own database.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use spine_testkit::{pg_bin_dir, PgServer};

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The server's data directory.
pub fn data_dir(server: &PgServer) -> PathBuf {
    server.dir().join("data")
}

/// Loads `pg_stat_statements` into the testkit's server: `ALTER SYSTEM` and a restart on the
/// same port and options (`pg_ctl restart` reuses them).
pub async fn enable(server: &PgServer) {
    let mut admin = tokio_postgres::Config::new();
    admin
        .host("127.0.0.1")
        .port(server.port)
        .user("postgres")
        .dbname("postgres");
    let (client, conn) = admin
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connecting to the bench's Postgres");
    let task = tokio::spawn(conn);
    client
        .batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        .await
        .expect("ALTER SYSTEM SET shared_preload_libraries");
    drop(client);
    let _ = task.await;
    let pg_ctl = pg_bin_dir()
        .expect("pg_ctl (scripts/setup.sh apt)")
        .join("pg_ctl");
    let data = data_dir(server);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    // The restarted server logs where the testkit's did; without `-l` it would write to
    // pg_ctl's stdout, and keep that pipe open for as long as it runs.
    let status = cmd
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(server.dir().join("server.log"))
        .args(["-m", "fast", "-w", "-t", "60", "restart"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("pg_ctl restart");
    assert!(
        status.success(),
        "pg_ctl restart with pg_stat_statements failed ({status}): see {}",
        server.dir().join("server.log").display()
    );
    assert!(
        spine_testkit::wait_for_port(server.port, std::time::Duration::from_secs(30)),
        "Postgres did not come back on {}",
        server.port
    );
}

/// Waits until no other session is connected to this database, and the postmaster has had a
/// moment to reap the backends that served them: a backend's CPU moves from its own counters
/// to the postmaster's reaped-children counters then, and a read in between would miss it.
pub async fn settle(client: &tokio_postgres::Client) {
    for _ in 0..100 {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
}

/// Creates the extension in this database (its view) and forgets what was counted so far.
pub async fn reset(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
             SELECT pg_stat_statements_reset();",
        )
        .await
        .expect("pg_stat_statements (is shared_preload_libraries set?)");
}

/// One statement's share of the work.
pub struct Statement {
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub rows: i64,
}

/// What `pg_stat_statements` counted in one database since [`reset`]: every statement's total
/// execution time, and the top ones. The bench's own reads of the view are left out.
pub struct Snapshot {
    pub total_ms: f64,
    pub top: Vec<Statement>,
}

const OWN_DATABASE: &str = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND query NOT LIKE '%pg_stat_statements%'";

/// Reads the statements run in this database since [`reset`]; take it before the bench's own
/// queries (counts, checks) so that they are not counted.
pub async fn snapshot(client: &tokio_postgres::Client) -> Snapshot {
    let total_ms: f64 = client
        .query_one(
            &format!(
                "SELECT coalesce(sum(total_exec_time), 0)::float8 FROM pg_stat_statements
                  WHERE {OWN_DATABASE}"
            ),
            &[],
        )
        .await
        .expect("reading pg_stat_statements")
        .get(0);
    let top = client
        .query(
            &format!(
                "SELECT query, calls, total_exec_time, rows FROM pg_stat_statements
                  WHERE {OWN_DATABASE} ORDER BY total_exec_time DESC LIMIT 8"
            ),
            &[],
        )
        .await
        .expect("reading pg_stat_statements")
        .iter()
        .map(|r| Statement {
            query: r.get(0),
            calls: r.get(1),
            total_ms: r.get(2),
            rows: r.get(3),
        })
        .collect();
    Snapshot { total_ms, top }
}

/// A statement on one line, whitespace squeezed, cut to `max` characters (`…` marks the cut).
pub fn shorten(query: &str, max: usize) -> String {
    let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

impl Snapshot {
    /// Prints the top statements as seconds of execution per million events.
    pub fn print(&self, events: i64, indent: &str) {
        let per_million = 1_000_000.0 / events.max(1) as f64;
        println!(
            "{indent}Postgres execution time by statement (pg_stat_statements), s per million events; all statements {:.2}:",
            self.total_ms / 1000.0 * per_million
        );
        for s in &self.top {
            println!(
                "{indent}  {:>6.2} s {:>5.1}%  {:>9} calls {:>10} rows  {}",
                s.total_ms / 1000.0 * per_million,
                100.0 * s.total_ms / self.total_ms.max(f64::MIN_POSITIVE),
                s.calls,
                s.rows,
                shorten(&s.query, 90)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_squeezed_onto_one_line_and_cut() {
        assert_eq!(shorten("SELECT  1\n  FROM t", 80), "SELECT 1 FROM t");
        assert_eq!(shorten("INSERT INTO events VALUES", 10), "INSERT IN…");
        assert_eq!(shorten("é".repeat(20).as_str(), 5), "éééé…");
        assert_eq!(shorten("", 5), "");
    }
}
