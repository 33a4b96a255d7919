//! `/health`, `/version`, `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

/// `OK` when the metadata store answers, 503 otherwise.
async fn health(State(s): State<AppState>) -> impl IntoResponse {
    match s.meta.ping().await {
        Ok(()) => (StatusCode::OK, "OK".to_string()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("metadata store unavailable: {e}"),
        ),
    }
}

async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/version", get(version))
        .route("/metrics", get(crate::metrics::expose_state))
}
