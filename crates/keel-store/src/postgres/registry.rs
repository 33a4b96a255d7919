//! The model registry on PostgreSQL. A registered model's row is locked (`FOR UPDATE`) by every
//! write that belongs to it, so versions, stages and aliases change one writer at a time per
//! model, from any number of servers, and version numbers stay unique and gapless.

use std::collections::{BTreeSet, HashMap};

use keel_core::entities::*;
use keel_core::store::{CreateModelVersion, Page, SearchRegistry};
use keel_core::{Error, Result, now_millis};
use sqlx::{PgConnection, Row};

use super::logged_models::location as logged_model_location;
use super::runs::run_info_of;
use super::{DbResult, PgStore, is_unique_violation, paging};
use crate::search::{self, Bind, Dialect, Sql};

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
async fn load_versions(conn: &mut PgConnection, sql: Sql) -> Result<Vec<ModelVersion>> {
    let rows = sql.into_pg_query()?.fetch_all(&mut *conn).await.db()?;
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
    let names: Vec<String> = out
        .iter()
        .map(|v| v.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let index: HashMap<(String, i64), usize> = out
        .iter()
        .enumerate()
        .map(|(i, v)| ((v.name.clone(), v.version.parse().unwrap_or_default()), i))
        .collect();
    for (q, is_tag) in [
        (
            "SELECT name, version, key, value FROM model_version_tags WHERE name = ANY($1) ORDER BY 3",
            true,
        ),
        (
            "SELECT name, version, alias, '' FROM registered_model_aliases WHERE name = ANY($1) ORDER BY 3",
            false,
        ),
    ] {
        for r in sqlx::query(q)
            .bind(&names)
            .fetch_all(&mut *conn)
            .await
            .db()?
        {
            let key = (
                r.try_get::<String, _>(0).db()?,
                r.try_get::<i64, _>(1).db()?,
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

async fn version(conn: &mut PgConnection, name: &str, version: i64) -> Result<ModelVersion> {
    let mut sql = Sql::new(Dialect::Postgres);
    sql.push(&format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE v.name = "
    ))
    .bind_str(name)
    .push(" AND v.version = ")
    .bind(Bind::I64(version));
    load_versions(conn, sql).await?.pop().ok_or_else(|| {
        Error::not_found(format!(
            "Model Version (name={name}, version={version}) not found"
        ))
    })
}

async fn latest(
    conn: &mut PgConnection,
    name: &str,
    stages: &[String],
) -> Result<Vec<ModelVersion>> {
    let mut sql = Sql::new(Dialect::Postgres);
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
    load_versions(conn, sql).await
}

/// Loads registered models (with latest versions, tags, aliases) in `names` order.
async fn models(conn: &mut PgConnection, names: &[String]) -> Result<Vec<RegisteredModel>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let row = sqlx::query("SELECT name, creation_time, last_updated_time, description, user_id FROM registered_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
        let Some(r) = row else { continue };
        let tags: Vec<(String, String)> = sqlx::query_as(
            "SELECT key, value FROM registered_model_tags WHERE name = $1 ORDER BY key",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        let aliases: Vec<(String, i64)> = sqlx::query_as(
            "SELECT alias, version FROM registered_model_aliases WHERE name = $1 ORDER BY alias",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        out.push(RegisteredModel {
            name: r.try_get(0).db()?,
            creation_timestamp: r.try_get(1).db()?,
            last_updated_timestamp: r.try_get(2).db()?,
            description: r.try_get(3).db()?,
            user_id: r.try_get(4).db()?,
            latest_versions: latest(conn, name, &[]).await?,
            tags: tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect(),
            aliases: aliases
                .into_iter()
                .map(|(alias, v)| Alias {
                    alias,
                    version: v.to_string(),
                })
                .collect(),
        });
    }
    Ok(out)
}

async fn model(conn: &mut PgConnection, name: &str) -> Result<RegisteredModel> {
    models(conn, &[name.to_string()])
        .await?
        .pop()
        .ok_or_else(|| model_not_found(name))
}

/// Locks the model's row for this transaction (every registry write takes this lock first, so
/// writers of one model queue instead of deadlocking) and, with `touch`, marks it updated.
async fn lock_model(conn: &mut PgConnection, name: &str, touch: bool) -> Result<()> {
    let query = if touch {
        sqlx::query_scalar(
            "UPDATE registered_models SET last_updated_time = $2 WHERE name = $1 RETURNING 1",
        )
        .bind(name)
        .bind(now_millis())
    } else {
        sqlx::query_scalar("SELECT 1 FROM registered_models WHERE name = $1 FOR UPDATE").bind(name)
    };
    let found: Option<i32> = query.fetch_optional(&mut *conn).await.db()?;
    match found {
        Some(_) => Ok(()),
        None => Err(model_not_found(name)),
    }
}

/// Checks the version exists (with the not-found message for a version), locks its model and
/// marks the version updated.
async fn lock_version(conn: &mut PgConnection, name: &str, v: i64) -> Result<()> {
    version(conn, name, v).await?;
    lock_model(conn, name, false).await?;
    sqlx::query(
        "UPDATE model_versions SET last_updated_time = $1 WHERE name = $2 AND version = $3",
    )
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
pub(crate) async fn storage_location(conn: &mut PgConnection, source: &str) -> Result<String> {
    if let Some(rest) = source.strip_prefix("models:/") {
        match rest.split_once('/') {
            None => {
                if let Some(loc) = logged_model_location(conn, rest).await? {
                    return Ok(loc);
                }
            }
            Some((name, version)) => {
                let found: Option<String> = match version.parse::<i64>() {
                    Ok(v) => sqlx::query_scalar(
                        "SELECT storage_location FROM model_versions WHERE name = $1 AND version = $2",
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
        let info = match run_info_of(conn, run_id).await {
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

impl PgStore {
    pub(crate) async fn do_create_registered_model(
        &self,
        name: &str,
        tags: Vec<Tag>,
        description: &str,
    ) -> Result<RegisteredModel> {
        let mut tx = self.pool.begin().await.db()?;
        let now = now_millis();
        let res = sqlx::query("INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES ($1, $2, $2, $3)")
            .bind(name)
            .bind(now)
            .bind(description)
            .execute(&mut *tx)
            .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::already_exists(format!(
                    "Registered Model (name={name}) already exists."
                )));
            }
            Err(e) => return Err(Error::internal(format!("database error: {e}"))),
        }
        for t in &tags {
            sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        let m = model(&mut tx, name).await?;
        tx.commit().await.db()?;
        Ok(m)
    }

    pub(crate) async fn do_get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        model(&mut *self.pool.acquire().await.db()?, name).await
    }

    pub(crate) async fn do_rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        let mut tx = self.pool.begin().await.db()?;
        lock_model(&mut tx, name, true).await?;
        let res = sqlx::query("UPDATE registered_models SET name = $1 WHERE name = $2")
            .bind(new_name)
            .bind(name)
            .execute(&mut *tx)
            .await;
        match res {
            Ok(_) => {
                let m = model(&mut tx, new_name).await?;
                tx.commit().await.db()?;
                Ok(m)
            }
            Err(e) if is_unique_violation(&e) => Err(Error::already_exists(format!(
                "Registered Model (name={new_name}) already exists."
            ))),
            Err(e) => Err(Error::internal(format!("database error: {e}"))),
        }
    }

    pub(crate) async fn do_update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        let mut tx = self.pool.begin().await.db()?;
        lock_model(&mut tx, name, true).await?;
        sqlx::query("UPDATE registered_models SET description = $1 WHERE name = $2")
            .bind(description)
            .bind(name)
            .execute(&mut *tx)
            .await
            .db()?;
        let m = model(&mut tx, name).await?;
        tx.commit().await.db()?;
        Ok(m)
    }

    pub(crate) async fn do_delete_registered_model(&self, name: &str) -> Result<()> {
        let n = sqlx::query("DELETE FROM registered_models WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .db()?
            .rows_affected();
        if n == 0 {
            Err(model_not_found(name))
        } else {
            Ok(())
        }
    }

    pub(crate) async fn do_search_registered_models(
        &self,
        q: SearchRegistry,
    ) -> Result<Page<RegisteredModel>> {
        let mut sql = Sql::new(Dialect::Postgres);
        sql.push("SELECT m.name FROM registered_models m WHERE 1 = 1");
        search::registry_where(&mut sql, &q.filter, false);
        sql.push(" ORDER BY ")
            .push(&search::registry_order(&q.order_by, false));
        let mut c = self.pool.acquire().await.db()?;
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
        let mut c = self.pool.acquire().await.db()?;
        model(&mut c, name).await?;
        latest(&mut c, name, stages).await
    }

    pub(crate) async fn do_set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        lock_model(&mut tx, name, true).await?;
        sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(&tag.key)
            .bind(&tag.value)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        lock_model(&mut tx, name, true).await?;
        sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_set_alias(
        &self,
        name: &str,
        alias: &str,
        version_str: &str,
    ) -> Result<()> {
        let v = version_number(version_str)?;
        let mut tx = self.pool.begin().await.db()?;
        lock_model(&mut tx, name, true).await?;
        version(&mut tx, name, v).await?;
        sqlx::query("INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version")
            .bind(name)
            .bind(alias)
            .bind(v)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        lock_model(&mut tx, name, true).await?;
        sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_get_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        let mut c = self.pool.acquire().await.db()?;
        model(&mut c, name).await?;
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
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
        let mut tx = self.pool.begin().await.db()?;
        let now = now_millis();
        // The row lock this takes orders concurrent registrations: numbers are unique and
        // gapless across every server on the database.
        let v: Option<i64> = sqlx::query_scalar("UPDATE registered_models SET last_version = last_version + 1, last_updated_time = $1 WHERE name = $2 RETURNING last_version")
            .bind(now)
            .bind(&req.name)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        let Some(v) = v else {
            return Err(model_not_found(&req.name));
        };
        let location = storage_location(&mut tx, &req.source).await?;
        sqlx::query("INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, storage_location, run_id, run_link, model_id, status, status_message) VALUES ($1, $2, $3, $3, $4, '', 'None', $5, $6, $7, $8, $9, 'READY', '')")
            .bind(&req.name)
            .bind(v)
            .bind(now)
            .bind(&req.description)
            .bind(&req.source)
            .bind(&location)
            .bind(&req.run_id)
            .bind(&req.run_link)
            .bind(&req.model_id)
            .execute(&mut *tx)
            .await
            .db()?;
        for t in &req.tags {
            sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
                .bind(&req.name)
                .bind(v)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        let created = version(&mut tx, &req.name, v).await?;
        tx.commit().await.db()?;
        Ok(created)
    }

    pub(crate) async fn do_get_model_version(&self, name: &str, v: &str) -> Result<ModelVersion> {
        let v = version_number(v)?;
        version(&mut *self.pool.acquire().await.db()?, name, v).await
    }

    pub(crate) async fn do_update_model_version(
        &self,
        name: &str,
        v: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        let v = version_number(v)?;
        let mut tx = self.pool.begin().await.db()?;
        lock_version(&mut tx, name, v).await?;
        sqlx::query("UPDATE model_versions SET description = $1 WHERE name = $2 AND version = $3")
            .bind(description)
            .bind(name)
            .bind(v)
            .execute(&mut *tx)
            .await
            .db()?;
        let out = version(&mut tx, name, v).await?;
        tx.commit().await.db()?;
        Ok(out)
    }

    pub(crate) async fn do_transition_stage(
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
        let v = version_number(v)?;
        let mut tx = self.pool.begin().await.db()?;
        lock_version(&mut tx, name, v).await?;
        lock_model(&mut tx, name, true).await?;
        if archive_existing && matches!(stage, "Staging" | "Production") {
            sqlx::query("UPDATE model_versions SET current_stage = 'Archived', last_updated_time = $1 WHERE name = $2 AND current_stage = $3 AND version != $4")
                .bind(now_millis())
                .bind(name)
                .bind(stage)
                .bind(v)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        sqlx::query(
            "UPDATE model_versions SET current_stage = $1 WHERE name = $2 AND version = $3",
        )
        .bind(stage)
        .bind(name)
        .bind(v)
        .execute(&mut *tx)
        .await
        .db()?;
        let out = version(&mut tx, name, v).await?;
        tx.commit().await.db()?;
        Ok(out)
    }

    pub(crate) async fn do_delete_model_version(&self, name: &str, v: &str) -> Result<()> {
        let v = version_number(v)?;
        let mut tx = self.pool.begin().await.db()?;
        version(&mut tx, name, v).await?;
        lock_model(&mut tx, name, true).await?;
        let n = sqlx::query("DELETE FROM model_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(v)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!(
                "Model Version (name={name}, version={v}) not found"
            )));
        }
        tx.commit().await.db()
    }

    pub(crate) async fn do_search_model_versions(
        &self,
        q: SearchRegistry,
    ) -> Result<Page<ModelVersion>> {
        let mut sql = Sql::new(Dialect::Postgres);
        sql.push(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions v WHERE 1 = 1"
        ));
        search::registry_where(&mut sql, &q.filter, true);
        sql.push(" ORDER BY ")
            .push(&search::registry_order(&q.order_by, true))
            .push(" LIMIT ")
            .bind(Bind::I64((q.max_results as i64).saturating_add(1)))
            .push(" OFFSET ")
            .bind(Bind::I64(q.offset as i64));
        let mut items = load_versions(&mut *self.pool.acquire().await.db()?, sql).await?;
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
        let mut c = self.pool.acquire().await.db()?;
        version(&mut c, name, v).await?;
        sqlx::query_scalar(
            "SELECT storage_location FROM model_versions WHERE name = $1 AND version = $2",
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
        let v = version_number(v)?;
        let mut tx = self.pool.begin().await.db()?;
        lock_version(&mut tx, name, v).await?;
        sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(v)
            .bind(&tag.key)
            .bind(&tag.value)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_delete_model_version_tag(
        &self,
        name: &str,
        v: &str,
        key: &str,
    ) -> Result<()> {
        let v = version_number(v)?;
        let mut tx = self.pool.begin().await.db()?;
        lock_version(&mut tx, name, v).await?;
        sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3")
            .bind(name)
            .bind(v)
            .bind(key)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }
}
