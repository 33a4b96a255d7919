//! The Open Inference Protocol (KServe v2) over REST: server and model metadata, health, and
//! `infer` with typed tensors.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_core::table::{Columns, Values};
use keel_onnx::{Data, Tensor, Value};
use serde::Deserialize;
use serde_json::json;

use crate::error::ServeError;
use crate::mlflow::flat_data;
use crate::payload::{Input, NamedTensor, map_keys, tensor_from_json, unique_names};
use crate::predictor::{Predictor, v2_datatype};
use crate::route::{Deployment, Route};
use crate::state::{AppState, Protocol, error_response, predict, request_id, stamp};

#[derive(Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: serde_json::Value,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InferInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

fn bad(m: impl Into<String>) -> ServeError {
    ServeError::BadRequest(m.into())
}

/// A request tensor, checked against its declared shape and datatype.
fn input_tensor(i: &InferInput) -> Result<Tensor, ServeError> {
    let shape = i
        .shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                bad(format!(
                    "input '{}': negative dimension in shape {:?}",
                    i.name, i.shape
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let parsed = tensor_from_json(Some(&i.name), &i.data)?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(parsed.len()) {
        return Err(bad(format!(
            "input '{}': shape {:?} does not hold the {} values given",
            i.name,
            i.shape,
            parsed.len()
        )));
    }
    let expected = match i.datatype.as_str() {
        "BYTES" => "strings",
        "BOOL" => "booleans",
        "FP16" | "FP32" | "FP64" | "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16"
        | "UINT32" | "UINT64" => "numbers",
        other => {
            return Err(bad(format!(
                "input '{}': unknown datatype '{other}'",
                i.name
            )));
        }
    };
    let fits = match &parsed.data {
        Data::String(_) => expected == "strings",
        Data::Bool(_) => expected == "booleans",
        _ => expected == "numbers" || parsed.is_empty(),
    };
    if !fits {
        return Err(bad(format!(
            "input '{}': datatype {} needs {expected}",
            i.name, i.datatype
        )));
    }
    Ok(Tensor {
        shape,
        data: parsed.data,
    })
}

/// The request's tensors as the model wants them: named columns for column models (each
/// input one column of shape [N] or [N, 1]), tensors otherwise.
fn to_input(predictor: &Predictor, inputs: &[InferInput]) -> Result<Input, ServeError> {
    unique_names(inputs.iter().map(|i| i.name.as_str()))?;
    let tensors = inputs
        .iter()
        .map(|i| {
            Ok(NamedTensor {
                name: Some(i.name.clone()),
                tensor: input_tensor(i)?,
            })
        })
        .collect::<Result<Vec<_>, ServeError>>()?;
    let columnar = tensors.iter().all(|t| {
        t.tensor.shape.len() == 1 || (t.tensor.shape.len() == 2 && t.tensor.shape[1] == 1)
    });
    if predictor.takes_columns() && columnar {
        let mut names = Vec::new();
        let mut values = Vec::new();
        for t in tensors {
            names.push(t.name.unwrap_or_default());
            values.push(match t.tensor.data {
                Data::String(v) => Values::Text(v.into_iter().map(Some).collect()),
                Data::Bool(v) => Values::Text(v.into_iter().map(|b| Some(b.to_string())).collect()),
                other => {
                    let t = Tensor {
                        shape: t.tensor.shape,
                        data: other,
                    };
                    let f = keel_onnx::cast(&t, keel_onnx::ElemType::Double)?;
                    let Data::Double(v) = f.data else {
                        unreachable!("cast to double")
                    };
                    Values::Numbers(
                        v.into_iter()
                            .map(|x| Some(x).filter(|x| !x.is_nan()))
                            .collect(),
                    )
                }
            });
        }
        let rows = values.first().map_or(0, Values::len);
        if values.iter().any(|v| v.len() != rows) {
            return Err(bad("inputs have different numbers of rows"));
        }
        return Ok(Input::Frame(Columns { names, values }));
    }
    Ok(Input::Tensors(tensors))
}

fn output_json(name: &str, value: &Value) -> serde_json::Value {
    match value {
        Value::Tensor(t) => json!({
            "name": name,
            "shape": t.shape,
            "datatype": v2_datatype(t.elem_type()),
            "data": flat_data(t),
        }),
        Value::Maps(m) => {
            let keys = map_keys(&m.keys);
            let t = Tensor {
                shape: vec![m.rows(), keys.len()],
                data: Data::Float(m.values.clone()),
            };
            json!({
                "name": name,
                "shape": t.shape,
                "datatype": "FP32",
                "parameters": {"keys": keys},
                "data": flat_data(&t),
            })
        }
    }
}

async fn infer_at(
    state: Arc<AppState>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = request_id(&headers);
    let route = match state.route(&name) {
        Some(r) => r,
        None => {
            return error_response(
                Protocol::V2,
                &ServeError::NotFound(format!("no model '{name}' is served")),
                &id,
            );
        }
    };
    let mut request_tag = None;
    let mut wanted: Option<Vec<String>> = None;
    let result = predict(
        &state,
        route,
        version.as_deref(),
        Protocol::V2,
        id.clone(),
        |deployment| {
            let req: InferRequest = serde_json::from_slice(&body)
                .map_err(|e| bad(format!("the body is not an inference request: {e}")))?;
            request_tag = req.id.clone();
            wanted = req.outputs.map(|o| o.into_iter().map(|o| o.name).collect());
            to_input(&deployment.predictor, &req.inputs)
        },
    )
    .await;
    match result {
        Ok(p) => {
            let outputs: Vec<serde_json::Value> = p
                .output
                .names
                .iter()
                .zip(&p.output.values)
                .filter(|(n, _)| wanted.as_ref().is_none_or(|w| w.contains(n)))
                .map(|(n, v)| output_json(n, v))
                .collect();
            let mut body = json!({
                "model_name": p.deployment.name,
                "model_version": p.deployment.version,
                "outputs": outputs,
            });
            body["id"] = json!(request_tag.unwrap_or_else(|| id.to_string()));
            let mut response = (StatusCode::OK, axum::Json(body)).into_response();
            stamp(&mut response, &id, &p.deployment);
            response
        }
        Err(e) => error_response(Protocol::V2, &e, &id),
    }
}

async fn infer(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    infer_at(s, name, None, headers, body).await
}

async fn infer_version(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    infer_at(s, name, Some(version), headers, body).await
}

fn find(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<(Arc<Route>, Arc<Deployment>), ServeError> {
    let route = state
        .route(name)
        .ok_or_else(|| ServeError::NotFound(format!("no model '{name}' is served")))?;
    let d = match version {
        Some(v) => route.version(v).cloned().ok_or_else(|| {
            ServeError::NotFound(format!("model '{name}' has no version '{v}' served"))
        })?,
        None => route.primary.clone(),
    };
    Ok((route, d))
}

fn metadata(state: &AppState, name: &str, version: Option<&str>) -> Response {
    match find(state, name, version) {
        Ok((route, d)) => {
            let describe = |items: Vec<(String, String, Vec<i64>)>| -> Vec<serde_json::Value> {
                items
                    .into_iter()
                    .map(|(n, t, s)| json!({"name": n, "datatype": t, "shape": s}))
                    .collect()
            };
            let versions: Vec<&str> = route
                .deployments()
                .iter()
                .map(|d| d.version.as_str())
                .collect();
            axum::Json(json!({
                "name": name,
                "versions": versions,
                "platform": d.predictor.platform(),
                "inputs": describe(d.predictor.describe_inputs()),
                "outputs": describe(d.predictor.describe_outputs()),
                "parameters": {"runtime": d.predictor.runtime(), "version": d.version, "note": d.predictor.note},
            }))
            .into_response()
        }
        Err(e) => error_response(Protocol::V2, &e, ""),
    }
}

async fn model_metadata(State(s): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    metadata(&s, &name, None)
}

async fn version_metadata(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    metadata(&s, &name, Some(&version))
}

fn ready_at(state: &AppState, name: &str, version: Option<&str>) -> Response {
    match find(state, name, version) {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(json!({"name": name, "ready": true})),
        )
            .into_response(),
        Err(e) => error_response(Protocol::V2, &e, ""),
    }
}

async fn model_ready(State(s): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    ready_at(&s, &name, None)
}

async fn version_ready(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    ready_at(&s, &name, Some(&version))
}

async fn server_metadata() -> Response {
    axum::Json(json!({"name": "keel", "version": env!("CARGO_PKG_VERSION"), "extensions": []}))
        .into_response()
}

async fn live() -> Response {
    axum::Json(json!({"live": true})).into_response()
}

async fn ready(State(s): State<Arc<AppState>>) -> Response {
    let ready = s.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(json!({"ready": ready}))).into_response()
}

/// The v2 routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
}
