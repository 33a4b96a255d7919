//! MLflow 3 logged models: models with their own id and artifact location.

use std::collections::HashMap;

use keel_core::entities::*;
use keel_core::store::{CreateLoggedModel, Page, SearchLoggedModels};
use keel_core::{Error, Result, now_millis};
use sqlx::{Row, SqliteConnection};

use super::tracking::parse_experiment_id;
use super::{DbResult, SqliteStore, paging, rows};
use crate::search::{self, Bind, Sql};

const COLUMNS: &str = "model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message";

/// Loads logged models with tags, params and metrics, in `ids` order.
async fn load(conn: &mut SqliteConnection, ids: &[String]) -> Result<Vec<LoggedModel>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = || ids.iter().map(|s| Bind::Str(s.clone()));
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {COLUMNS} FROM logged_models WHERE model_id IN "
    ));
    sql.bind_list(list());
    let mut by_id: HashMap<String, LoggedModel> = HashMap::new();
    for r in sql.query()?.fetch_all(&mut *conn).await.db()? {
        let id: String = r.try_get(0).db()?;
        let status: String = r.try_get(6).db()?;
        let info = LoggedModelInfo {
            model_id: id.clone(),
            experiment_id: r.try_get::<i64, _>(1).db()?.to_string(),
            name: r.try_get(2).db()?,
            artifact_uri: r.try_get(3).db()?,
            creation_timestamp_ms: r.try_get(4).db()?,
            last_updated_timestamp_ms: r.try_get(5).db()?,
            status: LoggedModelStatus::parse(&status).unwrap_or(LoggedModelStatus::Unspecified),
            lifecycle_stage: LifecycleStage::parse(r.try_get::<&str, _>(7).db()?),
            model_type: r.try_get(8).db()?,
            source_run_id: r.try_get(9).db()?,
            status_message: r.try_get(10).db()?,
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
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT model_id, key, value FROM {table} WHERE model_id IN "
        ));
        sql.bind_list(list());
        sql.push(" ORDER BY key");
        for r in sql.query()?.fetch_all(&mut *conn).await.db()? {
            let id: &str = r.try_get(0).db()?;
            if let Some(m) = by_id.get_mut(id) {
                let t = Tag::new(
                    r.try_get::<String, _>(1).db()?,
                    r.try_get::<String, _>(2).db()?,
                );
                if is_param {
                    m.data.params.push(t)
                } else {
                    m.info.tags.push(t)
                }
            }
        }
    }
    let mut sql = Sql::default();
    sql.push(
        "SELECT m.model_id, k.name, m.value, m.is_nan, m.timestamp, m.step, r.run_uuid, m.dataset_name, m.dataset_digest \
         FROM metrics m JOIN metric_keys k ON k.key_id = m.key_id JOIN runs r ON r.run_key = m.run_key WHERE m.model_id IN ",
    );
    sql.bind_list(list());
    sql.push(" ORDER BY k.name, m.step, m.timestamp");
    for r in sql.query()?.fetch_all(&mut *conn).await.db()? {
        let id: &str = r.try_get(0).db()?;
        if let Some(m) = by_id.get_mut(id) {
            let mut metric = Metric::new(
                r.try_get::<String, _>(1).db()?,
                rows::metric_value(r.try_get(2).db()?, r.try_get(3).db()?),
                r.try_get(4).db()?,
                r.try_get(5).db()?,
            );
            metric.model_id = Some(id.to_string());
            metric.run_id = Some(r.try_get(6).db()?);
            metric.dataset_name = r.try_get(7).db()?;
            metric.dataset_digest = r.try_get(8).db()?;
            m.data.metrics.push(metric);
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

pub(crate) async fn load_one(
    conn: &mut SqliteConnection,
    id: &str,
    allow_deleted: bool,
) -> Result<LoggedModel> {
    let m = load(conn, &[id.to_string()]).await?.pop();
    match m {
        Some(m) if allow_deleted || m.info.lifecycle_stage == LifecycleStage::Active => Ok(m),
        _ => Err(Error::not_found(format!(
            "Logged model with ID '{id}' not found."
        ))),
    }
}

async fn upsert_kv(
    conn: &mut SqliteConnection,
    table: &'static str,
    id: &str,
    kvs: &[Tag],
) -> Result<()> {
    let q = format!(
        "INSERT INTO {table} (model_id, key, value) VALUES (?, ?, ?) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
    );
    for t in kvs {
        sqlx::query(sqlx::AssertSqlSafe(q.clone()))
            .bind(id)
            .bind(&t.key)
            .bind(&t.value)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    sqlx::query("UPDATE logged_models SET last_updated_timestamp_ms = ? WHERE model_id = ?")
        .bind(now_millis())
        .bind(id)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn do_create_logged_model(
        &self,
        req: CreateLoggedModel,
    ) -> Result<LoggedModel> {
        let exp_id = parse_experiment_id(&req.experiment_id)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let exp = rows::experiment(c, exp_id).await?;
                    if exp.lifecycle_stage != LifecycleStage::Active {
                        return Err(Error::invalid(format!("The experiment {exp_id} must be in the 'active' state. Current state is deleted.")));
                    }
                    let id = format!("m-{}", uuid::Uuid::new_v4().simple());
                    let name = req.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| format!("model-{}", &id[2..10]));
                    let location = format!("{}/models/{id}/artifacts", exp.artifact_location);
                    let now = now_millis();
                    sqlx::query("INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, '')")
                        .bind(&id)
                        .bind(exp_id)
                        .bind(&name)
                        .bind(&location)
                        .bind(now)
                        .bind(now)
                        .bind(LoggedModelStatus::Pending.as_str())
                        .bind(&req.model_type)
                        .bind(&req.source_run_id)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    upsert_kv(c, "logged_model_params", &id, &req.params).await?;
                    upsert_kv(c, "logged_model_tags", &id, &req.tags).await?;
                    load_one(c, &id, false).await
                })
            })
            .await
    }

    pub(crate) async fn do_get_logged_model(
        &self,
        id: &str,
        allow_deleted: bool,
    ) -> Result<LoggedModel> {
        load_one(&mut *self.read_conn().await?, id, allow_deleted).await
    }

    pub(crate) async fn do_finalize_logged_model(
        &self,
        id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        let id = id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    load_one(c, &id, false).await?;
                    sqlx::query("UPDATE logged_models SET status = ?, last_updated_timestamp_ms = ? WHERE model_id = ?").bind(status.as_str()).bind(now_millis()).bind(&id).execute(&mut *c).await.db()?;
                    load_one(c, &id, false).await
                })
            })
            .await
    }

    pub(crate) async fn do_delete_logged_model(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    load_one(c, &id, false).await?;
                    sqlx::query("UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ? WHERE model_id = ?").bind(now_millis()).bind(&id).execute(&mut *c).await.db()?;
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_set_logged_model_tags(&self, id: &str, tags: Vec<Tag>) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    load_one(c, &id, false).await?;
                    upsert_kv(c, "logged_model_tags", &id, &tags).await
                })
            })
            .await
    }

    pub(crate) async fn do_delete_logged_model_tag(&self, id: &str, key: &str) -> Result<()> {
        let (id, key) = (id.to_string(), key.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    load_one(c, &id, false).await?;
                    let n =
                        sqlx::query("DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?")
                            .bind(&id)
                            .bind(&key)
                            .execute(&mut *c)
                            .await
                            .db()?
                            .rows_affected();
                    if n == 0 {
                        return Err(Error::not_found(format!(
                            "No tag with key '{key}' found for logged model with ID '{id}'."
                        )));
                    }
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_log_logged_model_params(
        &self,
        id: &str,
        params: Vec<Param>,
    ) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    load_one(c, &id, false).await?;
                    upsert_kv(c, "logged_model_params", &id, &params).await
                })
            })
            .await
    }

    pub(crate) async fn do_search_logged_models(
        &self,
        q: SearchLoggedModels,
    ) -> Result<Page<LoggedModel>> {
        let exp_ids: Vec<i64> = q
            .experiment_ids
            .iter()
            .map(|e| parse_experiment_id(e))
            .collect::<Result<_>>()?;
        if exp_ids.is_empty() {
            return Ok(Page::empty());
        }
        let (joins, order) = search::logged_model_order(search::Dialect::Sqlite, &q.order_by);
        let mut sql = Sql::default();
        sql.push("SELECT lm.model_id FROM logged_models lm");
        sql.push(&joins.text);
        sql.binds.extend(joins.binds);
        sql.push(" WHERE lm.lifecycle_stage = 'active' AND lm.experiment_id IN ");
        sql.bind_list(exp_ids.iter().map(|i| Bind::I64(*i)));
        search::logged_model_where(&mut sql, &q.filter, &q.datasets);
        sql.push(" ORDER BY ").push(&order);
        let mut c = self.read_conn().await?;
        let (ids, more) = paging::page_ids::<String>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            load(&mut c, &ids).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }

    /// The artifact location of a logged model, for resolving `models:/m-...` sources.
    pub(crate) async fn logged_model_location(
        conn: &mut SqliteConnection,
        id: &str,
    ) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT artifact_location FROM logged_models WHERE model_id = ?")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .db()
    }
}
