//! A throwaway Postgres server: `initdb` + `pg_ctl` in a temp dir on a free port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{free_port, is_root, sh_quote, wait_for_port, watchdog};

/// A running server. Tests reach it through a [`TestDb`] of their own.
#[derive(Debug)]
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
}

/// The one server of this test process, started on first use.
pub fn postgres() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| PgServer::start().unwrap_or_else(|e| panic!("{e}")))
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub name: String,
    pub port: u16,
}

impl TestDb {
    /// A connection config for this database.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname(&self.name);
        c
    }

    /// The same as a URL, for `DATABASE_URL` of a spawned binary.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// A plain client (its connection task is spawned on the current runtime).
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = self
            .config()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to test database {}: {e}", self.name));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

/// Where Debian keeps the server binaries (they are not on PATH).
pub fn pg_bin_dir() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    candidates.sort();
    candidates.reverse();
    if let Ok(path) = std::env::var("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

impl PgServer {
    pub fn start() -> Result<PgServer, String> {
        let bin = pg_bin_dir().ok_or(
            "Postgres server binaries (initdb, pg_ctl) not found: run `scripts/setup.sh apt` \
             (make test does) to install Debian's postgresql",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("spine-pg-")
            .tempdir_in(std::env::temp_dir())
            .map_err(|e| format!("creating a temp dir for Postgres: {e}"))?
            .keep();
        let root = is_root();
        if root {
            // initdb and postgres refuse to run as root: hand the directory to `postgres`.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let data = dir.join("data");
        let as_pg = |program: &Path| -> Command {
            if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        run(as_pg(&bin.join("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data))?;

        // Cleanup is registered before the server starts, so nothing outlives the tests.
        let stop = format!(
            "{runuser}{pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            runuser = if root { "runuser -u postgres -- " } else { "" },
            pg_ctl = sh_quote(bin.join("pg_ctl")),
            data = sh_quote(&data),
            dir = sh_quote(&dir),
        );
        watchdog(&stop);

        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            // Throwaway data: durability off, for speed. Kill tests kill the processor, never
            // this server.
            let options = format!(
                "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                dir = dir.display()
            );
            let started = run(as_pg(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]));
            match started {
                Ok(()) if wait_for_port(port, Duration::from_secs(30)) => {
                    return Ok(PgServer { port, dir });
                }
                Ok(()) => last_error = format!("Postgres started but port {port} does not answer"),
                Err(e) => last_error = e,
            }
        }
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        Err(format!(
            "could not start a test Postgres: {last_error}\n{log}"
        ))
    }

    /// The server's data directory (for its log when a test fails).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new, empty database for one test.
    pub async fn fresh_database(&self) -> TestDb {
        let name = crate::unique_name("spine_test").to_lowercase();
        let mut admin = tokio_postgres::Config::new();
        admin
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres");
        let (client, conn) = admin
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("connecting to the test Postgres on port {}: {e}", self.port)
            });
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        drop(client);
        let _ = task.await;
        TestDb {
            name,
            port: self.port,
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed ({}): {}{}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
