//! The model registry: registered models, versions, tags, aliases and stages.
//!
//! Every write that belongs to a registered model takes its row lock first (on PostgreSQL;
//! SQLite's one writer already runs writes one at a time), so versions, stages and aliases
//! change one writer at a time per model, from any number of servers, and version numbers stay
//! unique and gapless.

use std::collections::{BTreeSet, HashMap};

use keel_core::RegistryStore;
use keel_core::entities::*;
use keel_core::store::{CreateModelVersion, Page, SearchRegistry};
use keel_core::{Error, Result, now_millis};

use super::audit::{On, kind, version_id};
use super::{SqlStore, paging};
use crate::db::{Bind, Conn, Lock, Sql};
use crate::search;

const VERSION_COLUMNS: &str = "v.name, v.version, v.creation_time, v.last_updated_time, v.description, v.user_id, v.current_stage, v.source, v.run_id, v.run_link, v.status, v.status_message, v.model_id";

fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: i64) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

fn model_exists(name: &str) -> Error {
    Error::already_exists(format!("Registered Model (name={name}) already exists."))
}

/// A version number from the wire: a positive integer.
fn version_number(version: &str) -> Result<i64> {
    version
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Parameter 'version' must be an integer, got '{version}'."
            ))
        })
}

/// Runs a `SELECT {VERSION_COLUMNS} FROM model_versions v ...` query and attaches tags and aliases.
async fn load_versions(c: &mut Conn<'_>, sql: Sql) -> Result<Vec<ModelVersion>> {
    let rows = c.rows(sql).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(ModelVersion {
            name: r.get(0)?,
            version: r.get_id(1)?,
            creation_timestamp: r.get(2)?,
            last_updated_timestamp: r.get(3)?,
            description: r.get(4)?,
            user_id: r.get(5)?,
            current_stage: r.get(6)?,
            source: r.get(7)?,
            run_id: r.get(8)?,
            run_link: r.get(9)?,
            status: r.get(10)?,
            status_message: r.get(11)?,
            model_id: r.get(12)?,
            tags: Vec::new(),
            aliases: Vec::new(),
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let names: BTreeSet<String> = out.iter().map(|v| v.name.clone()).collect();
    let index: HashMap<(String, String), usize> = out
        .iter()
        .enumerate()
        .map(|(i, v)| ((v.name.clone(), v.version.clone()), i))
        .collect();
    for (q, is_tag) in [
        (
            "SELECT name, version, key, value FROM model_version_tags WHERE name IN ",
            true,
        ),
        (
            "SELECT name, version, alias, '' FROM registered_model_aliases WHERE name IN ",
            false,
        ),
    ] {
        let mut s = c.sql();
        s.push(q);
        s.bind_list(names.iter().map(|n| Bind::Str(n.clone())));
        s.push(" ORDER BY 3");
        for r in c.rows(s).await? {
            if let Some(&i) = index.get(&(r.get::<String>(0)?, r.get_id(1)?)) {
                let k: String = r.get(2)?;
                if is_tag {
                    out[i].tags.push(Tag::new(k, r.get::<String>(3)?));
                } else {
                    out[i].aliases.push(k);
                }
            }
        }
    }
    Ok(out)
}

/// Points `alias` of `name` at version `v` (recording the change), whatever protects it: the
/// caller has checked that it may.
pub(crate) async fn move_alias(c: &mut Conn<'_>, name: &str, alias: &str, v: i64) -> Result<()> {
    lock_model(c, name, true).await?;
    version(c, name, v).await?;
    if alias_version(c, name, alias).await? == Some(v) {
        return Ok(());
    }
    let sql = c
        .stmt("INSERT INTO registered_model_aliases (name, alias, version) VALUES (?, ?, ?) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version")
        .arg(name)
        .arg(alias)
        .arg(v);
    c.exec(sql).await?;
    alias_changed(c, name, alias, Some(v)).await
}

pub(crate) async fn version(c: &mut Conn<'_>, name: &str, version: i64) -> Result<ModelVersion> {
    let mut sql = c.sql();
    sql.push(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.name = "
    ))
    .bind_str(name)
    .push(" AND v.version = ")
    .bind(Bind::I64(version));
    load_versions(c, sql)
        .await?
        .pop()
        .ok_or_else(|| version_not_found(name, version))
}

/// The newest version in each stage (of `stages`, or of all).
async fn latest(c: &mut Conn<'_>, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
    let mut sql = c.sql();
    sql.push(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.name = "
    ));
    sql.bind_str(name);
    sql.push(" AND v.version = (SELECT MAX(w.version) FROM model_versions w WHERE w.name = v.name AND w.current_stage = v.current_stage)");
    if !stages.is_empty() {
        sql.push(" AND v.current_stage IN ");
        sql.bind_list(stages.iter().map(|s| Bind::Str(s.clone())));
    }
    sql.push(" ORDER BY v.version");
    load_versions(c, sql).await
}

/// Loads registered models (with latest versions, tags, aliases) in `names` order.
async fn models(c: &mut Conn<'_>, names: &[String]) -> Result<Vec<RegisteredModel>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let sql = c
            .stmt("SELECT name, creation_time, last_updated_time, description, user_id FROM registered_models WHERE name = ?")
            .arg(name);
        let Some(r) = c.row(sql).await? else {
            continue;
        };
        let sql = c
            .stmt("SELECT key, value FROM registered_model_tags WHERE name = ? ORDER BY key")
            .arg(name);
        let tags = c
            .rows(sql)
            .await?
            .iter()
            .map(|t| Ok(Tag::new(t.get::<String>(0)?, t.get::<String>(1)?)))
            .collect::<Result<Vec<_>>>()?;
        let sql = c
            .stmt(
                "SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias",
            )
            .arg(name);
        let aliases = c
            .rows(sql)
            .await?
            .iter()
            .map(|a| {
                Ok(Alias {
                    alias: a.get(0)?,
                    version: a.get_id(1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(RegisteredModel {
            name: r.get(0)?,
            creation_timestamp: r.get(1)?,
            last_updated_timestamp: r.get(2)?,
            description: r.get(3)?,
            user_id: r.get(4)?,
            latest_versions: latest(c, name, &[]).await?,
            tags,
            aliases,
        });
    }
    Ok(out)
}

pub(crate) async fn model(c: &mut Conn<'_>, name: &str) -> Result<RegisteredModel> {
    models(c, &[name.to_string()])
        .await?
        .pop()
        .ok_or_else(|| model_not_found(name))
}

/// Locks the model's row for this write unit (every registry write takes this lock first, so
/// writers of one model queue instead of deadlocking) and, with `touch`, marks it updated.
async fn lock_model(c: &mut Conn<'_>, name: &str, touch: bool) -> Result<()> {
    let sql = if touch {
        c.stmt("UPDATE registered_models SET last_updated_time = ? WHERE name = ? RETURNING 1")
            .arg(now_millis())
            .arg(name)
    } else {
        let lock = c.lock(Lock::Update);
        c.stmt(&format!(
            "SELECT 1 FROM registered_models WHERE name = ?{lock}"
        ))
        .arg(name)
    };
    match c.row(sql).await? {
        Some(_) => Ok(()),
        None => Err(model_not_found(name)),
    }
}

/// Checks the version exists (with the not-found message for a version), locks its model and
/// marks the version updated.
async fn lock_version(c: &mut Conn<'_>, name: &str, v: i64) -> Result<()> {
    version(c, name, v).await?;
    lock_model(c, name, false).await?;
    let sql = c
        .stmt("UPDATE model_versions SET last_updated_time = ? WHERE name = ? AND version = ?")
        .arg(now_millis())
        .arg(name)
        .arg(v);
    c.exec(sql).await?;
    Ok(())
}

/// Where a new version's files are: a logged model's or a run's artifact location, or the
/// location of the version a `models:/<name>/<version>` source names; the source itself when
/// it names nothing this store holds (a run of another tracking server, a plain URI).
pub(crate) async fn storage_location(c: &mut Conn<'_>, source: &str) -> Result<String> {
    if let Some(rest) = source.strip_prefix("models:/") {
        let found: Option<String> = match rest.split_once('/') {
            None => {
                let sql = c
                    .stmt("SELECT artifact_location FROM logged_models WHERE model_id = ?")
                    .arg(rest);
                c.value(sql).await?
            }
            Some((name, version)) => match version.parse::<i64>() {
                Ok(v) => {
                    let sql = c
                        .stmt("SELECT storage_location FROM model_versions WHERE name = ? AND version = ?")
                        .arg(name)
                        .arg(v);
                    c.value(sql).await?
                }
                Err(_) => None,
            },
        };
        if let Some(loc) = found {
            return Ok(loc);
        }
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let sql = c
            .stmt("SELECT artifact_uri FROM runs WHERE run_uuid = ?")
            .arg(run_id);
        let Some(artifact_uri) = c.value::<String>(sql).await? else {
            return Ok(source.to_string());
        };
        return Ok(if path.is_empty() {
            artifact_uri
        } else {
            format!("{}/{}", artifact_uri, path.trim_matches('/'))
        });
    }
    Ok(source.to_string())
}

/// Inserts or replaces a registered model's tag.
fn set_model_tag(c: &Conn<'_>, name: &str, tag: &Tag) -> Sql {
    c.stmt("INSERT INTO registered_model_tags (name, key, value) VALUES (?, ?, ?) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
        .arg(name)
        .arg(&tag.key)
        .arg(&tag.value)
}

/// Inserts or replaces a model version's tag.
fn set_version_tag(c: &Conn<'_>, name: &str, version: i64, tag: &Tag) -> Sql {
    c.stmt("INSERT INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
        .arg(name)
        .arg(version)
        .arg(&tag.key)
        .arg(&tag.value)
}

#[async_trait::async_trait]
impl RegistryStore for SqlStore {
    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<Tag>,
        description: &str,
    ) -> Result<RegisteredModel> {
        let (name, description) = (name.to_string(), description.to_string());
        self.write(On::Created(kind::REGISTERED_MODEL, |m: &RegisteredModel| m.name.clone()), move |mut c| {
                Box::pin(async move {
                    let now = now_millis();
                    let sql = c
                        .stmt("INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES (?, ?, ?, ?)")
                        .arg(&name)
                        .arg(now)
                        .arg(now)
                        .arg(&description);
                    c.exec_unique(sql, || model_exists(&name)).await?;
                    for t in &tags {
                        let sql = set_model_tag(&c, &name, t);
                        c.exec(sql).await?;
                    }
                    model(&mut c, &name).await
                })
            })
            .await
    }

    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        model(&mut self.db.reader().await?.conn(), name).await
    }

    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        let (name, new_name) = (name.to_string(), new_name.to_string());
        self.write(
            On::Renamed(kind::REGISTERED_MODEL, name.clone(), new_name.clone()),
            move |mut c| {
                Box::pin(async move {
                    lock_model(&mut c, &name, true).await?;
                    let sql = c
                        .stmt("UPDATE registered_models SET name = ? WHERE name = ?")
                        .arg(&new_name)
                        .arg(&name);
                    c.exec_unique(sql, || model_exists(&new_name)).await?;
                    super::auth::rename_role_patterns(&mut c, &name, &new_name).await?;
                    model(&mut c, &new_name).await
                })
            },
        )
        .await
    }

    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        let (name, description) = (name.to_string(), description.to_string());
        self.write(
            On::subject(kind::REGISTERED_MODEL, name.clone()),
            move |mut c| {
                Box::pin(async move {
                    lock_model(&mut c, &name, true).await?;
                    let sql = c
                        .stmt("UPDATE registered_models SET description = ? WHERE name = ?")
                        .arg(&description)
                        .arg(&name);
                    c.exec(sql).await?;
                    model(&mut c, &name).await
                })
            },
        )
        .await
    }

    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(
            On::subject(kind::REGISTERED_MODEL, name.clone()),
            move |mut c| {
                Box::pin(async move {
                    super::approvals::check_model(&mut c, &name).await?;
                    let sql = c
                        .stmt("DELETE FROM registered_models WHERE name = ?")
                        .arg(&name);
                    if c.exec(sql).await? == 0 {
                        return Err(model_not_found(&name));
                    }
                    // A later model of this name starts without the roles' grants.
                    super::auth::drop_role_patterns(&mut c, &name).await
                })
            },
        )
        .await
    }

    async fn search_registered_models(&self, q: SearchRegistry) -> Result<Page<RegisteredModel>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut sql = c.sql();
        sql.push("SELECT m.name FROM registered_models m WHERE 1 = 1");
        search::registry_where(&mut sql, &q.filter, false);
        if let Some(reader) = &q.reader {
            super::auth::push_readable(&mut sql, "registered_model", "m.name", reader);
        }
        sql.push(" ORDER BY ")
            .push(&search::registry_order(&q.order_by, false));
        let (names, more) =
            paging::page_ids::<String>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            models(&mut c, &names).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }

    async fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        model(&mut c, name).await?;
        latest(&mut c, name, stages).await
    }

    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        let name = name.to_string();
        self.write(
            On::subject(kind::REGISTERED_MODEL, name.clone()),
            move |mut c| {
                Box::pin(async move {
                    lock_model(&mut c, &name, true).await?;
                    let sql = set_model_tag(&c, &name, &tag);
                    c.exec(sql).await?;
                    Ok(())
                })
            },
        )
        .await
    }

    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let (name, key) = (name.to_string(), key.to_string());
        self.write(
            On::subject(kind::REGISTERED_MODEL, name.clone()),
            move |mut c| {
                Box::pin(async move {
                    lock_model(&mut c, &name, true).await?;
                    let sql = c
                        .stmt("DELETE FROM registered_model_tags WHERE name = ? AND key = ?")
                        .arg(&name)
                        .arg(&key);
                    c.exec(sql).await?;
                    Ok(())
                })
            },
        )
        .await
    }

    async fn set_alias(&self, name: &str, alias: &str, version_str: &str) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        let v = version_number(version_str)?;
        self.write(
            On::subject(kind::REGISTERED_MODEL, name.clone()),
            move |mut c| {
                Box::pin(async move {
                    super::approvals::check_alias(&mut c, &name, &alias, "moving it").await?;
                    move_alias(&mut c, &name, &alias, v).await
                })
            },
        )
        .await
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.write(
            On::subject(kind::REGISTERED_MODEL, name.clone()),
            move |mut c| {
                Box::pin(async move {
                    super::approvals::check_alias(&mut c, &name, &alias, "removing it").await?;
                    lock_model(&mut c, &name, true).await?;
                    let sql = c
                        .stmt("DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?")
                        .arg(&name)
                        .arg(&alias);
                    if c.exec(sql).await? > 0 {
                        alias_changed(&mut c, &name, &alias, None).await?;
                    }
                    Ok(())
                })
            },
        )
        .await
    }

    async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        model(&mut c, name).await?;
        match alias_version(&mut c, name, alias).await? {
            Some(v) => version(&mut c, name, v).await,
            None => Err(Error::not_found(format!(
                "Registered model alias {alias} not found."
            ))),
        }
    }

    async fn alias_history(&self, name: &str) -> Result<Vec<AliasChange>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        model(&mut c, name).await?;
        let sql = c
            .stmt("SELECT alias, version, time FROM registered_model_alias_history WHERE name = ? ORDER BY id")
            .arg(name);
        c.rows(sql)
            .await?
            .iter()
            .map(|r| {
                Ok(AliasChange {
                    alias: r.get(0)?,
                    version: r.get::<Option<i64>>(1)?.map(|v| v.to_string()),
                    timestamp: r.get(2)?,
                })
            })
            .collect()
    }

    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion> {
        self.write(On::Created(kind::MODEL_VERSION, |v: &ModelVersion| version_id(&v.name, &v.version)), move |mut c| {
                Box::pin(async move {
                    let now = now_millis();
                    // The row lock this takes orders concurrent registrations: numbers are
                    // unique and gapless across every server on the database.
                    let sql = c
                        .stmt("UPDATE registered_models SET last_version = last_version + 1, last_updated_time = ? WHERE name = ? RETURNING last_version")
                        .arg(now)
                        .arg(&req.name);
                    let Some(v) = c.value::<i64>(sql).await? else {
                        return Err(model_not_found(&req.name));
                    };
                    let location = storage_location(&mut c, &req.source).await?;
                    let sql = c
                        .stmt("INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, storage_location, run_id, run_link, model_id, status, status_message) VALUES (?, ?, ?, ?, ?, '', 'None', ?, ?, ?, ?, ?, 'READY', '')")
                        .arg(&req.name)
                        .arg(v)
                        .arg(now)
                        .arg(now)
                        .arg(&req.description)
                        .arg(&req.source)
                        .arg(location)
                        .arg(&req.run_id)
                        .arg(&req.run_link)
                        .arg(&req.model_id);
                    c.exec(sql).await?;
                    for t in &req.tags {
                        let sql = set_version_tag(&c, &req.name, v, t);
                        c.exec(sql).await?;
                    }
                    version(&mut c, &req.name, v).await
                })
            })
            .await
    }

    async fn get_model_version(&self, name: &str, v: &str) -> Result<ModelVersion> {
        let v = version_number(v)?;
        version(&mut self.db.reader().await?.conn(), name, v).await
    }

    async fn update_model_version(
        &self,
        name: &str,
        v: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        let (name, description) = (name.to_string(), description.to_string());
        let v = version_number(v)?;
        self.write(On::subject(kind::MODEL_VERSION, version_id(&name, v)), move |mut c| {
                Box::pin(async move {
                    lock_version(&mut c, &name, v).await?;
                    let sql = c
                        .stmt("UPDATE model_versions SET description = ? WHERE name = ? AND version = ?")
                        .arg(&description)
                        .arg(&name)
                        .arg(v);
                    c.exec(sql).await?;
                    version(&mut c, &name, v).await
                })
            })
            .await
    }

    async fn transition_stage(
        &self,
        name: &str,
        v: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let stage = canonical_stage(stage).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."
            ))
        })?;
        let name = name.to_string();
        let v = version_number(v)?;
        self.write(On::subject(kind::MODEL_VERSION, version_id(&name, v)), move |mut c| {
                Box::pin(async move {
                    lock_version(&mut c, &name, v).await?;
                    lock_model(&mut c, &name, true).await?;
                    if archive_existing && matches!(stage, "Staging" | "Production") {
                        let sql = c
                            .stmt("UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ? WHERE name = ? AND current_stage = ? AND version != ?")
                            .arg(now_millis())
                            .arg(&name)
                            .arg(stage)
                            .arg(v);
                        c.exec(sql).await?;
                    }
                    let sql = c
                        .stmt("UPDATE model_versions SET current_stage = ? WHERE name = ? AND version = ?")
                        .arg(stage)
                        .arg(&name)
                        .arg(v);
                    c.exec(sql).await?;
                    version(&mut c, &name, v).await
                })
            })
            .await
    }

    async fn delete_model_version(&self, name: &str, v: &str) -> Result<()> {
        let name = name.to_string();
        let v = version_number(v)?;
        self.write(On::subject(kind::MODEL_VERSION, version_id(&name, v)), move |mut c| {
                Box::pin(async move {
                    version(&mut c, &name, v).await?;
                    super::approvals::check_version(&mut c, &name, v).await?;
                    lock_model(&mut c, &name, true).await?;
                    // Its aliases go with it (by cascade): record their removal.
                    let sql = c
                        .stmt("SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ? ORDER BY alias")
                        .arg(&name)
                        .arg(v);
                    for alias in c.column::<String>(sql).await? {
                        alias_changed(&mut c, &name, &alias, None).await?;
                    }
                    let sql = c
                        .stmt("DELETE FROM model_versions WHERE name = ? AND version = ?")
                        .arg(&name)
                        .arg(v);
                    if c.exec(sql).await? == 0 {
                        return Err(version_not_found(&name, v));
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn search_model_versions(&self, q: SearchRegistry) -> Result<Page<ModelVersion>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut sql = c.sql();
        sql.push(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE 1 = 1"
        ));
        search::registry_where(&mut sql, &q.filter, true);
        if let Some(reader) = &q.reader {
            super::auth::push_readable(&mut sql, "registered_model", "v.name", reader);
        }
        sql.push(" ORDER BY ")
            .push(&search::registry_order(&q.order_by, true));
        paging::limit(&mut sql, q.max_results, q.offset);
        let mut items = load_versions(&mut c, sql).await?;
        let more = items.len() > q.max_results;
        items.truncate(q.max_results);
        Ok(Page::new(items, q.offset, q.max_results, more))
    }

    async fn model_version_download_uri(&self, name: &str, v: &str) -> Result<String> {
        let v = version_number(v)?;
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt("SELECT storage_location FROM model_versions WHERE name = ? AND version = ?")
            .arg(name)
            .arg(v);
        c.value(sql)
            .await?
            .ok_or_else(|| version_not_found(name, v))
    }

    async fn set_model_version_tag(&self, name: &str, v: &str, tag: Tag) -> Result<()> {
        let name = name.to_string();
        let v = version_number(v)?;
        self.write(
            On::subject(kind::MODEL_VERSION, version_id(&name, v)),
            move |mut c| {
                Box::pin(async move {
                    lock_version(&mut c, &name, v).await?;
                    let sql = set_version_tag(&c, &name, v, &tag);
                    c.exec(sql).await?;
                    Ok(())
                })
            },
        )
        .await
    }

    async fn delete_model_version_tag(&self, name: &str, v: &str, key: &str) -> Result<()> {
        let (name, key) = (name.to_string(), key.to_string());
        let v = version_number(v)?;
        self.write(On::subject(kind::MODEL_VERSION, version_id(&name, v)), move |mut c| {
                Box::pin(async move {
                    lock_version(&mut c, &name, v).await?;
                    let sql = c
                        .stmt("DELETE FROM model_version_tags WHERE name = ? AND version = ? AND key = ?")
                        .arg(&name)
                        .arg(v)
                        .arg(&key);
                    c.exec(sql).await?;
                    Ok(())
                })
            })
            .await
    }
}

/// The version `alias` points at, if it is set.
async fn alias_version(c: &mut Conn<'_>, name: &str, alias: &str) -> Result<Option<i64>> {
    let sql = c
        .stmt("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?")
        .arg(name)
        .arg(alias);
    c.value::<i64>(sql).await
}

/// Appends a change of `alias` (to `version`, or removed) to the model's alias history.
async fn alias_changed(
    c: &mut Conn<'_>,
    name: &str,
    alias: &str,
    version: Option<i64>,
) -> Result<()> {
    let sql = c
        .stmt("INSERT INTO registered_model_alias_history (name, alias, version, time) VALUES (?, ?, ?, ?)")
        .arg(name)
        .arg(alias)
        .arg(version)
        .arg(now_millis());
    c.exec(sql).await.map(|_| ())
}
