//! Metric rollups: written with every batch of values, read to draw long histories as a few
//! hundred buckets without losing a spike (see [`keel_core::buckets`]).

use std::collections::BTreeMap;

use keel_core::Result;
use keel_core::buckets::{self, Piece, Series, Source};
use keel_core::entities::Metric;

use super::metric_value;
use crate::db::{Bind, Conn, Row, Sql};

/// The rollup columns after `(run_key, key_id, level, bucket)`, in the order writers bind them.
pub(crate) const VALUE_COLUMNS: &str = "min_value, max_value, first_step, first_ts, first_value, last_step, last_ts, last_value, has_nan";

/// How an upsert merges a rollup row into the stored one: each figure is kept or replaced
/// independently of the order rows arrive in (the same in both dialects).
pub(crate) const MERGE: &str = " ON CONFLICT (run_key, key_id, level, bucket) DO UPDATE SET \
     min_value = CASE WHEN metric_rollups.min_value IS NULL OR excluded.min_value < metric_rollups.min_value THEN excluded.min_value ELSE metric_rollups.min_value END, \
     max_value = CASE WHEN metric_rollups.max_value IS NULL OR excluded.max_value > metric_rollups.max_value THEN excluded.max_value ELSE metric_rollups.max_value END, \
     first_step = CASE WHEN metric_rollups.first_step IS NULL OR (excluded.first_step, excluded.first_ts, excluded.first_value) < (metric_rollups.first_step, metric_rollups.first_ts, metric_rollups.first_value) THEN excluded.first_step ELSE metric_rollups.first_step END, \
     first_ts = CASE WHEN metric_rollups.first_step IS NULL OR (excluded.first_step, excluded.first_ts, excluded.first_value) < (metric_rollups.first_step, metric_rollups.first_ts, metric_rollups.first_value) THEN excluded.first_ts ELSE metric_rollups.first_ts END, \
     first_value = CASE WHEN metric_rollups.first_step IS NULL OR (excluded.first_step, excluded.first_ts, excluded.first_value) < (metric_rollups.first_step, metric_rollups.first_ts, metric_rollups.first_value) THEN excluded.first_value ELSE metric_rollups.first_value END, \
     last_step = CASE WHEN metric_rollups.last_step IS NULL OR (excluded.last_step, excluded.last_ts, excluded.last_value) > (metric_rollups.last_step, metric_rollups.last_ts, metric_rollups.last_value) THEN excluded.last_step ELSE metric_rollups.last_step END, \
     last_ts = CASE WHEN metric_rollups.last_step IS NULL OR (excluded.last_step, excluded.last_ts, excluded.last_value) > (metric_rollups.last_step, metric_rollups.last_ts, metric_rollups.last_value) THEN excluded.last_ts ELSE metric_rollups.last_ts END, \
     last_value = CASE WHEN metric_rollups.last_step IS NULL OR (excluded.last_step, excluded.last_ts, excluded.last_value) > (metric_rollups.last_step, metric_rollups.last_ts, metric_rollups.last_value) THEN excluded.last_value ELSE metric_rollups.last_value END, \
     has_nan = CASE WHEN excluded.has_nan > metric_rollups.has_nan THEN excluded.has_nan ELSE metric_rollups.has_nan END";

/// The rollup rows a batch touches, by (metric name, level, bucket).
pub(crate) fn of_batch(metrics: &[Metric]) -> BTreeMap<(&str, u32, i64), Piece> {
    buckets::rollups(metrics.iter().map(|m| {
        let (v, nan) = super::store_value(m.value);
        (
            m.key.as_str(),
            m.step,
            m.timestamp,
            metric_value(v, i16::from(nan)),
        )
    }))
}

/// A rollup row's figures as optional columns: (first, last) as (step, ts, value) each.
pub(crate) type Ends = (
    (Option<i64>, Option<i64>, Option<f64>),
    (Option<i64>, Option<i64>, Option<f64>),
);

pub(crate) fn ends(p: &Piece) -> Ends {
    let split = |x: Option<buckets::Point>| match x {
        Some((s, t, v)) => (Some(s), Some(t), Some(v)),
        None => (None, None, None),
    };
    (split(p.first), split(p.last))
}

/// SQLite: appends upserts of `rows` for the active run `run_id` to a multi-statement batch,
/// resolving metric names to ids in SQL as the batch's other statements do. Rows go in
/// statements of at most 1,000 (12 values each, under SQLite's limit of bound values).
pub(crate) fn push_sqlite(sql: &mut Sql, run_id: &str, rows: &BTreeMap<(&str, u32, i64), Piece>) {
    let rows: Vec<_> = rows.iter().collect();
    for chunk in rows.chunks(1000) {
        sql.push("INSERT INTO metric_rollups (run_key, key_id, level, bucket, ")
            .push(VALUE_COLUMNS)
            .push(") SELECT r.run_key, k.key_id, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, v.column10, v.column11, v.column12 FROM (VALUES ");
        for (i, ((name, shift, bucket), p)) in chunk.iter().enumerate() {
            let ((fs, ft, fv), (ls, lt, lv)) = ends(p);
            sql.push(if i == 0 { "(" } else { ", (" })
                .bind_str(*name)
                .push(", ")
                .bind(i64::from(*shift))
                .push(", ")
                .bind(*bucket);
            for b in [
                opt_f64(p.min),
                opt_f64(p.max),
                Bind::OptI64(fs),
                Bind::OptI64(ft),
                opt_f64(fv),
                Bind::OptI64(ls),
                Bind::OptI64(lt),
                opt_f64(lv),
            ] {
                sql.push(", ").bind(b);
            }
            sql.push(if p.nan { ", 1)" } else { ", 0)" });
        }
        sql.push(") v JOIN metric_keys k ON k.name = v.column1 JOIN runs r ON r.run_uuid = ")
            .bind_str(run_id)
            .push(" AND r.lifecycle_stage = 'active' WHERE true")
            .push(MERGE)
            .push(";\n");
    }
}

fn opt_f64(v: Option<f64>) -> Bind {
    match v {
        Some(v) => Bind::F64(v),
        None => Bind::OptF64(None),
    }
}

/// One metric of one run over `min_step..=max_step` (the whole history where absent), in at
/// most `n` buckets. An unknown metric gives an empty series.
pub(crate) async fn series(
    c: &mut Conn<'_>,
    run_key: i64,
    run_id: &str,
    key: &str,
    range: (Option<i64>, Option<i64>),
    n: usize,
) -> Result<Series> {
    let mut out = Series {
        run_id: run_id.to_string(),
        key: key.to_string(),
        ..Series::default()
    };
    let sql = c
        .stmt("SELECT key_id FROM metric_keys WHERE name = ?")
        .arg(key);
    let Some(key_id) = c.value::<i64>(sql).await? else {
        return Ok(out);
    };
    // Two statements: each bound is then one index probe (a single MIN and MAX is not).
    let mut bounds = [None, None];
    for (i, agg) in ["MIN", "MAX"].into_iter().enumerate() {
        let sql = c
            .stmt(&format!(
                "SELECT {agg}(step) FROM metrics WHERE run_key = ? AND key_id = ?"
            ))
            .arg(run_key)
            .arg(key_id);
        bounds[i] = c.value::<Option<i64>>(sql).await?.flatten();
    }
    let [Some(first), Some(last)] = bounds else {
        return Ok(out);
    };
    let lo = range.0.map_or(first, |s| s.max(first));
    let hi = range.1.map_or(last, |s| s.min(last));
    if lo > hi {
        return Ok(out);
    }
    let mut pieces = Vec::new();
    for source in buckets::plan(lo, hi, buckets::budget(n)) {
        match source {
            Source::Raw { lo, hi } => {
                let sql = c
                    .stmt("SELECT step, timestamp, value, is_nan FROM metrics WHERE run_key = ? AND key_id = ? AND step BETWEEN ? AND ? ORDER BY step, timestamp, value")
                    .arg(run_key)
                    .arg(key_id)
                    .arg(lo)
                    .arg(hi);
                for r in c.rows(sql).await? {
                    let v = metric_value(r.get(2)?, r.get(3)?);
                    pieces.push(Piece::raw(r.get(0)?, r.get(1)?, v));
                }
            }
            Source::Rollup { shift, from, to } => {
                let sql = c
                    .stmt(&format!("SELECT bucket, {VALUE_COLUMNS} FROM metric_rollups WHERE run_key = ? AND key_id = ? AND level = ? AND bucket BETWEEN ? AND ? ORDER BY bucket"))
                    .arg(run_key)
                    .arg(key_id)
                    .arg(i64::from(shift))
                    .arg(from)
                    .arg(to);
                for r in c.rows(sql).await? {
                    pieces.push(rollup_piece(&r, shift)?);
                }
            }
        }
    }
    out.min_step = Some(lo);
    out.max_step = Some(hi);
    buckets::reduce(&mut out, &pieces, lo, hi, n);
    Ok(out)
}

fn rollup_piece(r: &Row, shift: u32) -> Result<Piece> {
    let end = |i: usize| -> Result<Option<buckets::Point>> {
        Ok(
            match (
                r.get::<Option<i64>>(i)?,
                r.get::<Option<i64>>(i + 1)?,
                r.get::<Option<f64>>(i + 2)?,
            ) {
                (Some(s), Some(t), Some(v)) => Some((s, t, v)),
                _ => None,
            },
        )
    };
    Ok(Piece {
        step: r.get::<i64>(0)? << shift,
        min: r.get(1)?,
        max: r.get(2)?,
        first: end(3)?,
        last: end(6)?,
        nan: r.get::<i16>(9)? != 0,
    })
}
