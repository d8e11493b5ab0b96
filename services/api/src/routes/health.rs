//! `GET /healthz` (the process answers) and `GET /readyz` (Postgres answers and the schema is
//! current).

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

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
