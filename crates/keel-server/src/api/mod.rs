//! The routes: MLflow's REST API mounted under both of MLflow's prefixes, the artifact proxy,
//! keel's own API (`/api/keel/v1`: datasets, chart data, alias history, access tokens), the auth
//! API (MLflow's, under `/api/2.0/mlflow` and `/api/3.0/mlflow`) and the operational endpoints.

mod aliases;
mod approvals;
mod artifacts;
mod cards;
pub use artifacts::store_path;
mod charts;
mod datasets;
mod experiments;
mod logged_models;
mod ops;
mod registry;
mod runs;

use axum::Router;
use axum::response::{IntoResponse, Response};
use keel_core::{Error, ErrorCode};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;

/// A JSON response.
pub(crate) fn json<T: Serialize>(v: &T) -> Response {
    axum::Json(v).into_response()
}

/// The empty `{}` answer of write endpoints.
pub(crate) fn empty() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}

/// The MLflow REST routes (relative to `/api/2.0/mlflow`).
fn mlflow_api() -> Router<AppState> {
    Router::new()
        .merge(experiments::routes())
        .merge(runs::routes())
        .merge(logged_models::routes())
        .merge(registry::routes())
        .merge(artifacts::mlflow_routes())
}

async fn not_found() -> ApiError {
    Error::new(
        ErrorCode::EndpointNotFound,
        "No such endpoint. See the keel README for the supported MLflow REST API.",
    )
    .into()
}

pub(crate) fn router() -> Router<AppState> {
    let api = mlflow_api()
        .merge(crate::auth::routes())
        .fallback(not_found);
    let v3 = crate::auth::routes().fallback(not_found);
    let art = artifacts::routes().fallback(not_found);
    Router::new()
        .nest("/api/2.0/mlflow", api.clone())
        .nest("/ajax-api/2.0/mlflow", api)
        .nest("/api/3.0/mlflow", v3.clone())
        .nest("/ajax-api/3.0/mlflow", v3)
        .nest("/api/2.0/mlflow-artifacts", art.clone())
        .nest("/ajax-api/2.0/mlflow-artifacts", art)
        .nest(
            "/api/keel/v1",
            datasets::routes()
                .merge(charts::routes())
                .merge(aliases::routes())
                .merge(approvals::routes())
                .merge(cards::routes())
                .merge(crate::auth::token_routes())
                .merge(crate::auth::session_routes())
                .fallback(not_found),
        )
        .merge(ops::routes())
        .merge(artifacts::ui_routes())
        .merge(crate::ui::routes())
}
