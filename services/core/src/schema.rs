//! The Postgres schema (docs/contracts.md, "Tables"), as refinery migrations embedded from
//! `services/core/migrations`. The processor applies them at start-up (several replicas may
//! start at once, so under an advisory lock); the API only checks they are there.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context as _;
use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The newest embedded migration's version: the API is ready once the database has it.
/// Read from the migrations themselves, so adding one can never leave it behind.
pub static SCHEMA_VERSION: LazyLock<i32> = LazyLock::new(|| {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
});

/// Migrations whose text changed after databases had applied them, without any change to
/// what they do (a reworded comment), with the checksum refinery recorded for the old text.
/// Refinery refuses to migrate a database whose recorded checksum differs from the file's
/// ("divergent"), so [`migrate`] first replaces the old checksum with the current one, as
/// Flyway's `repair` does. Never list a migration whose statements changed.
const REWORDED: &[(i32, u64)] = &[
    // V1, whose first comment line pointed at a document outside the repository (its text at
    // commit e5f911d).
    (1, 9_752_854_272_571_101_078),
];

/// Arbitrary but fixed: the advisory lock every migrating replica takes.
const MIGRATION_LOCK: i64 = 0x5350_494e_455f_4d49; // "SPINE_MI"

/// Applies every pending migration, one replica at a time.
pub async fn migrate(client: &mut Client) -> anyhow::Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("taking the migration lock")?;
    let result = async {
        repair_reworded(client).await?;
        embedded::migrations::runner()
            .run_async(client)
            .await
            .context("applying migrations")
    }
    .await;
    // Unlock even when migrating failed; the session ends soon anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    for m in result?.applied_migrations() {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
    Ok(())
}

/// Records the current checksum of each [`REWORDED`] migration where the database holds its
/// old one. Does nothing on a fresh database or one already repaired.
async fn repair_reworded(client: &Client) -> anyhow::Result<()> {
    let history_exists: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await
        .context("looking for the migration history")?
        .get(0);
    if !history_exists {
        return Ok(());
    }
    let runner = embedded::migrations::runner();
    for &(version, old) in REWORDED {
        let Some(current) = runner
            .get_migrations()
            .iter()
            .find(|m| m.version() == version)
        else {
            continue;
        };
        let repaired = client
            .execute(
                "UPDATE refinery_schema_history SET checksum = $1 \
                 WHERE version = $2 AND checksum = $3",
                &[&current.checksum().to_string(), &version, &old.to_string()],
            )
            .await
            .with_context(|| format!("recording the new checksum of migration V{version}"))?;
        if repaired > 0 {
            tracing::info!(
                version,
                "recorded the new checksum of a migration whose comments changed"
            );
        }
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
            .is_some_and(|v| v >= *SCHEMA_VERSION),
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
    use refinery::Target;
    use spine_testkit::postgres;

    /// The highest `V<n>__` among the files in `migrations/`, read from the directory.
    fn newest_file_version() -> i32 {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        std::fs::read_dir(dir)
            .expect("migrations directory")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_prefix('V')?.split_once("__")?.0.parse().ok()
            })
            .max()
            .expect("at least one migration")
    }

    #[test]
    fn the_schema_version_is_the_newest_migration_file() {
        assert_eq!(*SCHEMA_VERSION, newest_file_version());
        assert!(*SCHEMA_VERSION >= 2);
    }

    async fn checksum_of(client: &Client, version: i32) -> String {
        client
            .query_one(
                "SELECT checksum FROM refinery_schema_history WHERE version = $1",
                &[&version],
            )
            .await
            .expect("history row")
            .get(0)
    }

    /// The schema as it was at `version` (the migrations up to it only).
    async fn migrate_to(client: &mut tokio_postgres::Client, version: i32) {
        embedded::migrations::runner()
            .set_target(Target::Version(version))
            .run_async(client)
            .await
            .unwrap_or_else(|e| panic!("migrating to version {version}: {e}"));
    }

    #[tokio::test]
    async fn an_older_schema_is_not_current_and_migrating_makes_it_so() {
        let db = postgres().fresh_database().await;
        let mut client = db.connect().await;
        assert!(!is_current(&client).await, "no schema at all");
        migrate_to(&mut client, 1).await;
        assert!(!is_current(&client).await, "V1 only is not current");
        migrate(&mut client).await.expect("migrates");
        assert!(is_current(&client).await);
        migrate(&mut client)
            .await
            .expect("migrating again is a no-op");
    }

    #[tokio::test]
    async fn a_database_migrated_with_the_old_v1_text_keeps_starting() {
        let db = postgres().fresh_database().await;
        let mut client = db.connect().await;
        migrate(&mut client).await.expect("migrates");
        let current = checksum_of(&client, 1).await;
        // What a database migrated before V1's comment was reworded holds: the same tables,
        // and the old text's checksum in the history.
        for &(version, old) in REWORDED {
            client
                .execute(
                    "UPDATE refinery_schema_history SET checksum = $1 WHERE version = $2",
                    &[&old.to_string(), &version],
                )
                .await
                .expect("set the old checksum");
        }
        let refused = embedded::migrations::runner()
            .run_async(&mut client)
            .await
            .expect_err("refinery alone refuses a divergent V1");
        assert!(
            format!("{refused}").contains("is different than filesystem one"),
            "unexpected error: {refused}"
        );

        migrate(&mut client)
            .await
            .expect("migrate repairs and runs");
        assert_eq!(checksum_of(&client, 1).await, current);
        assert!(is_current(&client).await);
    }

    #[tokio::test]
    async fn a_v1_with_an_unknown_checksum_is_still_refused() {
        let db = postgres().fresh_database().await;
        let mut client = db.connect().await;
        migrate(&mut client).await.expect("migrates");
        client
            .execute(
                "UPDATE refinery_schema_history SET checksum = '42' WHERE version = 1",
                &[],
            )
            .await
            .expect("tamper");
        let err = migrate(&mut client)
            .await
            .expect_err("a V1 that is neither the old nor the new text is refused");
        assert!(
            format!("{err:#}").contains("is different than filesystem one"),
            "{err:#}"
        );
    }

    /// A database at schema version 2 (before dead letters were unique) with a record read
    /// three times, migrated to the current version: one row is left, the first.
    #[tokio::test]
    async fn replayed_dead_letters_are_merged_keeping_the_first() {
        let db = postgres().fresh_database().await;
        let mut client = db.connect().await;
        migrate_to(&mut client, 2).await;
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

    /// Orders written before V9 read as batch 0 once it is applied: older than any batch a
    /// `/stream` subscriber can have seen, so a reconnect's "orders changed since N" holds
    /// without rewriting the table.
    #[tokio::test]
    async fn orders_from_before_v9_read_as_batch_zero() {
        let db = postgres().fresh_database().await;
        let mut client = db.connect().await;
        migrate_to(&mut client, 8).await;
        client
            .batch_execute(
                "INSERT INTO current_orders (tenant, order_id, status, amount_cents, currency,
                                             updated_at, last_event_id)
                 VALUES ('acme', 'old', 'order_placed', 1, 'USD', now(), gen_random_uuid())",
            )
            .await
            .expect("an order from before V9");
        migrate(&mut client)
            .await
            .expect("migrate to the current version");
        let stamp: i64 = client
            .query_one(
                "SELECT last_batch_id FROM current_orders WHERE order_id = 'old'",
                &[],
            )
            .await
            .expect("the old order")
            .get(0);
        assert_eq!(stamp, 0);
    }
}
