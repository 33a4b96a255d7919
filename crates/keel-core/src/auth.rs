//! Users, permissions and access tokens: the domain of `keel server --auth`, in the shapes of
//! MLflow's basic-auth app, and the [`AuthStore`] part of the metadata store that keeps them.
//!
//! A user holds at most one permission per experiment and per registered model. Runs, logged
//! models and artifacts follow their experiment's; model versions and aliases their registered
//! model's. Where a user holds none, the server's default permission applies; admins may do
//! everything. An access token acts as its user, narrowed by its [`TokenScope`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a user may do with an experiment or registered model: MLflow's levels, each allowing
/// everything the ones before it allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Nothing, not even reading.
    NoPermissions,
    /// Read it, its runs, versions and artifacts.
    Read,
    /// Read, and call it where it is served (`keel serve` with auth).
    Use,
    /// Write to it: log to its runs, create versions, set tags.
    Edit,
    /// Also delete it and grant permissions on it.
    Manage,
}

impl Permission {
    /// Every level, lowest first.
    pub const ALL: [Permission; 5] = [
        Permission::NoPermissions,
        Permission::Read,
        Permission::Use,
        Permission::Edit,
        Permission::Manage,
    ];

    /// MLflow's name of the level (`READ`, `NO_PERMISSIONS`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Permission::NoPermissions => "NO_PERMISSIONS",
            Permission::Read => "READ",
            Permission::Use => "USE",
            Permission::Edit => "EDIT",
            Permission::Manage => "MANAGE",
        }
    }

    /// The level named `name`, or MLflow's error listing the valid names.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let valid: Vec<String> = Self::ALL
                    .iter()
                    .map(|p| format!("'{}'", p.name()))
                    .collect();
                Error::invalid(format!(
                    "Invalid permission '{name}'. Valid permissions are: ({})",
                    valid.join(", ")
                ))
            })
    }

    /// Whether a holder of `self` may do what needs `need`.
    pub fn allows(self, need: Permission) -> bool {
        self >= need
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A user as MLflow's auth API shows one (the password hash never leaves the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    /// A service account: it has no password and acts only through its access tokens.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_service: bool,
}

/// The things permissions are granted on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// An experiment, by id (its runs, logged models and artifacts follow it).
    Experiment(String),
    /// A registered model, by name (its versions and aliases follow it).
    RegisteredModel(String),
}

impl Resource {
    /// The kind as MLflow's grant API names it (`experiment`, `registered_model`).
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Experiment(_) => "experiment",
            Resource::RegisteredModel(_) => "registered_model",
        }
    }

    /// The experiment id or model name.
    pub fn key(&self) -> &str {
        match self {
            Resource::Experiment(k) | Resource::RegisteredModel(k) => k,
        }
    }

    /// The resource of a kind MLflow's grant API names, or an error naming `resource_type`.
    pub fn parse(kind: &str, key: &str) -> Result<Self> {
        match kind {
            "experiment" => Ok(Resource::Experiment(key.to_string())),
            "registered_model" => Ok(Resource::RegisteredModel(key.to_string())),
            other => Err(Error::invalid(format!(
                "Invalid resource type '{other}'. Valid resource types are: ('experiment', 'registered_model')"
            ))),
        }
    }
}

/// Something a request names: it is covered by its experiment's or registered model's grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Experiment(String),
    ExperimentName(String),
    Run(String),
    LoggedModel(String),
    RegisteredModel(String),
}

/// One user's permission on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource: Resource,
    pub user_id: i64,
    pub permission: Permission,
}

impl Grant {
    /// The grant in MLflow's shape: `{"experiment_id", "user_id", "permission"}` or
    /// `{"name", "user_id", "permission"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let (field, key) = match &self.resource {
            Resource::Experiment(id) => ("experiment_id", id),
            Resource::RegisteredModel(name) => ("name", name),
        };
        serde_json::json!({
            field: key,
            "user_id": self.user_id,
            "permission": self.permission,
        })
    }
}

/// A role (a group): users assigned to it inherit its permissions, each on one experiment or
/// registered model or, with the pattern `*`, on every one of the kind. MLflow 3's shape, in
/// keel's one workspace (`default`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub workspace: &'static str,
    pub description: Option<String>,
    pub permissions: Vec<RolePermission>,
}

/// The workspace every keel role is in.
pub const WORKSPACE: &str = "default";

/// One permission of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolePermission {
    pub id: i64,
    pub role_id: i64,
    /// `experiment` or `registered_model`.
    pub resource_type: String,
    /// An experiment id or model name, or `*` for every one.
    pub resource_pattern: String,
    pub permission: Permission,
}

impl RolePermission {
    /// Checks a permission's resource type and pattern as MLflow names them.
    pub fn validate(resource_type: &str, pattern: &str) -> Result<()> {
        match resource_type {
            "experiment" if pattern != "*" && pattern.parse::<u64>().is_err() => {
                Err(Error::invalid(format!(
                    "Invalid resource_pattern '{pattern}' for resource_type='experiment': an experiment id or '*'"
                )))
            }
            "experiment" | "registered_model" if !pattern.is_empty() => Ok(()),
            "experiment" | "registered_model" => Err(Error::invalid(
                "Missing value for required parameter 'resource_pattern'.",
            )),
            other => Err(Error::invalid(format!(
                "Invalid resource type '{other}'. Valid resource types are: ('experiment', 'registered_model')"
            ))),
        }
    }
}

/// A user's membership of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleAssignment {
    pub id: i64,
    pub user_id: i64,
    pub role_id: i64,
}

/// What an access token may reach, beyond what its user may.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenScope {
    /// Reads only: any write is refused.
    #[serde(default)]
    pub read_only: bool,
    /// Only these experiments (by id), when set; experiments cannot be created with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiments: Option<Vec<String>>,
    /// Only these registered models (by name), when set; models cannot be created with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

impl TokenScope {
    /// Whether the scope lets a request needing `need` on `resource` through (the user's own
    /// permission is checked separately).
    pub fn allows(&self, resource: &Resource, need: Permission) -> bool {
        if self.read_only && need > Permission::Use {
            return false;
        }
        let listed = match resource {
            Resource::Experiment(_) => &self.experiments,
            Resource::RegisteredModel(_) => &self.models,
        };
        listed
            .as_ref()
            .is_none_or(|keys| keys.iter().any(|k| k == resource.key()))
    }

    /// Whether the scope lets its holder create a resource of `resource`'s kind.
    pub fn allows_create(&self, kind: &str) -> bool {
        !self.read_only
            && match kind {
                "experiment" => self.experiments.is_none(),
                "registered_model" => self.models.is_none(),
                _ => true,
            }
    }
}

/// A personal access token as listed (its secret is shown once, at creation, and stored only as
/// a slow salted hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessToken {
    /// The public part of the token, by which it is found and revoked.
    pub id: String,
    pub user_id: i64,
    pub username: String,
    /// What its owner called it ("ci", "serve-churn").
    pub name: String,
    pub scope: TokenScope,
    pub creation_time: i64,
    /// Milliseconds since the epoch after which it is refused; never when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<i64>,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_time: Option<i64>,
}

impl AccessToken {
    /// Whether it still works at `now` (milliseconds).
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_time.is_none() && self.expiration_time.is_none_or(|t| now < t)
    }
}

/// How [`AuthStore::put_grant`] treats a grant the user already holds on the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantWrite {
    /// A new grant: `RESOURCE_ALREADY_EXISTS` when one is held (MLflow's `.../create`).
    Create,
    /// Changes the held grant: `RESOURCE_DOES_NOT_EXIST` when none is (MLflow's `.../update`).
    Update,
    /// Either.
    Upsert,
}

/// A browser's signed-in session (the web UI), found by a hash of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    /// The value the session's state-changing requests must carry in `X-Keel-CSRF`.
    pub csrf: String,
    pub expiration_time: i64,
}

/// A token to record: everything but its times.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub user_id: i64,
    pub name: String,
    pub scope: TokenScope,
    pub expiration_time: Option<i64>,
    /// The argon2 hash of the whole token.
    pub hash: String,
}

/// The users, grants and tokens of `keel server --auth`. Inputs are validated by the caller;
/// the store enforces existence and uniqueness with MLflow's errors.
#[async_trait::async_trait]
pub trait AuthStore: Send + Sync {
    /// Adds a user with an argon2 `password_hash` (`None` for a service account).
    async fn create_user(
        &self,
        username: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> Result<User>;
    /// A user and its password hash (`None` for a service account), if the name is known.
    async fn user_credentials(&self, username: &str) -> Result<Option<(User, Option<String>)>>;
    /// A user by name, or `RESOURCE_DOES_NOT_EXIST`.
    async fn get_user(&self, username: &str) -> Result<User>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Replaces a user's password hash.
    async fn update_user_password(&self, username: &str, password_hash: &str) -> Result<()>;
    /// Makes a user an admin or not.
    async fn update_user_admin(&self, username: &str, is_admin: bool) -> Result<()>;
    /// Deletes a user with its grants and tokens.
    async fn delete_user(&self, username: &str) -> Result<()>;
    /// How many users exist (the first admin is created only into an empty table).
    async fn count_users(&self) -> Result<u64>;

    /// Grants `permission` on `resource`, which must exist (see [`GrantWrite`]).
    async fn put_grant(
        &self,
        resource: &Resource,
        username: &str,
        permission: Permission,
        mode: GrantWrite,
    ) -> Result<Grant>;
    /// The user's grant on `resource`, or `RESOURCE_DOES_NOT_EXIST`.
    async fn get_grant(&self, resource: &Resource, username: &str) -> Result<Grant>;
    /// Removes the user's grant on `resource` (`RESOURCE_DOES_NOT_EXIST` when none).
    async fn delete_grant(&self, resource: &Resource, username: &str) -> Result<()>;
    /// The resource whose permission covers `subject`, with what user `user_id` holds on it:
    /// their own grant, else the highest of their roles' (each role's permission naming it,
    /// else its permission on `*`); `None` without either (the default applies). `None` when
    /// `subject` does not exist.
    async fn resolve(
        &self,
        user_id: i64,
        subject: &Subject,
    ) -> Result<Option<(Resource, Option<Permission>)>>;
    /// Every grant a user holds.
    async fn list_grants(&self, username: &str) -> Result<Vec<Grant>>;

    /// Adds a role (`RESOURCE_ALREADY_EXISTS` for a taken name).
    async fn create_role(&self, name: &str, description: Option<&str>) -> Result<Role>;
    /// A role with its permissions, or `RESOURCE_DOES_NOT_EXIST`.
    async fn get_role(&self, id: i64) -> Result<Role>;
    /// Every role, by name.
    async fn list_roles(&self) -> Result<Vec<Role>>;
    /// Renames a role or changes its description.
    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role>;
    /// Deletes a role with its permissions and assignments.
    async fn delete_role(&self, id: i64) -> Result<()>;
    /// Adds a permission to a role (checked with [`RolePermission::validate`] by the caller).
    async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        pattern: &str,
        permission: Permission,
    ) -> Result<RolePermission>;
    /// Changes the level of a role's permission.
    async fn update_role_permission(
        &self,
        id: i64,
        permission: Permission,
    ) -> Result<RolePermission>;
    /// Removes a role's permission.
    async fn remove_role_permission(&self, id: i64) -> Result<()>;
    /// Assigns a user to a role.
    async fn assign_role(&self, username: &str, role_id: i64) -> Result<RoleAssignment>;
    /// Takes a user out of a role.
    async fn unassign_role(&self, username: &str, role_id: i64) -> Result<()>;
    /// The roles a user is assigned to.
    async fn user_roles(&self, username: &str) -> Result<Vec<Role>>;
    /// The assignments of a role.
    async fn role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>>;

    /// Records a session (and forgets the expired ones).
    async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expiration_time: i64,
    ) -> Result<()>;
    /// A session by the hash of its cookie, with its user.
    async fn session(&self, id_hash: &str) -> Result<Option<Session>>;
    /// Ends a session.
    async fn delete_session(&self, id_hash: &str) -> Result<()>;

    /// Records a token.
    async fn create_token(&self, token: NewToken) -> Result<AccessToken>;
    /// A token by its id, with its hash.
    async fn token(&self, id: &str) -> Result<Option<(AccessToken, String)>>;
    /// A user's tokens, newest first.
    async fn list_tokens(&self, user_id: i64) -> Result<Vec<AccessToken>>;
    /// Revokes a token of user `user_id` (any user's when `None`); `RESOURCE_DOES_NOT_EXIST`
    /// when there is no such token.
    async fn revoke_token(&self, id: &str, user_id: Option<i64>) -> Result<()>;
}

/// Who a search answers for: only what this caller may read is returned, decided in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub user_id: i64,
    /// Admins read everything their token's scope lets through.
    pub admin: bool,
    /// Whether resources without a grant for the user are readable (the default permission).
    pub default_read: bool,
    /// Only these experiment ids or model names (an access token's scope), when set.
    pub only: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_named_as_mlflow_names_them() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()).unwrap(), p);
        }
        assert!(Permission::Manage.allows(Permission::Edit));
        assert!(Permission::Edit.allows(Permission::Read));
        assert!(!Permission::Read.allows(Permission::Use));
        assert!(!Permission::NoPermissions.allows(Permission::Read));
        let e = Permission::parse("WRITE").unwrap_err();
        assert!(e.message.contains("'WRITE'") && e.message.contains("'MANAGE'"));
    }

    #[test]
    fn scopes_narrow_by_kind_and_level() {
        let exp = Resource::Experiment("3".into());
        let model = Resource::RegisteredModel("churn".into());
        let ro = TokenScope {
            read_only: true,
            ..Default::default()
        };
        assert!(ro.allows(&exp, Permission::Read) && ro.allows(&model, Permission::Use));
        assert!(!ro.allows(&exp, Permission::Edit) && !ro.allows_create("experiment"));
        let only3 = TokenScope {
            experiments: Some(vec!["3".into()]),
            ..Default::default()
        };
        assert!(only3.allows(&exp, Permission::Manage));
        assert!(!only3.allows(&Resource::Experiment("4".into()), Permission::Read));
        assert!(only3.allows(&model, Permission::Edit));
        assert!(!only3.allows_create("experiment") && only3.allows_create("registered_model"));
    }

    #[test]
    fn grants_in_mlflow_shapes() {
        let g = Grant {
            resource: Resource::Experiment("7".into()),
            user_id: 2,
            permission: Permission::Edit,
        };
        assert_eq!(
            g.to_json(),
            serde_json::json!({"experiment_id": "7", "user_id": 2, "permission": "EDIT"})
        );
        let g = Grant {
            resource: Resource::RegisteredModel("m".into()),
            ..g
        };
        assert_eq!(g.to_json()["name"], "m");
    }
}
