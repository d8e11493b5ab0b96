//! Postgres connection pools.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// What every session of a pool is limited to, server side and on the socket.
#[derive(Debug, Clone, Default)]
pub struct SessionSettings {
    /// No statement runs longer (`statement_timeout`).
    pub statement_timeout: Duration,
    /// No lock is waited for longer (`lock_timeout`); `None` = up to the statement timeout.
    pub lock_timeout: Option<Duration>,
    /// The server ends a session left idle inside a transaction this long (a client frozen or
    /// cut off mid-transaction), releasing its locks (`idle_in_transaction_session_timeout`).
    pub idle_in_transaction_timeout: Option<Duration>,
    /// TCP keepalive probes after this long without traffic (every `keepalive_idle / 2`, 3 of
    /// them), so a peer gone from the network is noticed by the kernel.
    pub keepalive_idle: Option<Duration>,
    /// The longest sent data may stay unacknowledged before the kernel drops the connection
    /// (`TCP_USER_TIMEOUT`, Linux).
    pub tcp_user_timeout: Option<Duration>,
}

impl SessionSettings {
    /// Only a statement timeout.
    pub fn statement_timeout(statement_timeout: Duration) -> SessionSettings {
        SessionSettings {
            statement_timeout,
            ..SessionSettings::default()
        }
    }

    /// The `-c name=value` start-up options (milliseconds).
    fn options(&self) -> String {
        let mut options = format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_millis()
        );
        if let Some(t) = self.lock_timeout {
            options += &format!(" -c lock_timeout={}", t.as_millis());
        }
        if let Some(t) = self.idle_in_transaction_timeout {
            options += &format!(" -c idle_in_transaction_session_timeout={}", t.as_millis());
        }
        options
    }
}

/// A pool over `config`. Every connection gets `statement_timeout`, so no query can hang a
/// request or a batch forever; broken connections are dropped and replaced on the next `get`.
pub fn pool(
    config: tokio_postgres::Config,
    max_size: usize,
    statement_timeout: Duration,
) -> anyhow::Result<Pool> {
    pool_with(
        config,
        max_size,
        &SessionSettings::statement_timeout(statement_timeout),
    )
}

/// A pool over `config` whose sessions get `settings`.
pub fn pool_with(
    mut config: tokio_postgres::Config,
    max_size: usize,
    settings: &SessionSettings,
) -> anyhow::Result<Pool> {
    config.options(settings.options());
    if let Some(idle) = settings.keepalive_idle {
        config
            .keepalives(true)
            .keepalives_idle(idle)
            .keepalives_interval((idle / 2).max(Duration::from_secs(1)))
            .keepalives_retries(3);
    }
    if let Some(t) = settings.tcp_user_timeout {
        config.tcp_user_timeout(t);
    }
    build(
        config,
        max_size,
        &Waits {
            connect: Duration::from_secs(5),
            for_connection: Duration::from_secs(10),
            create: Duration::from_secs(10),
            recycle: Duration::from_secs(5),
        },
    )
}

/// How long a pool waits: to open a connection, for a free one, to create one, and to check
/// one on its return.
#[derive(Debug, Clone)]
pub struct Waits {
    pub connect: Duration,
    pub for_connection: Duration,
    pub create: Duration,
    pub recycle: Duration,
}

/// The pool itself, over a `config` whose session options are already set: the one place a
/// deadpool is built (the processor's and the API's pools differ only in options and waits).
pub fn build(
    mut config: tokio_postgres::Config,
    max_size: usize,
    waits: &Waits,
) -> anyhow::Result<Pool> {
    config.connect_timeout(waits.connect);
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
        .wait_timeout(Some(waits.for_connection))
        .create_timeout(Some(waits.create))
        .recycle_timeout(Some(waits.recycle))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_start_up_options_in_milliseconds() {
        let s = SessionSettings {
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Some(Duration::from_secs(10)),
            idle_in_transaction_timeout: Some(Duration::from_millis(15_500)),
            ..SessionSettings::default()
        };
        assert_eq!(
            s.options(),
            "-c statement_timeout=30000 -c lock_timeout=10000 \
             -c idle_in_transaction_session_timeout=15500"
        );
        assert_eq!(
            SessionSettings::statement_timeout(Duration::from_secs(5)).options(),
            "-c statement_timeout=5000"
        );
    }
}
