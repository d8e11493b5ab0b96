//! Every way a request can fail, and the answer each gives. Nothing here is a 500: bad input
//! is the client's (400/404/405), a missing database is temporary (503).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Postgres is down, slow past the statement timeout, or the schema is not there yet.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
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
