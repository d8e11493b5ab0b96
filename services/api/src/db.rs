//! The API's Postgres sessions: read-only, short statements, named `spine-api`.
//!
//! Two pools over the same role: one for the data routes (its size is also the concurrency
//! limit in front of them, see [`crate::limits`]), and a small one of its own for `/readyz`,
//! so a probe never queues behind a saturated data pool.

use std::time::Duration;

use deadpool_postgres::Pool;

/// No API query may run longer: every route reads an index range bounded by its `limit`.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Connections of the data pool, and requests served by it at once.
pub const POOL_SIZE: usize = 16;
/// Connections `/readyz` keeps for itself.
pub const READY_POOL_SIZE: usize = 2;

/// The options every API session starts with. `default_transaction_read_only` makes every
/// statement read-only even when the role could write (the fallback to the writer's role).
pub fn session_options() -> String {
    format!(
        "-c default_transaction_read_only=on -c statement_timeout={} \
         -c idle_in_transaction_session_timeout=5000 -c lock_timeout=1000",
        STATEMENT_TIMEOUT.as_millis()
    )
}

/// A pool of read-only sessions over `config`. Waiting for a connection is bounded by
/// `wait`: past it the request gets a 503, never a hang.
pub fn pool(
    mut config: tokio_postgres::Config,
    size: usize,
    wait: Duration,
) -> anyhow::Result<Pool> {
    config.options(session_options());
    if config.get_application_name().is_none() {
        config.application_name(crate::APPLICATION_NAME);
    }
    spine_core::db::build(
        config,
        size,
        &spine_core::db::Waits {
            connect: Duration::from_secs(2),
            for_connection: wait,
            create: Duration::from_secs(2),
            recycle: Duration::from_secs(1),
        },
    )
}
