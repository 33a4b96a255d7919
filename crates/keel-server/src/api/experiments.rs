//! `experiments/*`.

use crate::auth::{Caller, reader_of};
use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use keel_core::entities::{Experiment, ViewType};
use keel_core::filter::experiments as ef;
use keel_core::store::SearchExperiments;
use keel_core::{Error, page, validate};
use serde::{Deserialize, Serialize};

use super::{empty, json};
use crate::AppState;
use crate::error::ApiResult;
use crate::wire::{Kv, Msg, enum_text, i64_lenient, kvs, max_results, required};

#[derive(Deserialize, Default)]
#[serde(default)]
struct Create {
    name: Option<String>,
    artifact_location: Option<String>,
    tags: Vec<Kv>,
}

async fn create(State(s): State<AppState>, Msg { body, .. }: Msg<Create>) -> ApiResult<Response> {
    let name = required(body.name, "name")?;
    let tags = kvs(body.tags, "tags")?;
    let location = body
        .artifact_location
        .filter(|l| !l.is_empty())
        .map(absolute_location);
    let id = s
        .meta
        .create_experiment(&name, location.as_deref(), tags)
        .await?;
    Ok(json(&serde_json::json!({ "experiment_id": id })))
}

/// A relative local artifact location made absolute against the server's working folder,
/// as MLflow's `resolve_uri_if_local` does (a plain path stays a path, `file:` stays a URI);
/// URIs of other schemes and absolute paths are kept as given.
fn absolute_location(location: String) -> String {
    let (scheme, path) = match location.split_once(':') {
        Some((scheme, rest))
            if scheme.len() > 1
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (Some(scheme), rest)
        }
        _ => (None, location.as_str()),
    };
    let local = match scheme {
        None => path,
        Some(s) if s.eq_ignore_ascii_case("file") => match path.strip_prefix("//") {
            // file://host/path: only an empty host is local.
            Some(rest) if rest.starts_with('/') => rest,
            Some(_) => return location,
            None => path,
        },
        Some(_) => return location,
    };
    if local.starts_with('/') {
        return location;
    }
    let Ok(cwd) = std::env::current_dir() else {
        return location;
    };
    let absolute = cwd.join(local).display().to_string();
    match scheme {
        None => absolute,
        Some(_) => format!("file://{absolute}"),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchDatasets {
    experiment_ids: Vec<String>,
}

/// `experiments/search-datasets`: the datasets the experiments' runs logged as inputs.
async fn search_datasets(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<SearchDatasets>,
) -> ApiResult<Response> {
    const MAX_EXPERIMENTS: usize = 20;
    if body.experiment_ids.is_empty() {
        return Err(Error::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        )
        .into());
    }
    if body.experiment_ids.len() > MAX_EXPERIMENTS {
        return Err(Error::invalid(format!(
            "SearchDatasets request cannot specify more than {MAX_EXPERIMENTS} experiment_ids. Received {} experiment_ids.",
            body.experiment_ids.len()
        ))
        .into());
    }
    let ids = body
        .experiment_ids
        .iter()
        .map(|e| validate::experiment_id(e))
        .collect::<Result<Vec<_>, _>>()?;
    let summaries = s.meta.search_datasets(&ids).await?;
    Ok(json(&serde_json::json!({ "dataset_summaries": summaries })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ById {
    experiment_id: Option<String>,
}

#[derive(Serialize)]
struct One {
    experiment: Experiment,
}

async fn get_one(State(s): State<AppState>, Msg { body, .. }: Msg<ById>) -> ApiResult<Response> {
    let id = required(body.experiment_id, "experiment_id")?;
    Ok(json(&One {
        experiment: s.meta.get_experiment(&id).await?,
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ByName {
    experiment_name: Option<String>,
}

async fn get_by_name(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<ByName>,
) -> ApiResult<Response> {
    let name = required(body.experiment_name, "experiment_name")?;
    match s.meta.get_experiment_by_name(&name).await? {
        Some(experiment) => Ok(json(&One { experiment })),
        None => {
            Err(Error::not_found(format!("Could not find experiment with name '{name}'")).into())
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Search {
    #[serde(deserialize_with = "i64_lenient")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    order_by: Vec<String>,
    #[serde(deserialize_with = "enum_text")]
    view_type: Option<String>,
}

#[derive(Serialize)]
struct SearchResp {
    experiments: Vec<Experiment>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

pub(super) fn view(v: Option<&str>) -> Result<ViewType, Error> {
    match v {
        None | Some("") => Ok(ViewType::ActiveOnly),
        Some(v) => ViewType::parse(v).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid view type '{v}': expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ))
        }),
    }
}

async fn search(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<Search>,
) -> ApiResult<Response> {
    let q = SearchExperiments {
        reader: reader_of("experiment", caller.as_ref(), s.auth.as_ref()),
        view: view(body.view_type.as_deref())?,
        filter: ef::parse_filter(body.filter.as_deref().unwrap_or(""))?,
        order_by: body
            .order_by
            .iter()
            .map(|o| ef::parse_order(o))
            .collect::<Result<_, _>>()?,
        max_results: max_results(body.max_results, 1000, validate::MAX_RESULTS_EXPERIMENTS)?,
        offset: page::decode(body.page_token.as_deref())?,
    };
    let p = s.meta.search_experiments(q).await?;
    Ok(json(&SearchResp {
        experiments: p.items,
        next_page_token: p.next_page_token,
    }))
}

async fn delete(State(s): State<AppState>, Msg { body, .. }: Msg<ById>) -> ApiResult<Response> {
    s.meta
        .delete_experiment(&required(body.experiment_id, "experiment_id")?)
        .await?;
    Ok(empty())
}

async fn restore(State(s): State<AppState>, Msg { body, .. }: Msg<ById>) -> ApiResult<Response> {
    s.meta
        .restore_experiment(&required(body.experiment_id, "experiment_id")?)
        .await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Update {
    experiment_id: Option<String>,
    new_name: Option<String>,
}

async fn update(State(s): State<AppState>, Msg { body, .. }: Msg<Update>) -> ApiResult<Response> {
    let id = required(body.experiment_id, "experiment_id")?;
    let name = required(body.new_name, "new_name")?;
    s.meta.rename_experiment(&id, &name).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TagReq {
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

async fn set_tag(State(s): State<AppState>, Msg { body, .. }: Msg<TagReq>) -> ApiResult<Response> {
    let id = required(body.experiment_id, "experiment_id")?;
    let tag =
        keel_core::entities::Tag::new(required(body.key, "key")?, body.value.unwrap_or_default());
    s.meta.set_experiment_tag(&id, tag).await?;
    Ok(empty())
}

async fn delete_tag(
    State(s): State<AppState>,
    Msg { body, .. }: Msg<TagReq>,
) -> ApiResult<Response> {
    let id = required(body.experiment_id, "experiment_id")?;
    s.meta
        .delete_experiment_tag(&id, &required(body.key, "key")?)
        .await?;
    Ok(empty())
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments/create", post(create))
        .route("/experiments/search-datasets", post(search_datasets))
        .route("/experiments/get", get(get_one))
        .route("/experiments/get-by-name", get(get_by_name))
        .route("/experiments/search", get(search).post(search))
        .route("/experiments/delete", post(delete))
        .route("/experiments/restore", post(restore))
        .route("/experiments/update", post(update))
        .route("/experiments/set-experiment-tag", post(set_tag))
        .route("/experiments/delete-experiment-tag", post(delete_tag))
}

#[cfg(test)]
mod tests {
    use super::absolute_location;

    #[test]
    fn relative_local_locations_become_absolute() {
        let cwd = std::env::current_dir().unwrap().display().to_string();
        assert_eq!(absolute_location("runs/x".into()), format!("{cwd}/runs/x"));
        assert_eq!(
            absolute_location("file:runs/x".into()),
            format!("file://{cwd}/runs/x")
        );
        for kept in ["/abs/x", "file:///abs/x", "s3://b/p", "mlflow-artifacts:/1"] {
            assert_eq!(absolute_location(kept.into()), kept);
        }
    }
}
