//! Every way a request can fail, and the answer each gives. Bad input is the client's
//! (400/404/405), a missing database or too many requests at once is temporary (503 with
//! `Retry-After`). The one 500 is a panic caught by the middleware ([`ApiError::Internal`]).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    /// A route's object that is not there (an unknown order), saying which.
    #[error("{0}")]
    Missing(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Postgres is down, slow past the statement timeout, or the schema is not there yet.
    #[error("{0}")]
    Unavailable(String),
    /// Every database permit is taken: shed at once rather than queued behind the pool.
    #[error("too many requests in flight: retry shortly")]
    Overloaded,
    /// A handler panicked (a bug); the panic is logged.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound | ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            // Temporary: say when to come back.
            (self.status(), [(header::RETRY_AFTER, "1")], body).into_response()
        } else {
            (self.status(), body).into_response()
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %e, "no database connection");
        ApiError::Unavailable("database unavailable".into())
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::UNDEFINED_TABLE => ApiError::Unavailable(
                "the schema is not there yet: spine-processor creates it when it starts".into(),
            ),
            Some(c) if *c == SqlState::QUERY_CANCELED => {
                tracing::warn!(error = %e, "query timed out");
                ApiError::Unavailable("the database did not answer in time".into())
            }
            _ => {
                tracing::warn!(error = %e, "query failed");
                ApiError::Unavailable("database unavailable".into())
            }
        }
    }
}
