//! What a `keel serve` process serves, for people: `GET /status` (JSON) and a small page at
//! `GET /` that polls it and shows each model's versions, the specs they follow (`churn@champion`
//! moves with its alias), canary and shadow shares, and live request rates.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::server::AppState;

/// The page: static HTML and script; everything it shows comes from `/status`.
const PAGE: &str = include_str!("status.html");

#[derive(Serialize)]
struct Status {
    ready: bool,
    version: &'static str,
    models: Vec<Model>,
    prediction_log: Option<Log>,
    feedback_records: u64,
}

#[derive(Serialize)]
struct Model {
    name: String,
    deployments: Vec<Version>,
}

#[derive(Serialize)]
struct Version {
    version: String,
    role: &'static str,
    /// The share of requests it answers (a shadow answers none; it sees them all).
    share: f64,
    follows: Option<String>,
    runtime: &'static str,
    /// How a Python model came to run where it does.
    note: Option<String>,
    /// Python worker processes started again after theirs ended (a crash, a timeout).
    worker_restarts: Option<u64>,
    requests_ok: u64,
    requests_failed: u64,
    rows: u64,
    queue_depth: i64,
}

#[derive(Serialize)]
struct Log {
    rows_written: u64,
    rows_dropped: u64,
}

/// The routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(page))
        .route("/status", get(status))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

async fn status(State(state): State<Arc<AppState>>) -> Response {
    let mut models = Vec::new();
    for name in state.names() {
        let Some(route) = state.route(&name) else {
            continue;
        };
        let spec = |role: &str| {
            route
                .specs
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, s)| s.clone())
        };
        let canary_share = route.canary.as_ref().map_or(0.0, |(_, s)| *s);
        let mut deployments = vec![(&route.primary, "primary", 1.0 - canary_share)];
        if let Some((c, share)) = &route.canary {
            deployments.push((c, "canary", *share));
        }
        if let Some(s) = &route.shadow {
            deployments.push((s, "shadow", 0.0));
        }
        models.push(Model {
            name: name.clone(),
            deployments: deployments
                .into_iter()
                .map(|(d, role, share)| Version {
                    version: d.version.clone(),
                    role,
                    share,
                    follows: spec(role),
                    runtime: d.predictor.runtime(),
                    note: d.predictor.note.clone(),
                    worker_restarts: d.predictor.python().map(|p| p.pool().restarts()),
                    requests_ok: d.metrics.ok.load(Ordering::Relaxed),
                    requests_failed: d.metrics.failed.load(Ordering::Relaxed),
                    rows: d.metrics.rows.get(),
                    queue_depth: d.metrics.queue_depth(),
                })
                .collect(),
        });
    }
    let m = &state.metrics;
    axum::Json(Status {
        ready: state.is_ready(),
        version: env!("CARGO_PKG_VERSION"),
        models,
        prediction_log: state.log.as_ref().map(|_| Log {
            rows_written: m.log_written.get(),
            rows_dropped: m.log_dropped.get(),
        }),
        feedback_records: m.feedback.get(),
    })
    .into_response()
}
