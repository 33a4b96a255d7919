//! The auth API: MLflow's basic-auth endpoints (users, experiment and registered-model
//! permissions, the per-user grant API of MLflow 3) with their request and response shapes, and
//! keel's access tokens (`/api/keel/v1/tokens`). Who may call each is decided by the guard
//! ([`super::policy`]); these handlers only act.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Router};
use keel_core::auth::{GrantWrite, NewToken, Permission, Resource, TokenScope, User};
use keel_core::{Error, ErrorCode, now_millis};
use serde::Deserialize;

use super::credentials;
use super::{Auth, Caller};
use crate::AppState;
use crate::api::{empty, json};
use crate::error::ApiResult;
use crate::wire::{Msg, bool_lenient, i64_lenient, missing, required, string_lenient};

/// The auth state and the caller, or the error for a server without auth.
fn on(s: &AppState, caller: Option<Extension<Caller>>) -> ApiResult<(Arc<Auth>, Caller)> {
    match (&s.auth, caller) {
        (Some(auth), Some(Extension(caller))) => Ok((auth.clone(), caller)),
        _ => Err(Error::new(
            ErrorCode::EndpointNotFound,
            "Authentication is not enabled on this server (start it with `keel server --auth`).",
        )
        .into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserReq {
    username: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    #[serde(deserialize_with = "bool_lenient")]
    is_admin: Option<bool>,
    /// keel: a service account (no password; it acts through its tokens).
    #[serde(deserialize_with = "bool_lenient")]
    service_account: Option<bool>,
}

fn user_json(u: &User) -> serde_json::Value {
    serde_json::json!({ "user": u })
}

/// `POST users/create`: `{"username", "password"}` (or keel's `"service_account": true` without
/// a password).
async fn create_user(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<UserReq>,
) -> ApiResult<Response> {
    on(&s, caller)?;
    let username = body.username.unwrap_or_default();
    let service = body.service_account.unwrap_or(false);
    let hash = match (service, body.password.filter(|p| !p.is_empty())) {
        (true, None) => None,
        (true, Some(_)) => {
            return Err(
                Error::invalid("A service account has no password: leave 'password' out").into(),
            );
        }
        (false, Some(p)) if !username.is_empty() => Some(credentials::hash(&p).await?),
        (false, _) => return Err(Error::invalid("Username and password cannot be empty.").into()),
    };
    let user = s
        .meta
        .create_user(&username, hash.as_deref(), body.is_admin.unwrap_or(false))
        .await?;
    Ok(json(&user_json(&user)))
}

/// `GET users/get?username=`.
async fn get_user(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<UserReq>,
) -> ApiResult<Response> {
    on(&s, caller)?;
    let username = required(body.username, "username")?;
    Ok(json(&user_json(&s.meta.get_user(&username).await?)))
}

/// `GET users/list`: every user.
async fn list_users(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Response> {
    on(&s, caller)?;
    Ok(json(
        &serde_json::json!({ "users": s.meta.list_users().await? }),
    ))
}

/// `GET users/current`: who the credentials name.
async fn current_user(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Response> {
    let (_, caller) = on(&s, caller)?;
    Ok(json(&serde_json::json!({
        "user": caller.user,
        "is_basic_auth": caller.scope.is_none(),
    })))
}

/// `PATCH users/update-password`: changing one's own password needs the current one.
async fn update_password(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<UserReq>,
) -> ApiResult<Response> {
    let (_, caller) = on(&s, caller)?;
    let username = required(body.username, "username")?;
    let password = required(body.password, "password")?;
    if username == caller.user.username {
        if caller.scope.is_some() {
            return Err(Error::new(
                ErrorCode::PermissionDenied,
                "An access token cannot change its user's password",
            )
            .into());
        }
        let current = body
            .current_password
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Error::invalid("Current password is required when changing your own password.")
            })?;
        let stored = s
            .meta
            .user_credentials(&username)
            .await?
            .and_then(|(_, h)| h)
            .unwrap_or_default();
        if !credentials::verify(&current, &stored).await {
            return Err(Error::invalid("Current password does not match.").into());
        }
        if password == current {
            return Err(
                Error::invalid("New password must differ from the current password.").into(),
            );
        }
    }
    let hash = credentials::hash(&password).await?;
    s.meta.update_user_password(&username, &hash).await?;
    Ok(empty())
}

/// `PATCH users/update-admin`.
async fn update_admin(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<UserReq>,
) -> ApiResult<Response> {
    on(&s, caller)?;
    let username = required(body.username, "username")?;
    let is_admin = body.is_admin.ok_or_else(|| missing("is_admin"))?;
    s.meta.update_user_admin(&username, is_admin).await?;
    Ok(empty())
}

/// `DELETE users/delete`: not oneself.
async fn delete_user(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<UserReq>,
) -> ApiResult<Response> {
    let (_, caller) = on(&s, caller)?;
    let username = required(body.username, "username")?;
    if username == caller.user.username {
        return Err(Error::bad_request(
            "Users cannot delete their own account. Ask another admin to delete this user instead.",
        )
        .into());
    }
    s.meta.delete_user(&username).await?;
    Ok(empty())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct GrantReq {
    #[serde(deserialize_with = "string_lenient")]
    experiment_id: Option<String>,
    name: Option<String>,
    username: Option<String>,
    permission: Option<String>,
    resource_type: Option<String>,
    #[serde(deserialize_with = "string_lenient")]
    resource_id: Option<String>,
}

impl GrantReq {
    /// The resource of a request to `experiments/permissions/*` (`experiment`),
    /// `registered-models/permissions/*` (`registered_model`) or the grant API (`None`).
    fn resource(&self, kind: Option<&str>) -> Result<Resource, Error> {
        match kind {
            Some("experiment") => Ok(Resource::Experiment(required(
                self.experiment_id.clone(),
                "experiment_id",
            )?)),
            Some(_) => Ok(Resource::RegisteredModel(required(
                self.name.clone(),
                "name",
            )?)),
            None => Resource::parse(
                &required(self.resource_type.clone(), "resource_type")?,
                &required(self.resource_id.clone(), "resource_id")?,
            ),
        }
    }

    fn permission(&self) -> Result<Permission, Error> {
        Permission::parse(&required(self.permission.clone(), "permission")?)
    }
}

/// The response field of a grant of `resource`.
fn grant_field(resource: &Resource) -> &'static str {
    match resource {
        Resource::Experiment(_) => "experiment_permission",
        Resource::RegisteredModel(_) => "registered_model_permission",
    }
}

/// `experiments/permissions/*` and `registered-models/permissions/*`: create, get, update,
/// delete, chosen by `op`.
async fn permission_op(
    s: AppState,
    caller: Option<Extension<Caller>>,
    body: GrantReq,
    kind: &'static str,
    op: &'static str,
) -> ApiResult<Response> {
    on(&s, caller)?;
    let resource = body.resource(Some(kind))?;
    let username = required(body.username.clone(), "username")?;
    match op {
        "create" | "update" => {
            let mode = match op {
                "create" => GrantWrite::Create,
                _ => GrantWrite::Update,
            };
            let g = s
                .meta
                .put_grant(&resource, &username, body.permission()?, mode)
                .await?;
            Ok(match op {
                "create" => json(&serde_json::json!({ grant_field(&resource): g.to_json() })),
                _ => empty(),
            })
        }
        "get" => {
            let g = s.meta.get_grant(&resource, &username).await?;
            Ok(json(
                &serde_json::json!({ grant_field(&resource): g.to_json() }),
            ))
        }
        _ => {
            s.meta.delete_grant(&resource, &username).await?;
            Ok(empty())
        }
    }
}

macro_rules! permission_handlers {
    ($($fn_name:ident => ($kind:literal, $op:literal);)+) => {
        $(async fn $fn_name(
            State(s): State<AppState>,
            caller: Option<Extension<Caller>>,
            Msg { body, .. }: Msg<GrantReq>,
        ) -> ApiResult<Response> {
            permission_op(s, caller, body, $kind, $op).await
        })+
    };
}

permission_handlers! {
    create_experiment_permission => ("experiment", "create");
    get_experiment_permission => ("experiment", "get");
    update_experiment_permission => ("experiment", "update");
    delete_experiment_permission => ("experiment", "delete");
    create_model_permission => ("registered_model", "create");
    get_model_permission => ("registered_model", "get");
    update_model_permission => ("registered_model", "update");
    delete_model_permission => ("registered_model", "delete");
}

/// `POST users/permissions/grant` (MLflow 3): sets the user's permission on a resource.
async fn grant(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<GrantReq>,
) -> ApiResult<Response> {
    on(&s, caller)?;
    let resource = body.resource(None)?;
    let username = required(body.username.clone(), "username")?;
    s.meta
        .put_grant(&resource, &username, body.permission()?, GrantWrite::Upsert)
        .await?;
    Ok(empty())
}

/// `POST users/permissions/revoke` (MLflow 3): removes the user's grant on a resource, if any.
async fn revoke(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<GrantReq>,
) -> ApiResult<Response> {
    on(&s, caller)?;
    let resource = body.resource(None)?;
    let username = required(body.username.clone(), "username")?;
    s.meta.get_user(&username).await?;
    match s.meta.delete_grant(&resource, &username).await {
        // Revoking what is not granted changes nothing.
        Ok(()) => Ok(empty()),
        Err(e) if e.code == ErrorCode::ResourceDoesNotExist => Ok(empty()),
        Err(e) => Err(e.into()),
    }
}

/// `GET users/permissions/get` (MLflow 3): a user's effective permission on a resource
/// (`allowed` is whether it reaches USE, as MLflow's is).
async fn effective(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<GrantReq>,
) -> ApiResult<Response> {
    let (auth, _) = on(&s, caller)?;
    let resource = body.resource(None)?;
    let username = required(body.username.clone(), "username")?;
    let user = s.meta.get_user(&username).await?;
    let subject = match &resource {
        Resource::Experiment(id) => keel_core::auth::Subject::Experiment(id.clone()),
        Resource::RegisteredModel(n) => keel_core::auth::Subject::RegisteredModel(n.clone()),
    };
    let permission = match s.meta.resolve(user.id, &subject).await? {
        _ if user.is_admin => Permission::Manage,
        Some((_, Some(granted))) => granted,
        Some((_, None)) => auth.config.default_permission,
        None => Permission::NoPermissions,
    };
    Ok(json(&serde_json::json!({
        "allowed": permission.allows(Permission::Use),
        "permission": permission,
    })))
}

/// A user's grants as MLflow 3 lists them (`resource_type`, `resource_pattern`, `permission`).
async fn grants_of(s: &AppState, username: &str) -> ApiResult<Response> {
    let user = s.meta.get_user(username).await?;
    let mut rows: Vec<serde_json::Value> = s
        .meta
        .list_grants(username)
        .await?
        .into_iter()
        .map(|g| {
            serde_json::json!({
                "workspace": keel_core::auth::WORKSPACE,
                "resource_type": g.resource.kind(),
                "resource_pattern": g.resource.key(),
                "permission": g.permission,
            })
        })
        .collect();
    for role in s.meta.user_roles(username).await? {
        rows.extend(role.permissions.iter().map(|p| {
            serde_json::json!({
                "role_id": role.id,
                "role_name": role.name,
                "workspace": keel_core::auth::WORKSPACE,
                "resource_type": p.resource_type,
                "resource_pattern": p.resource_pattern,
                "permission": p.permission,
            })
        }));
    }
    Ok(json(&serde_json::json!({
        "is_admin": user.is_admin,
        "permissions": rows,
    })))
}

/// `GET users/current/permissions` (MLflow 3).
async fn current_permissions(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Response> {
    let (_, caller) = on(&s, caller)?;
    grants_of(&s, &caller.user.username).await
}

/// `GET users/permissions/list?username=` (MLflow 3).
async fn user_permissions(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<GrantReq>,
) -> ApiResult<Response> {
    on(&s, caller)?;
    grants_of(&s, &required(body.username, "username")?).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RoleReq {
    #[serde(deserialize_with = "i64_lenient")]
    role_id: Option<i64>,
    #[serde(deserialize_with = "i64_lenient")]
    role_permission_id: Option<i64>,
    workspace: Option<String>,
    name: Option<String>,
    description: Option<String>,
    username: Option<String>,
    resource_type: Option<String>,
    #[serde(deserialize_with = "string_lenient")]
    resource_pattern: Option<String>,
    permission: Option<String>,
}

impl RoleReq {
    fn id(&self, field: &str) -> Result<i64, Error> {
        let v = match field {
            "role_id" => self.role_id,
            _ => self.role_permission_id,
        };
        v.ok_or_else(|| missing(field))
    }

    /// keel has one workspace: `default` (or none named).
    fn workspace(&self) -> Result<(), Error> {
        match self.workspace.as_deref() {
            None | Some("") | Some(keel_core::auth::WORKSPACE) => Ok(()),
            Some(w) => Err(Error::invalid(format!(
                "Invalid workspace '{w}': keel has one workspace, 'default'"
            ))),
        }
    }

    fn permission(&self) -> Result<Permission, Error> {
        Permission::parse(&required(self.permission.clone(), "permission")?)
    }
}

/// MLflow 3's role API (roles are keel's groups): `roles/*` and `users/roles/list`, by `op`.
async fn role_op(
    s: AppState,
    caller: Option<Extension<Caller>>,
    body: RoleReq,
    op: &'static str,
) -> ApiResult<Response> {
    on(&s, caller)?;
    let m = &s.meta;
    let role = |r: keel_core::auth::Role| json(&serde_json::json!({ "role": r }));
    let roles = |r: Vec<keel_core::auth::Role>| json(&serde_json::json!({ "roles": r }));
    let perm =
        |p: keel_core::auth::RolePermission| json(&serde_json::json!({ "role_permission": p }));
    Ok(match op {
        "create" => {
            body.workspace()?;
            let name = required(body.name.clone(), "name")?;
            role(m.create_role(&name, body.description.as_deref()).await?)
        }
        "get" => role(m.get_role(body.id("role_id")?).await?),
        "list" => {
            body.workspace()?;
            roles(m.list_roles().await?)
        }
        "update" => role(
            m.update_role(
                body.id("role_id")?,
                body.name.as_deref().filter(|n| !n.is_empty()),
                body.description.as_deref(),
            )
            .await?,
        ),
        "delete" => {
            m.delete_role(body.id("role_id")?).await?;
            empty()
        }
        "permissions/add" => perm(
            m.add_role_permission(
                body.id("role_id")?,
                &required(body.resource_type.clone(), "resource_type")?,
                &required(body.resource_pattern.clone(), "resource_pattern")?,
                body.permission()?,
            )
            .await?,
        ),
        "permissions/update" => perm(
            m.update_role_permission(body.id("role_permission_id")?, body.permission()?)
                .await?,
        ),
        "permissions/remove" => {
            m.remove_role_permission(body.id("role_permission_id")?)
                .await?;
            empty()
        }
        "permissions/list" => {
            let r = m.get_role(body.id("role_id")?).await?;
            json(&serde_json::json!({ "role_permissions": r.permissions }))
        }
        "assign" => {
            let a = m
                .assign_role(
                    &required(body.username.clone(), "username")?,
                    body.id("role_id")?,
                )
                .await?;
            json(&serde_json::json!({ "assignment": a }))
        }
        "unassign" => {
            m.unassign_role(
                &required(body.username.clone(), "username")?,
                body.id("role_id")?,
            )
            .await?;
            empty()
        }
        "users/list" => json(&serde_json::json!({
            "assignments": m.role_users(body.id("role_id")?).await?,
        })),
        _ => roles(
            m.user_roles(&required(body.username.clone(), "username")?)
                .await?,
        ),
    })
}

macro_rules! role_handlers {
    ($($fn_name:ident => $op:literal;)+) => {
        $(async fn $fn_name(
            State(s): State<AppState>,
            caller: Option<Extension<Caller>>,
            Msg { body, .. }: Msg<RoleReq>,
        ) -> ApiResult<Response> {
            role_op(s, caller, body, $op).await
        })+
    };
}

role_handlers! {
    create_role => "create";
    get_role => "get";
    list_roles => "list";
    update_role => "update";
    delete_role => "delete";
    add_role_permission => "permissions/add";
    update_role_permission => "permissions/update";
    remove_role_permission => "permissions/remove";
    list_role_permissions => "permissions/list";
    assign_role => "assign";
    unassign_role => "unassign";
    role_users => "users/list";
    user_roles => "user-roles";
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenReq {
    name: Option<String>,
    /// Another user's (an admin making a service account's token).
    username: Option<String>,
    #[serde(deserialize_with = "i64_lenient")]
    expires_in_days: Option<i64>,
    #[serde(deserialize_with = "i64_lenient")]
    expiration_time: Option<i64>,
    scope: TokenScope,
}

/// The user a token request is for: the caller, or (for admins) the named user. Tokens make
/// tokens only for admins: a token cannot widen itself.
async fn token_owner(s: &AppState, caller: &Caller, username: Option<String>) -> ApiResult<User> {
    let named = username.filter(|u| !u.is_empty() && *u != caller.user.username);
    match named {
        None => Ok(caller.user.clone()),
        Some(u) if caller.user.is_admin => Ok(s.meta.get_user(&u).await?),
        Some(_) => Err(Error::new(
            ErrorCode::PermissionDenied,
            "Only admins may manage another user's access tokens",
        )
        .into()),
    }
}

/// `POST /api/keel/v1/tokens`: `{"name", "expires_in_days" | "expiration_time", "scope":
/// {"read_only", "experiments", "models"}, "username"}` -> the token, shown this once, and its
/// record.
async fn create_token(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<TokenReq>,
) -> ApiResult<Response> {
    let (_, caller) = on(&s, caller)?;
    if caller.scope.is_some() {
        return Err(Error::new(
            ErrorCode::PermissionDenied,
            "An access token cannot create access tokens (it could make one wider than itself): sign in with a password",
        )
        .into());
    }
    let owner = token_owner(&s, &caller, body.username).await?;
    let name = required(body.name, "name")?;
    let expiration_time = match (body.expires_in_days, body.expiration_time) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "Give either 'expires_in_days' or 'expiration_time', not both",
            )
            .into());
        }
        (Some(days), None) if (1..=3650).contains(&days) => Some(now_millis() + days * 86_400_000),
        (Some(days), None) => {
            return Err(Error::invalid(format!(
                "Invalid value {days} for parameter 'expires_in_days': between 1 and 3650"
            ))
            .into());
        }
        (None, Some(t)) if t > now_millis() => Some(t),
        (None, Some(t)) => {
            return Err(Error::invalid(format!(
                "Invalid value {t} for parameter 'expiration_time': it is in the past"
            ))
            .into());
        }
        (None, None) => None,
    };
    let (token, id) = credentials::new_token()?;
    let record = s
        .meta
        .create_token(NewToken {
            id,
            user_id: owner.id,
            name,
            scope: body.scope,
            expiration_time,
            hash: credentials::hash(&token).await?,
        })
        .await?;
    Ok(json(
        &serde_json::json!({ "token": token, "access_token": record }),
    ))
}

/// `GET /api/keel/v1/tokens?username=`: a user's tokens (never their secrets).
async fn list_tokens(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Msg { body, .. }: Msg<TokenReq>,
) -> ApiResult<Response> {
    let (_, caller) = on(&s, caller)?;
    let owner = token_owner(&s, &caller, body.username).await?;
    Ok(json(&serde_json::json!({
        "access_tokens": s.meta.list_tokens(owner.id).await?,
    })))
}

/// `DELETE /api/keel/v1/tokens/{id}`: revokes one of the caller's tokens (any, for admins).
async fn revoke_token(
    State(s): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (_, caller) = on(&s, caller)?;
    let owner = (!caller.user.is_admin).then_some(caller.user.id);
    s.meta.revoke_token(&id, owner).await?;
    Ok(empty())
}

/// The MLflow auth routes, relative to `/api/2.0/mlflow` (and `/api/3.0/mlflow`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/create", post(create_user))
        .route("/users/get", get(get_user))
        .route("/users/list", get(list_users))
        .route("/users/current", get(current_user))
        .route("/users/current/permissions", get(current_permissions))
        .route("/users/permissions/list", get(user_permissions))
        .route("/users/update-password", patch(update_password))
        .route("/users/update-admin", patch(update_admin))
        .route("/users/delete", delete(delete_user))
        .route(
            "/experiments/permissions/create",
            post(create_experiment_permission),
        )
        .route(
            "/experiments/permissions/get",
            get(get_experiment_permission),
        )
        .route(
            "/experiments/permissions/update",
            patch(update_experiment_permission),
        )
        .route(
            "/experiments/permissions/delete",
            delete(delete_experiment_permission),
        )
        .route(
            "/registered-models/permissions/create",
            post(create_model_permission),
        )
        .route(
            "/registered-models/permissions/get",
            get(get_model_permission),
        )
        .route(
            "/registered-models/permissions/update",
            patch(update_model_permission),
        )
        .route(
            "/registered-models/permissions/delete",
            delete(delete_model_permission),
        )
        .route("/users/permissions/grant", post(grant))
        .route("/users/permissions/revoke", post(revoke))
        .route("/users/permissions/get", get(effective))
        .route("/users/roles/list", get(user_roles))
        .route("/roles/create", post(create_role))
        .route("/roles/get", get(get_role))
        .route("/roles/list", get(list_roles))
        .route("/roles/update", patch(update_role))
        .route("/roles/delete", delete(delete_role))
        .route("/roles/permissions/add", post(add_role_permission))
        .route("/roles/permissions/update", patch(update_role_permission))
        .route("/roles/permissions/remove", delete(remove_role_permission))
        .route("/roles/permissions/list", get(list_role_permissions))
        .route("/roles/assign", post(assign_role))
        .route("/roles/unassign", delete(unassign_role))
        .route("/roles/users/list", get(role_users))
}

/// keel's token routes, relative to `/api/keel/v1`.
pub(crate) fn token_routes() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
}
