//! Runs, their metrics, params, tags, inputs and outputs on PostgreSQL.
//!
//! A log batch is one transaction: the run row is share-locked (so it cannot be deleted
//! half-way), metric names are interned, and params, tags, metric values and latest values each
//! go in as one statement over arrays (`UNNEST`), whatever the batch size. A batch of metrics
//! alone (what `log-metric` and most `log-batch` calls send) is a single statement: one round
//! trip and one commit.

use std::collections::HashMap;
use std::sync::RwLock;

use keel_core::entities::*;
use keel_core::store::{CreateRun, Page, SearchRuns};
use keel_core::{Error, Result, now_millis, validate};
use sqlx::{Connection, PgConnection, Row};

use super::experiment;
use super::{DbResult, PgStore, paging};
use crate::names::random_run_name;
use crate::search::{self, Dialect};
use crate::sqlite::rows::{metric_value, store_value};

const RUN_COLUMNS: &str = "run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage";

/// A page of runs with their params, tags and latest metrics, in one statement: each run's
/// key-value sets are aggregated by a lateral subquery, so every lookup is a probe of that
/// table's primary key whatever the planner thinks of the table's size (`= ANY` over a
/// 100-element array was planned as a sequential scan comparing every row with every id).
/// Metric names come from the id cache and everything is sorted here, which keeps the
/// statement to index probes.
static RUNS_PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let cols = RUN_COLUMNS
        .split(", ")
        .map(|c| format!("r.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {cols}, p.keys AS param_keys, p.vals AS param_values, t.keys AS tag_keys, \
         t.vals AS tag_values, m.ids AS metric_ids, m.vals AS metric_values, \
         m.nans AS metric_nans, m.stamps AS metric_timestamps, m.steps AS metric_steps \
         FROM unnest($1::text[]) AS u(id) JOIN runs r ON r.run_uuid = u.id \
         LEFT JOIN LATERAL (SELECT array_agg(key) AS keys, array_agg(value) AS vals \
           FROM params WHERE run_uuid = r.run_uuid) p ON true \
         LEFT JOIN LATERAL (SELECT array_agg(key) AS keys, array_agg(value) AS vals \
           FROM tags WHERE run_uuid = r.run_uuid) t ON true \
         LEFT JOIN LATERAL (SELECT array_agg(key_id) AS ids, array_agg(value) AS vals, \
           array_agg(is_nan) AS nans, array_agg(timestamp) AS stamps, array_agg(step) AS steps \
           FROM latest_metrics WHERE run_key = r.run_key) m ON true"
    )
});

fn run_info(r: &sqlx::postgres::PgRow) -> Result<RunInfo> {
    let id: String = r.try_get("run_uuid").db()?;
    let status: String = r.try_get("status").db()?;
    Ok(RunInfo {
        run_uuid: id.clone(),
        run_id: id,
        run_name: r.try_get("name").db()?,
        experiment_id: r.try_get::<i64, _>("experiment_id").db()?.to_string(),
        user_id: r.try_get("user_id").db()?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Running),
        start_time: r.try_get("start_time").db()?,
        end_time: r.try_get("end_time").db()?,
        artifact_uri: r.try_get("artifact_uri").db()?,
        lifecycle_stage: LifecycleStage::parse(r.try_get::<&str, _>("lifecycle_stage").db()?),
    })
}

/// The run's info, or `RESOURCE_DOES_NOT_EXIST`.
pub(crate) async fn run_info_of(conn: &mut PgConnection, run_id: &str) -> Result<RunInfo> {
    let q = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(q))
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    match row {
        Some(r) => run_info(&r),
        None => Err(Error::not_found(format!("Run with id={run_id} not found"))),
    }
}

/// Locks the run row (`FOR SHARE` to write under it, `FOR UPDATE` to change it) and returns
/// its key if the run is active.
pub(crate) async fn lock_active_run(
    conn: &mut PgConnection,
    run_id: &str,
    exclusive: bool,
) -> Result<i64> {
    let q = if exclusive {
        "SELECT run_key, lifecycle_stage FROM runs WHERE run_uuid = $1 FOR UPDATE"
    } else {
        "SELECT run_key, lifecycle_stage FROM runs WHERE run_uuid = $1 FOR SHARE"
    };
    let row: Option<(i64, String)> = sqlx::query_as(q)
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    match row {
        None => Err(Error::not_found(format!("Run with id={run_id} not found"))),
        Some((key, stage)) if stage == "active" => Ok(key),
        Some((_, stage)) => Err(Error::invalid(format!(
            "The run {run_id} must be in the 'active' state. Current state is {stage}."
        ))),
    }
}

/// Metric name -> key id, shared by a server's requests (see `PgStore::metric_keys`).
#[derive(Default)]
pub(crate) struct MetricKeys(RwLock<KeyMaps>);

/// Metric names and ids both ways.
#[derive(Default)]
pub(crate) struct KeyMaps {
    ids: HashMap<String, i64>,
    names: HashMap<i64, String>,
}

impl KeyMaps {
    fn insert(&mut self, name: String, id: i64) {
        self.names.insert(id, name.clone());
        self.ids.insert(name, id);
    }
}

/// (name, id) pairs of metric names.
type Pairs = Vec<(String, i64)>;

impl MetricKeys {
    /// Splits `keys` into the (name, id) pairs the cache knows and the keys it does not
    /// (sorted, without repeats).
    fn cached<K: Copy + Ord>(
        &self,
        keys: &[K],
        get: impl Fn(&KeyMaps, K) -> Option<(String, i64)>,
    ) -> Result<(Pairs, Vec<K>)> {
        let known = self.0.read().map_err(|_| poisoned())?;
        let mut found = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for k in keys {
            match get(&known, *k) {
                Some(pair) => found.push(pair),
                None => missing.push(*k),
            }
        }
        missing.sort_unstable();
        missing.dedup();
        Ok((found, missing))
    }

    /// Caches committed (id, name) rows and adds them to `found`.
    fn remember(&self, rows: Vec<(i64, String)>, found: &mut Pairs) -> Result<()> {
        let mut known = self.0.write().map_err(|_| poisoned())?;
        for (id, name) in rows {
            known.insert(name.clone(), id);
            found.push((name, id));
        }
        Ok(())
    }

    /// The ids of `names`, interning the ones the database does not have yet. Run it outside
    /// any transaction: what it caches must be committed.
    async fn ids(&self, conn: &mut PgConnection, names: &[&str]) -> Result<HashMap<String, i64>> {
        let (mut found, missing) =
            self.cached(names, |k, n| k.ids.get(n).map(|id| (n.to_string(), *id)))?;
        if missing.is_empty() {
            return Ok(found.into_iter().collect());
        }
        // One statement: insert the new names, and read the ids of all of them (the rows this
        // statement inserted are not visible to its own SELECT, hence the UNION).
        let mut rows: Vec<(i64, String)> = sqlx::query_as(
            "WITH new AS (INSERT INTO metric_keys (name) SELECT UNNEST($1::text[]) ON CONFLICT DO NOTHING RETURNING key_id, name) \
             SELECT key_id, name FROM new UNION ALL SELECT key_id, name FROM metric_keys WHERE name = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        // A name another writer inserted while this statement ran is in neither half of the
        // UNION (its row was not yet visible, and ON CONFLICT skipped ours); a new statement
        // sees it, committed.
        let got: std::collections::HashSet<&str> = rows.iter().map(|(_, n)| n.as_str()).collect();
        let late: Vec<&str> = missing
            .iter()
            .copied()
            .filter(|n| !got.contains(n))
            .collect();
        if !late.is_empty() {
            let more: Vec<(i64, String)> =
                sqlx::query_as("SELECT key_id, name FROM metric_keys WHERE name = ANY($1)")
                    .bind(&late)
                    .fetch_all(&mut *conn)
                    .await
                    .db()?;
            rows.extend(more);
        }
        self.remember(rows, &mut found)?;
        Ok(found.into_iter().collect())
    }

    /// The ids of those of `names` that exist (nothing is interned).
    pub(crate) async fn existing_ids(
        &self,
        conn: &mut PgConnection,
        names: &[&str],
    ) -> Result<HashMap<String, i64>> {
        let (mut found, missing) =
            self.cached(names, |k, n| k.ids.get(n).map(|id| (n.to_string(), *id)))?;
        if !missing.is_empty() {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT key_id, name FROM metric_keys WHERE name = ANY($1)")
                    .bind(&missing)
                    .fetch_all(&mut *conn)
                    .await
                    .db()?;
            self.remember(rows, &mut found)?;
        }
        Ok(found.into_iter().collect())
    }

    /// The names of metric ids (all of which exist: they come from stored values).
    async fn names(&self, conn: &mut PgConnection, ids: &[i64]) -> Result<HashMap<i64, String>> {
        let (mut found, missing) =
            self.cached(ids, |k, id| k.names.get(&id).map(|n| (n.clone(), id)))?;
        if !missing.is_empty() {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT key_id, name FROM metric_keys WHERE key_id = ANY($1)")
                    .bind(&missing)
                    .fetch_all(&mut *conn)
                    .await
                    .db()?;
            self.remember(rows, &mut found)?;
        }
        Ok(found.into_iter().map(|(n, id)| (id, n)).collect())
    }
}

fn poisoned() -> Error {
    Error::internal("metric key cache lock poisoned")
}

/// The arrays of a metrics insert and of its latest-value upsert.
struct MetricArrays {
    keys: Vec<i64>,
    steps: Vec<i64>,
    times: Vec<i64>,
    values: Vec<f64>,
    nans: Vec<i16>,
    models: Vec<Option<String>>,
    ds_names: Vec<Option<String>>,
    ds_digests: Vec<Option<String>>,
    /// Indexes of the newest value of each metric in this batch.
    latest: Vec<usize>,
}

impl MetricArrays {
    fn new(metrics: &[Metric], ids: &HashMap<String, i64>) -> Result<Self> {
        let n = metrics.len();
        let mut a = MetricArrays {
            keys: Vec::with_capacity(n),
            steps: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
            nans: Vec::with_capacity(n),
            models: Vec::with_capacity(n),
            ds_names: Vec::with_capacity(n),
            ds_digests: Vec::with_capacity(n),
            latest: Vec::new(),
        };
        let mut newest: HashMap<&str, usize> = HashMap::new();
        for (i, m) in metrics.iter().enumerate() {
            let (v, nan) = store_value(m.value);
            a.keys.push(ids.get(&m.key).copied().ok_or_else(|| {
                Error::internal(format!("metric name '{}' was not interned", m.key))
            })?);
            a.steps.push(m.step);
            a.times.push(m.timestamp);
            a.values.push(v);
            a.nans.push(i16::from(nan));
            a.models.push(m.model_id.clone());
            a.ds_names.push(m.dataset_name.clone());
            a.ds_digests.push(m.dataset_digest.clone());
            match newest.get(m.key.as_str()) {
                Some(&j) if !m.is_newer_than(&metrics[j]) => {}
                _ => {
                    newest.insert(&m.key, i);
                }
            }
        }
        a.latest = newest.into_values().collect();
        a.latest.sort_unstable();
        Ok(a)
    }

    fn pick<T: Clone>(&self, v: &[T]) -> Vec<T> {
        self.latest.iter().map(|&i| v[i].clone()).collect()
    }
}

/// Inserts metric values and moves latest values forward for the active run `run_id`, in one
/// statement. `false` when the run is missing or not active (nothing is written then).
async fn insert_metrics(conn: &mut PgConnection, run_id: &str, a: &MetricArrays) -> Result<bool> {
    let row: Option<i64> = sqlx::query_scalar(
        "WITH run AS (SELECT run_key FROM runs WHERE run_uuid = $1 AND lifecycle_stage = 'active' FOR SHARE), \
         ins AS (INSERT INTO metrics (run_key, key_id, step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest) \
                 SELECT run.run_key, u.* FROM run, UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::smallint[], $7::text[], $8::text[], $9::text[]) u \
                 ON CONFLICT DO NOTHING), \
         lat AS (INSERT INTO latest_metrics (run_key, key_id, step, timestamp, value, is_nan) \
                 SELECT run.run_key, u.* FROM run, UNNEST($10::bigint[], $11::bigint[], $12::bigint[], $13::float8[], $14::smallint[]) u \
                 ON CONFLICT (run_key, key_id) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan \
                 WHERE (excluded.step, excluded.timestamp, excluded.value) > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)) \
         SELECT run_key FROM run",
    )
    .bind(run_id)
    .bind(&a.keys)
    .bind(&a.steps)
    .bind(&a.times)
    .bind(&a.values)
    .bind(&a.nans)
    .bind(&a.models)
    .bind(&a.ds_names)
    .bind(&a.ds_digests)
    .bind(a.pick(&a.keys))
    .bind(a.pick(&a.steps))
    .bind(a.pick(&a.times))
    .bind(a.pick(&a.values))
    .bind(a.pick(&a.nans))
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    Ok(row.is_some())
}

/// Writes a batch for `run_id` inside the caller's transaction; `ids` holds the key ids of the
/// metrics' names (interned beforehand, outside the transaction, so a rollback cannot leave the
/// cache holding ids that were never committed).
pub(crate) async fn write_batch(
    conn: &mut PgConnection,
    run_id: &str,
    metrics: &[Metric],
    ids: &HashMap<String, i64>,
    params: &[Param],
    tags: &[Tag],
) -> Result<()> {
    let run_key = lock_active_run(conn, run_id, false).await?;
    if !params.is_empty() {
        let keys: Vec<&str> = params.iter().map(|p| p.key.as_str()).collect();
        let values: Vec<&str> = params.iter().map(|p| p.value.as_str()).collect();
        sqlx::query("INSERT INTO params (run_uuid, key, value) SELECT $1, k, v FROM UNNEST($2::text[], $3::text[]) AS t(k, v) ON CONFLICT DO NOTHING")
            .bind(run_id)
            .bind(&keys)
            .bind(&values)
            .execute(&mut *conn)
            .await
            .db()?;
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM params WHERE run_uuid = $1 AND key = ANY($2)")
                .bind(run_id)
                .bind(&keys)
                .fetch_all(&mut *conn)
                .await
                .db()?;
        let stored: HashMap<String, String> = stored.into_iter().collect();
        for p in params {
            if let Some(old) = stored.get(&p.key).filter(|old| **old != p.value) {
                return Err(Error::invalid(format!(
                    "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                    p.key, old, p.value
                )));
            }
        }
    }
    if !tags.is_empty() {
        // The last value of a repeated key wins, as when tags are set one by one.
        let mut last: HashMap<&str, &str> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        for t in tags {
            if last.insert(&t.key, &t.value).is_none() {
                order.push(&t.key);
            }
        }
        let values: Vec<&str> = order.iter().map(|k| last[k]).collect();
        sqlx::query("INSERT INTO tags (run_uuid, key, value) SELECT $1, k, v FROM UNNEST($2::text[], $3::text[]) AS t(k, v) ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value")
            .bind(run_id)
            .bind(&order)
            .bind(&values)
            .execute(&mut *conn)
            .await
            .db()?;
        if let Some(name) = last.get("mlflow.runName") {
            sqlx::query("UPDATE runs SET name = $1 WHERE run_key = $2")
                .bind(name)
                .bind(run_key)
                .execute(&mut *conn)
                .await
                .db()?;
        }
    }
    if !metrics.is_empty()
        && !insert_metrics(conn, run_id, &MetricArrays::new(metrics, ids)?).await?
    {
        return Err(Error::internal(format!(
            "run {run_id} changed state while locked"
        )));
    }
    Ok(())
}

/// Loads whole runs (info, latest metrics, params, tags, inputs, outputs) in `ids` order.
pub(crate) async fn runs(
    conn: &mut PgConnection,
    keys: &MetricKeys,
    ids: &[String],
) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(RUNS_PAGE.as_str()))
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut key_ids: Vec<i64> = Vec::new();
    for r in &rows {
        key_ids.extend(
            r.try_get::<Option<Vec<i64>>, _>("metric_ids")
                .db()?
                .unwrap_or_default(),
        );
    }
    let names = keys.names(conn, &key_ids).await?;
    let mut by_id: HashMap<String, Run> = HashMap::with_capacity(rows.len());
    for r in &rows {
        let info = run_info(r)?;
        let mut data = RunData::default();
        let strings = |col: &str| -> Result<Vec<String>> {
            Ok(r.try_get::<Option<Vec<String>>, _>(col)
                .db()?
                .unwrap_or_default())
        };
        for (k, v) in strings("param_keys")?
            .into_iter()
            .zip(strings("param_values")?)
        {
            data.params.push(Tag::new(k, v));
        }
        for (k, v) in strings("tag_keys")?.into_iter().zip(strings("tag_values")?) {
            data.tags.push(Tag::new(k, v));
        }
        let metric_ids: Vec<i64> = r
            .try_get::<Option<_>, _>("metric_ids")
            .db()?
            .unwrap_or_default();
        let values: Vec<f64> = r
            .try_get::<Option<_>, _>("metric_values")
            .db()?
            .unwrap_or_default();
        let nans: Vec<i16> = r
            .try_get::<Option<_>, _>("metric_nans")
            .db()?
            .unwrap_or_default();
        let stamps: Vec<i64> = r
            .try_get::<Option<_>, _>("metric_timestamps")
            .db()?
            .unwrap_or_default();
        let steps: Vec<i64> = r
            .try_get::<Option<_>, _>("metric_steps")
            .db()?
            .unwrap_or_default();
        for (i, id) in metric_ids.iter().enumerate() {
            let (Some(v), Some(n), Some(t), Some(s), Some(name)) = (
                values.get(i),
                nans.get(i),
                stamps.get(i),
                steps.get(i),
                names.get(id),
            ) else {
                return Err(Error::internal(format!(
                    "run {} has a latest value of unknown metric id {id}",
                    info.run_id
                )));
            };
            data.metrics
                .push(Metric::new(name.clone(), metric_value(*v, *n != 0), *t, *s));
        }
        data.params.sort_by(|a, b| a.key.cmp(&b.key));
        data.tags.sort_by(|a, b| a.key.cmp(&b.key));
        data.metrics.sort_by(|a, b| a.key.cmp(&b.key));
        by_id.insert(
            info.run_id.clone(),
            Run {
                info,
                data,
                inputs: RunInputs::default(),
                outputs: RunOutputs::default(),
            },
        );
    }
    let inputs = sqlx::query("SELECT i.run_uuid, d.dataset_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile FROM unnest($1::text[]) AS u(id) JOIN run_dataset_inputs i ON i.run_uuid = u.id JOIN datasets d ON d.dataset_uuid = i.dataset_uuid ORDER BY i.run_uuid, i.position")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut input_pos: HashMap<(String, String), usize> = HashMap::new();
    for r in inputs {
        let id: String = r.try_get(0).db()?;
        if let Some(run) = by_id.get_mut(&id) {
            let ds_id: String = r.try_get(1).db()?;
            input_pos.insert((id, ds_id), run.inputs.dataset_inputs.len());
            run.inputs.dataset_inputs.push(DatasetInput {
                tags: Vec::new(),
                dataset: Dataset {
                    name: r.try_get(2).db()?,
                    digest: r.try_get(3).db()?,
                    source_type: r.try_get(4).db()?,
                    source: r.try_get(5).db()?,
                    schema: r.try_get(6).db()?,
                    profile: r.try_get(7).db()?,
                },
            });
        }
    }
    if !input_pos.is_empty() {
        for r in sqlx::query("SELECT t.run_uuid, t.dataset_uuid, t.key, t.value FROM unnest($1::text[]) AS u(id) JOIN run_dataset_input_tags t ON t.run_uuid = u.id ORDER BY t.key")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .db()?
        {
            let key = (
                r.try_get::<String, _>(0).db()?,
                r.try_get::<String, _>(1).db()?,
            );
            if let (Some(pos), Some(run)) = (input_pos.get(&key), by_id.get_mut(&key.0)) {
                run.inputs.dataset_inputs[*pos].tags.push(Tag::new(
                    r.try_get::<String, _>(2).db()?,
                    r.try_get::<String, _>(3).db()?,
                ));
            }
        }
    }
    for r in sqlx::query("SELECT i.run_uuid, i.model_id FROM unnest($1::text[]) AS u(id) JOIN run_model_inputs i ON i.run_uuid = u.id")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .db()?
    {
        if let Some(run) = by_id.get_mut(r.try_get::<&str, _>(0).db()?) {
            run.inputs.model_inputs.push(ModelInput {
                model_id: r.try_get(1).db()?,
            });
        }
    }
    for r in sqlx::query(
        "SELECT o.run_uuid, o.model_id, o.step FROM unnest($1::text[]) AS u(id) JOIN run_model_outputs o ON o.run_uuid = u.id ORDER BY o.step",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
    .db()?
    {
        if let Some(run) = by_id.get_mut(r.try_get::<&str, _>(0).db()?) {
            run.outputs.model_outputs.push(ModelOutput {
                model_id: r.try_get(1).db()?,
                step: r.try_get(2).db()?,
            });
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

impl PgStore {
    pub(crate) async fn do_create_run(&self, req: CreateRun) -> Result<Run> {
        let exp_id = validate::experiment_id(&req.experiment_id)?;
        let mut tx = self.pool.begin().await.db()?;
        let exp: Option<(String, String)> = sqlx::query_as("SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = $1 FOR SHARE")
            .bind(exp_id)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        let artifact_location = match exp {
            None => {
                return Err(Error::not_found(format!(
                    "No Experiment with id={exp_id} exists"
                )));
            }
            Some((_, stage)) if stage != "active" => {
                return Err(Error::invalid(format!(
                    "The experiment {exp_id} must be in the 'active' state. Current state is {stage}."
                )));
            }
            Some((location, _)) => location,
        };
        let run_id = uuid::Uuid::new_v4().simple().to_string();
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
        sqlx::query("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES ($1, $2, $3, $4, 'RUNNING', $5, NULL, $6, 'active')")
            .bind(&run_id)
            .bind(&name)
            .bind(exp_id)
            .bind(&user)
            .bind(start)
            .bind(&artifact_uri)
            .execute(&mut *tx)
            .await
            .db()?;
        let mut tags = req.tags;
        if tag_name.is_none() {
            tags.push(Tag::new("mlflow.runName", name.clone()));
        }
        write_batch(&mut tx, &run_id, &[], &HashMap::new(), &[], &tags).await?;
        let run = runs(&mut tx, &self.metric_keys, std::slice::from_ref(&run_id))
            .await?
            .pop();
        tx.commit().await.db()?;
        self.run_created();
        run.ok_or_else(|| Error::internal("the new run vanished"))
    }

    pub(crate) async fn do_get_run(&self, run_id: &str) -> Result<Run> {
        let mut c = self.pool.acquire().await.db()?;
        runs(&mut c, &self.metric_keys, &[run_id.to_string()])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))
    }

    pub(crate) async fn do_update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        let mut tx = self.pool.begin().await.db()?;
        lock_active_run(&mut tx, run_id, true).await?;
        sqlx::query("UPDATE runs SET status = COALESCE($1, status), end_time = COALESCE($2, end_time) WHERE run_uuid = $3")
            .bind(status.map(|s| s.as_str()))
            .bind(end_time)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .db()?;
        if let Some(n) = run_name.filter(|n| !n.is_empty()) {
            write_batch(
                &mut tx,
                run_id,
                &[],
                &HashMap::new(),
                &[],
                &[Tag::new("mlflow.runName", n)],
            )
            .await?;
        }
        let info = run_info_of(&mut tx, run_id).await?;
        tx.commit().await.db()?;
        Ok(info)
    }

    async fn set_run_stage(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        let row: Option<i64> =
            sqlx::query_scalar("SELECT experiment_id FROM runs WHERE run_uuid = $1 FOR UPDATE")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        let Some(exp_id) = row else {
            return Err(Error::not_found(format!("Run with id={run_id} not found")));
        };
        if stage == LifecycleStage::Active {
            let exp = experiment(&mut tx, exp_id).await?;
            if exp.lifecycle_stage == LifecycleStage::Deleted {
                return Err(Error::invalid(format!(
                    "Cannot restore run {run_id}: its experiment {exp_id} is deleted."
                )));
            }
        }
        let deleted_time = (stage == LifecycleStage::Deleted).then(now_millis);
        sqlx::query("UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE run_uuid = $3")
            .bind(stage.as_str())
            .bind(deleted_time)
            .bind(run_id)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
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
        let mut c = self.pool.acquire().await.db()?;
        let names: Vec<&str> = metrics.iter().map(|m| m.key.as_str()).collect();
        let ids = if names.is_empty() {
            HashMap::new()
        } else {
            self.metric_keys.ids(&mut c, &names).await?
        };
        if params.is_empty() && tags.is_empty() && !metrics.is_empty() {
            // Metrics alone: one autocommitted statement.
            if insert_metrics(&mut c, run_id, &MetricArrays::new(&metrics, &ids)?).await? {
                return Ok(());
            }
            // Nothing was written: say why, as the transaction path would.
            return lock_active_run(&mut c, run_id, false)
                .await
                .and(Err(Error::internal(format!(
                    "run {run_id} could not be written"
                ))));
        }
        let mut tx = c.begin().await.db()?;
        write_batch(&mut tx, run_id, &metrics, &ids, &params, &tags).await?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        lock_active_run(&mut tx, run_id, false).await?;
        let n = sqlx::query("DELETE FROM tags WHERE run_uuid = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        tx.commit().await.db()
    }

    pub(crate) async fn do_log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        // Exclusive: the input positions are counted from what is there.
        lock_active_run(&mut tx, run_id, true).await?;
        let exp_id: i64 = sqlx::query_scalar("SELECT experiment_id FROM runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_one(&mut *tx)
            .await
            .db()?;
        for input in &datasets {
            let d = &input.dataset;
            sqlx::query("INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, schema, profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (experiment_id, name, digest) DO NOTHING")
                .bind(uuid::Uuid::new_v4().simple().to_string())
                .bind(exp_id)
                .bind(&d.name)
                .bind(&d.digest)
                .bind(&d.source_type)
                .bind(&d.source)
                .bind(&d.schema)
                .bind(&d.profile)
                .execute(&mut *tx)
                .await
                .db()?;
            let ds_id: String = sqlx::query_scalar("SELECT dataset_uuid FROM datasets WHERE experiment_id = $1 AND name = $2 AND digest = $3")
                .bind(exp_id)
                .bind(&d.name)
                .bind(&d.digest)
                .fetch_one(&mut *tx)
                .await
                .db()?;
            sqlx::query("INSERT INTO run_dataset_inputs (run_uuid, dataset_uuid, position) SELECT $1, $2, COUNT(*) FROM run_dataset_inputs WHERE run_uuid = $1 ON CONFLICT DO NOTHING")
                .bind(run_id)
                .bind(&ds_id)
                .execute(&mut *tx)
                .await
                .db()?;
            for t in &input.tags {
                sqlx::query("INSERT INTO run_dataset_input_tags (run_uuid, dataset_uuid, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (run_uuid, dataset_uuid, key) DO UPDATE SET value = excluded.value")
                    .bind(run_id)
                    .bind(&ds_id)
                    .bind(&t.key)
                    .bind(&t.value)
                    .execute(&mut *tx)
                    .await
                    .db()?;
            }
        }
        for m in &models {
            sqlx::query(
                "INSERT INTO run_model_inputs (run_uuid, model_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(run_id)
            .bind(&m.model_id)
            .execute(&mut *tx)
            .await
            .db()?;
        }
        tx.commit().await.db()
    }

    pub(crate) async fn do_log_outputs(
        &self,
        run_id: &str,
        models: Vec<ModelOutput>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        lock_active_run(&mut tx, run_id, false).await?;
        for m in &models {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT model_id FROM logged_models WHERE model_id = $1")
                    .bind(&m.model_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
            if exists.is_none() {
                return Err(Error::not_found(format!(
                    "Logged model with ID '{}' not found.",
                    m.model_id
                )));
            }
            sqlx::query("INSERT INTO run_model_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(run_id)
                .bind(&m.model_id)
                .bind(m.step)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()
    }

    pub(crate) async fn do_search_runs(&self, q: SearchRuns) -> Result<Page<Run>> {
        let exp_ids: Vec<i64> = q
            .experiment_ids
            .iter()
            .map(|e| validate::experiment_id(e))
            .collect::<Result<_>>()?;
        if exp_ids.is_empty() {
            return Ok(Page::empty());
        }
        let mut c = self.pool.acquire().await.db()?;
        // Metric names become ids before planning, so the planner sees which metric (and its
        // statistics) a filter is on instead of an opaque subquery.
        let names = search::metric_names(&q.filter, &q.order_by);
        let ids = self.metric_keys.existing_ids(&mut c, &names).await?;
        let sql = search::run_search(
            Dialect::Postgres,
            &exp_ids,
            q.view,
            &q.filter,
            &q.order_by,
            Some(&ids),
        );
        let (ids, more) = paging::page_ids::<String>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            runs(&mut c, &self.metric_keys, &ids).await?,
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
        let mut c = self.pool.acquire().await.db()?;
        run_info_of(&mut c, run_id).await?;
        let rows = sqlx::query("SELECT m.value, m.is_nan, m.timestamp, m.step FROM metrics m JOIN runs r ON r.run_key = m.run_key WHERE r.run_uuid = $1 AND m.key_id = (SELECT key_id FROM metric_keys WHERE name = $2) ORDER BY m.step, m.timestamp, m.value LIMIT $3 OFFSET $4")
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
                key,
                metric_value(r.try_get(0).db()?, r.try_get::<i16, _>(1).db()? != 0),
                r.try_get(2).db()?,
                r.try_get(3).db()?,
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
        let mut out = Vec::new();
        for run_id in run_ids {
            let page = self.do_metric_history(run_id, key, 0, max_results).await;
            let page = match page {
                Ok(p) => p,
                Err(e) if e.code == keel_core::ErrorCode::ResourceDoesNotExist => continue,
                Err(e) => return Err(e),
            };
            for mut m in page.items {
                m.run_id = Some(run_id.clone());
                out.push(m);
            }
        }
        Ok(out)
    }
}
