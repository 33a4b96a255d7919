//! The model registry: registered models, versions, tags, aliases and stages.

use std::collections::{BTreeSet, HashMap};

use keel_core::entities::*;
use keel_core::store::{CreateModelVersion, Page, SearchRegistry};
use keel_core::{Error, Result, now_millis};
use sqlx::{Row, SqliteConnection};

use super::{DbResult, SqliteStore, is_unique_violation, paging, rows};
use crate::search::{self, Bind, Sql};

const VERSION_COLUMNS: &str = "v.name, v.version, v.creation_time, v.last_updated_time, v.description, v.user_id, v.current_stage, v.source, v.run_id, v.run_link, v.status, v.status_message, v.model_id";

fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

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
async fn load_versions(conn: &mut SqliteConnection, sql: &Sql) -> Result<Vec<ModelVersion>> {
    let rows = sql.query()?.fetch_all(&mut *conn).await.db()?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(ModelVersion {
            name: r.try_get(0).db()?,
            version: r.try_get::<i64, _>(1).db()?.to_string(),
            creation_timestamp: r.try_get(2).db()?,
            last_updated_timestamp: r.try_get(3).db()?,
            description: r.try_get(4).db()?,
            user_id: r.try_get(5).db()?,
            current_stage: r.try_get(6).db()?,
            source: r.try_get(7).db()?,
            run_id: r.try_get(8).db()?,
            run_link: r.try_get(9).db()?,
            status: r.try_get(10).db()?,
            status_message: r.try_get(11).db()?,
            model_id: r.try_get(12).db()?,
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
        let mut s = Sql::default();
        s.push(q);
        s.bind_list(names.iter().map(|n| Bind::Str(n.clone())));
        s.push(" ORDER BY 3");
        for r in s.query()?.fetch_all(&mut *conn).await.db()? {
            let key = (
                r.try_get::<String, _>(0).db()?,
                r.try_get::<i64, _>(1).db()?.to_string(),
            );
            if let Some(&i) = index.get(&key) {
                let k: String = r.try_get(2).db()?;
                if is_tag {
                    out[i]
                        .tags
                        .push(Tag::new(k, r.try_get::<String, _>(3).db()?));
                } else {
                    out[i].aliases.push(k);
                }
            }
        }
    }
    Ok(out)
}

async fn version(conn: &mut SqliteConnection, name: &str, version: i64) -> Result<ModelVersion> {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.name = "
    ))
    .bind_str(name)
    .push(" AND v.version = ")
    .bind(Bind::I64(version));
    load_versions(conn, &sql).await?.pop().ok_or_else(|| {
        Error::not_found(format!(
            "Model Version (name={name}, version={version}) not found"
        ))
    })
}

async fn latest(
    conn: &mut SqliteConnection,
    name: &str,
    stages: &[String],
) -> Result<Vec<ModelVersion>> {
    let mut sql = Sql::default();
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
    load_versions(conn, &sql).await
}

/// Loads registered models (with latest versions, tags, aliases) in `names` order.
async fn models(conn: &mut SqliteConnection, names: &[String]) -> Result<Vec<RegisteredModel>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let row = sqlx::query("SELECT name, creation_time, last_updated_time, description, user_id FROM registered_models WHERE name = ?").bind(name).fetch_optional(&mut *conn).await.db()?;
        let Some(r) = row else { continue };
        let tags =
            sqlx::query("SELECT key, value FROM registered_model_tags WHERE name = ? ORDER BY key")
                .bind(name)
                .fetch_all(&mut *conn)
                .await
                .db()?
                .into_iter()
                .map(|t| {
                    Ok(Tag::new(
                        t.try_get::<String, _>(0).db()?,
                        t.try_get::<String, _>(1).db()?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
        let aliases = sqlx::query(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .db()?
        .into_iter()
        .map(|a| {
            Ok(Alias {
                alias: a.try_get(0).db()?,
                version: a.try_get::<i64, _>(1).db()?.to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        out.push(RegisteredModel {
            name: r.try_get(0).db()?,
            creation_timestamp: r.try_get(1).db()?,
            last_updated_timestamp: r.try_get(2).db()?,
            description: r.try_get(3).db()?,
            user_id: r.try_get(4).db()?,
            latest_versions: latest(conn, name, &[]).await?,
            tags,
            aliases,
        });
    }
    Ok(out)
}

async fn model(conn: &mut SqliteConnection, name: &str) -> Result<RegisteredModel> {
    models(conn, &[name.to_string()])
        .await?
        .pop()
        .ok_or_else(|| model_not_found(name))
}

async fn touch_model(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    let n = sqlx::query("UPDATE registered_models SET last_updated_time = ? WHERE name = ?")
        .bind(now_millis())
        .bind(name)
        .execute(&mut *conn)
        .await
        .db()?
        .rows_affected();
    if n == 0 {
        Err(model_not_found(name))
    } else {
        Ok(())
    }
}

async fn touch_version(conn: &mut SqliteConnection, name: &str, v: i64) -> Result<()> {
    version(conn, name, v).await?;
    sqlx::query("UPDATE model_versions SET last_updated_time = ? WHERE name = ? AND version = ?")
        .bind(now_millis())
        .bind(name)
        .bind(v)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

/// Where a new version's files are: a logged model's or a run's artifact location, or the
/// location of the version a `models:/<name>/<version>` source names; the source itself when
/// it names nothing this store holds (a run of another tracking server, a plain URI).
pub(crate) async fn storage_location(conn: &mut SqliteConnection, source: &str) -> Result<String> {
    if let Some(rest) = source.strip_prefix("models:/") {
        match rest.split_once('/') {
            None => {
                if let Some(loc) = SqliteStore::logged_model_location(conn, rest).await? {
                    return Ok(loc);
                }
            }
            Some((name, version)) => {
                let found: Option<String> = match version.parse::<i64>() {
                    Ok(v) => sqlx::query_scalar(
                        "SELECT storage_location FROM model_versions WHERE name = ? AND version = ?",
                    )
                    .bind(name)
                    .bind(v)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?,
                    Err(_) => None,
                };
                if let Some(loc) = found {
                    return Ok(loc);
                }
            }
        }
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
        let info = match rows::run_info_of(conn, run_id).await {
            Ok(info) => info,
            Err(e) if e.code == keel_core::ErrorCode::ResourceDoesNotExist => {
                return Ok(source.to_string());
            }
            Err(e) => return Err(e),
        };
        return Ok(if path.is_empty() {
            info.artifact_uri
        } else {
            format!("{}/{}", info.artifact_uri, path.trim_matches('/'))
        });
    }
    Ok(source.to_string())
}

impl SqliteStore {
    pub(crate) async fn do_create_registered_model(
        &self,
        name: &str,
        tags: Vec<Tag>,
        description: &str,
    ) -> Result<RegisteredModel> {
        let (name, description) = (name.to_string(), description.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let now = now_millis();
                    let res = sqlx::query("INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES (?, ?, ?, ?)").bind(&name).bind(now).bind(now).bind(&description).execute(&mut *c).await;
                    match res {
                        Ok(_) => {}
                        Err(e) if is_unique_violation(&e) => return Err(Error::already_exists(format!("Registered Model (name={name}) already exists."))),
                        Err(e) => return Err(Error::internal(format!("database error: {e}"))),
                    }
                    for t in &tags {
                        sqlx::query("INSERT OR REPLACE INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)").bind(&name).bind(&t.key).bind(&t.value).execute(&mut *c).await.db()?;
                    }
                    model(c, &name).await
                })
            })
            .await
    }

    pub(crate) async fn do_get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        model(&mut *self.read_conn().await?, name).await
    }

    pub(crate) async fn do_rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        let (name, new_name) = (name.to_string(), new_name.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    model(c, &name).await?;
                    let res = sqlx::query("UPDATE registered_models SET name = ?, last_updated_time = ? WHERE name = ?").bind(&new_name).bind(now_millis()).bind(&name).execute(&mut *c).await;
                    match res {
                        Ok(_) => model(c, &new_name).await,
                        Err(e) if is_unique_violation(&e) => Err(Error::already_exists(format!("Registered Model (name={new_name}) already exists."))),
                        Err(e) => Err(Error::internal(format!("database error: {e}"))),
                    }
                })
            })
            .await
    }

    pub(crate) async fn do_update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        let (name, description) = (name.to_string(), description.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    touch_model(c, &name).await?;
                    sqlx::query("UPDATE registered_models SET description = ? WHERE name = ?")
                        .bind(&description)
                        .bind(&name)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    model(c, &name).await
                })
            })
            .await
    }

    pub(crate) async fn do_delete_registered_model(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let n = sqlx::query("DELETE FROM registered_models WHERE name = ?")
                        .bind(&name)
                        .execute(&mut *c)
                        .await
                        .db()?
                        .rows_affected();
                    if n == 0 {
                        Err(model_not_found(&name))
                    } else {
                        Ok(())
                    }
                })
            })
            .await
    }

    pub(crate) async fn do_search_registered_models(
        &self,
        q: SearchRegistry,
    ) -> Result<Page<RegisteredModel>> {
        let mut sql = Sql::default();
        sql.push("SELECT m.name FROM registered_models m WHERE 1 = 1");
        search::registry_where(&mut sql, &q.filter, false);
        sql.push(" ORDER BY ")
            .push(&search::registry_order(&q.order_by, false));
        let mut c = self.read_conn().await?;
        let (names, more) =
            paging::page_ids::<String>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            models(&mut c, &names).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }

    pub(crate) async fn do_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        let mut c = self.read_conn().await?;
        model(&mut c, name).await?;
        latest(&mut c, name, stages).await
    }

    pub(crate) async fn do_set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        let name = name.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    touch_model(c, &name).await?;
                    sqlx::query("INSERT OR REPLACE INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)").bind(&name).bind(&tag.key).bind(&tag.value).execute(&mut *c).await.db()?;
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let (name, key) = (name.to_string(), key.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    touch_model(c, &name).await?;
                    sqlx::query("DELETE FROM registered_model_tags WHERE name = ? AND key = ?")
                        .bind(&name)
                        .bind(&key)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_set_alias(
        &self,
        name: &str,
        alias: &str,
        version_str: &str,
    ) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        let v = version_number(version_str)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    model(c, &name).await?;
                    version(c, &name, v).await?;
                    sqlx::query("INSERT OR REPLACE INTO registered_model_aliases (name, alias, version) VALUES (?, ?, ?)").bind(&name).bind(&alias).bind(v).execute(&mut *c).await.db()?;
                    touch_model(c, &name).await
                })
            })
            .await
    }

    pub(crate) async fn do_delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    model(c, &name).await?;
                    sqlx::query(
                        "DELETE FROM registered_model_aliases WHERE name = ? AND alias = ?",
                    )
                    .bind(&name)
                    .bind(&alias)
                    .execute(&mut *c)
                    .await
                    .db()?;
                    touch_model(c, &name).await
                })
            })
            .await
    }

    pub(crate) async fn do_get_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        let mut c = self.read_conn().await?;
        model(&mut c, name).await?;
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
        )
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut *c)
        .await
        .db()?;
        match v {
            Some(v) => version(&mut c, name, v).await,
            None => Err(Error::not_found(format!(
                "Registered model alias {alias} not found."
            ))),
        }
    }

    pub(crate) async fn do_create_model_version(
        &self,
        req: CreateModelVersion,
    ) -> Result<ModelVersion> {
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let last: Option<i64> = sqlx::query_scalar("SELECT last_version FROM registered_models WHERE name = ?").bind(&req.name).fetch_optional(&mut *c).await.db()?;
                    let Some(last) = last else { return Err(model_not_found(&req.name)) };
                    let v = last + 1;
                    let location = storage_location(c, &req.source).await?;
                    let now = now_millis();
                    sqlx::query("UPDATE registered_models SET last_version = ?, last_updated_time = ? WHERE name = ?").bind(v).bind(now).bind(&req.name).execute(&mut *c).await.db()?;
                    sqlx::query("INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, storage_location, run_id, run_link, model_id, status, status_message) VALUES (?, ?, ?, ?, ?, '', 'None', ?, ?, ?, ?, ?, 'READY', '')")
                        .bind(&req.name)
                        .bind(v)
                        .bind(now)
                        .bind(now)
                        .bind(&req.description)
                        .bind(&req.source)
                        .bind(&location)
                        .bind(&req.run_id)
                        .bind(&req.run_link)
                        .bind(&req.model_id)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    for t in &req.tags {
                        sqlx::query("INSERT OR REPLACE INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)").bind(&req.name).bind(v).bind(&t.key).bind(&t.value).execute(&mut *c).await.db()?;
                    }
                    version(c, &req.name, v).await
                })
            })
            .await
    }

    pub(crate) async fn do_get_model_version(&self, name: &str, v: &str) -> Result<ModelVersion> {
        let v = version_number(v)?;
        version(&mut *self.read_conn().await?, name, v).await
    }

    pub(crate) async fn do_update_model_version(
        &self,
        name: &str,
        v: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        let (name, description) = (name.to_string(), description.to_string());
        let v = version_number(v)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    touch_version(c, &name, v).await?;
                    sqlx::query(
                        "UPDATE model_versions SET description = ? WHERE name = ? AND version = ?",
                    )
                    .bind(&description)
                    .bind(&name)
                    .bind(v)
                    .execute(&mut *c)
                    .await
                    .db()?;
                    version(c, &name, v).await
                })
            })
            .await
    }

    pub(crate) async fn do_transition_stage(
        &self,
        name: &str,
        v: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let stage = canonical_stage(stage)
            .ok_or_else(|| Error::invalid(format!("Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived.")))?;
        let name = name.to_string();
        let v = version_number(v)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    touch_version(c, &name, v).await?;
                    let now = now_millis();
                    if archive_existing && matches!(stage, "Staging" | "Production") {
                        sqlx::query("UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ? WHERE name = ? AND current_stage = ? AND version != ?")
                            .bind(now)
                            .bind(&name)
                            .bind(stage)
                            .bind(v)
                            .execute(&mut *c)
                            .await
                            .db()?;
                    }
                    sqlx::query("UPDATE model_versions SET current_stage = ? WHERE name = ? AND version = ?").bind(stage).bind(&name).bind(v).execute(&mut *c).await.db()?;
                    touch_model(c, &name).await?;
                    version(c, &name, v).await
                })
            })
            .await
    }

    pub(crate) async fn do_delete_model_version(&self, name: &str, v: &str) -> Result<()> {
        let name = name.to_string();
        let v = version_number(v)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    version(c, &name, v).await?;
                    sqlx::query("DELETE FROM model_versions WHERE name = ? AND version = ?")
                        .bind(&name)
                        .bind(v)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    touch_model(c, &name).await
                })
            })
            .await
    }

    pub(crate) async fn do_search_model_versions(
        &self,
        q: SearchRegistry,
    ) -> Result<Page<ModelVersion>> {
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE 1 = 1"
        ));
        search::registry_where(&mut sql, &q.filter, true);
        sql.push(" ORDER BY ")
            .push(&search::registry_order(&q.order_by, true));
        sql.push(" LIMIT ")
            .bind(Bind::I64((q.max_results as i64).saturating_add(1)))
            .push(" OFFSET ")
            .bind(Bind::I64(q.offset as i64));
        let mut items = load_versions(&mut *self.read_conn().await?, &sql).await?;
        let more = items.len() > q.max_results;
        items.truncate(q.max_results);
        Ok(Page::new(items, q.offset, q.max_results, more))
    }

    pub(crate) async fn do_model_version_download_uri(
        &self,
        name: &str,
        v: &str,
    ) -> Result<String> {
        let v = version_number(v)?;
        let mut c = self.read_conn().await?;
        version(&mut c, name, v).await?;
        sqlx::query_scalar(
            "SELECT storage_location FROM model_versions WHERE name = ? AND version = ?",
        )
        .bind(name)
        .bind(v)
        .fetch_one(&mut *c)
        .await
        .db()
    }

    pub(crate) async fn do_set_model_version_tag(
        &self,
        name: &str,
        v: &str,
        tag: Tag,
    ) -> Result<()> {
        let name = name.to_string();
        let v = version_number(v)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    touch_version(c, &name, v).await?;
                    sqlx::query("INSERT OR REPLACE INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)").bind(&name).bind(v).bind(&tag.key).bind(&tag.value).execute(&mut *c).await.db()?;
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_delete_model_version_tag(
        &self,
        name: &str,
        v: &str,
        key: &str,
    ) -> Result<()> {
        let (name, key) = (name.to_string(), key.to_string());
        let v = version_number(v)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    touch_version(c, &name, v).await?;
                    sqlx::query(
                        "DELETE FROM model_version_tags WHERE name = ? AND version = ? AND key = ?",
                    )
                    .bind(&name)
                    .bind(v)
                    .bind(&key)
                    .execute(&mut *c)
                    .await
                    .db()?;
                    Ok(())
                })
            })
            .await
    }
}
