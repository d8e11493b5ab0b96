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
pub const SCHEMA_VERSION: i32 = 5;

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

#[cfg(test)]
mod tests {
    use super::*;
    use spine_testkit::postgres;

    /// A database at schema version 2 (before dead letters were unique) with a record read
    /// three times, migrated to the current version: one row is left, the first.
    #[tokio::test]
    async fn replayed_dead_letters_are_merged_keeping_the_first() {
        let db = postgres().fresh_database().await;
        let mut client = db.connect().await;
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(2))
            .run_async(&mut client)
            .await
            .expect("migrate to version 2");
        client
            .batch_execute(
                "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, key, payload, error)
                 VALUES ('t', 0, 7, 'k', 'first', 'e'), ('t', 0, 7, 'k', 'second', 'e'),
                        ('t', 1, 7, NULL, NULL, 'e'), ('t', 0, 7, 'k', 'third', 'e')",
            )
            .await
            .expect("replayed dead letters");
        migrate(&mut client)
            .await
            .expect("migrate to the current version");
        let rows = client
            .query(
                "SELECT id, kafka_partition, payload, payload_length, payload_sha256
                   FROM dead_letters WHERE payload IS NOT NULL ORDER BY id",
                &[],
            )
            .await
            .expect("dead letters");
        assert_eq!(rows.len(), 1, "one row per record");
        let row = &rows[0];
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i32>(1)), (1, 0));
        assert_eq!(row.get::<_, Vec<u8>>(2), b"first", "the first row is kept");
        assert_eq!(
            row.get::<_, Option<i32>>(3),
            Some(5),
            "lengths are filled in"
        );
        assert_eq!(
            row.get::<_, Option<Vec<u8>>>(4).map(|h| h.len()),
            Some(32),
            "so are hashes"
        );
        let all: i64 = client
            .query_one("SELECT count(*) FROM dead_letters", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(all, 2, "the other partition's record stays");
        let again = client
            .execute(
                "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, error)
                 VALUES ('t', 0, 7, 'e') ON CONFLICT DO NOTHING",
                &[],
            )
            .await
            .expect("insert");
        assert_eq!(
            again, 0,
            "unique per (topic, kafka_partition, kafka_offset)"
        );
    }
}
