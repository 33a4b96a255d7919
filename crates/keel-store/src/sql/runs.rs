//! Runs, their metrics, params, tags, inputs and outputs.
//!
//! Two parts are written per dialect because each is tuned to its engine: the batch writer
//! (one multi-statement round trip on SQLite, array statements over interned metric ids on
//! PostgreSQL) and the loader of a page of runs with their params, tags and latest metrics (one
//! JSON row on SQLite, lateral array aggregates on PostgreSQL). Everything else is here once.

use std::collections::{BTreeMap, HashMap};

use keel_core::RunStore;
use keel_core::entities::*;
use keel_core::store::{CreateRun, Page, SearchRuns};
use keel_core::{Error, Result, now_millis, validate};

use super::audit::{On, kind};
use super::experiments::experiment;
use super::{SqlStore, metric_value, paging};
use crate::db::{Bind, Conn, Db, DbResult, Dialect, Lock, Row, Sql};
use crate::names::random_run_name;
use crate::search;

pub(crate) const RUN_COLUMNS: &str = "run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage";

pub(crate) fn run_not_found(run_id: &str) -> Error {
    Error::not_found(format!("Run with id={run_id} not found"))
}

fn not_active(run_id: &str, stage: &str) -> Error {
    Error::invalid(format!(
        "The run {run_id} must be in the 'active' state. Current state is {stage}."
    ))
}

/// A run's info from a row selected with [`RUN_COLUMNS`] first.
fn run_info(r: &Row) -> Result<RunInfo> {
    let id: String = r.get(0)?;
    let status: String = r.get(4)?;
    Ok(RunInfo {
        run_uuid: id.clone(),
        run_id: id,
        run_name: r.get(1)?,
        experiment_id: r.get_id(2)?,
        user_id: r.get(3)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Running),
        start_time: r.get(5)?,
        end_time: r.get(6)?,
        artifact_uri: r.get(7)?,
        lifecycle_stage: LifecycleStage::parse(&r.get::<String>(8)?),
    })
}

/// The run's info, or `RESOURCE_DOES_NOT_EXIST`.
pub(crate) async fn run_info_of(c: &mut Conn<'_>, run_id: &str) -> Result<RunInfo> {
    let sql = c
        .stmt(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = ?"
        ))
        .arg(run_id);
    match c.row(sql).await? {
        Some(r) => run_info(&r),
        None => Err(run_not_found(run_id)),
    }
}

/// Locks the run row (`Share` to write under it, `Update` to change it) for the rest of the
/// write unit and returns its key if the run is active.
pub(crate) async fn lock_active_run(c: &mut Conn<'_>, run_id: &str, lock: Lock) -> Result<i64> {
    let lock = c.lock(lock);
    let sql = c
        .stmt(&format!(
            "SELECT run_key, lifecycle_stage FROM runs WHERE run_uuid = ?{lock}"
        ))
        .arg(run_id);
    let Some(r) = c.row(sql).await? else {
        return Err(run_not_found(run_id));
    };
    match r.get::<String>(1)?.as_str() {
        "active" => r.get(0),
        stage => Err(not_active(run_id, stage)),
    }
}

/// Writes params and tags (no metrics) for an active run inside the caller's write unit.
async fn write_params_tags(
    c: &mut Conn<'_>,
    run_id: &str,
    params: &[Param],
    tags: &[Tag],
) -> Result<()> {
    match c {
        Conn::Sqlite(conn) => {
            crate::sqlite::log_batch::write(conn, run_id, &[], params, tags).await
        }
        Conn::Pg(conn) => {
            crate::postgres::runs::write_batch(conn, run_id, &[], &HashMap::new(), params, tags)
                .await
        }
    }
}

/// The run ids as a one-column table `u(column1)` to join on, bound as one value (a JSON array
/// read by `json_each` on SQLite, a text array on PostgreSQL), so the statement's text is the
/// same for any number of ids and is prepared once; each id is then a probe of the joined
/// table's index.
fn ids_table(sql: &mut Sql, ids: &[String]) {
    match sql.dialect {
        Dialect::Sqlite => {
            let list = serde_json::Value::from(ids.to_vec()).to_string();
            sql.push("(SELECT value AS column1 FROM json_each(")
                .bind(list)
                .push(")) u");
        }
        Dialect::Postgres => {
            sql.push("unnest(")
                .bind(Bind::Strs(ids.to_vec()))
                .push("::text[]) AS u(column1)");
        }
    }
    sql.prepare = true;
}

/// Attaches dataset inputs, model inputs and model outputs to loaded runs.
async fn attach_inputs_outputs(
    c: &mut Conn<'_>,
    ids: &[String],
    by_id: &mut HashMap<String, Run>,
) -> Result<()> {
    let mut sql = c.sql();
    sql.push("SELECT i.run_uuid, d.dataset_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile FROM ");
    ids_table(&mut sql, ids);
    sql.push(" JOIN run_dataset_inputs i ON i.run_uuid = u.column1 JOIN datasets d ON d.dataset_uuid = i.dataset_uuid ORDER BY i.run_uuid, i.position");
    let mut input_pos: HashMap<(String, String), usize> = HashMap::new();
    for r in c.rows(sql).await? {
        let id: String = r.get(0)?;
        if let Some(run) = by_id.get_mut(&id) {
            let ds_id: String = r.get(1)?;
            input_pos.insert((id, ds_id), run.inputs.dataset_inputs.len());
            run.inputs.dataset_inputs.push(DatasetInput {
                tags: Vec::new(),
                dataset: Dataset {
                    name: r.get(2)?,
                    digest: r.get(3)?,
                    source_type: r.get(4)?,
                    source: r.get(5)?,
                    schema: r.get(6)?,
                    profile: r.get(7)?,
                },
            });
        }
    }
    if !input_pos.is_empty() {
        let mut sql = c.sql();
        sql.push("SELECT t.run_uuid, t.dataset_uuid, t.key, t.value FROM ");
        ids_table(&mut sql, ids);
        sql.push(" JOIN run_dataset_input_tags t ON t.run_uuid = u.column1 ORDER BY t.key");
        for r in c.rows(sql).await? {
            let key = (r.get::<String>(0)?, r.get::<String>(1)?);
            if let (Some(pos), Some(run)) = (input_pos.get(&key), by_id.get_mut(&key.0)) {
                run.inputs.dataset_inputs[*pos]
                    .tags
                    .push(Tag::new(r.get::<String>(2)?, r.get::<String>(3)?));
            }
        }
    }
    let mut sql = c.sql();
    sql.push("SELECT i.run_uuid, i.model_id FROM ");
    ids_table(&mut sql, ids);
    sql.push(" JOIN run_model_inputs i ON i.run_uuid = u.column1");
    for r in c.rows(sql).await? {
        if let Some(run) = by_id.get_mut(&r.get::<String>(0)?) {
            run.inputs.model_inputs.push(ModelInput {
                model_id: r.get(1)?,
            });
        }
    }
    let mut sql = c.sql();
    sql.push("SELECT o.run_uuid, o.model_id, o.step FROM ");
    ids_table(&mut sql, ids);
    sql.push(" JOIN run_model_outputs o ON o.run_uuid = u.column1 ORDER BY o.step");
    for r in c.rows(sql).await? {
        if let Some(run) = by_id.get_mut(&r.get::<String>(0)?) {
            run.outputs.model_outputs.push(ModelOutput {
                model_id: r.get(1)?,
                step: r.get(2)?,
            });
        }
    }
    Ok(())
}

/// Ids per statement when loading runs: bounded by SQLite's limit on bound values.
const LOAD_CHUNK: usize = 5000;

#[async_trait::async_trait]
impl RunStore for SqlStore {
    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        let exp_id = validate::experiment_id(&req.experiment_id)?;
        let run = self.write(On::Created(kind::RUN, |r: &Run| r.info.run_id.clone()), move |mut c| {
                Box::pin(async move {
                    let lock = c.lock(Lock::Share);
                    let sql = c
                        .stmt(&format!(
                            "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?{lock}"
                        ))
                        .arg(exp_id);
                    let artifact_location: String = match c.row(sql).await? {
                        None => {
                            return Err(Error::not_found(format!(
                                "No Experiment with id={exp_id} exists"
                            )));
                        }
                        Some(r) => match r.get::<String>(1)?.as_str() {
                            "active" => r.get(0)?,
                            stage => {
                                return Err(Error::invalid(format!(
                                    "The experiment {exp_id} must be in the 'active' state. Current state is {stage}."
                                )));
                            }
                        },
                    };
                    let run_id = uuid::Uuid::new_v4().simple().to_string();
                    // The last of repeated tags wins, as when they are logged one by one.
                    let tag_name = req
                        .tags
                        .iter()
                        .rev()
                        .find(|t| t.key == "mlflow.runName")
                        .map(|t| t.value.clone());
                    let given = req.run_name.clone().filter(|n| !n.is_empty());
                    if let (Some(a), Some(b)) = (&given, &tag_name)
                        && a != b
                    {
                        return Err(Error::invalid(format!(
                            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='{a}', mlflow.runName='{b}')."
                        )));
                    }
                    let name = given
                        .or(tag_name.clone())
                        .unwrap_or_else(|| random_run_name(&run_id));
                    let user = if req.user_id.is_empty() {
                        req.tags
                            .iter()
                            .find(|t| t.key == "mlflow.user")
                            .map(|t| t.value.clone())
                            .unwrap_or_default()
                    } else {
                        req.user_id.clone()
                    };
                    let start = if req.start_time > 0 {
                        req.start_time
                    } else {
                        now_millis()
                    };
                    let artifact_uri = format!("{artifact_location}/{run_id}/artifacts");
                    let sql = c
                        .stmt("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES (?, ?, ?, ?, 'RUNNING', ?, NULL, ?, 'active')")
                        .arg(&run_id)
                        .arg(&name)
                        .arg(exp_id)
                        .arg(&user)
                        .arg(start)
                        .arg(&artifact_uri);
                    c.exec(sql).await?;
                    let mut tags = req.tags;
                    if tag_name.is_none() {
                        tags.push(Tag::new("mlflow.runName", name.clone()));
                    }
                    write_params_tags(&mut c, &run_id, &[], &tags).await?;
                    // A new run is exactly what was just written: build it rather than read it.
                    let tags: BTreeMap<String, String> =
                        tags.into_iter().map(|t| (t.key, t.value)).collect();
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
                        data: RunData {
                            tags: tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect(),
                            ..RunData::default()
                        },
                        inputs: RunInputs::default(),
                        outputs: RunOutputs::default(),
                    })
                })
            })
            .await?;
        self.run_created();
        Ok(run)
    }

    async fn get_run(&self, run_id: &str) -> Result<Run> {
        let mut r = self.db.reader().await?;
        self.load_runs(&mut r.conn(), &[run_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| run_not_found(run_id))
    }

    async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        let run_id = run_id.to_string();
        self.write(On::subject(kind::RUN, run_id.clone()), move |mut c| {
                Box::pin(async move {
                    lock_active_run(&mut c, &run_id, Lock::Update).await?;
                    let sql = c
                        .stmt("UPDATE runs SET status = COALESCE(?, status), end_time = COALESCE(?, end_time) WHERE run_uuid = ?")
                        .arg(status.map(|s| s.as_str()))
                        .arg(end_time)
                        .arg(&run_id);
                    c.exec(sql).await?;
                    if let Some(n) = run_name.filter(|n| !n.is_empty()) {
                        write_params_tags(&mut c, &run_id, &[], &[Tag::new("mlflow.runName", n)])
                            .await?;
                    }
                    run_info_of(&mut c, &run_id).await
                })
            })
            .await
    }

    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Deleted).await
    }

    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Active).await
    }

    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        if self.audit.load(std::sync::atomic::Ordering::Acquire) {
            return self.log_batch_audited(run_id, metrics, params, tags).await;
        }
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let run_id = run_id.to_string();
                writer
                    .write(move |c| {
                        Box::pin(async move {
                            crate::sqlite::log_batch::write(c, &run_id, &metrics, &params, &tags)
                                .await
                        })
                    })
                    .await
            }
            Db::Pg(pool) => {
                crate::postgres::runs::log_batch(
                    pool,
                    &self.metric_keys,
                    run_id,
                    &metrics,
                    &params,
                    &tags,
                )
                .await
            }
        }
    }

    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let (run_id, key) = (run_id.to_string(), key.to_string());
        self.write(On::Bare(kind::RUN, run_id.clone()), move |mut c| {
            Box::pin(async move {
                lock_active_run(&mut c, &run_id, Lock::Share).await?;
                let sql = c
                    .stmt("DELETE FROM tags WHERE run_uuid = ? AND key = ?")
                    .arg(&run_id)
                    .arg(&key);
                if c.exec(sql).await? == 0 {
                    return Err(Error::not_found(format!(
                        "No tag with name: {key} in run with id {run_id}"
                    )));
                }
                Ok(())
            })
        })
        .await
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(On::Bare(kind::RUN, run_id.clone()), move |mut c| {
                Box::pin(async move {
                    // Exclusive: the input positions are counted from what is there.
                    lock_active_run(&mut c, &run_id, Lock::Update).await?;
                    let sql = c
                        .stmt("SELECT experiment_id FROM runs WHERE run_uuid = ?")
                        .arg(&run_id);
                    let exp_id: i64 = c
                        .value(sql)
                        .await?
                        .ok_or_else(|| run_not_found(&run_id))?;
                    for input in &datasets {
                        let d = &input.dataset;
                        let sql = c
                            .stmt("INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, name, digest) DO NOTHING")
                            .arg(uuid::Uuid::new_v4().simple().to_string())
                            .arg(exp_id)
                            .arg(&d.name)
                            .arg(&d.digest)
                            .arg(&d.source_type)
                            .arg(&d.source)
                            .arg(&d.schema)
                            .arg(&d.profile);
                        c.exec(sql).await?;
                        let sql = c
                            .stmt("SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?")
                            .arg(exp_id)
                            .arg(&d.name)
                            .arg(&d.digest);
                        let ds_id: String = c
                            .value(sql)
                            .await?
                            .ok_or_else(|| Error::internal("a dataset row vanished"))?;
                        let sql = c
                            .stmt("INSERT INTO run_dataset_inputs (run_uuid, dataset_uuid, position) SELECT ?, ?, COUNT(*) FROM run_dataset_inputs WHERE run_uuid = ? ON CONFLICT DO NOTHING")
                            .arg(&run_id)
                            .arg(&ds_id)
                            .arg(&run_id);
                        c.exec(sql).await?;
                        for t in &input.tags {
                            let sql = c
                                .stmt("INSERT INTO run_dataset_input_tags (run_uuid, dataset_uuid, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (run_uuid, dataset_uuid, key) DO UPDATE SET value = excluded.value")
                                .arg(&run_id)
                                .arg(&ds_id)
                                .arg(&t.key)
                                .arg(&t.value);
                            c.exec(sql).await?;
                        }
                    }
                    for m in &models {
                        let sql = c
                            .stmt("INSERT INTO run_model_inputs (run_uuid, model_id) VALUES (?, ?) ON CONFLICT DO NOTHING")
                            .arg(&run_id)
                            .arg(&m.model_id);
                        c.exec(sql).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(On::Bare(kind::RUN, run_id.clone()), move |mut c| {
                Box::pin(async move {
                    lock_active_run(&mut c, &run_id, Lock::Share).await?;
                    for m in &models {
                        let sql = c
                            .stmt("SELECT model_id FROM logged_models WHERE model_id = ?")
                            .arg(&m.model_id);
                        if c.value::<String>(sql).await?.is_none() {
                            return Err(Error::not_found(format!(
                                "Logged model with ID '{}' not found.",
                                m.model_id
                            )));
                        }
                        let sql = c
                            .stmt("INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                            .arg(&run_id)
                            .arg(&m.model_id)
                            .arg(m.step);
                        c.exec(sql).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn search_runs(&self, q: SearchRuns) -> Result<Page<Run>> {
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
        // On PostgreSQL metric names become ids before planning, so the planner sees which
        // metric (and its statistics) a filter is on instead of an opaque subquery.
        let key_ids = match &mut c {
            Conn::Pg(conn) => {
                let names = search::metric_names(&q.filter, &q.order_by);
                Some(self.metric_keys.existing_ids(conn, &names).await?)
            }
            Conn::Sqlite(_) => None,
        };
        let sql = search::run_search(
            c.dialect(),
            &exp_ids,
            q.view,
            &q.filter,
            &q.order_by,
            key_ids.as_ref(),
        );
        let (ids, more) = paging::page_ids::<String>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            self.load_runs(&mut c, &ids).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }

    async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        max_results: usize,
    ) -> Result<Page<Metric>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        run_info_of(&mut c, run_id).await?;
        let mut items = history(&mut c, run_id, key, max_results.saturating_add(1), offset).await?;
        let more = items.len() > max_results;
        items.truncate(max_results);
        Ok(Page::new(items, offset, max_results, more))
    }

    async fn metric_buckets(
        &self,
        run_id: &str,
        key: &str,
        range: (Option<i64>, Option<i64>),
        buckets: usize,
    ) -> Result<keel_core::buckets::Series> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt("SELECT run_key FROM runs WHERE run_uuid = ?")
            .arg(run_id);
        let run_key = c
            .value::<i64>(sql)
            .await?
            .ok_or_else(|| run_not_found(run_id))?;
        super::rollups::series(&mut c, run_key, run_id, key, range, buckets).await
    }

    async fn metric_history_bulk(
        &self,
        run_ids: &[String],
        key: &str,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut out = Vec::new();
        for run_id in run_ids {
            for mut m in history(&mut c, run_id, key, max_results, 0).await? {
                m.run_id = Some(run_id.clone());
                out.push(m);
            }
        }
        Ok(out)
    }
}

/// Up to `limit` values of one metric of one run from `offset`, in step order (nothing for a
/// run that does not exist).
async fn history(
    c: &mut Conn<'_>,
    run_id: &str,
    key: &str,
    limit: usize,
    offset: u64,
) -> Result<Vec<Metric>> {
    let sql = c
        .stmt("SELECT m.value, m.is_nan, m.timestamp, m.step FROM metrics m JOIN runs r ON r.run_key = m.run_key WHERE r.run_uuid = ? AND m.key_id = (SELECT key_id FROM metric_keys WHERE name = ?) ORDER BY m.step, m.timestamp, m.value LIMIT ? OFFSET ?")
        .arg(run_id)
        .arg(key)
        .arg(i64::try_from(limit).unwrap_or(i64::MAX))
        .arg(i64::try_from(offset).unwrap_or(i64::MAX));
    c.rows(sql)
        .await?
        .iter()
        .map(|r| {
            Ok(Metric::new(
                key,
                metric_value(r.get(0)?, r.get(1)?),
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .collect()
}

/// How many new runs make [`SqlStore::run_created`] refresh PostgreSQL's statistics.
const ANALYZE_EVERY: u64 = 500;

impl SqlStore {
    /// Loads whole runs (info, latest metrics, params, tags, inputs, outputs) in `ids` order.
    async fn load_runs(&self, c: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Run>> {
        let mut by_id: HashMap<String, Run> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(LOAD_CHUNK) {
            let page = match c {
                Conn::Sqlite(conn) => crate::sqlite::rows::runs(conn, chunk).await?,
                Conn::Pg(conn) => {
                    crate::postgres::runs::runs(conn, &self.metric_keys, chunk).await?
                }
            };
            let mut loaded: HashMap<String, Run> = page
                .into_iter()
                .map(|r| (r.info.run_id.clone(), r))
                .collect();
            attach_inputs_outputs(c, chunk, &mut loaded).await?;
            by_id.extend(loaded);
        }
        Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
    }

    /// [`RunStore::log_batch`] as one audited write unit on either engine.
    async fn log_batch_audited(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        // PostgreSQL binds metric key ids, assigned before the unit as its fast path does.
        let ids = match &self.db {
            Db::Pg(pool) if !metrics.is_empty() => {
                let names: Vec<&str> = metrics.iter().map(|m| m.key.as_str()).collect();
                let mut c = pool.acquire().await.db()?;
                self.metric_keys.ids(&mut c, &names).await?
            }
            _ => Default::default(),
        };
        let run_id = run_id.to_string();
        self.write(On::Bare(kind::RUN, run_id.clone()), move |c| {
            Box::pin(async move {
                match c {
                    Conn::Sqlite(c) => {
                        crate::sqlite::log_batch::write(c, &run_id, &metrics, &params, &tags).await
                    }
                    Conn::Pg(c) => {
                        crate::postgres::runs::write_batch(
                            c, &run_id, &metrics, &ids, &params, &tags,
                        )
                        .await
                    }
                }
            })
        })
        .await
    }

    async fn set_run_stage(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let run_id = run_id.to_string();
        self.write(On::subject(kind::RUN, run_id.clone()), move |mut c| {
            Box::pin(async move {
                let lock = c.lock(Lock::Update);
                let sql = c
                    .stmt(&format!(
                        "SELECT experiment_id FROM runs WHERE run_uuid = ?{lock}"
                    ))
                    .arg(&run_id);
                let Some(exp_id) = c.value::<i64>(sql).await? else {
                    return Err(run_not_found(&run_id));
                };
                if stage == LifecycleStage::Active {
                    let exp = experiment(&mut c, exp_id).await?;
                    if exp.lifecycle_stage == LifecycleStage::Deleted {
                        return Err(Error::invalid(format!(
                            "Cannot restore run {run_id}: its experiment {exp_id} is deleted."
                        )));
                    }
                }
                let deleted_time = (stage == LifecycleStage::Deleted).then(now_millis);
                let sql = c
                    .stmt(
                        "UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE run_uuid = ?",
                    )
                    .arg(stage.as_str())
                    .arg(deleted_time)
                    .arg(&run_id);
                c.exec(sql).await?;
                Ok(())
            })
        })
        .await
    }

    /// Counts a new run; on PostgreSQL, every [`ANALYZE_EVERY`] runs refresh the planner's
    /// statistics of the tables search reads, in the background. Autovacuum analyzes a table
    /// only after it grew by a tenth and a minute passed; until then the planner takes a table
    /// that went from empty to thousands of runs for empty and picks nested loops that make a
    /// search ten times slower.
    pub(crate) fn run_created(&self) {
        let Db::Pg(pool) = &self.db else { return };
        let n = self
            .runs_created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n.is_multiple_of(ANALYZE_EVERY) {
            let pool = pool.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    sqlx::query("ANALYZE runs, params, tags, latest_metrics, metric_keys")
                        .execute(&pool)
                        .await
                {
                    tracing::warn!("cannot refresh PostgreSQL statistics: {e}");
                }
            });
        }
    }
}
