//! Model cards under `/api/keel/v1`:
//!
//! - `GET /model-versions/card?name=..&version=..&format=json|markdown|html`: the version's
//!   card, made from its lineage, its card tags and its fairness evaluations (JSON by default;
//!   Markdown as `text/markdown`; HTML as a standalone page that runs no script).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keel_core::Error;
use serde::Deserialize;

use super::json;
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::{Msg, required};

/// The routes, relative to `/api/keel/v1`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/model-versions/card", get(card))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Req {
    name: Option<String>,
    version: Option<String>,
    format: Option<String>,
}

async fn card(State(s): State<AppState>, Msg { body, .. }: Msg<Req>) -> ApiResult<Response> {
    let name = required(body.name.filter(|n| !n.is_empty()), "name")?;
    let version = required(body.version.filter(|v| !v.is_empty()), "version")?;
    let format = body.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "markdown" | "md" | "html") {
        return Err(
            Error::invalid(format!("format '{format}': use json, markdown or html")).into(),
        );
    }
    let card = keel_core::card::assemble(s.meta.as_ref(), &name, &version).await?;
    Ok(match format {
        "markdown" | "md" => (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            card.markdown(),
        )
            .into_response(),
        "html" => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // The page is text and inline styles only: nothing in it may run or load.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
            ],
            card.html(),
        )
            .into_response(),
        _ => json(&serde_json::json!({ "card": card })),
    })
}
