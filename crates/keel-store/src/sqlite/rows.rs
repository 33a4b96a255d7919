//! The page loader of runs on SQLite: info, params, tags and latest metrics of many runs at once.
use keel_core::entities::*;
use keel_core::{Error, Result};
use sqlx::{Row, SqliteConnection};

use super::DbResult;
use crate::search::{Bind, Sql};
use crate::sql::metric_value;

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

/// Loads runs with their info, latest metrics, params and tags (inputs and outputs are
/// attached by [`crate::sql::runs`]), in no particular order; runs that do not exist are left
/// out.
///
/// SQLite assembles the page of runs, each with its metrics, params and tags, as one JSON value
/// in one row: moving one row out of the connection instead of tens of thousands is what makes a
/// page of 1,000 runs cheap. Metric values travel as text with 17 significant digits
/// (`%!.17g`), which round-trips every double exactly; metrics are sorted by name here. Callers
/// pass at most 5,000 ids (`sql::runs` loads in chunks of that size), within SQLite's limit on
/// bound values.
pub(crate) async fn runs(conn: &mut SqliteConnection, ids: &[String]) -> Result<Vec<Run>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<Run> = Vec::with_capacity(ids.len());
    let mut sql = Sql::default();
    sql.push(
        "SELECT json_group_array(json_array(run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage, \
           json((SELECT json_group_array(json_array(k.name, printf('%!.17g', lm.value), lm.timestamp, lm.step, lm.is_nan)) \
             FROM latest_metrics lm JOIN metric_keys k ON k.key_id = lm.key_id WHERE lm.run_key = runs.run_key)), \
           json((SELECT json_group_array(json_array(key, value)) FROM params p WHERE p.run_uuid = runs.run_uuid)), \
           json((SELECT json_group_array(json_array(key, value)) FROM tags t WHERE t.run_uuid = runs.run_uuid)))) \
         FROM runs WHERE run_uuid IN ",
    );
    sql.bind_list(ids.iter().map(|s| Bind::Str(s.clone())));
    let page: String = sql
        .into_query()?
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
                Ok(Metric::new(
                    k,
                    metric_value(value, i16::from(nan != 0)),
                    ts,
                    step,
                ))
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
        out.push(crate::sql::bare_run(info, data));
    }
    Ok(out)
}
