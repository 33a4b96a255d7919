//! What the protocols share: the served models' state, limits, request ids, error bodies and
//! `predict`, which every protocol's handler calls. The protocol modules (`server.rs` for
//! MLflow's scoring endpoints, `v2.rs` for the Open Inference Protocol) sit on top of this one
//! and do not import each other.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::batch::{BatchConfig, JobTag};
use crate::error::ServeError;
use crate::metrics::ServeMetrics;
use crate::payload::{Input, Output};
use crate::predlog::{Failure, PredictionLog, now_ms};
use crate::route::{Deployment, Route};

/// Server limits.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Batching limits per model version.
    pub batch: BatchConfig,
    /// The longest a prediction request may take before it is answered 504.
    pub timeout: Duration,
    /// The largest request body accepted (413 above).
    pub body_limit: usize,
    /// How `python_function` models are run.
    pub python: crate::python::PythonOptions,
    /// Who may call, when the server asks (`keel serve --auth`).
    pub access: Option<Arc<crate::access::Access>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            batch: BatchConfig::default(),
            timeout: Duration::from_secs(30),
            body_limit: 32 << 20,
            python: crate::python::PythonOptions::default(),
            access: None,
        }
    }
}

/// What the handlers share.
pub struct AppState {
    routes: RwLock<BTreeMap<String, Arc<Route>>>,
    /// The metric families.
    pub metrics: Arc<ServeMetrics>,
    /// Limits.
    pub options: ServeOptions,
    /// The prediction log, when enabled.
    pub log: Option<Arc<PredictionLog>>,
    ready: AtomicBool,
    /// Shadow copies being prepared, not yet queued.
    mirroring: std::sync::atomic::AtomicUsize,
}

impl AppState {
    /// State with no models yet.
    pub fn new(
        options: ServeOptions,
        metrics: Arc<ServeMetrics>,
        log: Option<Arc<PredictionLog>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            routes: RwLock::new(BTreeMap::new()),
            metrics,
            options,
            log,
            ready: AtomicBool::new(false),
            mirroring: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Serves `route` under `name`, replacing what was served there (requests already
    /// admitted by the old version finish on it).
    pub fn set_route(&self, name: &str, route: Route) {
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(name.to_string(), Arc::new(route));
        }
    }

    /// The route of `name`.
    pub fn route(&self, name: &str) -> Option<Arc<Route>> {
        self.routes.read().ok()?.get(name).cloned()
    }

    /// Every served name.
    pub fn names(&self) -> Vec<String> {
        self.routes
            .read()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Marks the server ready (every model loaded) or not (shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether every model is loaded and the server is not shutting down.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The only served model, for the single-model endpoints.
    pub(crate) fn only_route(&self) -> Result<Arc<Route>, ServeError> {
        let routes = self
            .routes
            .read()
            .map_err(|_| ServeError::Unavailable("the server is restarting".into()))?;
        match routes.len() {
            1 => Ok(routes.values().next().cloned().expect("one route")),
            0 => Err(ServeError::Unavailable("no model is loaded yet".into())),
            _ => Err(ServeError::BadRequest(format!(
                "this server hosts several models ({}); POST /models/NAME/invocations",
                routes.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    pub(crate) fn named_route(&self, name: &str) -> Result<Arc<Route>, ServeError> {
        self.route(name).ok_or_else(|| {
            ServeError::NotFound(format!(
                "no model '{name}' is served (served: {})",
                self.names().join(", ")
            ))
        })
    }
}

/// The protocol a request came in by: it shapes errors and labels metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// MLflow's scoring protocol.
    Mlflow,
    /// The Open Inference Protocol.
    V2,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Self::Mlflow => "mlflow",
            Self::V2 => "v2",
        }
    }
}

/// An error answer in the protocol's shape.
pub fn error_response(protocol: Protocol, e: &ServeError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match protocol {
        Protocol::Mlflow => {
            serde_json::json!({"error_code": e.error_code(), "message": e.to_string()})
        }
        Protocol::V2 => serde_json::json!({"error": e.to_string()}),
    };
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let ServeError::Overloaded | ServeError::RateLimited(_) = e {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let ServeError::Unauthenticated(_) = e {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    response
}

/// The request id a client sent (printable, at most 128 bytes) or a new one.
pub fn request_id(headers: &HeaderMap) -> Arc<str> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().to_string()))
}

/// Names the request and the version that answered in the response's headers
/// (`x-request-id`, `x-model-name`, `x-model-version`).
pub fn stamp(response: &mut Response, request_id: &str, deployment: &Deployment) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    let [name, version] = &deployment.headers;
    for (header, value) in [("x-model-name", name), ("x-model-version", version)] {
        if let Some(v) = value {
            headers.insert(header, v.clone());
        }
    }
}

/// A prediction's answer and where it ran.
pub struct Predicted {
    /// The rows' outputs.
    pub output: Arc<Output>,
    /// The version that answered.
    pub deployment: Arc<Deployment>,
}

/// Runs one prediction request through a route: picks the version (or the pinned one), parses
/// and checks the input, mirrors it to the shadow, waits for the batch, and counts it.
pub async fn predict(
    state: &Arc<AppState>,
    route: Arc<Route>,
    version: Option<&str>,
    protocol: Protocol,
    request_id: Arc<str>,
    parse: impl FnOnce(&Deployment) -> Result<Input, ServeError>,
) -> Result<Predicted, ServeError> {
    let received = Instant::now();
    let (deployment, role) = match version {
        Some(v) => (
            route.version(v).cloned().ok_or_else(|| {
                ServeError::NotFound(format!(
                    "model '{}' has no version '{v}' served",
                    route.primary.name
                ))
            })?,
            "pinned",
        ),
        None => {
            let (d, role) = route.pick();
            (d.clone(), role)
        }
    };
    let result = async {
        let admission = deployment.batcher.admit();
        let input = parse(&deployment)?;
        if let Some(shadow) = route.shadow.clone() {
            mirror(state, shadow, input.clone(), request_id.clone(), received);
        }
        let columns = state
            .log
            .as_ref()
            .and_then(|_| log_columns(&deployment, &input));
        let feed = deployment.predictor.prepare(input)?;
        if let Some(log) = &state.log {
            // Before the answer goes out, so feedback sent right after it is checked.
            log.remember(&request_id, feed.rows());
        }
        let tag = JobTag {
            request_id: request_id.clone(),
            received,
            columns,
            role,
        };
        match tokio::time::timeout(
            state.options.timeout,
            deployment.batcher.predict(feed, tag, admission),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err(ServeError::Timeout(state.options.timeout)),
        }
    }
    .await;
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.status(),
    };
    deployment.metrics.answered(role, protocol.label(), status);
    let elapsed = received.elapsed();
    if let (Err(e), Some(log)) = (&result, &state.log) {
        log.failed(Failure {
            request_id: request_id.to_string(),
            time_ms: now_ms(),
            model: deployment.name.to_string(),
            version: deployment.version.to_string(),
            role,
            status,
            error: e.to_string(),
            latency_ms: elapsed.as_secs_f64() * 1e3,
        });
    }
    deployment.metrics.latency.observe(elapsed.as_secs_f64());
    match &result {
        Err(e) if status >= 500 => tracing::warn!(
            request_id = %request_id, model = %deployment.name, version = %deployment.version,
            role, status, latency_ms = elapsed.as_secs_f64() * 1e3, error = %e, "prediction failed"
        ),
        _ => tracing::debug!(
            request_id = %request_id, model = %deployment.name, version = %deployment.version,
            role, status, latency_ms = elapsed.as_secs_f64() * 1e3, "prediction"
        ),
    }
    result.map(|output| Predicted { output, deployment })
}

/// The names of a frame's columns, for the prediction log.
fn log_columns(deployment: &Deployment, input: &Input) -> Option<Arc<[String]>> {
    match input {
        Input::Frame(c) => Some(deployment.names.get(&c.names)),
        Input::Table(t) => Some(t.names.clone()),
        Input::Tensors(_) => None,
    }
}

/// Sends a copy of a request to the shadow version, off the request's path.
fn mirror(
    state: &Arc<AppState>,
    shadow: Arc<Deployment>,
    input: Input,
    request_id: Arc<str>,
    received: Instant,
) {
    let state = state.clone();
    state.mirroring.fetch_add(1, Ordering::AcqRel);
    tokio::spawn(async move {
        let _done = Mirroring(state.clone());
        let columns = state
            .log
            .as_ref()
            .and_then(|_| log_columns(&shadow, &input));
        let Ok(feed) = shadow.predictor.prepare(input) else {
            return;
        };
        let tag = JobTag {
            request_id,
            received,
            columns,
            role: "shadow",
        };
        if !shadow.batcher.mirror(feed, tag) {
            state.metrics.shadow_dropped.inc();
        }
    });
}

/// Counts a shadow copy as pending until dropped.
struct Mirroring(Arc<AppState>);

impl Drop for Mirroring {
    fn drop(&mut self) {
        self.0.mirroring.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits (at most `limit`) until shadow copies are queued and every model version has
/// answered and reported what it holds.
pub(crate) async fn drain(state: &AppState, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let busy = state.mirroring.load(Ordering::Acquire) > 0
            || state
                .names()
                .iter()
                .filter_map(|n| state.route(n))
                .any(|r| r.deployments().iter().any(|d| !d.batcher.idle()));
        if !busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
