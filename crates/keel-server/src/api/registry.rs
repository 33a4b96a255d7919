//! `registered-models/*` and `model-versions/*`.

use crate::auth::{Caller, reader_of};
use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use keel_core::entities::{ModelVersion, RegisteredModel, Tag, canonical_stage};
use keel_core::filter::registry as rf;
use keel_core::store::{CreateModelVersion, SearchRegistry};
use keel_core::{Error, page, validate, version_source};
use serde::{Deserialize, Serialize};

use super::{empty, json};
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::{Kv, Msg, bool_lenient, i64_lenient, kvs, max_results, required, string_lenient};

#[derive(Serialize)]
struct OneModel {
    registered_model: RegisteredModel,
}

#[derive(Serialize)]
struct OneVersion {
    model_version: ModelVersion,
}

/// Every registry request field; each endpoint reads the ones it needs.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Req {
    name: Option<String>,
    new_name: Option<String>,
    description: Option<String>,
    tags: Vec<Kv>,
    key: Option<String>,
    value: Option<String>,
    alias: Option<String>,
    #[serde(deserialize_with = "string_lenient")]
    version: Option<String>,
    stages: Vec<String>,
    stage: Option<String>,
    #[serde(deserialize_with = "bool_lenient")]
    archive_existing_versions: Option<bool>,
    source: Option<String>,
    run_id: Option<String>,
    run_link: Option<String>,
    model_id: Option<String>,
    filter: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    max_results: Option<i64>,
    order_by: Vec<String>,
    page_token: Option<String>,
}

impl Req {
    fn name(&mut self) -> Result<String, Error> {
        required(self.name.take(), "name")
    }
    fn version(&mut self) -> Result<String, Error> {
        required(self.version.take(), "version")
    }
    fn tag(&mut self) -> Result<Tag, Error> {
        Ok(Tag::new(
            required(self.key.take(), "key")?,
            self.value.take().unwrap_or_default(),
        ))
    }
}

async fn create_model(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let tags = kvs(std::mem::take(&mut body.tags), "tags")?;
    let m = s
        .meta
        .create_registered_model(&name, tags, body.description.as_deref().unwrap_or(""))
        .await?;
    Ok(json(&OneModel {
        registered_model: m,
    }))
}

async fn get_model(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    Ok(json(&OneModel {
        registered_model: s.meta.get_registered_model(&body.name()?).await?,
    }))
}

async fn rename_model(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let new_name = required(body.new_name, "new_name")?;
    Ok(json(&OneModel {
        registered_model: s.meta.rename_registered_model(&name, &new_name).await?,
    }))
}

async fn update_model(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    Ok(json(&OneModel {
        registered_model: s
            .meta
            .update_registered_model(&name, body.description.as_deref().unwrap_or(""))
            .await?,
    }))
}

async fn delete_model(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    s.meta.delete_registered_model(&body.name()?).await?;
    Ok(empty())
}

fn search_query(
    body: &Req,
    versions: bool,
    default_max: i64,
    limit: i64,
    reader: Option<keel_core::auth::Reader>,
) -> Result<SearchRegistry, Error> {
    Ok(SearchRegistry {
        reader,
        filter: rf::parse_filter(body.filter.as_deref().unwrap_or(""), versions)?,
        order_by: body
            .order_by
            .iter()
            .map(|o| rf::parse_order(o, versions))
            .collect::<Result<_, _>>()?,
        max_results: max_results(body.max_results, default_max, limit)?,
        offset: page::decode(body.page_token.as_deref())?,
    })
}

#[derive(Serialize)]
struct ModelsResp {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    registered_models: Vec<RegisteredModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

async fn search_models(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let reader = reader_of("registered_model", caller.as_ref(), s.auth.as_ref());
    let p = s
        .meta
        .search_registered_models(search_query(
            &body,
            false,
            100,
            validate::MAX_RESULTS_REGISTRY,
            reader,
        )?)
        .await?;
    Ok(json(&ModelsResp {
        registered_models: p.items,
        next_page_token: p.next_page_token,
    }))
}

#[derive(Serialize)]
struct VersionsResp {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    model_versions: Vec<ModelVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

async fn latest_versions(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let stages = body
        .stages
        .iter()
        .map(|st| canonical_stage(st).map(str::to_string).ok_or_else(|| Error::invalid(format!("Invalid Model Version stage: {st}. Value must be one of None, Staging, Production, Archived."))))
        .collect::<Result<Vec<_>, _>>()?;
    let versions = s.meta.latest_versions(&name, &stages).await?;
    Ok(json(&VersionsResp {
        model_versions: versions,
        next_page_token: None,
    }))
}

async fn set_model_tag(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    s.meta.set_registered_model_tag(&name, body.tag()?).await?;
    Ok(empty())
}

async fn delete_model_tag(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    s.meta
        .delete_registered_model_tag(&name, &required(body.key, "key")?)
        .await?;
    Ok(empty())
}

async fn set_alias(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let alias = required(body.alias.take(), "alias")?;
    s.meta.set_alias(&name, &alias, &body.version()?).await?;
    Ok(empty())
}

async fn delete_alias(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    s.meta
        .delete_alias(&name, &required(body.alias, "alias")?)
        .await?;
    Ok(empty())
}

async fn get_alias(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    Ok(json(&OneVersion {
        model_version: s
            .meta
            .get_version_by_alias(&name, &required(body.alias, "alias")?)
            .await?,
    }))
}

async fn create_version(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let source = required(body.source.take(), "source")?;
    let tags = kvs(std::mem::take(&mut body.tags), "tags")?;
    let lineage = version_source::resolve(
        s.meta.as_ref(),
        &source,
        body.run_id.as_deref(),
        body.model_id.as_deref(),
    )
    .await?;
    let v = s
        .meta
        .create_model_version(CreateModelVersion {
            name,
            source: lineage.source,
            run_id: lineage.run_id,
            run_link: body.run_link.unwrap_or_default(),
            description: body.description.unwrap_or_default(),
            model_id: lineage.model_id,
            tags,
        })
        .await?;
    if !v.model_id.is_empty() {
        version_source::list_version_on_model(s.meta.as_ref(), &v.model_id, &v.name, &v.version)
            .await?;
    }
    Ok(json(&OneVersion { model_version: v }))
}

async fn get_version(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    Ok(json(&OneVersion {
        model_version: s.meta.get_model_version(&name, &body.version()?).await?,
    }))
}

async fn update_version(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let v = body.version()?;
    Ok(json(&OneVersion {
        model_version: s
            .meta
            .update_model_version(&name, &v, body.description.as_deref().unwrap_or(""))
            .await?,
    }))
}

async fn transition(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let v = body.version()?;
    let stage = required(body.stage.take(), "stage")?;
    let mv = s
        .meta
        .transition_stage(
            &name,
            &v,
            &stage,
            body.archive_existing_versions.unwrap_or(false),
        )
        .await?;
    Ok(json(&OneVersion { model_version: mv }))
}

async fn delete_version(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    s.meta.delete_model_version(&name, &body.version()?).await?;
    Ok(empty())
}

async fn search_versions(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let reader = reader_of("registered_model", caller.as_ref(), s.auth.as_ref());
    let p = s
        .meta
        .search_model_versions(search_query(&body, true, 10_000, 200_000, reader)?)
        .await?;
    Ok(json(&VersionsResp {
        model_versions: p.items,
        next_page_token: p.next_page_token,
    }))
}

async fn download_uri(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let uri = s
        .meta
        .model_version_download_uri(&name, &body.version()?)
        .await?;
    Ok(json(&serde_json::json!({ "artifact_uri": uri })))
}

async fn set_version_tag(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let v = body.version()?;
    s.meta.set_model_version_tag(&name, &v, body.tag()?).await?;
    Ok(empty())
}

async fn delete_version_tag(
    State(s): State<AppState>,
    Msg { mut body, .. }: Msg<Req>,
) -> ApiResult<Response> {
    let name = body.name()?;
    let v = body.version()?;
    s.meta
        .delete_model_version_tag(&name, &v, &required(body.key, "key")?)
        .await?;
    Ok(empty())
}

pub(super) fn routes() -> Router<AppState> {
    use axum::routing::{delete, patch};
    Router::new()
        .route("/registered-models/create", post(create_model))
        .route("/registered-models/get", get(get_model))
        .route("/registered-models/rename", post(rename_model))
        .route("/registered-models/update", patch(update_model))
        .route("/registered-models/delete", delete(delete_model))
        .route("/registered-models/search", get(search_models))
        .route(
            "/registered-models/get-latest-versions",
            get(latest_versions).post(latest_versions),
        )
        .route("/registered-models/set-tag", post(set_model_tag))
        .route("/registered-models/delete-tag", delete(delete_model_tag))
        .route(
            "/registered-models/alias",
            post(set_alias).delete(delete_alias).get(get_alias),
        )
        .route("/model-versions/create", post(create_version))
        .route("/model-versions/get", get(get_version))
        .route("/model-versions/update", patch(update_version))
        .route("/model-versions/transition-stage", post(transition))
        .route("/model-versions/delete", delete(delete_version))
        .route("/model-versions/search", get(search_versions))
        .route("/model-versions/get-download-uri", get(download_uri))
        .route("/model-versions/set-tag", post(set_version_tag))
        .route("/model-versions/delete-tag", delete(delete_version_tag))
}
