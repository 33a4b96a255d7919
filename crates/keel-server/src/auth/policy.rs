//! What each route needs of its caller: one table for the whole server, read by the guard
//! before any handler runs. A route the table does not name is for admins only, so a route
//! added without a rule is closed rather than open.

use axum::http::Method;
use keel_core::auth::{Permission, Subject};

/// Where a request names the things a rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A field of the request message (the query string of a GET, the JSON body otherwise).
    Msg(&'static str),
    /// `run_id`, or the legacy `run_uuid` when `run_id` is empty (as the handlers read them).
    RunId,
    /// A field of the query string, whatever the method.
    Query(&'static str),
    /// The path segment after `logged-models/`.
    LoggedModelInPath,
}

/// What names the subject of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Of {
    Experiment(Field),
    ExperimentName(Field),
    /// Every experiment id in a list field.
    Experiments(Field),
    Run(Field),
    /// Every run id in a list field.
    Runs(Field),
    LoggedModel(Field),
    RegisteredModel(Field),
    /// The experiment an artifact path starts with (`<experiment id>/...`); the artifact root
    /// itself and paths outside any experiment are for admins.
    ArtifactPath(Field),
    /// The resource of MLflow's per-user grant API (`resource_type`, `resource_id`).
    GrantTarget,
}

impl Of {
    /// Builds the subject from one value of the field.
    pub fn subject(self, value: String) -> Subject {
        match self {
            Of::Experiment(_) | Of::Experiments(_) | Of::ArtifactPath(_) => {
                Subject::Experiment(value)
            }
            Of::ExperimentName(_) => Subject::ExperimentName(value),
            Of::Run(_) | Of::Runs(_) => Subject::Run(value),
            Of::LoggedModel(_) => Subject::LoggedModel(value),
            Of::RegisteredModel(_) | Of::GrantTarget => Subject::RegisteredModel(value),
        }
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Nobody needs to sign in (health, version, metrics, the UI's static files).
    Public,
    /// Any signed-in caller: what it answers is filtered to what the caller may read.
    SignedIn,
    /// A signed-in caller whose token is not read-only (datasets, which have no grants).
    Writer,
    /// Creates an experiment (`"experiment"`) or registered model (`"registered_model"`), which
    /// its creator then manages.
    Creates(&'static str),
    /// Admins only.
    Admin,
    /// The caller names themself in the field, or is an admin.
    SelfOrAdmin(&'static str),
    /// At least this permission on the subject(s).
    Needs(Of, Permission),
    /// At least this permission on the subject, or the caller names themself in `username`.
    NeedsOrSelf(Of, Permission),
}

use Field::{LoggedModelInPath, Msg, Query, RunId};
use Permission::{Edit, Manage, Read};
use Rule::*;

const EXP: Of = Of::Experiment(Msg("experiment_id"));
const RUN: Of = Of::Run(RunId);
const MODEL: Of = Of::RegisteredModel(Msg("name"));
const LOGGED: Of = Of::LoggedModel(LoggedModelInPath);

/// The MLflow REST routes (below `/api/2.0/mlflow` and `/ajax-api/2.0/mlflow`; the auth API
/// also below `/api/3.0/mlflow`), as axum matched them.
fn mlflow(method: &Method, route: &str) -> Rule {
    let get = *method == Method::GET;
    match route {
        "/experiments/create" => Creates("experiment"),
        "/experiments/search-datasets" => Needs(Of::Experiments(Msg("experiment_ids")), Read),
        "/experiments/get" => Needs(EXP, Read),
        "/experiments/get-by-name" => Needs(Of::ExperimentName(Msg("experiment_name")), Read),
        "/experiments/search" | "/registered-models/search" | "/model-versions/search" => SignedIn,
        "/experiments/delete" | "/experiments/restore" => Needs(EXP, Manage),
        "/experiments/update"
        | "/experiments/set-experiment-tag"
        | "/experiments/delete-experiment-tag"
        | "/runs/create" => Needs(EXP, Edit),
        "/runs/get" | "/metrics/get-history" | "/artifacts/list" => Needs(RUN, Read),
        "/runs/update"
        | "/runs/log-metric"
        | "/runs/log-parameter"
        | "/runs/set-tag"
        | "/runs/delete-tag"
        | "/runs/log-batch"
        | "/runs/log-inputs"
        | "/runs/outputs"
        | "/runs/log-model" => Needs(RUN, Edit),
        "/runs/delete" | "/runs/restore" => Needs(RUN, Manage),
        "/runs/search" | "/logged-models/search" => {
            Needs(Of::Experiments(Msg("experiment_ids")), Read)
        }
        "/metrics/get-history-bulk" => Needs(Of::Runs(Msg("run_id")), Read),
        "/metrics/get-history-bulk-interval" => Needs(Of::Runs(Msg("run_ids")), Read),
        "/upload-artifact" => Needs(Of::Run(Query("run_uuid")), Edit),
        "/logged-models" => Needs(EXP, Edit),
        "/logged-models/{model_id}" if get => Needs(LOGGED, Read),
        "/logged-models/{model_id}" if *method == Method::DELETE => Needs(LOGGED, Manage),
        "/logged-models/{model_id}"
        | "/logged-models/{model_id}/tags"
        | "/logged-models/{model_id}/params" => Needs(LOGGED, Edit),
        "/logged-models/{model_id}/tags/{tag_key}" => Needs(LOGGED, Manage),
        "/logged-models/{model_id}/artifacts/directories"
        | "/logged-models/{model_id}/artifacts/files" => Needs(LOGGED, Read),
        "/registered-models/create" => Creates("registered_model"),
        "/registered-models/get"
        | "/registered-models/get-latest-versions"
        | "/model-versions/get"
        | "/model-versions/get-download-uri" => Needs(MODEL, Read),
        "/registered-models/alias" if get => Needs(MODEL, Read),
        "/registered-models/alias" if *method == Method::DELETE => Needs(MODEL, Manage),
        "/registered-models/rename"
        | "/registered-models/update"
        | "/registered-models/set-tag"
        | "/registered-models/delete-tag"
        | "/registered-models/alias"
        | "/model-versions/create"
        | "/model-versions/update"
        | "/model-versions/transition-stage"
        | "/model-versions/set-tag" => Needs(MODEL, Edit),
        "/registered-models/delete" | "/model-versions/delete" | "/model-versions/delete-tag" => {
            Needs(MODEL, Manage)
        }
        // The auth API.
        "/users/create" | "/users/update-admin" | "/users/delete" | "/users/list" => Admin,
        "/users/get" | "/users/update-password" => SelfOrAdmin("username"),
        "/users/current" | "/users/current/permissions" => SignedIn,
        "/users/permissions/list" => SelfOrAdmin("username"),
        "/experiments/permissions/create"
        | "/experiments/permissions/get"
        | "/experiments/permissions/update"
        | "/experiments/permissions/delete" => Needs(EXP, Manage),
        "/registered-models/permissions/create"
        | "/registered-models/permissions/get"
        | "/registered-models/permissions/update"
        | "/registered-models/permissions/delete" => Needs(MODEL, Manage),
        "/users/permissions/grant" | "/users/permissions/revoke" => Needs(Of::GrantTarget, Manage),
        "/users/permissions/get" => NeedsOrSelf(Of::GrantTarget, Manage),
        "/users/roles/list" => SelfOrAdmin("username"),
        "/roles/create"
        | "/roles/get"
        | "/roles/list"
        | "/roles/update"
        | "/roles/delete"
        | "/roles/permissions/add"
        | "/roles/permissions/remove"
        | "/roles/permissions/list"
        | "/roles/permissions/update"
        | "/roles/assign"
        | "/roles/unassign"
        | "/roles/users/list" => Admin,
        _ => Admin,
    }
}

/// keel's own API (below `/api/keel/v1`).
fn keel(method: &Method, route: &str) -> Rule {
    let get = *method == Method::GET;
    match route {
        "/metrics/buckets" => Needs(Of::Runs(Msg("run_id")), Read),
        "/registered-models/alias-history" | "/model-versions/card" => Needs(MODEL, Read),
        "/registered-models/protected-aliases" | "/alias-requests" if get => Needs(MODEL, Read),
        "/registered-models/protected-aliases"
        | "/alias-requests/approve"
        | "/alias-requests/reject" => Needs(MODEL, Manage),
        "/alias-requests" => Needs(MODEL, Edit),
        "/datasets"
        | "/datasets/by-hash/{hash}"
        | "/datasets/{name}/versions"
        | "/datasets/{name}/versions/{version}"
        | "/datasets/{name}/versions/{version}/validations"
        | "/data-objects/{hash}"
            if get =>
        {
            SignedIn
        }
        "/datasets/{name}/versions"
        | "/datasets/{name}/versions/{version}/validations"
        | "/data-objects/missing"
        | "/data-objects/{hash}" => Writer,
        "/tokens" | "/tokens/{id}" => SignedIn,
        // Signing in is what an unsigned caller does; seeing or ending a session needs one.
        "/session" if *method == Method::POST => Public,
        "/session" => SignedIn,
        _ => Admin,
    }
}

/// The proxied artifact routes (below `/api/2.0/mlflow-artifacts`).
fn artifacts(method: &Method, route: &str) -> Rule {
    match route {
        "/artifacts" => Needs(Of::ArtifactPath(Msg("path")), Read),
        "/artifacts/{*path}" => {
            let need = match *method {
                Method::GET | Method::HEAD => Read,
                Method::DELETE => Manage,
                _ => Edit,
            };
            Needs(Of::ArtifactPath(Field::Msg("")), need)
        }
        _ => Admin,
    }
}

/// The rule for a request, from its method and the route axum matched (`MatchedPath`).
pub fn rule(method: &Method, route: &str) -> Rule {
    for prefix in [
        "/api/2.0/mlflow-artifacts",
        "/ajax-api/2.0/mlflow-artifacts",
    ] {
        if let Some(rest) = route.strip_prefix(prefix) {
            return artifacts(method, rest);
        }
    }
    for prefix in [
        "/api/2.0/mlflow",
        "/ajax-api/2.0/mlflow",
        "/api/3.0/mlflow",
        "/ajax-api/3.0/mlflow",
    ] {
        if let Some(rest) = route.strip_prefix(prefix) {
            return mlflow(method, rest);
        }
    }
    if let Some(rest) = route.strip_prefix("/api/keel/v1") {
        return keel(method, rest);
    }
    match route {
        "/health" | "/version" | "/metrics" | "/" | "/static/{file}" | "/login" => Public,
        "/get-artifact" => Needs(Of::Run(RunId), Read),
        "/model-versions/get-artifact" => Needs(MODEL, Read),
        _ => Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_their_rules_under_every_prefix() {
        for prefix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
            let r = |m: Method, p: &str| rule(&m, &format!("{prefix}{p}"));
            assert_eq!(r(Method::POST, "/runs/log-batch"), Needs(RUN, Edit));
            assert_eq!(r(Method::GET, "/runs/get"), Needs(RUN, Read));
            assert_eq!(r(Method::POST, "/runs/delete"), Needs(RUN, Manage));
            assert_eq!(
                r(Method::POST, "/experiments/create"),
                Creates("experiment")
            );
            assert_eq!(
                r(Method::DELETE, "/registered-models/alias"),
                Needs(MODEL, Manage)
            );
            assert_eq!(
                r(Method::POST, "/registered-models/alias"),
                Needs(MODEL, Edit)
            );
            assert_eq!(
                r(Method::GET, "/registered-models/alias"),
                Needs(MODEL, Read)
            );
            assert_eq!(r(Method::POST, "/users/create"), Admin);
        }
        assert_eq!(
            rule(
                &Method::DELETE,
                "/api/2.0/mlflow-artifacts/artifacts/{*path}"
            ),
            Needs(Of::ArtifactPath(Msg("")), Manage)
        );
        assert_eq!(
            rule(&Method::POST, "/api/3.0/mlflow/users/permissions/grant"),
            Needs(Of::GrantTarget, Manage)
        );
    }

    #[test]
    fn what_the_table_does_not_name_is_for_admins() {
        assert_eq!(rule(&Method::POST, "/api/2.0/mlflow/runs/new-thing"), Admin);
        assert_eq!(rule(&Method::GET, "/api/keel/v1/new-thing"), Admin);
        assert_eq!(rule(&Method::GET, "/elsewhere"), Admin);
        assert_eq!(rule(&Method::GET, "/health"), Public);
    }
}
