//! keel's dataset API under `/api/keel/v1`: dataset versions, their content-addressed
//! objects, and lineage from a content hash to the runs that used it.
//!
//! - `GET  /datasets`: every dataset with its newest version
//! - `GET  /datasets/{name}/versions`: one dataset's versions, newest first
//! - `POST /datasets/{name}/versions`: record a version whose objects are stored
//! - `GET  /datasets/{name}/versions/{n|latest}`: a version and the runs that used it
//! - `GET  /datasets/by-hash/{hash}`: the versions with this content hash (or its 32-digit
//!   MLflow digest) and the runs that used it
//! - `GET|POST /datasets/{name}/versions/{n}/validations`: the validation reports recorded
//!   against a version, newest first; record one (`{"report": ..., "created_by": ...}`, the
//!   report as `keel data validate --json` prints it)
//! - `POST /data-objects/missing`: which of these hashes have no object yet
//! - `PUT  /data-objects/{hash}`: store an object (its bytes must hash to `hash`)
//! - `GET  /data-objects/{hash}`: read an object
//!
//! Clients (`keel data add --tracking-uri`) hash and profile locally, upload only missing
//! objects, then record the version; the server checks that every object it refers to exists.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{StreamExt, TryStreamExt};
use keel_core::data::{
    DataKind, DataVersion, Manifest, object_path, validate_hash, validate_version,
};
use keel_core::{Error, now_millis};
use serde::{Deserialize, Serialize};

use super::json;
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::Msg;

/// The routes, relative to `/api/keel/v1`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/datasets", get(list))
        .route("/datasets/by-hash/{hash}", get(by_hash))
        .route("/datasets/{name}/versions", get(versions).post(create))
        .route("/datasets/{name}/versions/{version}", get(version))
        .route(
            "/datasets/{name}/versions/{version}/validations",
            get(validations).post(record_validation),
        )
        .route("/data-objects/missing", post(missing))
        .route("/data-objects/{hash}", get(get_object).put(put_object))
}

/// At most this many hashes per `missing` question.
const MAX_HASHES: usize = 100_000;

fn parse_version(v: &str) -> Result<Option<i64>, Error> {
    if v == "latest" {
        return Ok(None);
    }
    v.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Invalid version '{v}': a number from 1, or 'latest'"
            ))
        })
}

async fn list(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(json(
        &serde_json::json!({ "datasets": s.meta.list_data().await? }),
    ))
}

async fn versions(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    Ok(json(
        &serde_json::json!({ "versions": s.meta.list_data_versions(&name).await? }),
    ))
}

async fn version(
    State(s): State<AppState>,
    Path((name, v)): Path<(String, String)>,
) -> ApiResult<Response> {
    let version = s.meta.get_data_version(&name, parse_version(&v)?).await?;
    let used_by = s.meta.data_uses(&version.hash).await?;
    Ok(json(
        &serde_json::json!({ "version": version, "used_by": used_by }),
    ))
}

/// A version number from the path (`latest` is not one: a report is about one version).
fn exact_version(v: &str) -> Result<i64, Error> {
    parse_version(v)?.ok_or_else(|| Error::invalid("a validation names its version's number"))
}

async fn validations(
    State(s): State<AppState>,
    Path((name, v)): Path<(String, String)>,
) -> ApiResult<Response> {
    let list = s.meta.list_validations(&name, exact_version(&v)?).await?;
    Ok(json(&serde_json::json!({ "validations": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewValidation {
    report: serde_json::Value,
    #[serde(default)]
    created_by: String,
}

async fn record_validation(
    State(s): State<AppState>,
    Path((name, v)): Path<(String, String)>,
    Msg { body, .. }: Msg<NewValidation>,
) -> ApiResult<Response> {
    let record = keel_core::data::DataValidation::from_report(
        &name,
        exact_version(&v)?,
        &body.created_by,
        body.report,
    )?;
    let recorded = s.meta.record_validation(record).await?;
    Ok(json(&serde_json::json!({ "validation": recorded })))
}

async fn by_hash(State(s): State<AppState>, Path(hash): Path<String>) -> ApiResult<Response> {
    keel_core::data::digest_of(&hash)?;
    Ok(json(&serde_json::json!({
        "versions": s.meta.data_versions_by_hash(&hash).await?,
        "used_by": s.meta.data_uses(&hash).await?,
    })))
}

/// A version as a client records it; number, time and user come from the server's view
/// when missing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVersion {
    hash: String,
    kind: DataKind,
    format: String,
    size_bytes: i64,
    file_count: i64,
    #[serde(default)]
    row_count: Option<i64>,
    #[serde(default)]
    schema: Option<serde_json::Value>,
    #[serde(default)]
    profile: Option<serde_json::Value>,
    source: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    description: String,
}

#[derive(Serialize)]
struct Created {
    version: DataVersion,
    created: bool,
}

async fn create(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Msg { body, .. }: Msg<NewVersion>,
) -> ApiResult<Response> {
    let new = DataVersion {
        name,
        version: 0,
        hash: body.hash,
        kind: body.kind,
        format: body.format,
        size_bytes: body.size_bytes,
        file_count: body.file_count,
        row_count: body.row_count,
        schema: body.schema,
        profile: body.profile,
        source: body.source,
        created_by: if body.created_by.is_empty() {
            "unknown".into()
        } else {
            body.created_by
        },
        creation_time: now_millis(),
        description: body.description,
    };
    // The service checks it too; first here, so a bad version is refused before its objects
    // are looked for.
    validate_version(&new)?;
    // Every object the version names must be stored, and a folder's manifest must add up.
    let head = |hash: String| {
        let s = s.clone();
        async move {
            let size = s.artifacts.head(&object_path(&hash)?).await?;
            Ok::<_, Error>((hash, size))
        }
    };
    let (_, size) = head(new.hash.clone()).await?;
    let Some(size) = size else {
        return Err(Error::invalid(format!(
            "Object {} is not stored: upload it to /api/keel/v1/data-objects/{} first",
            new.hash, new.hash
        ))
        .into());
    };
    if new.kind == DataKind::Folder {
        let (_, mut stream) = s.artifacts.get(&object_path(&new.hash)?).await?;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.map_err(|e| Error::internal(e.to_string()))?);
        }
        let manifest = Manifest::decode(&bytes)?;
        if manifest.files.len() as i64 != new.file_count || manifest.size() as i64 != new.size_bytes
        {
            return Err(Error::invalid(format!(
                "file_count {} and size_bytes {} do not match the manifest ({} files, {} bytes)",
                new.file_count,
                new.size_bytes,
                manifest.files.len(),
                manifest.size()
            ))
            .into());
        }
        let mut hashes: Vec<String> = manifest.files.iter().map(|f| f.hash.clone()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        let absent: Vec<String> = futures::stream::iter(hashes)
            .map(head)
            .buffer_unordered(16)
            .try_filter_map(|(h, size)| async move { Ok(size.is_none().then_some(h)) })
            .try_collect()
            .await?;
        if let Some(first) = absent.first() {
            return Err(Error::invalid(format!(
                "{} object(s) of the folder are not stored, e.g. {first}",
                absent.len()
            ))
            .into());
        }
    } else if size as i64 != new.size_bytes || new.file_count != 1 {
        return Err(Error::invalid(format!(
            "size_bytes {} and file_count {} do not match the stored object ({size} bytes, 1 file)",
            new.size_bytes, new.file_count
        ))
        .into());
    }
    let (version, created) = s.meta.create_data_version(new).await?;
    Ok(json(&Created { version, created }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Hashes {
    hashes: Vec<String>,
}

async fn missing(State(s): State<AppState>, Msg { body, .. }: Msg<Hashes>) -> ApiResult<Response> {
    if body.hashes.len() > MAX_HASHES {
        return Err(Error::invalid(format!(
            "Too many hashes: {} (at most {MAX_HASHES} per request)",
            body.hashes.len()
        ))
        .into());
    }
    for h in &body.hashes {
        validate_hash(h)?;
    }
    let missing: Vec<String> = futures::stream::iter(body.hashes)
        .map(|h| {
            let s = s.clone();
            async move {
                let size = s.artifacts.head(&object_path(&h)?).await?;
                Ok::<_, Error>(size.is_none().then_some(h))
            }
        })
        .buffer_unordered(16)
        .try_filter_map(|h| async move { Ok(h) })
        .try_collect()
        .await?;
    Ok(json(&serde_json::json!({ "missing": missing })))
}

async fn get_object(State(s): State<AppState>, Path(hash): Path<String>) -> ApiResult<Response> {
    let (len, stream) = s.artifacts.get(&object_path(&hash)?).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Streams the body into the store while hashing it; bytes that do not hash to `hash` are
/// removed again and refused.
async fn put_object(
    State(s): State<AppState>,
    Path(hash): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let path = object_path(&hash)?;
    if s.artifacts.head(&path).await?.is_some() {
        return Ok(json(&serde_json::json!({ "stored": false })));
    }
    let hasher = Arc::new(Mutex::new(blake3::Hasher::new()));
    let feed = hasher.clone();
    let stream = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other)
        .map_ok(move |chunk| {
            if let Ok(mut h) = feed.lock() {
                h.update(&chunk);
            }
            chunk
        });
    s.artifacts.put(&path, Box::pin(stream)).await?;
    let actual = hasher
        .lock()
        .map(|h| h.finalize().to_hex().to_string())
        .map_err(|_| Error::internal("object hasher poisoned"))?;
    if actual != hash {
        s.artifacts.delete(&path).await?;
        return Err(Error::invalid(format!(
            "The uploaded bytes hash to {actual}, not {hash}; nothing was stored"
        ))
        .into());
    }
    Ok(json(&serde_json::json!({ "stored": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("latest").unwrap(), None);
        assert_eq!(parse_version("3").unwrap(), Some(3));
        {
            let e = parse_version("0").expect_err("an error").to_string();
            assert!(e.contains("Invalid version '0'"), "{e}");
        }
        {
            let e = parse_version("x").expect_err("an error").to_string();
            assert!(e.contains("Invalid version 'x'"), "{e}");
        }
    }
}
