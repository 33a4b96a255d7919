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
use keel_core::{Error, Result};
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

use super::DbResult;
use crate::db::{Conn, Lock};
use crate::sql::runs::RUN_COLUMNS;
use crate::sql::{metric_value, store_value};

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

/// Share-locks the run row for the rest of the transaction and returns its key if the run is
/// active.
async fn lock_active_run(conn: &mut PgConnection, run_id: &str) -> Result<i64> {
    crate::sql::runs::lock_active_run(&mut Conn::Pg(conn), run_id, Lock::Share).await
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
    pub(crate) async fn ids(
        &self,
        conn: &mut PgConnection,
        names: &[&str],
    ) -> Result<HashMap<String, i64>> {
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
    rollups: RollupArrays,
}

/// The columns of the metric rollup rows a batch touches (see `crate::sql::rollups`).
#[derive(Default)]
struct RollupArrays {
    keys: Vec<i64>,
    levels: Vec<i64>,
    buckets: Vec<i64>,
    mins: Vec<Option<f64>>,
    maxs: Vec<Option<f64>>,
    first_steps: Vec<Option<i64>>,
    first_ts: Vec<Option<i64>>,
    firsts: Vec<Option<f64>>,
    last_steps: Vec<Option<i64>>,
    last_ts: Vec<Option<i64>>,
    lasts: Vec<Option<f64>>,
    nans: Vec<i16>,
}

impl RollupArrays {
    fn new(metrics: &[Metric], ids: &HashMap<String, i64>) -> Result<Self> {
        let mut a = RollupArrays::default();
        for ((name, shift, bucket), p) in crate::sql::rollups::of_batch(metrics) {
            let ((fs, ft, fv), (ls, lt, lv)) = crate::sql::rollups::ends(&p);
            a.keys.push(ids.get(name).copied().ok_or_else(|| {
                Error::internal(format!("metric name '{name}' was not interned"))
            })?);
            a.levels.push(i64::from(shift));
            a.buckets.push(bucket);
            a.mins.push(p.min);
            a.maxs.push(p.max);
            a.first_steps.push(fs);
            a.first_ts.push(ft);
            a.firsts.push(fv);
            a.last_steps.push(ls);
            a.last_ts.push(lt);
            a.lasts.push(lv);
            a.nans.push(i16::from(p.nan));
        }
        Ok(a)
    }
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
            rollups: RollupArrays::new(metrics, ids)?,
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
    let sql = format!(
        "WITH run AS (SELECT run_key FROM runs WHERE run_uuid = $1 AND lifecycle_stage = 'active' FOR SHARE), \
         ins AS (INSERT INTO metrics (run_key, key_id, step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest) \
                 SELECT run.run_key, u.* FROM run, UNNEST($2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::smallint[], $7::text[], $8::text[], $9::text[]) u \
                 ON CONFLICT DO NOTHING), \
         lat AS (INSERT INTO latest_metrics (run_key, key_id, step, timestamp, value, is_nan) \
                 SELECT run.run_key, u.* FROM run, UNNEST($10::bigint[], $11::bigint[], $12::bigint[], $13::float8[], $14::smallint[]) u \
                 ON CONFLICT (run_key, key_id) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan \
                 WHERE (excluded.step, excluded.timestamp, excluded.value) > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)), \
         rol AS (INSERT INTO metric_rollups (run_key, key_id, level, bucket, {cols}) \
                 SELECT run.run_key, u.* FROM run, UNNEST($15::bigint[], $16::bigint[], $17::bigint[], $18::float8[], $19::float8[], $20::bigint[], $21::bigint[], $22::float8[], $23::bigint[], $24::bigint[], $25::float8[], $26::smallint[]) u \
                 {merge}) \
         SELECT run_key FROM run",
        cols = crate::sql::rollups::VALUE_COLUMNS,
        merge = crate::sql::rollups::MERGE,
    );
    let r = &a.rollups;
    let row: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
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
        .bind(&r.keys)
        .bind(&r.levels)
        .bind(&r.buckets)
        .bind(&r.mins)
        .bind(&r.maxs)
        .bind(&r.first_steps)
        .bind(&r.first_ts)
        .bind(&r.firsts)
        .bind(&r.last_steps)
        .bind(&r.last_ts)
        .bind(&r.lasts)
        .bind(&r.nans)
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
    let run_key = lock_active_run(conn, run_id).await?;
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

/// Loads runs with their info, latest metrics, params and tags (inputs and outputs are
/// attached by [`crate::sql::runs`]), in no particular order; runs that do not exist are left
/// out.
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
    let mut out: Vec<Run> = Vec::with_capacity(rows.len());
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
                .push(Metric::new(name.clone(), metric_value(*v, *n), *t, *s));
        }
        data.params.sort_by(|a, b| a.key.cmp(&b.key));
        data.tags.sort_by(|a, b| a.key.cmp(&b.key));
        data.metrics.sort_by(|a, b| a.key.cmp(&b.key));
        out.push(crate::sql::bare_run(info, data));
    }
    Ok(out)
}

/// Writes a log batch: metric names are interned first (outside the transaction, so a rollback
/// cannot leave the cache holding ids that were never committed); metrics alone are one
/// autocommitted statement, anything else one transaction.
pub(crate) async fn log_batch(
    pool: &PgPool,
    keys: &MetricKeys,
    run_id: &str,
    metrics: &[Metric],
    params: &[Param],
    tags: &[Tag],
) -> Result<()> {
    let mut c = pool.acquire().await.db()?;
    let names: Vec<&str> = metrics.iter().map(|m| m.key.as_str()).collect();
    let ids = if names.is_empty() {
        HashMap::new()
    } else {
        keys.ids(&mut c, &names).await?
    };
    if params.is_empty() && tags.is_empty() && !metrics.is_empty() {
        if insert_metrics(&mut c, run_id, &MetricArrays::new(metrics, &ids)?).await? {
            return Ok(());
        }
        // Nothing was written: say why, as the transaction path would.
        return lock_active_run(&mut c, run_id)
            .await
            .and(Err(Error::internal(format!(
                "run {run_id} could not be written"
            ))));
    }
    let mut tx = c.begin().await.db()?;
    write_batch(&mut tx, run_id, metrics, &ids, params, tags).await?;
    tx.commit().await.db()
}
