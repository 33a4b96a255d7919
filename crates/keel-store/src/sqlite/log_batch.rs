//! `log_batch` in one round trip to SQLite.
//!
//! Every statement of a batch (intern metric names, read existing params, insert params, upsert
//! tags, insert metrics, move the latest values forward, merge the metric rollups, read the
//! run's state) travels as one
//! multi-statement query with anonymous parameters, because each round trip to the connection's
//! worker thread costs more than the statements themselves. Rows are written only for an
//! active run; when the run is missing or deleted, or a param would change, the job fails and
//! the writer rolls its savepoint back.

use std::collections::HashMap;

use keel_core::entities::{Metric, Param, Tag};
use keel_core::{Error, Result};
use sqlx::{Row, SqliteConnection};

use super::DbResult;
use crate::search::{Bind, Sql};

/// `WHERE` guard: the statement writes only while the run is active (binds the run id).
fn run_active(sql: &mut Sql, run_id: &str) {
    sql.push("EXISTS (SELECT 1 FROM runs WHERE run_uuid = ")
        .bind_str(run_id)
        .push(" AND lifecycle_stage = 'active')");
}

fn opt(sql: &mut Sql, v: &Option<String>) {
    match v {
        Some(s) => sql.bind_str(s.clone()),
        None => sql.push("NULL"),
    };
}

/// Appends `(key, step, timestamp, value, is_nan[, model_id, dataset_name, dataset_digest])`.
fn metric_values(sql: &mut Sql, m: &Metric, full: bool) {
    let (v, nan) = crate::sql::store_value(m.value);
    sql.push("(")
        .bind_str(m.key.clone())
        .push(", ")
        .bind(Bind::I64(m.step))
        .push(", ")
        .bind(Bind::I64(m.timestamp))
        .push(", ");
    sql.bind(Bind::F64(v)).push(if nan { ", 1" } else { ", 0" });
    if full {
        sql.push(", ");
        opt(sql, &m.model_id);
        sql.push(", ");
        opt(sql, &m.dataset_name);
        sql.push(", ");
        opt(sql, &m.dataset_digest);
    }
    sql.push(")");
}

/// Writes a batch for `run_id`; see the module documentation.
pub(crate) async fn write(
    conn: &mut SqliteConnection,
    run_id: &str,
    metrics: &[Metric],
    params: &[Param],
    tags: &[Tag],
) -> Result<()> {
    // Anonymous parameters only, bound in text order: the SQL text then depends only on the
    // batch's shape, so prepared statements are reused, and binding stays linear.
    let mut sql = Sql::default();
    sql.text.reserve(256 + metrics.len() * 40);
    let list = |sql: &mut Sql, items: &mut dyn Iterator<Item = (&String, &String)>| {
        for (i, (k, v)) in items.enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind_str(k.clone())
                .push(", ")
                .bind_str(v.clone())
                .push(")");
        }
    };
    if !params.is_empty() {
        sql.push("SELECT 'param', key, value FROM params WHERE run_uuid = ")
            .bind_str(run_id)
            .push(" AND key IN ");
        sql.bind_list(params.iter().map(|p| Bind::Str(p.key.clone())));
        sql.push(";\nINSERT OR IGNORE INTO params (run_uuid, key, value) SELECT ")
            .bind_str(run_id)
            .push(", column1, column2 FROM (VALUES ");
        list(&mut sql, &mut params.iter().map(|p| (&p.key, &p.value)));
        sql.push(") WHERE ");
        run_active(&mut sql, run_id);
        sql.push(";\n");
    }
    if !tags.is_empty() {
        sql.push("INSERT INTO tags (run_uuid, key, value) SELECT ")
            .bind_str(run_id)
            .push(", column1, column2 FROM (VALUES ");
        list(&mut sql, &mut tags.iter().map(|t| (&t.key, &t.value)));
        sql.push(") WHERE ");
        run_active(&mut sql, run_id);
        sql.push(" ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value;\n");
        if let Some(name) = tags.iter().rev().find(|t| t.key == "mlflow.runName") {
            sql.push("UPDATE runs SET name = ")
                .bind_str(name.value.clone())
                .push(" WHERE run_uuid = ")
                .bind_str(run_id)
                .push(" AND lifecycle_stage = 'active';\n");
        }
    }
    if !metrics.is_empty() {
        let mut newest: HashMap<&str, usize> = HashMap::new();
        for (i, m) in metrics.iter().enumerate() {
            match newest.get(m.key.as_str()) {
                Some(&j) if !m.is_newer_than(&metrics[j]) => {}
                _ => {
                    newest.insert(&m.key, i);
                }
            }
        }
        let mut latest: Vec<usize> = newest.into_values().collect();
        latest.sort_unstable();
        sql.push("INSERT OR IGNORE INTO metric_keys (name) VALUES ");
        for (n, &i) in latest.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" })
                .bind_str(metrics[i].key.clone())
                .push(")");
        }
        sql.push(
            ";\nINSERT OR IGNORE INTO metrics (run_key, key_id, step, timestamp, value, is_nan, model_id, dataset_name, dataset_digest) \
             SELECT r.run_key, k.key_id, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8 FROM (VALUES ",
        );
        for (i, m) in metrics.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            metric_values(&mut sql, m, true);
        }
        sql.push(") v JOIN metric_keys k ON k.name = v.column1 JOIN runs r ON r.run_uuid = ")
            .bind_str(run_id)
            .push(" AND r.lifecycle_stage = 'active';\n");
        sql.push("INSERT INTO latest_metrics (run_key, key_id, step, timestamp, value, is_nan) SELECT r.run_key, k.key_id, v.column2, v.column3, v.column4, v.column5 FROM (VALUES ");
        for (n, &i) in latest.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            metric_values(&mut sql, &metrics[i], false);
        }
        sql.push(") v JOIN metric_keys k ON k.name = v.column1 JOIN runs r ON r.run_uuid = ")
            .bind_str(run_id);
        sql.push(
            " AND r.lifecycle_stage = 'active' WHERE true \
             ON CONFLICT (run_key, key_id) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan \
             WHERE (excluded.step, excluded.timestamp, excluded.value) > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value);\n",
        );
        crate::sql::rollups::push_sqlite(&mut sql, run_id, &crate::sql::rollups::of_batch(metrics));
    }
    sql.push("SELECT 'run', lifecycle_stage, '' FROM runs WHERE run_uuid = ")
        .bind_str(run_id)
        .push(";");

    let result = sql.into_query()?.fetch_all(&mut *conn).await.db()?;
    let mut stage = None;
    let mut existing: HashMap<String, String> = HashMap::new();
    for r in &result {
        match r.try_get::<&str, _>(0).db()? {
            "run" => stage = Some(r.try_get::<String, _>(1).db()?),
            _ => {
                existing.insert(r.try_get(1).db()?, r.try_get(2).db()?);
            }
        }
    }
    match stage.as_deref() {
        None => return Err(Error::not_found(format!("Run with id={run_id} not found"))),
        Some("active") => {}
        Some(other) => {
            return Err(Error::invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is {other}."
            )));
        }
    }
    for p in params {
        if let Some(old) = existing.get(&p.key).filter(|old| **old != p.value) {
            return Err(Error::invalid(format!(
                "Changing param values is not allowed. Param with key='{}' was already logged with value='{}' for run ID='{run_id}'. Attempted logging new value '{}'.",
                p.key, old, p.value
            )));
        }
    }
    Ok(())
}
