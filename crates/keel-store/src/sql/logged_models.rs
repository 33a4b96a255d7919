//! MLflow 3 logged models: models with their own id, artifact location, params, tags and the
//! metrics runs logged against them.

use std::collections::HashMap;

use keel_core::LoggedModelStore;
use keel_core::entities::*;
use keel_core::store::{CreateLoggedModel, Page, SearchLoggedModels};
use keel_core::{Error, Result, now_millis, validate};

use super::audit::{On, kind};
use super::experiments::experiment;
use super::{SqlStore, metric_value, paging};
use crate::db::{Bind, Conn, Lock};
use crate::search;

const COLUMNS: &str = "model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message";

fn not_found(id: &str) -> Error {
    Error::not_found(format!("Logged model with ID '{id}' not found."))
}

/// Loads logged models with tags, params and metrics, in `ids` order.
async fn load(c: &mut Conn<'_>, ids: &[String]) -> Result<Vec<LoggedModel>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = || ids.iter().map(|s| Bind::Str(s.clone()));
    let mut sql = c.sql();
    sql.push(&format!(
        "SELECT {COLUMNS} FROM logged_models WHERE model_id IN "
    ));
    sql.bind_list(list());
    let mut by_id: HashMap<String, LoggedModel> = HashMap::new();
    for r in c.rows(sql).await? {
        let id: String = r.get(0)?;
        let status: String = r.get(6)?;
        let info = LoggedModelInfo {
            model_id: id.clone(),
            experiment_id: r.get_id(1)?,
            name: r.get(2)?,
            artifact_uri: r.get(3)?,
            creation_timestamp_ms: r.get(4)?,
            last_updated_timestamp_ms: r.get(5)?,
            status: LoggedModelStatus::parse(&status).unwrap_or(LoggedModelStatus::Unspecified),
            lifecycle_stage: LifecycleStage::parse(&r.get::<String>(7)?),
            model_type: r.get(8)?,
            source_run_id: r.get(9)?,
            status_message: r.get(10)?,
            tags: Vec::new(),
        };
        by_id.insert(
            id,
            LoggedModel {
                info,
                data: LoggedModelData::default(),
            },
        );
    }
    for (table, is_param) in [("logged_model_params", true), ("logged_model_tags", false)] {
        let mut sql = c.sql();
        sql.push(&format!(
            "SELECT model_id, key, value FROM {table} WHERE model_id IN "
        ));
        sql.bind_list(list());
        sql.push(" ORDER BY key");
        for r in c.rows(sql).await? {
            if let Some(m) = by_id.get_mut(&r.get::<String>(0)?) {
                let t = Tag::new(r.get::<String>(1)?, r.get::<String>(2)?);
                if is_param {
                    m.data.params.push(t)
                } else {
                    m.info.tags.push(t)
                }
            }
        }
    }
    let mut sql = c.sql();
    sql.push(
        "SELECT m.model_id, k.name, m.value, m.is_nan, m.timestamp, m.step, r.run_uuid, m.dataset_name, m.dataset_digest \
         FROM metrics m JOIN metric_keys k ON k.key_id = m.key_id JOIN runs r ON r.run_key = m.run_key WHERE m.model_id IN ",
    );
    sql.bind_list(list());
    sql.push(" ORDER BY k.name, m.step, m.timestamp");
    for r in c.rows(sql).await? {
        let id: String = r.get(0)?;
        if let Some(m) = by_id.get_mut(&id) {
            let mut metric = Metric::new(
                r.get::<String>(1)?,
                metric_value(r.get(2)?, r.get(3)?),
                r.get(4)?,
                r.get(5)?,
            );
            metric.model_id = Some(id);
            metric.run_id = Some(r.get(6)?);
            metric.dataset_name = r.get(7)?;
            metric.dataset_digest = r.get(8)?;
            m.data.metrics.push(metric);
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

/// One logged model; a deleted one only with `allow_deleted`.
pub(crate) async fn load_one(
    c: &mut Conn<'_>,
    id: &str,
    allow_deleted: bool,
) -> Result<LoggedModel> {
    match load(c, &[id.to_string()]).await?.pop() {
        Some(m) if allow_deleted || m.info.lifecycle_stage == LifecycleStage::Active => Ok(m),
        _ => Err(not_found(id)),
    }
}

/// Locks an active logged model for the rest of the write unit.
async fn lock(c: &mut Conn<'_>, id: &str) -> Result<()> {
    let lock = c.lock(Lock::Update);
    let sql = c
        .stmt(&format!(
            "SELECT lifecycle_stage FROM logged_models WHERE model_id = ?{lock}"
        ))
        .arg(id);
    match c.value::<String>(sql).await?.as_deref() {
        Some("active") => Ok(()),
        _ => Err(not_found(id)),
    }
}

/// Key-value rows per statement: 3 values each, well under either backend's limit.
const KV_CHUNK: usize = 500;

/// Sets params or tags (`table`) of a logged model, the last value of a key winning, and marks
/// the model updated.
async fn upsert_kv(c: &mut Conn<'_>, table: &str, id: &str, kvs: &[Tag]) -> Result<()> {
    let mut last: HashMap<&str, &str> = HashMap::new();
    let mut keys: Vec<&str> = Vec::new();
    for t in kvs {
        if last.insert(&t.key, &t.value).is_none() {
            keys.push(&t.key);
        }
    }
    for chunk in keys.chunks(KV_CHUNK) {
        let mut sql = c.sql();
        sql.push(&format!(
            "INSERT INTO {table} (model_id, key, value) VALUES "
        ));
        for (i, k) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(id)
                .push(", ")
                .bind(*k)
                .push(", ")
                .bind(last[k])
                .push(")");
        }
        sql.push(" ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value");
        c.exec(sql).await?;
    }
    let sql = c
        .stmt("UPDATE logged_models SET last_updated_timestamp_ms = ? WHERE model_id = ?")
        .arg(now_millis())
        .arg(id);
    c.exec(sql).await?;
    Ok(())
}

#[async_trait::async_trait]
impl LoggedModelStore for SqlStore {
    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        let exp_id = validate::experiment_id(&req.experiment_id)?;
        self.write(On::Created(kind::LOGGED_MODEL, |m: &LoggedModel| m.info.model_id.clone()), move |mut c| {
                Box::pin(async move {
                    let exp = experiment(&mut c, exp_id).await?;
                    if exp.lifecycle_stage != LifecycleStage::Active {
                        return Err(Error::invalid(format!(
                            "The experiment {exp_id} must be in the 'active' state. Current state is deleted."
                        )));
                    }
                    let id = format!("m-{}", uuid::Uuid::new_v4().simple());
                    let name = req
                        .name
                        .clone()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| format!("model-{}", &id[2..10]));
                    let location = format!("{}/models/{id}/artifacts", exp.artifact_location);
                    let now = now_millis();
                    let sql = c
                        .stmt("INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, '')")
                        .arg(&id)
                        .arg(exp_id)
                        .arg(name)
                        .arg(location)
                        .arg(now)
                        .arg(now)
                        .arg(LoggedModelStatus::Pending.as_str())
                        .arg(&req.model_type)
                        .arg(&req.source_run_id);
                    c.exec(sql).await?;
                    upsert_kv(&mut c, "logged_model_params", &id, &req.params).await?;
                    upsert_kv(&mut c, "logged_model_tags", &id, &req.tags).await?;
                    load_one(&mut c, &id, false).await
                })
            })
            .await
    }

    async fn get_logged_model(&self, id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        load_one(&mut self.db.reader().await?.conn(), id, allow_deleted).await
    }

    async fn finalize_logged_model(
        &self,
        id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let id = id.to_string();
        self.write(On::subject(kind::LOGGED_MODEL, id.clone()), move |mut c| {
                Box::pin(async move {
                    lock(&mut c, &id).await?;
                    let sql = c
                        .stmt("UPDATE logged_models SET status = ?, last_updated_timestamp_ms = ? WHERE model_id = ?")
                        .arg(status.as_str())
                        .arg(now_millis())
                        .arg(&id);
                    c.exec(sql).await?;
                    load_one(&mut c, &id, false).await
                })
            })
            .await
    }

    async fn delete_logged_model(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(On::subject(kind::LOGGED_MODEL, id.clone()), move |mut c| {
                Box::pin(async move {
                    lock(&mut c, &id).await?;
                    let sql = c
                        .stmt("UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ? WHERE model_id = ?")
                        .arg(now_millis())
                        .arg(&id);
                    c.exec(sql).await?;
                    Ok(())
                })
            })
            .await
    }

    async fn set_logged_model_tags(&self, id: &str, tags: Vec<Tag>) -> Result<()> {
        let id = id.to_string();
        self.write(On::Bare(kind::LOGGED_MODEL, id.clone()), move |mut c| {
            Box::pin(async move {
                lock(&mut c, &id).await?;
                upsert_kv(&mut c, "logged_model_tags", &id, &tags).await
            })
        })
        .await
    }

    async fn delete_logged_model_tag(&self, id: &str, key: &str) -> Result<()> {
        let (id, key) = (id.to_string(), key.to_string());
        self.write(On::Bare(kind::LOGGED_MODEL, id.clone()), move |mut c| {
            Box::pin(async move {
                lock(&mut c, &id).await?;
                let sql = c
                    .stmt("DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?")
                    .arg(&id)
                    .arg(&key);
                if c.exec(sql).await? == 0 {
                    return Err(Error::not_found(format!(
                        "No tag with key '{key}' found for logged model with ID '{id}'."
                    )));
                }
                Ok(())
            })
        })
        .await
    }

    async fn log_logged_model_params(&self, id: &str, params: Vec<Param>) -> Result<()> {
        let id = id.to_string();
        self.write(On::Bare(kind::LOGGED_MODEL, id.clone()), move |mut c| {
            Box::pin(async move {
                lock(&mut c, &id).await?;
                upsert_kv(&mut c, "logged_model_params", &id, &params).await
            })
        })
        .await
    }

    async fn search_logged_models(&self, q: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        let exp_ids: Vec<i64> = q
            .experiment_ids
            .iter()
            .map(|e| validate::experiment_id(e))
            .collect::<Result<_>>()?;
        if exp_ids.is_empty() {
            return Ok(Page::empty());
        }
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let (joins, order) = search::logged_model_order(c.dialect(), &q.order_by);
        let mut sql = c.sql();
        sql.push("SELECT lm.model_id FROM logged_models lm");
        // The joins' placeholders come first: so do their values.
        sql.push(&joins.text);
        sql.binds.extend(joins.binds);
        sql.push(" WHERE lm.lifecycle_stage = 'active' AND lm.experiment_id IN ");
        sql.bind_list(exp_ids.iter().map(|i| Bind::I64(*i)));
        search::logged_model_where(&mut sql, &q.filter, &q.datasets);
        sql.push(" ORDER BY ").push(&order);
        let (ids, more) = paging::page_ids::<String>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            load(&mut c, &ids).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }
}
