//! Loading entities from rows, in bulk where a search returns many.

use std::collections::HashMap;

use keel_core::entities::*;
use keel_core::{Error, Result};
use sqlx::{Row, SqliteConnection};

use super::DbResult;
use crate::search::{Bind, Sql};

/// Reads a metric value as stored (NaN flag, finite value).
pub(crate) fn metric_value(value: f64, is_nan: bool) -> f64 {
    if is_nan { f64::NAN } else { value }
}

/// Splits a value for storage: (value, is_nan), infinities clamped as MLflow does.
pub(crate) fn store_value(v: f64) -> (f64, bool) {
    if v.is_nan() {
        (0.0, true)
    } else {
        (clamp_infinite(v), false)
    }
}

fn run_info(r: &sqlx::sqlite::SqliteRow) -> Result<RunInfo> {
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

const RUN_COLUMNS: &str = "run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage";

/// The run's info, or `RESOURCE_DOES_NOT_EXIST`.
pub(crate) async fn run_info_of(conn: &mut SqliteConnection, run_id: &str) -> Result<RunInfo> {
    let q = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = ?");
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

/// `[name, value as text, timestamp, step, is_nan]`, as the run loader aggregates latest metrics.
type MetricJson = (String, String, i64, i64, i64);

/// One run as the loader's JSON carries it: info columns, then metrics, params and tags.
#[derive(serde::Deserialize)]
struct RunJson(
    String,
    String,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    String,
    String,
    Vec<MetricJson>,
    Vec<(String, String)>,
    Vec<(String, String)>,
);

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::internal(format!("cannot decode stored rows: {e}")))
}

/// Loads whole runs (info, latest metrics, params, tags, inputs, outputs) in `ids` order.
///
/// SQLite assembles the page of runs, each with its metrics, params and tags, as one JSON value
/// in one row: moving one row out of the connection instead of tens of thousands is what makes a
/// page of 1,000 runs cheap. Metric values travel as text with 17 significant digits
/// (`%!.17g`), which round-trips every double exactly; metrics are sorted by name here.
pub(crate) async fn runs(conn: &mut SqliteConnection, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_id: HashMap<String, Run> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(5000) {
        let list = || chunk.iter().map(|s| Bind::Str(s.clone()));
        let mut sql = Sql::default();
        sql.push(
            "SELECT json_group_array(json_array(run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage, \
               json((SELECT json_group_array(json_array(k.name, printf('%!.17g', lm.value), lm.timestamp, lm.step, lm.is_nan)) \
                 FROM latest_metrics lm JOIN metric_keys k ON k.key_id = lm.key_id WHERE lm.run_key = runs.run_key)), \
               json((SELECT json_group_array(json_array(key, value)) FROM params p WHERE p.run_uuid = runs.run_uuid)), \
               json((SELECT json_group_array(json_array(key, value)) FROM tags t WHERE t.run_uuid = runs.run_uuid)))) \
             FROM runs WHERE run_uuid IN ",
        );
        sql.bind_list(list());
        let page: String = sql
            .query()?
            .fetch_one(&mut *conn)
            .await
            .db()?
            .try_get(0)
            .db()?;
        for RunJson(id, name, exp, user, status, start, end, uri, stage, metrics, params, tags) in
            parse_json::<Vec<RunJson>>(&page)?
        {
            let mut metrics = metrics
                .into_iter()
                .map(|(k, v, ts, step, nan)| {
                    let value: f64 = v.parse().map_err(|_| {
                        Error::internal(format!("stored metric value '{v}' is not a number"))
                    })?;
                    Ok(Metric::new(k, metric_value(value, nan != 0), ts, step))
                })
                .collect::<Result<Vec<_>>>()?;
            metrics.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            let info = RunInfo {
                run_uuid: id.clone(),
                run_id: id.clone(),
                run_name: name,
                experiment_id: exp.to_string(),
                user_id: user,
                status: RunStatus::parse(&status).unwrap_or(RunStatus::Running),
                start_time: start,
                end_time: end,
                artifact_uri: uri,
                lifecycle_stage: LifecycleStage::parse(&stage),
            };
            let data = RunData {
                metrics,
                params: params.into_iter().map(|(k, v)| Tag::new(k, v)).collect(),
                tags: tags.into_iter().map(|(k, v)| Tag::new(k, v)).collect(),
            };
            by_id.insert(
                id,
                Run {
                    info,
                    data,
                    inputs: RunInputs::default(),
                    outputs: RunOutputs::default(),
                },
            );
        }

        let mut sql = Sql::default();
        sql.push("SELECT i.run_uuid, d.dataset_uuid, d.name, d.digest, d.source_type, d.source, d.schema, d.profile FROM run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid WHERE i.run_uuid IN ");
        sql.bind_list(list());
        sql.push(" ORDER BY i.run_uuid, i.position");
        let mut input_keys: HashMap<(String, String), usize> = HashMap::new();
        for r in sql.query()?.fetch_all(&mut *conn).await.db()? {
            let id: String = r.try_get(0).db()?;
            if let Some(run) = by_id.get_mut(&id) {
                let ds_id: String = r.try_get(1).db()?;
                input_keys.insert((id, ds_id), run.inputs.dataset_inputs.len());
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
        if !input_keys.is_empty() {
            let mut sql = Sql::default();
            sql.push("SELECT run_uuid, dataset_uuid, key, value FROM run_dataset_input_tags WHERE run_uuid IN ");
            sql.bind_list(list());
            sql.push(" ORDER BY key");
            for r in sql.query()?.fetch_all(&mut *conn).await.db()? {
                let key = (
                    r.try_get::<String, _>(0).db()?,
                    r.try_get::<String, _>(1).db()?,
                );
                if let (Some(pos), Some(run)) = (input_keys.get(&key), by_id.get_mut(&key.0)) {
                    run.inputs.dataset_inputs[*pos].tags.push(Tag::new(
                        r.try_get::<String, _>(2).db()?,
                        r.try_get::<String, _>(3).db()?,
                    ));
                }
            }
        }

        let mut sql = Sql::default();
        sql.push("SELECT run_uuid, model_id FROM run_model_inputs WHERE run_uuid IN ");
        sql.bind_list(list());
        for r in sql.query()?.fetch_all(&mut *conn).await.db()? {
            let id: &str = r.try_get(0).db()?;
            if let Some(run) = by_id.get_mut(id) {
                run.inputs.model_inputs.push(ModelInput {
                    model_id: r.try_get(1).db()?,
                });
            }
        }
        let mut sql = Sql::default();
        sql.push("SELECT run_uuid, model_id, step FROM run_model_outputs WHERE run_uuid IN ");
        sql.bind_list(list());
        sql.push(" ORDER BY step");
        for r in sql.query()?.fetch_all(&mut *conn).await.db()? {
            let id: &str = r.try_get(0).db()?;
            if let Some(run) = by_id.get_mut(id) {
                run.outputs.model_outputs.push(ModelOutput {
                    model_id: r.try_get(1).db()?,
                    step: r.try_get(2).db()?,
                });
            }
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

pub(crate) async fn run(conn: &mut SqliteConnection, run_id: &str) -> Result<Run> {
    runs(conn, &[run_id.to_string()])
        .await?
        .pop()
        .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))
}
