//! `GET /readyz`: Postgres answers and the schema is current. It uses connections of its own
//! and answers within a second, so a saturated data pool never makes the API look dead.
//! (`GET /livez` and `/healthz`, "the process answers", are core's, shared with the other
//! binaries' operations listener.)

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// The longest `/readyz` takes before it answers 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    let check = async {
        let Ok(client) = app.ready_pool.get().await else {
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");
        };
        if spine_core::schema::is_current(&client).await {
            (StatusCode::OK, "ready\n")
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "schema not there yet (spine-processor creates it)\n",
            )
        }
    };
    tokio::time::timeout(READY_TIMEOUT, check).await.unwrap_or((
        StatusCode::SERVICE_UNAVAILABLE,
        "database did not answer in time\n",
    ))
}
