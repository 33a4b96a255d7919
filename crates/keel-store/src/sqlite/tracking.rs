//! Experiments, runs, metrics, params, tags, inputs and outputs.

use keel_core::entities::*;
use keel_core::store::{CreateRun, Page, SearchRuns};
use keel_core::{Error, Result, now_millis, validate};
use sqlx::{Row, SqliteConnection};

use super::{DbResult, SqliteStore, log_batch, paging, rows};
use crate::names::random_run_name;
use crate::search;

pub(crate) fn parse_experiment_id(id: &str) -> Result<i64> {
    validate::experiment_id(id)
}

/// An experiment with its tags.
pub(crate) async fn experiment(conn: &mut SqliteConnection, id: i64) -> Result<Experiment> {
    crate::sql::experiments::experiment(&mut crate::db::Conn::Sqlite(conn), id).await
}

/// The run's info if it is active; `INVALID_PARAMETER_VALUE` if deleted, 404 if missing.
pub(crate) async fn active_run(conn: &mut SqliteConnection, run_id: &str) -> Result<RunInfo> {
    let info = rows::run_info_of(conn, run_id).await?;
    if info.lifecycle_stage != LifecycleStage::Active {
        return Err(Error::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {}.",
            info.lifecycle_stage.as_str()
        )));
    }
    Ok(info)
}

impl SqliteStore {
    pub(crate) async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        self.read.acquire().await.db()
    }

    pub(crate) async fn do_create_run(&self, req: CreateRun) -> Result<Run> {
        let exp_id = parse_experiment_id(&req.experiment_id)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let exp: Option<(String, String)> = sqlx::query_as("SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?")
                        .bind(exp_id)
                        .fetch_optional(&mut *c)
                        .await
                        .db()?;
                    let artifact_location = match exp {
                        None => return Err(Error::not_found(format!("No Experiment with id={exp_id} exists"))),
                        Some((_, stage)) if stage != "active" => {
                            return Err(Error::invalid(format!("The experiment {exp_id} must be in the 'active' state. Current state is {stage}.")));
                        }
                        Some((location, _)) => location,
                    };
                    let run_id = uuid::Uuid::new_v4().simple().to_string();
                    // The last of repeated tags wins, as when they are logged one by one.
                    let tag_name = req.tags.iter().rev().find(|t| t.key == "mlflow.runName").map(|t| t.value.clone());
                    let given = req.run_name.clone().filter(|n| !n.is_empty());
                    if let (Some(a), Some(b)) = (&given, &tag_name)
                        && a != b
                    {
                        return Err(Error::invalid(format!(
                            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{a}', mlflow.runName='{b}')."
                        )));
                    }
                    let name = given.or(tag_name.clone()).unwrap_or_else(|| random_run_name(&run_id));
                    let user = if req.user_id.is_empty() {
                        req.tags.iter().find(|t| t.key == "mlflow.user").map(|t| t.value.clone()).unwrap_or_default()
                    } else {
                        req.user_id.clone()
                    };
                    let start = if req.start_time > 0 { req.start_time } else { now_millis() };
                    let artifact_uri = format!("{artifact_location}/{run_id}/artifacts");
                    sqlx::query("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES (?, ?, ?, ?, 'RUNNING', ?, NULL, ?, 'active')")
                        .bind(&run_id)
                        .bind(&name)
                        .bind(exp_id)
                        .bind(&user)
                        .bind(start)
                        .bind(&artifact_uri)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    let mut tags = req.tags;
                    if tag_name.is_none() {
                        tags.push(Tag::new("mlflow.runName", name.clone()));
                    }
                    log_batch::write(c, &run_id, &[], &[], &tags).await?;
                    // A new run is exactly what was just written: build it rather than read it back.
                    let tags: std::collections::BTreeMap<String, String> = tags.into_iter().map(|t| (t.key, t.value)).collect();
                    Ok(Run {
                        info: RunInfo {
                            run_id: run_id.clone(),
                            run_uuid: run_id,
                            run_name: name,
                            experiment_id: exp_id.to_string(),
                            user_id: user,
                            status: RunStatus::Running,
                            start_time: start,
                            end_time: None,
                            artifact_uri,
                            lifecycle_stage: LifecycleStage::Active,
                        },
                        data: RunData { tags: tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect(), ..RunData::default() },
                        inputs: RunInputs::default(),
                        outputs: RunOutputs::default(),
                    })
                })
            })
            .await
    }

    pub(crate) async fn do_get_run(&self, run_id: &str) -> Result<Run> {
        rows::run(&mut *self.read_conn().await?, run_id).await
    }

    pub(crate) async fn do_update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        let run_id = run_id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    active_run(c, &run_id).await?;
                    if let Some(s) = status {
                        sqlx::query("UPDATE runs SET status = ? WHERE run_uuid = ?")
                            .bind(s.as_str())
                            .bind(&run_id)
                            .execute(&mut *c)
                            .await
                            .db()?;
                    }
                    if let Some(t) = end_time {
                        sqlx::query("UPDATE runs SET end_time = ? WHERE run_uuid = ?")
                            .bind(t)
                            .bind(&run_id)
                            .execute(&mut *c)
                            .await
                            .db()?;
                    }
                    if let Some(n) = run_name.filter(|n| !n.is_empty()) {
                        log_batch::write(c, &run_id, &[], &[], &[Tag::new("mlflow.runName", n)])
                            .await?;
                    }
                    rows::run_info_of(c, &run_id).await
                })
            })
            .await
    }

    async fn set_run_stage(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let run_id = run_id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let info = rows::run_info_of(c, &run_id).await?;
                    if stage == LifecycleStage::Active {
                        let exp =
                            experiment(c, info.experiment_id.parse().unwrap_or_default()).await?;
                        if exp.lifecycle_stage == LifecycleStage::Deleted {
                            return Err(Error::invalid(format!(
                                "Cannot restore run {run_id}: its experiment {} is deleted.",
                                exp.experiment_id
                            )));
                        }
                    }
                    let deleted_time = (stage == LifecycleStage::Deleted).then(now_millis);
                    sqlx::query(
                        "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE run_uuid = ?",
                    )
                    .bind(stage.as_str())
                    .bind(deleted_time)
                    .bind(&run_id)
                    .execute(&mut *c)
                    .await
                    .db()?;
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_delete_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Deleted).await
    }

    pub(crate) async fn do_restore_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Active).await
    }

    pub(crate) async fn do_log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        let run_id = run_id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(
                    async move { log_batch::write(c, &run_id, &metrics, &params, &tags).await },
                )
            })
            .await
    }

    pub(crate) async fn do_delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let (run_id, key) = (run_id.to_string(), key.to_string());
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    active_run(c, &run_id).await?;
                    let n = sqlx::query("DELETE FROM tags WHERE run_uuid = ? AND key = ?")
                        .bind(&run_id)
                        .bind(&key)
                        .execute(&mut *c)
                        .await
                        .db()?
                        .rows_affected();
                    if n == 0 {
                        return Err(Error::not_found(format!(
                            "No tag with name: {key} in run with id {run_id}"
                        )));
                    }
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        let run_id = run_id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let info = active_run(c, &run_id).await?;
                    let exp_id: i64 = info.experiment_id.parse().unwrap_or_default();
                    for input in &datasets {
                        let d = &input.dataset;
                        let existing: Option<String> = sqlx::query_scalar("SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?")
                            .bind(exp_id)
                            .bind(&d.name)
                            .bind(&d.digest)
                            .fetch_optional(&mut *c)
                            .await
                            .db()?;
                        let ds_id = match existing {
                            Some(id) => id,
                            None => {
                                let id = uuid::Uuid::new_v4().simple().to_string();
                                sqlx::query("INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                                    .bind(&id)
                                    .bind(exp_id)
                                    .bind(&d.name)
                                    .bind(&d.digest)
                                    .bind(&d.source_type)
                                    .bind(&d.source)
                                    .bind(&d.schema)
                                    .bind(&d.profile)
                                    .execute(&mut *c)
                                    .await
                                    .db()?;
                                id
                            }
                        };
                        let position: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM run_dataset_inputs WHERE run_uuid = ?").bind(&run_id).fetch_one(&mut *c).await.db()?;
                        sqlx::query("INSERT OR IGNORE INTO run_dataset_inputs (run_uuid, dataset_uuid, position) VALUES (?, ?, ?)").bind(&run_id).bind(&ds_id).bind(position).execute(&mut *c).await.db()?;
                        for t in &input.tags {
                            sqlx::query("INSERT OR REPLACE INTO run_dataset_input_tags (run_uuid, dataset_uuid, key, value) VALUES (?, ?, ?, ?)")
                                .bind(&run_id)
                                .bind(&ds_id)
                                .bind(&t.key)
                                .bind(&t.value)
                                .execute(&mut *c)
                                .await
                                .db()?;
                        }
                    }
                    for m in &models {
                        sqlx::query("INSERT OR IGNORE INTO run_model_inputs (run_uuid, model_id) VALUES (?, ?)").bind(&run_id).bind(&m.model_id).execute(&mut *c).await.db()?;
                    }
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_log_outputs(
        &self,
        run_id: &str,
        models: Vec<ModelOutput>,
    ) -> Result<()> {
        let run_id = run_id.to_string();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    active_run(c, &run_id).await?;
                    for m in &models {
                        let exists: Option<String> = sqlx::query_scalar("SELECT model_id FROM logged_models WHERE model_id = ?").bind(&m.model_id).fetch_optional(&mut *c).await.db()?;
                        if exists.is_none() {
                            return Err(Error::not_found(format!("Logged model with ID '{}' not found.", m.model_id)));
                        }
                        sqlx::query("INSERT OR IGNORE INTO run_model_outputs (run_uuid, model_id, step) VALUES (?, ?, ?)").bind(&run_id).bind(&m.model_id).bind(m.step).execute(&mut *c).await.db()?;
                    }
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn do_search_runs(&self, q: SearchRuns) -> Result<Page<Run>> {
        let exp_ids: Vec<i64> = q
            .experiment_ids
            .iter()
            .map(|e| parse_experiment_id(e))
            .collect::<Result<_>>()?;
        if exp_ids.is_empty() {
            return Ok(Page::empty());
        }
        let sql = search::run_search(
            search::Dialect::Sqlite,
            &exp_ids,
            q.view,
            &q.filter,
            &q.order_by,
            None,
        );
        let mut c = self.read_conn().await?;
        let (ids, more) = paging::page_ids::<String>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            rows::runs(&mut c, &ids).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }

    pub(crate) async fn do_metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        max_results: usize,
    ) -> Result<Page<Metric>> {
        let mut c = self.read_conn().await?;
        rows::run_info_of(&mut c, run_id).await?;
        let rows = sqlx::query("SELECT ?2, m.value, m.is_nan, m.timestamp, m.step FROM metrics m JOIN runs r ON r.run_key = m.run_key WHERE r.run_uuid = ?1 AND m.key_id = (SELECT key_id FROM metric_keys WHERE name = ?2) ORDER BY m.step, m.timestamp, m.value LIMIT ?3 OFFSET ?4")
            .bind(run_id)
            .bind(key)
            .bind((max_results as i64).saturating_add(1))
            .bind(offset as i64)
            .fetch_all(&mut *c)
            .await
            .db()?;
        let more = rows.len() > max_results;
        let mut items = Vec::with_capacity(rows.len().min(max_results));
        for r in rows.iter().take(max_results) {
            items.push(Metric::new(
                r.try_get::<String, _>(0).db()?,
                rows::metric_value(r.try_get(1).db()?, r.try_get(2).db()?),
                r.try_get(3).db()?,
                r.try_get(4).db()?,
            ));
        }
        Ok(Page::new(items, offset, max_results, more))
    }

    pub(crate) async fn do_metric_history_bulk(
        &self,
        run_ids: &[String],
        key: &str,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        let mut c = self.read_conn().await?;
        let mut out = Vec::new();
        for run_id in run_ids {
            let rows = sqlx::query("SELECT ?2, m.value, m.is_nan, m.timestamp, m.step FROM metrics m JOIN runs r ON r.run_key = m.run_key WHERE r.run_uuid = ?1 AND m.key_id = (SELECT key_id FROM metric_keys WHERE name = ?2) ORDER BY m.step, m.timestamp, m.value LIMIT ?3")
                .bind(run_id)
                .bind(key)
                .bind(max_results as i64)
                .fetch_all(&mut *c)
                .await
                .db()?;
            for r in rows {
                let mut m = Metric::new(
                    r.try_get::<String, _>(0).db()?,
                    rows::metric_value(r.try_get(1).db()?, r.try_get(2).db()?),
                    r.try_get(3).db()?,
                    r.try_get(4).db()?,
                );
                m.run_id = Some(run_id.clone());
                out.push(m);
            }
        }
        Ok(out)
    }
}
