//! The artifact proxy (`mlflow-artifacts/artifacts/...`), run and logged-model artifact listings,
//! and the UI's `get-artifact` downloads. Bytes stream between the client and the store.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::TryStreamExt;
use keel_core::{ArtifactPath, Error, FileInfo};
use serde::{Deserialize, Serialize};

use super::{empty, json};
use crate::error::ApiResult;
use crate::wire::{Msg, required};
use crate::{ARTIFACT_SCHEME, AppState};

/// The store path behind a proxied artifact URI (`mlflow-artifacts:/1/<run>/artifacts`, also
/// written `mlflow-artifacts://host:port/1/...`).
pub fn store_path(uri: &str) -> Result<ArtifactPath, Error> {
    keel_core::artifact::proxied_path(uri).unwrap_or_else(|| {
        Err(Error::invalid(format!(
            "Artifact URI '{uri}' is not served by this server (expected {ARTIFACT_SCHEME}/...)"
        )))
    })
}

fn join(base: &ArtifactPath, rel: Option<&str>) -> Result<ArtifactPath, Error> {
    match rel
        .map(|r| r.trim_end_matches('/'))
        .filter(|r| !r.is_empty())
    {
        Some(r) => Ok(base.join(&ArtifactPath::parse(r)?)),
        None => Ok(base.clone()),
    }
}

async fn download(s: &AppState, path: &ArtifactPath) -> ApiResult<Response> {
    let (len, stream) = s.artifacts.get(path).await?;
    let name = path.file_name().replace('"', "");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn get_file(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    download(&s, &ArtifactPath::parse(&path)?).await
}

async fn put_file(
    State(s): State<AppState>,
    Path(path): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let path = ArtifactPath::parse(&path)?;
    let stream = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    s.artifacts.put(&path, Box::pin(stream)).await?;
    Ok(empty())
}

async fn delete_file(State(s): State<AppState>, Path(path): Path<String>) -> ApiResult<Response> {
    s.artifacts.delete(&ArtifactPath::parse(&path)?).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    path: Option<String>,
}

#[derive(Serialize)]
struct Files {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileInfo>,
}

async fn list(State(s): State<AppState>, Msg { body, .. }: Msg<ListQuery>) -> ApiResult<Response> {
    let dir = match body
        .path
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(ArtifactPath::parse(p)?),
        None => None,
    };
    let files = s.artifacts.list(dir.as_ref()).await?;
    Ok(json(&Files { files }))
}

/// Multipart uploads need an object store; the local store answers as MLflow's does, so the
/// client falls back to a single streamed PUT.
async fn mpu_unsupported() -> ApiResult<Response> {
    Err(Error::not_implemented(
        "Multipart upload is not supported for the current artifact repository",
    )
    .into())
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route(
            "/artifacts/{*path}",
            get(get_file).put(put_file).delete(delete_file),
        )
        .route("/mpu/create/{*path}", post(mpu_unsupported))
        .route("/mpu/complete/{*path}", post(mpu_unsupported))
        .route("/mpu/abort/{*path}", post(mpu_unsupported))
}

#[derive(Serialize)]
struct Listing {
    root_uri: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileInfo>,
}

/// Lists `rel` below an artifact root URI, paths relative to that root.
async fn list_under(s: &AppState, root_uri: String, rel: Option<&str>) -> ApiResult<Response> {
    let root = store_path(&root_uri)?;
    let dir = join(&root, rel)?;
    let prefix = rel.map(|r| r.trim_matches('/')).filter(|r| !r.is_empty());
    let files = s
        .artifacts
        .list(Some(&dir))
        .await?
        .into_iter()
        .map(|f| FileInfo {
            path: prefix.map(|p| format!("{p}/{}", f.path)).unwrap_or(f.path),
            ..f
        })
        .collect();
    Ok(json(&Listing { root_uri, files }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RunListQuery {
    run_id: Option<String>,
    run_uuid: Option<String>,
    path: Option<String>,
}

/// `GET /mlflow/artifacts/list`.
async fn list_run(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<RunListQuery>,
) -> ApiResult<Response> {
    let id = required(body.run_id.or(body.run_uuid), "run_id")?;
    let run = s.meta.get_run(&id).await?;
    list_under(&s, run.info.artifact_uri, body.path.as_deref()).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ModelListQuery {
    artifact_directory_path: Option<String>,
}

/// `GET /mlflow/logged-models/{id}/artifacts/directories`.
pub(super) async fn list_logged_model(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Msg { body, .. }: Msg<ModelListQuery>,
) -> ApiResult<Response> {
    let model = s.meta.get_logged_model(&id, false).await?;
    list_under(
        &s,
        model.info.artifact_uri,
        body.artifact_directory_path.as_deref(),
    )
    .await
}

/// The largest file `upload-artifact` takes (MLflow's limit for the UI's uploads).
const MAX_UI_UPLOAD: usize = 10 * 1024 * 1024;

#[derive(Deserialize, Default)]
#[serde(default)]
struct UploadQuery {
    run_uuid: Option<String>,
    path: Option<String>,
}

/// `POST upload-artifact?run_uuid=&path=`: one small file (the body, at most 10 MiB) into a
/// run's artifacts, as MLflow's UI uploads them.
async fn upload_artifact(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<UploadQuery>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let run_id = q
        .run_uuid
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::invalid("Request must specify run_uuid."))?;
    let path = q
        .path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Error::invalid("Request must specify path."))?;
    let rel = ArtifactPath::parse(path.trim_end_matches('/'))?;
    if body.len() > MAX_UI_UPLOAD {
        return Err(Error::invalid("Artifact size is too large. Max size is 10MB.").into());
    }
    if body.is_empty() {
        return Err(Error::invalid("Request must specify data.").into());
    }
    let run = s.meta.get_run(&run_id).await?;
    let target = store_path(&run.info.artifact_uri)?.join(&rel);
    let chunk: std::io::Result<axum::body::Bytes> = Ok(body);
    s.artifacts
        .put(&target, Box::pin(futures::stream::iter([chunk])))
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ModelFileQuery {
    artifact_file_path: Option<String>,
}

/// `GET logged-models/{id}/artifacts/files?artifact_file_path=`: one file of a logged model.
async fn logged_model_file(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ModelFileQuery>,
) -> ApiResult<Response> {
    let path = q
        .artifact_file_path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::bad_request("Request must include the \"artifact_file_path\" query parameter.")
        })?;
    let rel = ArtifactPath::parse(path.trim_end_matches('/'))?;
    let model = s.meta.get_logged_model(&model_id, false).await?;
    download(&s, &store_path(&model.info.artifact_uri)?.join(&rel)).await
}

pub(super) fn mlflow_routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts/list", get(list_run))
        .route("/upload-artifact", post(upload_artifact))
        .route(
            "/logged-models/{model_id}/artifacts/files",
            get(logged_model_file),
        )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GetArtifact {
    run_id: Option<String>,
    run_uuid: Option<String>,
    name: Option<String>,
    version: Option<String>,
    path: Option<String>,
}

/// `GET /get-artifact?run_id=&path=`.
async fn get_run_artifact(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<GetArtifact>,
) -> ApiResult<Response> {
    let id = required(body.run_id.or(body.run_uuid), "run_id")?;
    let path = required(body.path, "path")?;
    // The path is checked before anything is looked up, as MLflow does.
    let rel = ArtifactPath::parse(path.trim_end_matches('/'))?;
    let run = s.meta.get_run(&id).await?;
    download(&s, &store_path(&run.info.artifact_uri)?.join(&rel)).await
}

/// `GET /model-versions/get-artifact?name=&version=&path=`.
async fn get_version_artifact(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<GetArtifact>,
) -> ApiResult<Response> {
    let name = required(body.name, "name")?;
    let version = required(body.version, "version")?;
    let path = required(body.path, "path")?;
    let rel = ArtifactPath::parse(path.trim_end_matches('/'))?;
    let uri = s.meta.model_version_download_uri(&name, &version).await?;
    download(&s, &store_path(&uri)?.join(&rel)).await
}

pub(super) fn ui_routes() -> Router<AppState> {
    Router::new()
        .route("/get-artifact", get(get_run_artifact))
        .route("/model-versions/get-artifact", get(get_version_artifact))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_map_to_store_paths() {
        assert_eq!(
            store_path("mlflow-artifacts:/1/abc/artifacts")
                .unwrap()
                .as_str(),
            "1/abc/artifacts"
        );
        assert_eq!(
            store_path("mlflow-artifacts://host:5000/1/abc/artifacts")
                .unwrap()
                .as_str(),
            "1/abc/artifacts"
        );
        {
            let e = store_path("s3://bucket/x")
                .expect_err("an error")
                .to_string();
            assert!(e.contains("is not served by this server"), "{e}");
        }
        {
            let e = store_path("mlflow-artifacts:/../x")
                .expect_err("an error")
                .to_string();
            assert!(e.contains("Invalid path '../x'"), "{e}");
        }
    }
}
