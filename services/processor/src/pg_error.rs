//! Postgres errors classified, not guessed: which are worth retrying unchanged, and how to say
//! what went wrong in one line.

use tokio_postgres::error::SqlState;

/// Whether retrying what failed with `e` unchanged can succeed: a connection error, or a
/// SQLSTATE of a class that passes (see [`is_transient_sqlstate`]). An error without a
/// SQLSTATE that is not about the connection (a value that does not convert, a malformed
/// message, a bad configuration) fails the same way every time.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => is_transient_sqlstate(code),
        None => is_connection_error(e),
    }
}

/// A unique violation of `events`' primary key: an event stored already.
pub fn is_stored_event(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("events_pkey")
    })
}

/// The cause among the failures of statements sent together in one transaction: each
/// statement after a failed one fails too, with "current transaction is aborted" (25P02), and
/// the order in which the failures are seen is not always the order the statements were sent
/// (a chunked insert sends its next chunk only after the previous answer). So: the first
/// error from the server that is not 25P02, else the first other failure that is not (a
/// connection closed under a statement not yet sent says less than the server's reason),
/// else the first. `None` when nothing failed.
pub fn cause(
    errors: impl IntoIterator<Item = tokio_postgres::Error>,
) -> Option<tokio_postgres::Error> {
    let aborted =
        |e: &tokio_postgres::Error| e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION);
    let mut errors: Vec<tokio_postgres::Error> = errors.into_iter().collect();
    let rank = |e: &tokio_postgres::Error| match (e.as_db_error().is_some(), aborted(e)) {
        (true, false) => 0,
        (false, false) => 1,
        (_, true) => 2,
    };
    let best = errors
        .iter()
        .enumerate()
        .min_by_key(|(i, e)| (rank(e), *i))?
        .0;
    Some(errors.swap_remove(best))
}

/// Connection exception, serialization failure or deadlock, insufficient resources, operator
/// intervention (query cancelled by a timeout, server shutting down), a lock not available,
/// system error (I/O), a session ended for idling in a transaction.
pub fn is_transient_sqlstate(code: &SqlState) -> bool {
    let c = code.code();
    ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| c.starts_with(class))
        || *code == SqlState::LOCK_NOT_AVAILABLE
        // This session sat in a transaction too long (a frozen or slow client) and was ended:
        // a new session can do it again.
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
}

/// The connection is closed or broken, could not be made, or timed out: the client's
/// socket errors, never its encoding or parsing of messages.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        // A malformed message from or to the server is wrapped as InvalidData/InvalidInput.
        Some(io) => !matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
        ),
        // tokio-postgres's connect timeout has no source.
        None => e.to_string().starts_with("timeout waiting for server"),
    }
}

/// `e` in one line with what the server said: its message, SQLSTATE and the table involved,
/// e.g. `relation "events" does not exist (SQLSTATE 42P01)`.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {}", db.message(), db.code().code());
            if let Some(table) = db.table() {
                text += &format!(", table {table}");
            }
            text + ")"
        }
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_that_pass_are_transient_and_the_rest_are_not() {
        for code in [
            SqlState::CONNECTION_FAILURE,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::QUERY_CANCELED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::IO_ERROR,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        ] {
            assert!(is_transient_sqlstate(&code), "{code:?}");
        }
        for code in [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_COLUMN,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::UNIQUE_VIOLATION,
            SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            SqlState::INVALID_TEXT_REPRESENTATION,
        ] {
            assert!(!is_transient_sqlstate(&code), "{code:?}");
        }
    }

    #[tokio::test]
    async fn without_a_sqlstate_only_connection_errors_are_transient() {
        // Nothing listens on port 1: the connection is refused.
        let refused = tokio_postgres::connect(
            "host=127.0.0.1 port=1 user=x connect_timeout=5",
            tokio_postgres::NoTls,
        )
        .await
        .err()
        .expect("refused");
        assert!(refused.code().is_none());
        assert!(is_transient(&refused), "{refused}");
        assert!(is_transient(&tokio_postgres::Error::__private_api_timeout()));

        // A configuration error has no SQLSTATE either, and fails the same way every time.
        let config = "port=not-a-number"
            .parse::<tokio_postgres::Config>()
            .expect_err("bad config");
        assert!(config.code().is_none());
        assert!(!is_transient(&config), "{config}");
    }
}
