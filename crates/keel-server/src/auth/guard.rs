//! The middleware in front of every route when auth is on: authenticate, authorize by the
//! route's [`Rule`], let the handler run with the [`Caller`], and give the creator of an
//! experiment or registered model MANAGE on it.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keel_core::auth::{GrantWrite, Permission, Resource, Subject};
use keel_core::{Error, ErrorCode, now_millis};

use super::credentials::{self, Credential};
use super::policy::{self, Field, Of, Rule};
use super::{Auth, Caller};
use crate::AppState;
use crate::error::ApiError;
use crate::wire::MAX_JSON_BODY;

/// MLflow's answer to a request without valid credentials: 401 with a Basic challenge, so
/// browsers ask and clients know to send credentials.
fn unauthenticated(headers: &HeaderMap) -> Response {
    let body = serde_json::json!({
        "error_code": ErrorCode::Unauthenticated.as_str(),
        "message": "You are not authenticated. Send a username and password (HTTP Basic, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) or an access token (Bearer, MLFLOW_TRACKING_TOKEN).",
    });
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    // The web UI signs in on its own page: no browser dialog for its requests.
    let from_ui = headers
        .get("x-requested-with")
        .is_some_and(|v| v == "keel-ui");
    if !from_ui {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"keel\""),
        );
    }
    resp.extensions_mut().insert(crate::error::ErrorMarker);
    resp
}

fn denied(message: impl Into<String>) -> ApiError {
    Error::new(ErrorCode::PermissionDenied, message).into()
}

/// The caller the request's credentials name, `None` when it has none that verify; what a
/// credential named in the last second is reused.
async fn authenticate(
    s: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let credential = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get(header::COOKIE))
        .and_then(|v| v.to_str().ok());
    let Some(credential) = credential else {
        return Ok(None);
    };
    let key = auth.verified.digest(credential);
    if let Some(caller) = auth.callers.get(&key) {
        return Ok(Some(caller));
    }
    let caller = read_caller(s, auth, headers).await?;
    if let Some(c) = &caller {
        auth.callers.put(key, c.clone());
    }
    Ok(caller)
}

/// [`authenticate`] from the store.
async fn read_caller(
    s: &AppState,
    auth: &Auth,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let Some(header) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return super::session::from_cookie(s, headers).await;
    };
    let Some(credential) = credentials::parse_authorization(header) else {
        return Ok(None);
    };
    match credential {
        Credential::Basic { username, password } => {
            let Some((user, Some(stored))) = s.meta.user_credentials(&username).await? else {
                credentials::burn(&password).await;
                return Ok(None);
            };
            if !auth.verified.knows(header, &stored) {
                if !credentials::verify(&password, &stored).await {
                    return Ok(None);
                }
                auth.verified.remember(header, &stored);
            }
            Ok(Some(Caller {
                user,
                scope: None,
                session: None,
            }))
        }
        Credential::Token { token, .. } if auth.is_internal(&token) => Ok(Some(Caller {
            user: keel_core::auth::User {
                id: 0,
                username: super::INTERNAL_USER.to_string(),
                is_admin: true,
                is_service: true,
            },
            scope: None,
            session: None,
        })),
        Credential::Token { id, token } => {
            let Some((t, stored)) = s.meta.token(&id).await? else {
                return Ok(None);
            };
            if !t.is_live(now_millis()) {
                return Ok(None);
            }
            if !auth.verified.knows(header, &stored) {
                if !credentials::verify(&token, &stored).await {
                    return Ok(None);
                }
                auth.verified.remember(header, &stored);
            }
            let user = s.meta.get_user(&t.username).await?;
            Ok(Some(Caller {
                user,
                scope: Some(t.scope),
                session: None,
            }))
        }
    }
}

/// The fields of a request message: its query string, or its JSON body.
struct Params {
    query: Vec<(String, String)>,
    body: Option<serde_json::Value>,
    /// The route's path parameters, percent-decoded as the handler gets them.
    path: std::collections::HashMap<String, String>,
}

impl Params {
    /// Every value of `field` where the handler reads it.
    fn all(&self, field: Field, method: &Method) -> Vec<String> {
        let name = match field {
            Field::Msg(n) | Field::Query(n) => n,
            Field::RunId => {
                let id = self.all(Field::Msg("run_id"), method);
                return match id.iter().any(|v| !v.is_empty()) {
                    true => id,
                    false => self.all(Field::Msg("run_uuid"), method),
                };
            }
            Field::LoggedModelInPath => {
                return self.path.get("model_id").cloned().into_iter().collect();
            }
        };
        let from_query = *method == Method::GET || matches!(field, Field::Query(_));
        if from_query {
            return self
                .query
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect();
        }
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match self.body.as_ref().and_then(|b| b.get(name)) {
            Some(serde_json::Value::Array(items)) => items.iter().filter_map(text).collect(),
            Some(v) => text(v).into_iter().collect(),
            None => Vec::new(),
        }
    }
}

/// Whether checking `rule` needs the request's JSON body.
fn needs_body(rule: &Rule, method: &Method) -> bool {
    let of = match rule {
        Rule::Needs(of, _) | Rule::NeedsOrSelf(of, _) => Some(*of),
        // The model's name, for its creator's grant.
        Rule::SelfOrAdmin(_) | Rule::Creates("registered_model") => None,
        _ => return false,
    };
    *method != Method::GET
        && !matches!(
            of,
            Some(Of::LoggedModel(Field::LoggedModelInPath))
                | Some(Of::Run(Field::Query(_)))
                | Some(Of::ArtifactPath(Field::Msg("")))
        )
}

/// The subjects a rule checks, read from the request; empty when the request names none (the
/// handler then refuses it for the missing field).
fn subjects(of: Of, p: &Params, method: &Method) -> Result<Vec<Subject>, ApiError> {
    let field = match of {
        Of::Experiment(f)
        | Of::ExperimentName(f)
        | Of::Experiments(f)
        | Of::Run(f)
        | Of::Runs(f)
        | Of::LoggedModel(f)
        | Of::RegisteredModel(f)
        | Of::ArtifactPath(f) => f,
        Of::GrantTarget => {
            let kind = p.all(Field::Msg("resource_type"), method);
            let id = p.all(Field::Msg("resource_id"), method);
            return match (kind.first(), id.first()) {
                (Some(kind), Some(id)) => Ok(vec![match Resource::parse(kind, id)? {
                    Resource::Experiment(id) => Subject::Experiment(id),
                    Resource::RegisteredModel(name) => Subject::RegisteredModel(name),
                }]),
                _ => Ok(Vec::new()),
            };
        }
    };
    if let Of::ArtifactPath(f) = of {
        let path = match f {
            Field::Msg("") => p.path.get("path").cloned(),
            f => p.all(f, method).into_iter().next(),
        };
        let first = path
            .as_deref()
            .and_then(|path| path.trim_start_matches('/').split('/').next())
            .filter(|first| !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()));
        return match first {
            Some(id) => Ok(vec![Subject::Experiment(id.to_string())]),
            None => Err(denied(
                "Only admins may reach artifacts outside an experiment's folder",
            )),
        };
    }
    Ok(p.all(field, method)
        .into_iter()
        .filter(|v| !v.is_empty())
        .map(|v| of.subject(v))
        .collect())
}

/// Checks `need` on each subject for `caller`: its scope first, then (unless an admin) its
/// grant or the default. A subject that does not exist is left to the handler, which answers
/// that it does not exist.
async fn check(
    s: &AppState,
    auth: &Auth,
    caller: &Caller,
    subjects: &[Subject],
    need: Permission,
) -> Result<(), ApiError> {
    for subject in subjects {
        // Only what exists is reused: a subject made after it was looked up must be checked.
        let key = (caller.user.id, subject.clone());
        let held = match auth.held.get(&key) {
            Some(held) => held,
            None => {
                let held = s.meta.resolve(caller.user.id, subject).await?;
                if held.is_some() {
                    auth.held.put(key, held.clone());
                }
                held
            }
        };
        let Some((resource, granted)) = held else {
            continue;
        };
        if let Some(scope) = &caller.scope
            && !scope.allows(&resource, need)
        {
            return Err(denied(format!(
                "The access token does not allow {} on {} '{}'",
                need.name(),
                resource.kind().replace('_', " "),
                resource.key()
            )));
        }
        let have = granted.unwrap_or(auth.config.default_permission);
        if !caller.user.is_admin && !have.allows(need) {
            return Err(denied(format!(
                "Permission denied: {} needs {} on {} '{}' (held: {})",
                caller.user.username,
                need.name(),
                resource.kind().replace('_', " "),
                resource.key(),
                have.name()
            )));
        }
    }
    Ok(())
}

/// Authorizes `rule` for `caller`.
async fn authorize(
    s: &AppState,
    auth: &Auth,
    caller: &Caller,
    rule: Rule,
    p: &Params,
    method: &Method,
) -> Result<(), ApiError> {
    let admin = caller.user.is_admin;
    let names_self = |field: &'static str| {
        p.all(Field::Msg(field), method)
            .first()
            .is_some_and(|u| *u == caller.user.username)
    };
    // A token narrowed by its scope manages nothing, whoever its user is: the scope would not
    // hold for what it created or granted.
    let narrowed = caller
        .scope
        .as_ref()
        .is_some_and(|s| s.read_only || s.experiments.is_some() || s.models.is_some());
    let writes = !matches!(*method, Method::GET | Method::HEAD);
    if narrowed
        && writes
        && matches!(
            rule,
            Rule::Admin | Rule::SelfOrAdmin(_) | Rule::NeedsOrSelf(_, _)
        )
    {
        return Err(denied(
            "An access token limited by its scope cannot manage users, roles or grants",
        ));
    }
    match rule {
        Rule::Public | Rule::SignedIn => Ok(()),
        Rule::Writer => match &caller.scope {
            Some(scope) if scope.read_only => Err(denied("The access token is read-only")),
            _ => Ok(()),
        },
        Rule::Creates(kind) => match &caller.scope {
            Some(scope) if !scope.allows_create(kind) => Err(denied(format!(
                "The access token does not allow creating a {}",
                kind.replace('_', " ")
            ))),
            _ => Ok(()),
        },
        Rule::Admin if admin => Ok(()),
        Rule::Admin => Err(denied("Only admins may do this")),
        Rule::SelfOrAdmin(field) if admin || names_self(field) => Ok(()),
        Rule::SelfOrAdmin(_) => Err(denied("Only admins may do this for another user")),
        Rule::NeedsOrSelf(_, _) if names_self("username") => Ok(()),
        Rule::Needs(of, need) | Rule::NeedsOrSelf(of, need) => {
            check(s, auth, caller, &subjects(of, p, method)?, need).await
        }
    }
}

/// Reads the query string and, when the rule needs it, the JSON body (which is handed on).
async fn read_params(req: Request, rule: &Rule) -> Result<(Request, Params), ApiError> {
    let query = req
        .uri()
        .query()
        .map(|q| serde_html_form::from_str::<Vec<(String, String)>>(q).unwrap_or_default())
        .unwrap_or_default();
    let (mut parts, body) = req.into_parts();
    // Decoded as the handler will see them, so a percent-encoded id names what it acts on.
    let path =
        axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(
            &mut parts,
            &(),
        )
        .await
        .map(|p| p.0)
        .unwrap_or_default();
    if !needs_body(rule, &parts.method) {
        return Ok((
            Request::from_parts(parts, body),
            Params {
                query,
                body: None,
                path,
            },
        ));
    }
    let bytes: Bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            Error::new(
                ErrorCode::BodyTooLarge,
                format!("Request body is larger than the limit of {MAX_JSON_BODY} bytes."),
            )
        })?;
    let json = serde_json::from_slice(&bytes).ok();
    Ok((
        Request::from_parts(parts, Body::from(bytes)),
        Params {
            query,
            body: json,
            path,
        },
    ))
}

/// Whether a successful write to `route` changes who may do what (users, grants, roles, tokens,
/// sessions, or a resource grants name), so the last second's reads must be forgotten.
fn changes_access(route: &str) -> bool {
    [
        "/users/",
        "/permissions/",
        "/roles/",
        "/tokens",
        "/session",
        "/registered-models/create",
        "/registered-models/rename",
        "/registered-models/delete",
        "/experiments/create",
    ]
    .iter()
    .any(|part| route.contains(part))
}

/// The guard: every routed request passes it when auth is on.
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(auth) = s.auth.clone() else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let method = req.method().clone();
    let rule = policy::rule(&method, &route);
    if rule == Rule::Public {
        return next.run(req).await;
    }
    let caller = match authenticate(&s, &auth, req.headers()).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return unauthenticated(req.headers()),
        Err(e) => return e.into_response(),
    };
    if s.audit {
        keel_core::audit::current().set_actor(&caller.user.username);
    }
    if let Err(e) = super::session::check_csrf(&caller, &method, req.headers()) {
        return e.into_response();
    }
    let (mut req, params) = match read_params(req, &rule).await {
        Ok(read) => read,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = authorize(&s, &auth, &caller, rule, &params, &method).await {
        return e.into_response();
    }
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    let resp = match rule {
        Rule::Creates(kind) if resp.status().is_success() => {
            grant_creator(&s, &caller, kind, &params, resp).await
        }
        _ => resp,
    };
    if method != Method::GET && resp.status().is_success() && changes_access(&route) {
        auth.forget();
    }
    resp
}

/// Gives the creator MANAGE on what a successful create made (the experiment id is read from
/// the answer, the model name from the request).
async fn grant_creator(
    s: &AppState,
    caller: &Caller,
    kind: &str,
    params: &Params,
    resp: Response,
) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_JSON_BODY).await else {
        return ApiError(Error::internal("could not read the answer of a create")).into_response();
    };
    let resource = match kind {
        "experiment" => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("experiment_id")
                    .and_then(|id| id.as_str().map(str::to_string))
            })
            .map(Resource::Experiment),
        _ => params
            .all(Field::Msg("name"), &Method::POST)
            .into_iter()
            .next()
            .map(Resource::RegisteredModel),
    };
    if let Some(resource) = resource
        && caller.user.id != 0
        && let Err(e) = s
            .meta
            .put_grant(
                &resource,
                &caller.user.username,
                Permission::Manage,
                GrantWrite::Upsert,
            )
            .await
    {
        tracing::error!(
            "could not give {} MANAGE on the {} it created ({}): {}",
            caller.user.username,
            resource.kind(),
            resource.key(),
            e.message
        );
    }
    Response::from_parts(parts, Body::from(bytes))
}
