//! `GET /readyz`: Postgres answers and the schema is current. (`GET /healthz`, "the process
//! answers", is core's, shared with the other binaries' operations listener.)

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    let Ok(client) = app.pool.get().await else {
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
}
