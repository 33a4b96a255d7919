//! `runs/*` and `metrics/*`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use keel_core::entities::*;
use keel_core::filter::runs as rf;
use keel_core::store::{CreateRun, Page, SearchRuns};
use keel_core::{Error, now_millis, page, validate};
use serde::{Deserialize, Serialize};

use super::experiments::view;
use super::{empty, json};
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::{Kv, Msg, enum_text, f64_lenient, i64_lenient, kvs, max_results, required};

/// Largest log-batch body MLflow accepts.
const MAX_BATCH_REQUEST_BYTES: usize = 1_000_000;

/// `run_id`, or the legacy `run_uuid`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

impl RunRef {
    fn get(self) -> Result<String, Error> {
        required(
            self.run_id.filter(|s| !s.is_empty()).or(self.run_uuid),
            "run_id",
        )
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Create {
    experiment_id: Option<String>,
    user_id: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    start_time: Option<i64>,
    tags: Vec<Kv>,
    run_name: Option<String>,
}

#[derive(Serialize)]
struct OneRun {
    run: Run,
}

async fn create(State(s): State<AppState>, Msg { body, .. }: Msg<Create>) -> ApiResult<Response> {
    let experiment_id = required(body.experiment_id, "experiment_id")?;
    let tags = kvs(body.tags, "tags")?;
    let run = s
        .meta
        .create_run(CreateRun {
            experiment_id,
            user_id: body.user_id.unwrap_or_default(),
            start_time: body.start_time.unwrap_or_else(now_millis),
            run_name: body.run_name,
            tags,
        })
        .await?;
    Ok(json(&OneRun { run }))
}

async fn get_run(State(s): State<AppState>, Msg { body, .. }: Msg<RunRef>) -> ApiResult<Response> {
    let id = body.get()?;
    Ok(json(&OneRun {
        run: s.meta.get_run(&id).await?,
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Update {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(deserialize_with = "enum_text")]
    status: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

async fn update(State(s): State<AppState>, Msg { body, .. }: Msg<Update>) -> ApiResult<Response> {
    let id = RunRef {
        run_id: body.run_id,
        run_uuid: body.run_uuid,
    }
    .get()?;
    let status = match body.status.as_deref() {
        None | Some("") => None,
        Some(st) => Some(RunStatus::parse(st).ok_or_else(|| Error::invalid(format!("Invalid value '{st}' for parameter 'status': expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED")))?),
    };
    let info = s
        .meta
        .update_run(&id, status, body.end_time, body.run_name)
        .await?;
    Ok(json(&serde_json::json!({ "run_info": info })))
}

async fn delete(State(s): State<AppState>, Msg { body, .. }: Msg<RunRef>) -> ApiResult<Response> {
    s.meta.delete_run(&body.get()?).await?;
    Ok(empty())
}

async fn restore(State(s): State<AppState>, Msg { body, .. }: Msg<RunRef>) -> ApiResult<Response> {
    s.meta.restore_run(&body.get()?).await?;
    Ok(empty())
}

/// A metric as requests carry it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MetricIn {
    key: Option<String>,
    #[serde(deserialize_with = "f64_lenient")]
    value: Option<f64>,
    #[serde(deserialize_with = "i64_lenient")]
    timestamp: Option<i64>,
    #[serde(deserialize_with = "i64_lenient")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
    run_id: Option<String>,
}

impl MetricIn {
    fn into_metric(self, path: &str) -> Result<Metric, Error> {
        let missing = |f: &str| {
            let at = if path.is_empty() {
                f.to_string()
            } else {
                format!("{path}.{f}")
            };
            Error::invalid(format!(
                "Missing value for required parameter '{at}'. See the API docs for more information about request parameters."
            ))
        };
        let key = self
            .key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| missing("key"))?;
        let value = self.value.ok_or_else(|| missing("value"))?;
        let timestamp = self.timestamp.ok_or_else(|| missing("timestamp"))?;
        let mut m = Metric::new(key, value, timestamp, self.step.unwrap_or(0));
        m.model_id = self.model_id.filter(|s| !s.is_empty());
        m.dataset_name = self.dataset_name.filter(|s| !s.is_empty());
        m.dataset_digest = self.dataset_digest.filter(|s| !s.is_empty());
        Ok(m)
    }
}

async fn log_metric(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<MetricIn>,
) -> ApiResult<Response> {
    let id = RunRef {
        run_id: body.run_id.clone(),
        run_uuid: None,
    }
    .get()?;
    let m = body.into_metric("")?;
    s.meta.log_metric(&id, m).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KvReq {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

impl KvReq {
    fn split(self) -> Result<(String, Tag), Error> {
        let id = RunRef {
            run_id: self.run_id,
            run_uuid: self.run_uuid,
        }
        .get()?;
        Ok((
            id,
            Tag::new(required(self.key, "key")?, self.value.unwrap_or_default()),
        ))
    }
}

async fn log_param(State(s): State<AppState>, Msg { body, .. }: Msg<KvReq>) -> ApiResult<Response> {
    let (id, p) = body.split()?;
    s.meta.log_param(&id, p).await?;
    Ok(empty())
}

async fn set_tag(State(s): State<AppState>, Msg { body, .. }: Msg<KvReq>) -> ApiResult<Response> {
    let (id, t) = body.split()?;
    s.meta.set_tag(&id, t).await?;
    Ok(empty())
}

async fn delete_tag(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<KvReq>,
) -> ApiResult<Response> {
    let (id, t) = body.split()?;
    s.meta.delete_tag(&id, &t.key).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Batch {
    run_id: Option<String>,
    metrics: Vec<MetricIn>,
    params: Vec<Kv>,
    tags: Vec<Kv>,
}

async fn log_batch(
    State(s): State<AppState>,
    Msg { body, size }: Msg<Batch>,
) -> ApiResult<Response> {
    if size > MAX_BATCH_REQUEST_BYTES {
        return Err(Error::invalid(format!("Batched logging API requests must be at most {MAX_BATCH_REQUEST_BYTES} bytes, got a request of size {size}.")).into());
    }
    let id = RunRef {
        run_id: body.run_id,
        run_uuid: None,
    }
    .get()?;
    let metrics = body
        .metrics
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_metric(&format!("metrics[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let params = kvs(body.params, "params")?;
    let tags = kvs(body.tags, "tags")?;
    s.meta.log_batch(&id, metrics, params, tags).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Inputs {
    run_id: Option<String>,
    datasets: Vec<DatasetInput>,
    models: Vec<ModelInput>,
}

async fn log_inputs(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<Inputs>,
) -> ApiResult<Response> {
    let id = RunRef {
        run_id: body.run_id,
        run_uuid: None,
    }
    .get()?;
    s.meta.log_inputs(&id, body.datasets, body.models).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OutputIn {
    model_id: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    step: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Outputs {
    run_id: Option<String>,
    models: Option<Vec<OutputIn>>,
}

async fn log_outputs(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<Outputs>,
) -> ApiResult<Response> {
    let id = RunRef {
        run_id: body.run_id,
        run_uuid: None,
    }
    .get()?;
    let models = required(body.models, "models")?
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            Ok(ModelOutput {
                model_id: required(m.model_id, &format!("models[{i}].model_id"))?,
                step: m.step.unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    s.meta.log_outputs(&id, models).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LogModel {
    run_id: Option<String>,
    model_json: Option<String>,
}

/// Legacy `runs/log-model`: appends the model's JSON to the run tag `mlflow.log-model.history`.
async fn log_model(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<LogModel>,
) -> ApiResult<Response> {
    let id = RunRef {
        run_id: body.run_id,
        run_uuid: None,
    }
    .get()?;
    let model_json = required(body.model_json, "model_json")?;
    let model: serde_json::Value = serde_json::from_str(&model_json)
        .map_err(|e| Error::invalid(format!("Invalid value for parameter 'model_json': {e}")))?;
    let run = s.meta.get_run(&id).await?;
    const KEY: &str = "mlflow.log-model.history";
    let mut history: Vec<serde_json::Value> = run
        .data
        .tags
        .iter()
        .find(|t| t.key == KEY)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    history.push(model);
    let tag = Tag::new(KEY, serde_json::Value::Array(history).to_string());
    s.meta
        .log_batch(&id, Vec::new(), Vec::new(), vec![tag])
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Search {
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(deserialize_with = "enum_text")]
    run_view_type: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    max_results: Option<i64>,
    order_by: Vec<String>,
    page_token: Option<String>,
}

#[derive(Serialize)]
struct SearchResp {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    runs: Vec<Run>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

async fn search(State(s): State<AppState>, Msg { body, .. }: Msg<Search>) -> ApiResult<Response> {
    let q = SearchRuns {
        experiment_ids: body.experiment_ids,
        filter: rf::parse_filter(body.filter.as_deref().unwrap_or(""))?,
        view: view(body.run_view_type.as_deref())?,
        max_results: max_results(body.max_results, 1000, validate::MAX_RESULTS_RUNS)?,
        order_by: body
            .order_by
            .iter()
            .map(|o| rf::parse_order(o))
            .collect::<Result<_, _>>()?,
        offset: page::decode(body.page_token.as_deref())?,
    };
    let p = s.meta.search_runs(q).await?;
    Ok(json(&SearchResp {
        runs: p.items,
        next_page_token: p.next_page_token,
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct History {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    page_token: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    max_results: Option<i64>,
}

#[derive(Serialize)]
struct MetricsResp {
    metrics: Vec<Metric>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// All values by default; pages when `max_results` is given.
async fn history(State(s): State<AppState>, Msg { body, .. }: Msg<History>) -> ApiResult<Response> {
    let id = RunRef {
        run_id: body.run_id,
        run_uuid: body.run_uuid,
    }
    .get()?;
    let key = required(body.metric_key, "metric_key")?;
    let limit = match body.max_results {
        None => usize::MAX / 2,
        Some(n) => max_results(Some(n), n, i64::MAX)?,
    };
    // An unknown run has no history: MLflow answers an empty one, and so does keel.
    let p = match s
        .meta
        .metric_history(&id, &key, page::decode(body.page_token.as_deref())?, limit)
        .await
    {
        Err(e) if e.code == keel_core::ErrorCode::ResourceDoesNotExist => Page::empty(),
        other => other?,
    };
    Ok(json(&MetricsResp {
        metrics: p.items,
        next_page_token: p.next_page_token,
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Bulk {
    run_id: Vec<String>,
    run_ids: Vec<String>,
    metric_key: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    max_results: Option<i64>,
    #[serde(deserialize_with = "i64_lenient")]
    start_step: Option<i64>,
    #[serde(deserialize_with = "i64_lenient")]
    end_step: Option<i64>,
}

const MAX_BULK_RUNS: usize = 100;

fn bulk_runs(b: &mut Bulk) -> Result<Vec<String>, Error> {
    let mut ids = std::mem::take(&mut b.run_id);
    ids.append(&mut b.run_ids);
    if ids.is_empty() {
        return Err(Error::invalid(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if ids.len() > MAX_BULK_RUNS {
        return Err(Error::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} run_ids. Received {} run_ids.",
            ids.len()
        )));
    }
    Ok(ids)
}

/// `metrics/get-history-bulk`: one metric's history over several runs.
async fn history_bulk(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Bulk>,
) -> ApiResult<Response> {
    let ids = bulk_runs(&mut body)?;
    let key = body
        .metric_key
        .take()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::invalid("GetMetricHistoryBulk request must specify a metric_key."))?;
    // As MLflow: at most 25,000 values a run, a larger max_results taken as that.
    let limit = max_results(
        Some(body.max_results.unwrap_or(25_000).min(25_000)),
        25_000,
        25_000,
    )?;
    let mut metrics = s.meta.metric_history_bulk(&ids, &key, limit).await?;
    // MLflow's order: by run id, then each run's values by time, step and value.
    metrics.sort_by(|a, b| {
        a.run_id
            .cmp(&b.run_id)
            .then(a.timestamp.cmp(&b.timestamp))
            .then(a.step.cmp(&b.step))
            .then(a.value.total_cmp(&b.value))
    });
    Ok(json(&MetricsResp {
        metrics,
        next_page_token: None,
    }))
}

/// `metrics/get-history-bulk-interval`: histories over a step range, sampled down to at most
/// `max_results` evenly spaced steps per run (the first and last step always kept).
async fn history_bulk_interval(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Bulk>,
) -> ApiResult<Response> {
    let ids = bulk_runs(&mut body)?;
    let key = required(body.metric_key.take(), "metric_key")?;
    // MLflow's limits: up to 2,500 steps a run (its default), both ends of a range or none.
    let limit = max_results(body.max_results, 2500, 2500)
        .map_err(|_| Error::invalid("max_results must be between 1 and 2500."))?;
    let (lo, hi) = match (body.start_step, body.end_step) {
        (Some(lo), Some(hi)) if lo > hi => {
            return Err(Error::invalid(format!(
                "end_step must be greater than start_step. Found start_step={lo} and end_step={hi}."
            ))
            .into());
        }
        (Some(lo), Some(hi)) => (lo, hi),
        (None, None) => (i64::MIN, i64::MAX),
        _ => {
            return Err(Error::invalid(
                "If either start step or end step are specified, both must be specified.",
            )
            .into());
        }
    };
    let all = s
        .meta
        .metric_history_bulk(&ids, &key, usize::MAX / 2)
        .await?;
    let mut by_run: BTreeMap<String, Vec<Metric>> = BTreeMap::new();
    for m in all.into_iter().filter(|m| m.step >= lo && m.step <= hi) {
        by_run
            .entry(m.run_id.clone().unwrap_or_default())
            .or_default()
            .push(m);
    }
    let mut metrics = Vec::new();
    for (_, ms) in by_run {
        let mut steps: Vec<i64> = ms.iter().map(|m| m.step).collect();
        steps.dedup();
        let keep: std::collections::BTreeSet<i64> = if steps.len() <= limit {
            steps.into_iter().collect()
        } else {
            let n = steps.len() - 1;
            (0..limit)
                .map(|i| steps[i * n / (limit - 1).max(1)])
                .collect()
        };
        metrics.extend(ms.into_iter().filter(|m| keep.contains(&m.step)));
    }
    Ok(json(&MetricsResp {
        metrics,
        next_page_token: None,
    }))
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs/create", post(create))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update))
        .route("/runs/delete", post(delete))
        .route("/runs/restore", post(restore))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-inputs", post(log_inputs))
        .route("/runs/outputs", post(log_outputs))
        .route("/runs/log-model", post(log_model))
        .route("/runs/search", post(search).get(search))
        .route("/metrics/get-history", get(history))
        .route("/metrics/get-history-bulk", get(history_bulk))
        .route(
            "/metrics/get-history-bulk-interval",
            get(history_bulk_interval),
        )
}
