//! `logged-models/*`: MLflow 3 logged models.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use keel_core::entities::{LoggedModel, LoggedModelStatus};
use keel_core::filter::{self, Order, logged_models as lf};
use keel_core::store::{CreateLoggedModel, DatasetFilter, SearchLoggedModels};
use keel_core::{Error, page};
use serde::{Deserialize, Serialize};

use super::{empty, json};
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::{Kv, Msg, bool_lenient, enum_text, i64_lenient, kvs, max_results, required};

#[derive(Serialize)]
struct One {
    model: LoggedModel,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Create {
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    params: Vec<Kv>,
    tags: Vec<Kv>,
}

async fn create(State(s): State<AppState>, Msg { body, .. }: Msg<Create>) -> ApiResult<Response> {
    let experiment_id = required(body.experiment_id, "experiment_id")?;
    let params = kvs(body.params, "params")?;
    let tags = kvs(body.tags, "tags")?;
    let model = s
        .meta
        .create_logged_model(CreateLoggedModel {
            experiment_id,
            name: body.name,
            model_type: body.model_type.unwrap_or_default(),
            source_run_id: body.source_run_id.unwrap_or_default(),
            params,
            tags,
        })
        .await?;
    Ok(json(&One { model }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GetQuery {
    #[serde(deserialize_with = "bool_lenient")]
    allow_deleted: Option<bool>,
}

async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Msg { body, .. }: Msg<GetQuery>,
) -> ApiResult<Response> {
    Ok(json(&One {
        model: s
            .meta
            .get_logged_model(&id, body.allow_deleted.unwrap_or(false))
            .await?,
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Finalize {
    #[serde(deserialize_with = "enum_text")]
    status: Option<String>,
}

async fn finalize(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Msg { body, .. }: Msg<Finalize>,
) -> ApiResult<Response> {
    let st = required(body.status, "status")?;
    let status = LoggedModelStatus::parse(&st)
        .ok_or_else(|| Error::invalid(format!("Invalid value '{st}' for parameter 'status'")))?;
    Ok(json(&One {
        model: s.meta.finalize_logged_model(&id, status).await?,
    }))
}

async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    s.meta.delete_logged_model(&id).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tags {
    tags: Vec<Kv>,
}

async fn set_tags(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Msg { body, .. }: Msg<Tags>,
) -> ApiResult<Response> {
    let tags = kvs(body.tags, "tags")?;
    s.meta.set_logged_model_tags(&id, tags).await?;
    Ok(empty())
}

async fn delete_tag(
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    s.meta.delete_logged_model_tag(&id, &key).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Params {
    params: Vec<Kv>,
}

async fn log_params(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Msg { body, .. }: Msg<Params>,
) -> ApiResult<Response> {
    let params = kvs(body.params, "params")?;
    s.meta.log_logged_model_params(&id, params).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct OrderIn {
    field_name: Option<String>,
    #[serde(deserialize_with = "bool_lenient")]
    ascending: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Search {
    experiment_ids: Vec<String>,
    filter: Option<String>,
    datasets: Vec<DatasetIn>,
    #[serde(deserialize_with = "i64_lenient")]
    max_results: Option<i64>,
    order_by: Vec<OrderIn>,
    page_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DatasetIn {
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

#[derive(Serialize)]
struct SearchResp {
    models: Vec<LoggedModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

async fn search(State(s): State<AppState>, Msg { body, .. }: Msg<Search>) -> ApiResult<Response> {
    if body.experiment_ids.is_empty() {
        return Err(
            Error::invalid("Missing value for required parameter 'experiment_ids'.").into(),
        );
    }
    let order_by = body
        .order_by
        .into_iter()
        .map(|o| {
            let field = required(o.field_name, "order_by.field_name")?;
            let t = filter::parse_order_by(&field)?;
            Ok(Order {
                key: lf::resolve(&t.entity, &t.key)?,
                ascending: o.ascending.unwrap_or(true),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let datasets = body
        .datasets
        .into_iter()
        .map(|d| match d.dataset_name.filter(|n| !n.is_empty()) {
            Some(name) => Ok(DatasetFilter {
                name,
                digest: d.dataset_digest.filter(|x| !x.is_empty()),
            }),
            None => Err(Error::invalid(
                "`dataset_name` in the `datasets` clause must be specified.",
            )),
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let q = SearchLoggedModels {
        experiment_ids: body.experiment_ids,
        filter: lf::parse_filter(body.filter.as_deref().unwrap_or(""))?,
        datasets,
        order_by,
        max_results: max_results(body.max_results, 100, 1000)?,
        offset: page::decode(body.page_token.as_deref())?,
    };
    let p = s.meta.search_logged_models(q).await?;
    Ok(json(&SearchResp {
        models: p.items,
        next_page_token: p.next_page_token,
    }))
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/logged-models", post(create))
        .route("/logged-models/search", post(search))
        .route(
            "/logged-models/{model_id}",
            get(get_one).patch(finalize).delete(remove),
        )
        .route("/logged-models/{model_id}/tags", patch(set_tags))
        .route(
            "/logged-models/{model_id}/tags/{tag_key}",
            delete(delete_tag),
        )
        .route("/logged-models/{model_id}/params", post(log_params))
        .route(
            "/logged-models/{model_id}/artifacts/directories",
            get(super::artifacts::list_logged_model),
        )
}
