//! Who made each write: every state-changing request runs in an audit [`Context`] (its
//! caller, address, method and path, and its parameters with secrets masked), which the
//! metadata store writes into the entry each of the request's write units appends. A
//! successful write that touched no table (an artifact upload) gets an entry of its own here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_core::audit::{self, Context, Subject};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// The routes that read although their method is not GET (MLflow's searches take a body).
const READS: &[&str] = &[
    "/experiments/search",
    "/experiments/search-datasets",
    "/runs/search",
    "/logged-models/search",
    "/registered-models/search",
    "/model-versions/search",
    "/registered-models/get-latest-versions",
    "/data-objects/missing",
];

/// Whether a request of `method` to `route` (as axum matched it) changes state.
pub fn writes(method: &Method, route: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !READS.iter().any(|r| route.ends_with(r))
}

/// Runs a state-changing request in its audit context, when the log is on.
pub async fn record(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    if !s.audit || !writes(req.method(), &route) {
        return next.run(req).await;
    }
    let (req, ctx) = match context(req).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    let ctx = Arc::new(ctx);
    let path = req.uri().path().to_string();
    let meta = s.meta.clone();
    audit::scope(ctx.clone(), async move {
        let resp = next.run(req).await;
        if resp.status().is_success() && ctx.written() == 0 {
            // Nothing in the metadata store recorded it: an artifact or a data object (written
            // to the artifact store), or a write that turned out to change nothing.
            let kind = if path.contains("/mlflow-artifacts/") || path.ends_with("/upload-artifact")
            {
                "artifact"
            } else if path.contains("/data-objects/") {
                "data_object"
            } else {
                "request"
            };
            if let Err(e) = meta
                .audit_record(Subject::new(kind, path), None, None)
                .await
            {
                return ApiError(e).into_response();
            }
        }
        resp
    })
    .await
}

/// The request's context, and the request with its body put back.
async fn context(req: Request) -> Result<(Request, Context), ApiError> {
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let source = match req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(f) => format!("{source} (for {f})"),
        None => source,
    };
    let action = format!("{} {}", req.method(), req.uri().path());
    let mut fields = serde_json::Map::new();
    if let Some(q) = req.uri().query() {
        for (k, v) in url_pairs(q) {
            fields.insert(k, Value::String(v));
        }
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let (parts, body) = req.into_parts();
    let body = match json {
        true => {
            let bytes = axum::body::to_bytes(body, crate::wire::MAX_JSON_BODY)
                .await
                .map_err(|_| {
                    ApiError(keel_core::Error::new(
                        keel_core::ErrorCode::BodyTooLarge,
                        format!(
                            "Request body is larger than the limit of {} bytes.",
                            crate::wire::MAX_JSON_BODY
                        ),
                    ))
                })?;
            if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&bytes) {
                fields.extend(m);
            }
            Body::from(bytes)
        }
        false => {
            if let Some(n) = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
            {
                fields.insert("content_length".into(), Value::String(n.to_string()));
            }
            body
        }
    };
    let request = (!fields.is_empty()).then(|| audit::summarize(&Value::Object(fields)));
    let ctx = Context::new("anonymous", source, action).with_request(request);
    Ok((Request::from_parts(parts, body), ctx))
}

/// A query string's pairs, percent-decoded.
fn url_pairs(q: &str) -> Vec<(String, String)> {
    serde_html_form::from_str::<Vec<(String, String)>>(q).unwrap_or_default()
}
