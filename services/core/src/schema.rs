//! The Postgres schema, as refinery migrations embedded from `services/core/migrations`.
//! The processor applies them at start-up (several replicas may start at once, so under an
//! advisory lock); the API only checks they are there.

use std::time::Duration;

use anyhow::Context as _;
use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The newest migration's version: the API is ready once the database has it.
pub const SCHEMA_VERSION: i32 = 7;

/// Arbitrary but fixed: the advisory lock every migrating replica takes.
const MIGRATION_LOCK: i64 = 0x5350_494e_455f_4d49; // "SPINE_MI"

/// Applies every pending migration, one replica at a time.
pub async fn migrate(client: &mut Client) -> anyhow::Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("taking the migration lock")?;
    let result = embedded::migrations::runner().run_async(client).await;
    // Unlock even when migrating failed; the session ends soon anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let report = result.context("applying migrations")?;
    for m in report.applied_migrations() {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
    Ok(())
}

/// Whether the schema is present and current.
pub async fn is_current(client: &Client) -> bool {
    let row = client
        .query_opt(
            // Fails (so: not current) while the table does not exist yet.
            "SELECT max(version) FROM refinery_schema_history",
            &[],
        )
        .await;
    match row {
        Ok(Some(row)) => row
            .get::<_, Option<i32>>(0)
            .is_some_and(|v| v >= SCHEMA_VERSION),
        _ => false,
    }
}

/// Waits until the schema is current, checking every `every`.
pub async fn wait_until_current(client: &Client, every: Duration) {
    while !is_current(client).await {
        tokio::time::sleep(every).await;
    }
}
