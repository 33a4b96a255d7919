//! The HTTP server: MLflow's scoring endpoints, Prometheus metrics and ground-truth feedback,
//! and the router that mounts them with the Open Inference Protocol's (`v2.rs`), over the
//! shared state and `predict` of `state.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ServeError;
use crate::metrics::ModelLabels;
use crate::payload::{ColumnNames, Input};
use crate::predlog::Feedback;
use crate::route::Route;
use crate::state::drain;
pub use crate::state::{
    AppState, Predicted, Protocol, ServeOptions, error_response, predict, request_id, stamp,
};
use crate::{mlflow, v2};

/// The content types MLflow's scoring endpoint takes, for the 415 message.
const JSON_TYPES: &str = "application/json or text/csv";

/// Parses an MLflow scoring body by its content type; `known` names split frames' columns.
fn parse_invocation(
    headers: &HeaderMap,
    body: &[u8],
    known: &ColumnNames,
) -> Result<Input, ServeError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "" => mlflow::parse_json(body, known),
        "text/csv" => mlflow::parse_csv(body),
        other => Err(ServeError::Unsupported(format!(
            "content type '{other}' is not supported; send {JSON_TYPES}"
        ))),
    }
}

async fn invocations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = request_id(&headers);
    let route = match state.only_route() {
        Ok(r) => r,
        Err(e) => return error_response(Protocol::Mlflow, &e, &id),
    };
    invoke(&state, route, &headers, body, id).await
}

async fn model_invocations(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = request_id(&headers);
    let route = match state.named_route(&name) {
        Ok(r) => r,
        Err(e) => return error_response(Protocol::Mlflow, &e, &id),
    };
    invoke(&state, route, &headers, body, id).await
}

async fn invoke(
    state: &Arc<AppState>,
    route: Arc<Route>,
    headers: &HeaderMap,
    body: Bytes,
    id: Arc<str>,
) -> Response {
    let mut frame_input = true;
    let result = predict(state, route, None, Protocol::Mlflow, id.clone(), |d| {
        let input = parse_invocation(headers, &body, &d.names)?;
        frame_input = input.is_frame();
        Ok(input)
    })
    .await;
    match result {
        Ok(p) => {
            let body = mlflow::answer(&p.output, frame_input);
            let mut response = (
                StatusCode::OK,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            stamp(&mut response, &id, &p.deployment);
            response
        }
        Err(e) => error_response(Protocol::Mlflow, &e, &id),
    }
}

async fn ping(State(state): State<Arc<AppState>>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    for name in state.names() {
        if let Some(route) = state.route(&name) {
            for d in route.deployments() {
                state
                    .metrics
                    .queue_depth
                    .get_or_create(&ModelLabels {
                        model: d.name.clone(),
                        version: d.version.clone(),
                    })
                    .set(d.batcher.queue_depth() as i64);
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn feedback(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let id = request_id(&headers);
    let result = (|| {
        let records = Feedback::parse(&body)?;
        let outcome = match &state.log {
            Some(log) => log.feedback(records)?,
            None => {
                return Err(ServeError::Unavailable(
                    "the prediction log is off (start keel serve with --log-dir)".into(),
                ));
            }
        };
        state.metrics.feedback.inc_by(outcome.recorded as u64);
        Ok(outcome)
    })();
    match result {
        Ok(o) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "recorded": o.recorded,
                "matched": o.matched,
                "unmatched": o.recorded - o.matched,
            })),
        )
            .into_response(),
        Err(e) => error_response(Protocol::Mlflow, &e, &id),
    }
}

/// The server's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.options.body_limit;
    Router::new()
        .route("/invocations", post(invocations))
        .route("/models/{name}/invocations", post(model_invocations))
        .route("/ping", get(ping))
        .route("/health", get(ping))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/feedback", post(feedback))
        .merge(v2::routes())
        .merge(crate::status::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::guard,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then stops taking connections, lets requests in flight
/// finish, waits (up to 10 s) for shadow copies and queued work, and flushes the prediction
/// log. Over TLS (HTTP/1.1 and HTTP/2 by ALPN) when `tls` holds a certificate.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let closing = state.clone();
    let shutdown = async move {
        shutdown.await;
        closing.set_ready(false);
    };
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Some(tls) => {
            let handle = axum_server::Handle::new();
            let stop = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                // A client that keeps an HTTP/2 connection open without answering the
                // server's closing handshake is cut off after this.
                stop.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, tls)?
                .handle(handle)
                .serve(app.into_make_service())
                .await?
        }
    }
    drain(&state, Duration::from_secs(10)).await;
    if let Some(log) = &state.log {
        log.close();
    }
    Ok(())
}
