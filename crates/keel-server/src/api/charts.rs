//! keel's chart API under `/api/keel/v1`: metric histories reduced for drawing.
//!
//! - `GET /metrics/buckets?run_id=..&run_id=..&key=..[&buckets=500][&min_step=..&max_step=..]`:
//!   per run, the metric over the step range in at most `buckets` buckets, each with its first,
//!   last, minimum and maximum value (see [`keel_core::buckets`]). A chart asks for the whole
//!   history first, then for the zoomed range again, which comes back at full detail once it
//!   is narrow enough.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use futures::future::try_join_all;
use keel_core::Error;
use keel_core::buckets::Series;
use serde::{Deserialize, Serialize};

use super::json;
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::{Msg, i64_lenient, required};

/// The routes, relative to `/api/keel/v1`.
pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/metrics/buckets", get(buckets))
}

/// At most this many runs per request, as MLflow's bulk history endpoints.
const MAX_RUNS: usize = 100;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Req {
    run_id: Vec<String>,
    key: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    buckets: Option<i64>,
    #[serde(deserialize_with = "i64_lenient")]
    min_step: Option<i64>,
    #[serde(deserialize_with = "i64_lenient")]
    max_step: Option<i64>,
}

#[derive(Serialize)]
struct Resp {
    series: Vec<Series>,
}

async fn buckets(State(s): State<AppState>, Msg { body, .. }: Msg<Req>) -> ApiResult<Response> {
    let key = required(body.key.filter(|k| !k.is_empty()), "key")?;
    if body.run_id.is_empty() || body.run_id.len() > MAX_RUNS {
        return Err(Error::invalid(format!(
            "run_id must be given between 1 and {MAX_RUNS} times, got {}",
            body.run_id.len()
        ))
        .into());
    }
    if let (Some(lo), Some(hi)) = (body.min_step, body.max_step)
        && lo > hi
    {
        return Err(Error::invalid(format!(
            "min_step ({lo}) must not be greater than max_step ({hi})"
        ))
        .into());
    }
    let n = usize::try_from(body.buckets.unwrap_or(500)).unwrap_or(0);
    let range = (body.min_step, body.max_step);
    let series = try_join_all(
        body.run_id
            .iter()
            .map(|id| s.meta.metric_buckets(id, &key, range, n)),
    )
    .await?;
    Ok(json(&Resp { series }))
}
