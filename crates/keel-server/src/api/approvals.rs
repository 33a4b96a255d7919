//! Protected aliases and the requests to move them, under `/api/keel/v1`:
//!
//! - `GET|POST|DELETE /registered-models/protected-aliases`: list (`?name=`), protect
//!   (`{"name", "alias", "gates"}`, MANAGE) or lift (`{"name", "alias"}`, MANAGE);
//! - `GET|POST /alias-requests`: list (`?name=&state=`), or ask to point a protected alias at a
//!   version (`{"name", "alias", "version", "reason"}`, EDIT);
//! - `POST /alias-requests/approve|reject` (`{"name", "id", "comment"}`, MANAGE): another user
//!   than who asked decides; an approval checks the alias's gates on the version first and
//!   answers `INVALID_STATE` (400) with each gate's verdict when one fails.

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel_core::approval::{self, Gates, Protection, RequestState};
use keel_core::{Error, ErrorCode, now_millis};
use serde::Deserialize;

use super::json;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorMarker};
use crate::wire::{Msg, required};

/// The routes, relative to `/api/keel/v1`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/registered-models/protected-aliases",
            get(list_protections).post(protect).delete(unprotect),
        )
        .route("/alias-requests", get(list_requests).post(request))
        .route("/alias-requests/approve", post(approve))
        .route("/alias-requests/reject", post(reject))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Req {
    name: Option<String>,
    alias: Option<String>,
    gates: Option<Gates>,
    version: Option<String>,
    reason: Option<String>,
    state: Option<String>,
    id: Option<i64>,
    comment: Option<String>,
}

/// Who is calling: the signed-in user, or `anonymous` on a server without auth.
fn who(caller: &Option<Extension<Caller>>) -> String {
    caller
        .as_ref()
        .map_or_else(|| "anonymous".to_string(), |c| c.user.username.clone())
}

fn name(body: &Req) -> ApiResult<String> {
    Ok(required(
        body.name.clone().filter(|n| !n.is_empty()),
        "name",
    )?)
}

async fn list_protections(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = name(&body)?;
    let list = s.meta.protections(Some(&name)).await?;
    Ok(json(&serde_json::json!({ "protected_aliases": list })))
}

async fn protect(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let p = Protection {
        name: name(&body)?,
        alias: required(body.alias.clone(), "alias")?,
        gates: body.gates.clone().unwrap_or_default(),
        created_by: who(&caller),
        creation_time: now_millis(),
    };
    let p = s.meta.protect_alias(p).await?;
    Ok(json(&serde_json::json!({ "protected_alias": p })))
}

async fn unprotect(State(s): State<AppState>, Msg { body, .. }: Msg<Req>) -> ApiResult<Response> {
    let name = name(&body)?;
    let alias = required(body.alias, "alias")?;
    s.meta.unprotect_alias(&name, &alias).await?;
    Ok(super::empty())
}

async fn list_requests(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = name(&body)?;
    let state = body.state.as_deref().map(RequestState::parse).transpose()?;
    let list = s.meta.alias_requests(Some(&name), state).await?;
    Ok(json(&serde_json::json!({ "alias_requests": list })))
}

async fn request(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = name(&body)?;
    let alias = required(body.alias, "alias")?;
    let version = required(body.version, "version")?;
    let r = s
        .meta
        .request_alias(
            &name,
            &alias,
            &version,
            &who(&caller),
            body.reason.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(json(&serde_json::json!({ "alias_request": r })))
}

/// The request `body` names, checked to be of the model it names and decided by another user
/// than the one who asked.
async fn decidable(
    s: &AppState,
    caller: &Option<Extension<Caller>>,
    body: &Req,
) -> ApiResult<(approval::AliasRequest, String)> {
    let name = name(body)?;
    let id = required(body.id, "id")?;
    let Some(Extension(caller)) = caller.as_ref().filter(|_| s.auth.is_some()) else {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "Deciding an alias request takes users: start keel server with --auth",
        )
        .into());
    };
    let req = s.meta.alias_request(id).await?;
    if req.name != name {
        return Err(Error::invalid(format!(
            "Alias request {id} is for registered model '{}', not '{name}'",
            req.name
        ))
        .into());
    }
    if req.requested_by == caller.user.username {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            format!(
                "Alias request {id} was made by {}: another user who manages the model decides it",
                req.requested_by
            ),
        )
        .into());
    }
    Ok((req, caller.user.username.clone()))
}

async fn approve(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let (req, by) = decidable(&s, &caller, &body).await?;
    let gates = s
        .meta
        .protections(Some(&req.name))
        .await?
        .into_iter()
        .find(|p| p.alias == req.alias)
        .map(|p| p.gates)
        .unwrap_or_default();
    let version = s.meta.get_model_version(&req.name, &req.version).await?;
    let results = approval::evaluate(&*s.meta, &version, &gates).await?;
    let verdicts = serde_json::to_value(&results).unwrap_or_default();
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: {}", r.gate, r.detail))
        .collect();
    if !failed.is_empty() {
        let message = format!(
            "Version {} of '{}' does not pass the gates of alias '{}': {}",
            req.version,
            req.name,
            req.alias,
            failed.join("; ")
        );
        let mut resp = (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "error_code": ErrorCode::InvalidState.as_str(),
                "message": message,
                "gates": verdicts,
            })),
        )
            .into_response();
        resp.extensions_mut().insert(ErrorMarker);
        return Ok(resp);
    }
    let decided = s
        .meta
        .decide_alias_request(
            req.id,
            &by,
            true,
            Some(verdicts.clone()),
            body.comment.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(json(
        &serde_json::json!({ "alias_request": decided, "gates": verdicts }),
    ))
}

async fn reject(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let (req, by) = decidable(&s, &caller, &body).await?;
    let decided = s
        .meta
        .decide_alias_request(
            req.id,
            &by,
            false,
            None,
            body.comment.as_deref().unwrap_or(""),
        )
        .await?;
    Ok(json(&serde_json::json!({ "alias_request": decided })))
}
