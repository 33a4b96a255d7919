//! Users, their grants on experiments and registered models, roles (groups) and their
//! permissions and members, and access tokens, with the messages of MLflow's basic-auth store;
//! and the readability predicate searches add when they answer for one user.

use keel_core::auth::{
    AccessToken, AuthStore, Grant, GrantWrite, NewToken, Permission, Reader, Resource, Role,
    RoleAssignment, RolePermission, Session, Subject, TokenScope, User, WORKSPACE,
};
use keel_core::{Error, Result, now_millis, validate};

use super::SqlStore;
use super::audit::{On, grant_id, kind};
use crate::db::{Bind, Conn, Row, Sql};

const USER_COLUMNS: &str = "id, username, is_admin, password_hash IS NULL";
const TOKEN_COLUMNS: &str = "t.id, t.user_id, u.username, t.name, t.scope, t.creation_time, t.expiration_time, t.revoked_time";

fn user_not_found(username: &str) -> Error {
    Error::not_found(format!("User with username={username} not found"))
}

/// A `users` row selected with [`USER_COLUMNS`] first.
fn user(r: &Row) -> Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        is_admin: r.get(2)?,
        is_service: r.get(3)?,
    })
}

/// A token row selected with [`TOKEN_COLUMNS`] first.
fn token(r: &Row) -> Result<AccessToken> {
    let scope: String = r.get(4)?;
    Ok(AccessToken {
        id: r.get(0)?,
        user_id: r.get(1)?,
        username: r.get(2)?,
        name: r.get(3)?,
        scope: serde_json::from_str::<TokenScope>(&scope)
            .map_err(|e| Error::internal(format!("stored token scope is not JSON: {e}")))?,
        creation_time: r.get(5)?,
        expiration_time: r.get(6)?,
        revoked_time: r.get(7)?,
    })
}

/// Where grants on a kind of resource live.
struct Target {
    table: &'static str,
    column: &'static str,
    key: Bind,
    /// A statement counting the resource (1 when it exists).
    exists: &'static str,
}

fn target(resource: &Resource) -> Result<Target> {
    Ok(match resource {
        Resource::Experiment(id) => Target {
            table: "experiment_permissions",
            column: "experiment_id",
            key: Bind::I64(validate::experiment_id(id)?),
            exists: "SELECT count(*) FROM experiments WHERE experiment_id = ?",
        },
        Resource::RegisteredModel(name) => Target {
            table: "registered_model_permissions",
            column: "name",
            key: Bind::Str(name.clone()),
            exists: "SELECT count(*) FROM registered_models WHERE name = ?",
        },
    })
}

fn resource_not_found(resource: &Resource) -> Error {
    match resource {
        Resource::Experiment(id) => Error::not_found(format!("No Experiment with id={id} exists")),
        Resource::RegisteredModel(name) => {
            Error::not_found(format!("Registered Model with name={name} not found"))
        }
    }
}

fn grant_not_found(resource: &Resource, username: &str) -> Error {
    match resource {
        Resource::Experiment(id) => Error::not_found(format!(
            "Experiment permission with experiment_id={id} and username={username} not found"
        )),
        Resource::RegisteredModel(name) => Error::not_found(format!(
            "Registered model permission with name={name} and username={username} not found"
        )),
    }
}

fn grant_exists(resource: &Resource, username: &str) -> Error {
    match resource {
        Resource::Experiment(id) => Error::already_exists(format!(
            "Experiment permission (experiment_id={id}, username={username}) already exists"
        )),
        Resource::RegisteredModel(name) => Error::already_exists(format!(
            "Registered model permission (name={name}, username={username}) already exists"
        )),
    }
}

/// The id of `username`, or `RESOURCE_DOES_NOT_EXIST`.
async fn user_id(c: &mut Conn<'_>, username: &str) -> Result<i64> {
    let sql = c
        .stmt("SELECT id FROM users WHERE username = ?")
        .arg(username);
    c.value(sql).await?.ok_or_else(|| user_not_found(username))
}

/// Whether the stored text names a level; an unknown one reads as none.
fn stored_permission(text: &str) -> Permission {
    Permission::parse(text).unwrap_or(Permission::NoPermissions)
}

/// SQL mapping a stored permission name (`{col}`) to its level, 0 for none.
fn level_of(col: &str) -> String {
    let arms: String = Permission::ALL
        .iter()
        .enumerate()
        .map(|(i, p)| format!(" WHEN '{}' THEN {i}", p.name()))
        .collect();
    format!("(CASE {col}{arms} ELSE 0 END)")
}

/// SQL for the level a user holds through roles on the resource of `kind` whose key is the
/// text expression `key`: in each of the user's roles, its grant naming the key, else its grant
/// on `*`; across roles, the highest (NULL when no role grants anything on it). Returned as
/// the text before and after the place of the user's id.
fn role_level_parts(kind: &str, key: &str) -> (String, String) {
    let level = |alias: &str, pattern: &str| {
        format!(
            "(SELECT {} FROM role_permissions {alias} WHERE {alias}.role_id = role_m.role_id AND {alias}.resource_type = '{kind}' AND {alias}.resource_pattern = {pattern})",
            level_of(&format!("{alias}.permission"))
        )
    };
    (
        format!(
            "(SELECT CAST(MAX(COALESCE({}, {})) AS BIGINT) FROM role_members role_m WHERE role_m.user_id = ",
            level("role_exact", key),
            level("role_any", "'*'")
        ),
        ")".to_string(),
    )
}

/// [`role_level_parts`] as one statement fragment with a `?` for the user's id.
fn role_level(kind: &str, key: &str) -> String {
    let (before, after) = role_level_parts(kind, key);
    format!("{before}?{after}")
}

/// Moves the roles' grants on a registered model to its new name.
pub(crate) async fn rename_role_patterns(c: &mut Conn<'_>, old: &str, new: &str) -> Result<()> {
    let sql = c
        .stmt("UPDATE role_permissions SET resource_pattern = ? WHERE resource_type = 'registered_model' AND resource_pattern = ? AND NOT EXISTS (SELECT 1 FROM role_permissions o WHERE o.role_id = role_permissions.role_id AND o.resource_type = 'registered_model' AND o.resource_pattern = ?)")
        .arg(new)
        .arg(old)
        .arg(new);
    c.exec(sql).await?;
    drop_role_patterns(c, old).await
}

/// Removes the roles' grants on a registered model by name.
pub(crate) async fn drop_role_patterns(c: &mut Conn<'_>, name: &str) -> Result<()> {
    let sql = c
        .stmt("DELETE FROM role_permissions WHERE resource_type = 'registered_model' AND resource_pattern = ?")
        .arg(name);
    c.exec(sql).await.map(|_| ())
}

fn role_not_found(id: i64) -> Error {
    Error::not_found(format!("Role with id={id} not found"))
}

/// A `role_permissions` row: id, role_id, resource_type, resource_pattern, permission.
fn role_permission(r: &Row) -> Result<RolePermission> {
    Ok(RolePermission {
        id: r.get(0)?,
        role_id: r.get(1)?,
        resource_type: r.get(2)?,
        resource_pattern: r.get(3)?,
        permission: stored_permission(&r.get::<String>(4)?),
    })
}

const ROLE_PERMISSION_COLUMNS: &str = "id, role_id, resource_type, resource_pattern, permission";

/// The roles with these ids (in the order of `sql`'s rows: id, name, description), each
/// with its permissions.
async fn roles(c: &mut Conn<'_>, sql: Sql) -> Result<Vec<Role>> {
    let mut out = Vec::new();
    for r in c.rows(sql).await? {
        let id: i64 = r.get(0)?;
        let perms = c
            .stmt(&format!(
                "SELECT {ROLE_PERMISSION_COLUMNS} FROM role_permissions WHERE role_id = ? ORDER BY id"
            ))
            .arg(id);
        let permissions = c
            .rows(perms)
            .await?
            .iter()
            .map(role_permission)
            .collect::<Result<_>>()?;
        out.push(Role {
            id,
            name: r.get(1)?,
            workspace: WORKSPACE,
            description: r.get(2)?,
            permissions,
        });
    }
    Ok(out)
}

pub(crate) async fn one_role(c: &mut Conn<'_>, id: i64) -> Result<Role> {
    let sql = c
        .stmt("SELECT id, name, description FROM roles WHERE id = ?")
        .arg(id);
    roles(c, sql).await?.pop().ok_or_else(|| role_not_found(id))
}

/// Appends to a search's `WHERE` clause: only the resources whose key (the column `key`, an
/// experiment id or a model name) `reader` may read. A user's own grant decides; without one,
/// the default permission does; a token's scope narrows that to the keys it lists.
pub(crate) fn push_readable(sql: &mut Sql, resource_kind: &str, key: &str, reader: &Reader) {
    let experiment = resource_kind == "experiment";
    if let Some(only) = &reader.only {
        let keys: Vec<Bind> = only
            .iter()
            .filter_map(|k| match experiment {
                true => k.parse::<i64>().ok().map(Bind::I64),
                false => Some(Bind::Str(k.clone())),
            })
            .collect();
        if keys.is_empty() {
            sql.push(" AND 1 = 0");
        } else {
            sql.push(&format!(" AND {key} IN ("));
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(k);
            }
            sql.push(")");
        }
    }
    if reader.admin {
        return;
    }
    let (table, column, text_key) = match experiment {
        true => (
            "experiment_permissions",
            "experiment_id",
            format!("CAST({key} AS TEXT)"),
        ),
        false => ("registered_model_permissions", "name", key.to_string()),
    };
    let read = Permission::ALL
        .iter()
        .position(|p| *p == Permission::Read)
        .unwrap_or(1);
    let readable: Vec<String> = Permission::ALL
        .iter()
        .filter(|p| p.allows(Permission::Read))
        .map(|p| format!("'{}'", p.name()))
        .collect();
    // The user's own grant decides; without one, the best of their roles' grants; without
    // any, the default.
    let (before, after) = role_level_parts(resource_kind, &text_key);
    sql.push(&format!(
        " AND (EXISTS (SELECT 1 FROM {table} g WHERE g.{column} = {key} AND g.user_id = "
    ))
    .bind(reader.user_id)
    .push(&format!(" AND g.permission IN ({}))", readable.join(", ")))
    .push(&format!(
        " OR (NOT EXISTS (SELECT 1 FROM {table} g WHERE g.{column} = {key} AND g.user_id = "
    ))
    .bind(reader.user_id)
    .push(") AND (COALESCE(")
    .push(&before)
    .bind(reader.user_id)
    .push(&after)
    .push(&format!(", -1) >= {read} OR ("))
    .bind(reader.default_read)
    .push(" AND ")
    .push(&before)
    .bind(reader.user_id)
    .push(&after)
    .push(" IS NULL))))");
}

#[async_trait::async_trait]
impl AuthStore for SqlStore {
    async fn create_user(
        &self,
        username: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> Result<User> {
        let username = username.to_string();
        let hash = password_hash.map(str::to_string);
        self.write(On::Created(kind::USER, |u: &User| u.username.clone()), move |mut c| {
                Box::pin(async move {
                    let sql = c
                        .stmt("INSERT INTO users (username, password_hash, is_admin, creation_time) VALUES (?, ?, ?, ?) RETURNING id")
                        .arg(&username)
                        .arg(hash.clone())
                        .arg(is_admin)
                        .arg(now_millis());
                    let conflict =
                        || Error::already_exists(format!("User (username={username}) already exists."));
                    let id: i64 = c
                        .value_unique(sql, conflict)
                        .await?
                        .ok_or_else(|| Error::internal("no id for the new user"))?;
                    Ok(User {
                        id,
                        username: username.clone(),
                        is_admin,
                        is_service: hash.is_none(),
                    })
                })
            })
            .await
    }

    async fn user_credentials(&self, username: &str) -> Result<Option<(User, Option<String>)>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt(&format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = ?"
            ))
            .arg(username);
        match c.row(sql).await? {
            Some(row) => Ok(Some((user(&row)?, row.get(4)?))),
            None => Ok(None),
        }
    }

    async fn get_user(&self, username: &str) -> Result<User> {
        self.user_credentials(username)
            .await?
            .map(|(u, _)| u)
            .ok_or_else(|| user_not_found(username))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ));
        c.rows(sql).await?.iter().map(user).collect()
    }

    async fn update_user_password(&self, username: &str, password_hash: &str) -> Result<()> {
        let (username, hash) = (username.to_string(), password_hash.to_string());
        self.write(On::subject(kind::USER, username.clone()), move |mut c| {
            Box::pin(async move {
                let sql = c
                    .stmt("UPDATE users SET password_hash = ? WHERE username = ?")
                    .arg(&hash)
                    .arg(&username);
                match c.exec(sql).await? {
                    0 => Err(user_not_found(&username)),
                    _ => Ok(()),
                }
            })
        })
        .await
    }

    async fn update_user_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let username = username.to_string();
        self.write(On::subject(kind::USER, username.clone()), move |mut c| {
            Box::pin(async move {
                let sql = c
                    .stmt("UPDATE users SET is_admin = ? WHERE username = ?")
                    .arg(is_admin)
                    .arg(&username);
                match c.exec(sql).await? {
                    0 => Err(user_not_found(&username)),
                    _ => Ok(()),
                }
            })
        })
        .await
    }

    async fn delete_user(&self, username: &str) -> Result<()> {
        let username = username.to_string();
        self.write(On::subject(kind::USER, username.clone()), move |mut c| {
            Box::pin(async move {
                let sql = c
                    .stmt("DELETE FROM users WHERE username = ?")
                    .arg(&username);
                match c.exec(sql).await? {
                    0 => Err(user_not_found(&username)),
                    _ => Ok(()),
                }
            })
        })
        .await
    }

    async fn count_users(&self) -> Result<u64> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt("SELECT count(*) FROM users");
        Ok(c.value::<i64>(sql).await?.unwrap_or(0).max(0) as u64)
    }

    async fn put_grant(
        &self,
        resource: &Resource,
        username: &str,
        permission: Permission,
        mode: GrantWrite,
    ) -> Result<Grant> {
        let t = target(resource)?;
        let (resource, username) = (resource.clone(), username.to_string());
        self.write(
            On::subject(
                kind::GRANT,
                grant_id(resource.kind(), resource.key(), &username),
            ),
            move |mut c| {
                Box::pin(async move {
                    let uid = user_id(&mut c, &username).await?;
                    let exists = c.stmt(t.exists).arg(t.key.clone());
                    if c.value::<i64>(exists).await?.unwrap_or(0) == 0 {
                        return Err(resource_not_found(&resource));
                    }
                    let update = c
                        .stmt(&format!(
                            "UPDATE {} SET permission = ? WHERE {} = ? AND user_id = ?",
                            t.table, t.column
                        ))
                        .arg(permission.name())
                        .arg(t.key.clone())
                        .arg(uid);
                    let updated = match mode {
                        GrantWrite::Create => false,
                        GrantWrite::Update | GrantWrite::Upsert => c.exec(update).await? > 0,
                    };
                    match (mode, updated) {
                        (GrantWrite::Update, false) => {
                            return Err(grant_not_found(&resource, &username));
                        }
                        (GrantWrite::Create, _) | (GrantWrite::Upsert, false) => {
                            let insert = c
                                .stmt(&format!(
                                    "INSERT INTO {} ({}, user_id, permission) VALUES (?, ?, ?)",
                                    t.table, t.column
                                ))
                                .arg(t.key.clone())
                                .arg(uid)
                                .arg(permission.name());
                            c.exec_unique(insert, || grant_exists(&resource, &username))
                                .await?;
                        }
                        _ => {}
                    }
                    Ok(Grant {
                        resource,
                        user_id: uid,
                        permission,
                    })
                })
            },
        )
        .await
    }

    async fn get_grant(&self, resource: &Resource, username: &str) -> Result<Grant> {
        let t = target(resource)?;
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let uid = user_id(&mut c, username).await?;
        let sql = c
            .stmt(&format!(
                "SELECT permission FROM {} WHERE {} = ? AND user_id = ?",
                t.table, t.column
            ))
            .arg(t.key)
            .arg(uid);
        let permission: String = c
            .value(sql)
            .await?
            .ok_or_else(|| grant_not_found(resource, username))?;
        Ok(Grant {
            resource: resource.clone(),
            user_id: uid,
            permission: stored_permission(&permission),
        })
    }

    async fn delete_grant(&self, resource: &Resource, username: &str) -> Result<()> {
        let t = target(resource)?;
        let (resource, username) = (resource.clone(), username.to_string());
        self.write(
            On::subject(
                kind::GRANT,
                grant_id(resource.kind(), resource.key(), &username),
            ),
            move |mut c| {
                Box::pin(async move {
                    let uid = user_id(&mut c, &username).await?;
                    let sql = c
                        .stmt(&format!(
                            "DELETE FROM {} WHERE {} = ? AND user_id = ?",
                            t.table, t.column
                        ))
                        .arg(t.key)
                        .arg(uid);
                    match c.exec(sql).await? {
                        0 => Err(grant_not_found(&resource, &username)),
                        _ => Ok(()),
                    }
                })
            },
        )
        .await
    }

    async fn resolve(
        &self,
        user_id: i64,
        subject: &Subject,
    ) -> Result<Option<(Resource, Option<Permission>)>> {
        // A row of `from` found by its `key` column, with its experiment, the user's grant on
        // that experiment and the level their roles give there.
        let experiment = |from: &str, key: &str| {
            format!(
                "SELECT CAST(x.experiment_id AS TEXT), p.permission, {} FROM {from} x LEFT JOIN experiment_permissions p ON p.experiment_id = x.experiment_id AND p.user_id = ? WHERE x.{key} = ?",
                role_level("experiment", "CAST(x.experiment_id AS TEXT)")
            )
        };
        let (text, key, experiment) = match subject {
            Subject::Experiment(id) => match validate::experiment_id(id) {
                Ok(id) => (
                    experiment("experiments", "experiment_id"),
                    Bind::I64(id),
                    true,
                ),
                // An id that cannot name an experiment names none.
                Err(_) => return Ok(None),
            },
            Subject::ExperimentName(name) => (
                experiment("experiments", "name"),
                Bind::Str(name.clone()),
                true,
            ),
            Subject::Run(id) => (experiment("runs", "run_uuid"), Bind::Str(id.clone()), true),
            Subject::LoggedModel(id) => (
                experiment("logged_models", "model_id"),
                Bind::Str(id.clone()),
                true,
            ),
            Subject::RegisteredModel(name) => (
                format!(
                    "SELECT x.name, p.permission, {} FROM registered_models x LEFT JOIN registered_model_permissions p ON p.name = x.name AND p.user_id = ? WHERE x.name = ?",
                    role_level("registered_model", "x.name")
                ),
                Bind::Str(name.clone()),
                false,
            ),
        };
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt(&text).arg(user_id).arg(user_id).arg(key);
        let Some(row) = c.row(sql).await? else {
            return Ok(None);
        };
        let owner: String = row.get(0)?;
        let resource = if experiment {
            Resource::Experiment(owner)
        } else {
            Resource::RegisteredModel(owner)
        };
        let granted: Option<String> = row.get(1)?;
        let by_roles: Option<i64> = row.get(2)?;
        let held = match (granted, by_roles) {
            (Some(p), _) => Some(stored_permission(&p)),
            (None, Some(level)) => Permission::ALL.get(level.max(0) as usize).copied(),
            (None, None) => None,
        };
        Ok(Some((resource, held)))
    }

    async fn list_grants(&self, username: &str) -> Result<Vec<Grant>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let uid = user_id(&mut c, username).await?;
        let sql = c
            .stmt("SELECT 'experiment', CAST(experiment_id AS TEXT), permission FROM experiment_permissions WHERE user_id = ? UNION ALL SELECT 'registered_model', name, permission FROM registered_model_permissions WHERE user_id = ? ORDER BY 1, 2")
            .arg(uid)
            .arg(uid);
        c.rows(sql)
            .await?
            .iter()
            .map(|r| {
                Ok(Grant {
                    resource: Resource::parse(&r.get::<String>(0)?, &r.get::<String>(1)?)?,
                    user_id: uid,
                    permission: stored_permission(&r.get::<String>(2)?),
                })
            })
            .collect()
    }

    async fn create_role(&self, name: &str, description: Option<&str>) -> Result<Role> {
        let (name, description) = (name.to_string(), description.map(str::to_string));
        self.write(
            On::Created(kind::ROLE, |r: &Role| r.id.to_string()),
            move |mut c| {
                Box::pin(async move {
                    let sql = c
                        .stmt("INSERT INTO roles (name, description) VALUES (?, ?) RETURNING id")
                        .arg(&name)
                        .arg(description.clone());
                    let taken =
                        || Error::already_exists(format!("Role (name={name}) already exists."));
                    let id: i64 = c
                        .value_unique(sql, taken)
                        .await?
                        .ok_or_else(|| Error::internal("no id for the new role"))?;
                    Ok(Role {
                        id,
                        name: name.clone(),
                        workspace: WORKSPACE,
                        description,
                        permissions: Vec::new(),
                    })
                })
            },
        )
        .await
    }

    async fn get_role(&self, id: i64) -> Result<Role> {
        one_role(&mut self.db.reader().await?.conn(), id).await
    }

    async fn list_roles(&self) -> Result<Vec<Role>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt("SELECT id, name, description FROM roles ORDER BY name");
        roles(&mut c, sql).await
    }

    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role> {
        let (name, description) = (name.map(str::to_string), description.map(str::to_string));
        self.write(On::subject(kind::ROLE, id.to_string()), move |mut c| {
            Box::pin(async move {
                one_role(&mut c, id).await?;
                if let Some(d) = &description {
                    let sql = c
                        .stmt("UPDATE roles SET description = ? WHERE id = ?")
                        .arg(d)
                        .arg(id);
                    c.exec(sql).await?;
                }
                if let Some(n) = &name {
                    let sql = c
                        .stmt("UPDATE roles SET name = ? WHERE id = ?")
                        .arg(n)
                        .arg(id);
                    let taken =
                        || Error::already_exists(format!("Role (name={n}) already exists."));
                    c.exec_unique(sql, taken).await?;
                }
                one_role(&mut c, id).await
            })
        })
        .await
    }

    async fn delete_role(&self, id: i64) -> Result<()> {
        self.write(On::subject(kind::ROLE, id.to_string()), move |mut c| {
            Box::pin(async move {
                let sql = c.stmt("DELETE FROM roles WHERE id = ?").arg(id);
                match c.exec(sql).await? {
                    0 => Err(role_not_found(id)),
                    _ => Ok(()),
                }
            })
        })
        .await
    }

    async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        pattern: &str,
        permission: Permission,
    ) -> Result<RolePermission> {
        let (kind, pattern) = (resource_type.to_string(), pattern.to_string());
        self.write(On::subject(kind::ROLE, role_id.to_string()), move |mut c| {
                Box::pin(async move {
                    one_role(&mut c, role_id).await?;
                    let sql = c
                        .stmt(&format!("INSERT INTO role_permissions (role_id, resource_type, resource_pattern, permission) VALUES (?, ?, ?, ?) RETURNING {ROLE_PERMISSION_COLUMNS}"))
                        .arg(role_id)
                        .arg(&kind)
                        .arg(&pattern)
                        .arg(permission.name());
                    let taken = || {
                        Error::already_exists(format!(
                            "Role {role_id} already has a permission on {kind} '{pattern}'"
                        ))
                    };
                    let id: i64 = c
                        .value_unique(sql, taken)
                        .await?
                        .ok_or_else(|| Error::internal("no id for the new role permission"))?;
                    Ok(RolePermission {
                        id,
                        role_id,
                        resource_type: kind.clone(),
                        resource_pattern: pattern.clone(),
                        permission,
                    })
                })
            })
            .await
    }

    async fn update_role_permission(
        &self,
        id: i64,
        permission: Permission,
    ) -> Result<RolePermission> {
        self.write(On::Bare(kind::ROLE_PERMISSION, id.to_string()), move |mut c| {
                Box::pin(async move {
                    let sql = c
                        .stmt(&format!("UPDATE role_permissions SET permission = ? WHERE id = ? RETURNING {ROLE_PERMISSION_COLUMNS}"))
                        .arg(permission.name())
                        .arg(id);
                    c.row(sql)
                        .await?
                        .as_ref()
                        .map(role_permission)
                        .transpose()?
                        .ok_or_else(|| {
                            Error::not_found(format!("Role permission with id={id} not found"))
                        })
                })
            })
            .await
    }

    async fn remove_role_permission(&self, id: i64) -> Result<()> {
        self.write(
            On::Bare(kind::ROLE_PERMISSION, id.to_string()),
            move |mut c| {
                Box::pin(async move {
                    let sql = c.stmt("DELETE FROM role_permissions WHERE id = ?").arg(id);
                    match c.exec(sql).await? {
                        0 => Err(Error::not_found(format!(
                            "Role permission with id={id} not found"
                        ))),
                        _ => Ok(()),
                    }
                })
            },
        )
        .await
    }

    async fn assign_role(&self, username: &str, role_id: i64) -> Result<RoleAssignment> {
        let username = username.to_string();
        self.write(On::subject(kind::ROLE, role_id.to_string()), move |mut c| {
                Box::pin(async move {
                    let uid = user_id(&mut c, &username).await?;
                    one_role(&mut c, role_id).await?;
                    let sql = c
                        .stmt("INSERT INTO role_members (role_id, user_id) VALUES (?, ?) RETURNING id")
                        .arg(role_id)
                        .arg(uid);
                    let taken = || {
                        Error::already_exists(format!(
                            "User {username} is already assigned to role {role_id}"
                        ))
                    };
                    let id: i64 = c
                        .value_unique(sql, taken)
                        .await?
                        .ok_or_else(|| Error::internal("no id for the new assignment"))?;
                    Ok(RoleAssignment {
                        id,
                        user_id: uid,
                        role_id,
                    })
                })
            })
            .await
    }

    async fn unassign_role(&self, username: &str, role_id: i64) -> Result<()> {
        let username = username.to_string();
        self.write(
            On::subject(kind::ROLE, role_id.to_string()),
            move |mut c| {
                Box::pin(async move {
                    let uid = user_id(&mut c, &username).await?;
                    let sql = c
                        .stmt("DELETE FROM role_members WHERE role_id = ? AND user_id = ?")
                        .arg(role_id)
                        .arg(uid);
                    match c.exec(sql).await? {
                        0 => Err(Error::not_found(format!(
                            "User {username} is not assigned to role {role_id}"
                        ))),
                        _ => Ok(()),
                    }
                })
            },
        )
        .await
    }

    async fn user_roles(&self, username: &str) -> Result<Vec<Role>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let uid = user_id(&mut c, username).await?;
        let sql = c
            .stmt("SELECT r.id, r.name, r.description FROM roles r JOIN role_members m ON m.role_id = r.id WHERE m.user_id = ? ORDER BY r.name")
            .arg(uid);
        roles(&mut c, sql).await
    }

    async fn role_users(&self, role_id: i64) -> Result<Vec<RoleAssignment>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        one_role(&mut c, role_id).await?;
        let sql = c
            .stmt("SELECT id, user_id, role_id FROM role_members WHERE role_id = ? ORDER BY id")
            .arg(role_id);
        c.rows(sql)
            .await?
            .iter()
            .map(|r| {
                Ok(RoleAssignment {
                    id: r.get(0)?,
                    user_id: r.get(1)?,
                    role_id: r.get(2)?,
                })
            })
            .collect()
    }

    async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expiration_time: i64,
    ) -> Result<()> {
        let (id_hash, csrf) = (id_hash.to_string(), csrf.to_string());
        self.write(On::Bare(kind::SESSION, id_hash.chars().take(12).collect::<String>()), move |mut c| {
                Box::pin(async move {
                    let now = now_millis();
                    let expired = c
                        .stmt("DELETE FROM sessions WHERE expiration_time < ?")
                        .arg(now);
                    c.exec(expired).await?;
                    let sql = c
                        .stmt("INSERT INTO sessions (id_hash, user_id, csrf, creation_time, expiration_time) VALUES (?, ?, ?, ?, ?)")
                        .arg(&id_hash)
                        .arg(user_id)
                        .arg(&csrf)
                        .arg(now)
                        .arg(expiration_time);
                    c.exec(sql).await.map(|_| ())
                })
            })
            .await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<Session>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt("SELECT u.id, u.username, u.is_admin, u.password_hash IS NULL, s.csrf, s.expiration_time FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = ?")
            .arg(id_hash);
        match c.row(sql).await? {
            Some(row) => Ok(Some(Session {
                user: user(&row)?,
                csrf: row.get(4)?,
                expiration_time: row.get(5)?,
            })),
            None => Ok(None),
        }
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let id_hash = id_hash.to_string();
        self.write(
            On::Bare(kind::SESSION, id_hash.chars().take(12).collect::<String>()),
            move |mut c| {
                Box::pin(async move {
                    let sql = c
                        .stmt("DELETE FROM sessions WHERE id_hash = ?")
                        .arg(&id_hash);
                    c.exec(sql).await.map(|_| ())
                })
            },
        )
        .await
    }

    async fn create_token(&self, t: NewToken) -> Result<AccessToken> {
        let scope = serde_json::to_string(&t.scope)
            .map_err(|e| Error::internal(format!("token scope: {e}")))?;
        self.write(On::Created(kind::TOKEN, |t: &AccessToken| t.id.clone()), move |mut c| {
                Box::pin(async move {
                    let now = now_millis();
                    let sql = c
                        .stmt("INSERT INTO access_tokens (id, user_id, name, hash, scope, creation_time, expiration_time) VALUES (?, ?, ?, ?, ?, ?, ?)")
                        .arg(&t.id)
                        .arg(t.user_id)
                        .arg(&t.name)
                        .arg(&t.hash)
                        .arg(&scope)
                        .arg(now)
                        .arg(t.expiration_time);
                    c.exec(sql).await?;
                    let owner = c
                        .stmt("SELECT username FROM users WHERE id = ?")
                        .arg(t.user_id);
                    let username: String = c
                        .value(owner)
                        .await?
                        .ok_or_else(|| Error::not_found("The token's user does not exist"))?;
                    Ok(AccessToken {
                        id: t.id,
                        user_id: t.user_id,
                        username,
                        name: t.name,
                        scope: t.scope,
                        creation_time: now,
                        expiration_time: t.expiration_time,
                        revoked_time: None,
                    })
                })
            })
            .await
    }

    async fn token(&self, id: &str) -> Result<Option<(AccessToken, String)>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt(&format!(
                "SELECT {TOKEN_COLUMNS}, t.hash FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?"
            ))
            .arg(id);
        match c.row(sql).await? {
            Some(row) => Ok(Some((token(&row)?, row.get(8)?))),
            None => Ok(None),
        }
    }

    async fn list_tokens(&self, user_id: i64) -> Result<Vec<AccessToken>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt(&format!(
                "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.user_id = ? ORDER BY t.creation_time DESC, t.id"
            ))
            .arg(user_id);
        c.rows(sql).await?.iter().map(token).collect()
    }

    async fn revoke_token(&self, id: &str, user_id: Option<i64>) -> Result<()> {
        let id = id.to_string();
        self.write(On::subject(kind::TOKEN, id.clone()), move |mut c| {
            Box::pin(async move {
                let mut sql = c.sql();
                sql.push("UPDATE access_tokens SET revoked_time = ")
                    .bind(now_millis())
                    .push(" WHERE id = ")
                    .bind(id.clone())
                    .push(" AND revoked_time IS NULL");
                if let Some(uid) = user_id {
                    sql.push(" AND user_id = ").bind(uid);
                }
                match c.exec(sql).await? {
                    0 => Err(Error::not_found(format!(
                        "No live access token with id={id}"
                    ))),
                    _ => Ok(()),
                }
            })
        })
        .await
    }
}
