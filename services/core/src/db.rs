//! Postgres connection pools.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// A pool over `config`. Every connection gets `statement_timeout`, so no query can hang a
/// request or a batch forever; broken connections are dropped and replaced on the next `get`.
pub fn pool(
    mut config: tokio_postgres::Config,
    max_size: usize,
    statement_timeout: Duration,
) -> anyhow::Result<Pool> {
    config.options(format!(
        "-c statement_timeout={}",
        statement_timeout.as_millis()
    ));
    config.connect_timeout(Duration::from_secs(5));
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()?)
}
