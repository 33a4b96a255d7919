//! keel's registry additions under `/api/keel/v1`:
//!
//! - `GET /registered-models/alias-history?name=..`: every change of the model's aliases,
//!   oldest first (`{"changes": [{"alias", "version", "timestamp"}]}`; no `version` when the
//!   alias was removed, or went with its deleted version).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::json;
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::{Msg, required};

/// The routes, relative to `/api/keel/v1`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/registered-models/alias-history", get(history))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Req {
    name: Option<String>,
}

async fn history(State(s): State<AppState>, Msg { body, .. }: Msg<Req>) -> ApiResult<Response> {
    let name = required(body.name.filter(|n| !n.is_empty()), "name")?;
    let changes = s.meta.alias_history(&name).await?;
    Ok(json(&serde_json::json!({ "changes": changes })))
}
