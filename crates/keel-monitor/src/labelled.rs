//! The log's rows with ground truth as training rows: what a served model saw, in the shape
//! of the table it was trained on, with the truth sent to `/feedback` (or read from a labelled
//! dataset version, [`crate::truth`]) as the target. Retraining
//! on the reference plus these rows is how a model learns what it sees now.

use std::path::Path;

use keel_core::predlog::INPUT_PREFIX;
use keel_data::Format;
use keel_data::read::read_table;
use polars::prelude::*;

use crate::error::{MonitorError, Result};
use crate::log::{prediction_files, scan, unreadable};
use crate::performance::latest_truths;
use crate::truth::{Collect, Labels};
use crate::window::Window;

/// `model`'s rows logged in `window` that have ground truth, as a table with `schema`'s
/// columns (names and types, in order): `target` holds the truth (the latest record for the
/// row), every other column the logged input of that name (missing where the log has none).
/// Shadow answers are left out (their rows are the primary's), and a row answered twice
/// counts once.
pub fn labelled_rows(
    log_dir: &Path,
    model: &str,
    window: &Window,
    labels: Option<&Labels>,
    schema: &Schema,
    target: &str,
) -> Result<DataFrame> {
    if schema.get(target).is_none() {
        return Err(MonitorError::Invalid(format!(
            "the training table has no target column '{target}'"
        )));
    }
    let t = col("time").dt().timestamp(TimeUnit::Milliseconds);
    let keep = t
        .clone()
        .gt_eq(lit(window.since_ms))
        .and(t.lt(lit(window.until_ms)))
        .and(col("role").neq(lit("shadow")));
    let mut frames = Vec::new();
    let files = prediction_files(log_dir, model, window)?;
    for path in &files {
        let mut lf = scan(path).map_err(|e| unreadable(path, e))?;
        let logged = lf.collect_schema().map_err(|e| unreadable(path, e))?;
        let mut select = vec![col("request_id"), col("row")];
        for (name, dtype) in schema.iter() {
            if name.as_str() == target {
                continue;
            }
            let logged_name = format!("{INPUT_PREFIX}{name}");
            let value = if logged.get(&logged_name).is_some() {
                col(logged_name.as_str())
            } else {
                lit(NULL)
            };
            select.push(value.cast(dtype.clone()).alias(name.as_str()));
        }
        frames.push(lf.filter(keep.clone()).select(select));
    }
    let empty = || DataFrame::empty_with_schema(schema);
    let Some(first) = files.first() else {
        return Ok(empty());
    };
    let Some(latest) = latest_truths(log_dir, window.since_ms, labels)? else {
        return Ok(empty());
    };
    let dtype = schema.get(target).cloned().unwrap_or(DataType::String);
    let truth = if dtype.is_string() {
        col("truth_text").fill_null(col("truth_number").cast(DataType::String))
    } else {
        col("truth_number").fill_null(col("truth_text").cast(DataType::Float64))
    };
    let latest = latest.select([
        col("request_id"),
        col("row"),
        truth.cast(dtype).alias(target),
    ]);
    let rows = concat(frames, UnionArgs::default())
        .map_err(|e| unreadable(first, e))?
        .unique_stable(Some(cols(["request_id", "row"])), UniqueKeepStrategy::First)
        .join(
            latest,
            [col("request_id"), col("row")],
            [col("request_id"), col("row")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(col(target).is_not_null())
        .select(
            schema
                .iter_names()
                .map(|n| col(n.as_str()))
                .collect::<Vec<_>>(),
        )
        .collect()
        .map_err(|e| unreadable(first, e))?;
    Ok(rows)
}

/// Writes the table at `reference` (format, files) followed by [`labelled_rows`] of `model` in
/// `window` under `log_dir` as one Parquet file at `out`; how many logged rows it added (none
/// written when there are none).
pub fn with_labelled_rows(
    reference: (Format, &[&Path]),
    (log_dir, model, window, labels): (&Path, &str, &Window, Option<&Labels>),
    target: &str,
    out: &Path,
) -> Result<usize> {
    let mut table = read_table(reference.0, reference.1, |_| Collect(None))?
        .0
        .ok_or_else(|| MonitorError::Invalid("the training table holds no rows".into()))?;
    let schema = table.schema().as_ref().clone();
    let labelled = labelled_rows(log_dir, model, window, labels, &schema, target)?;
    let n = labelled.height();
    if n == 0 {
        return Ok(0);
    }
    let failed = |e: PolarsError| unreadable(out, e);
    table.vstack_mut(&labelled).map_err(failed)?;
    let file = std::fs::File::create(out).map_err(|e| crate::log::io(out, e))?;
    ParquetWriter::new(file)
        .finish(&mut table)
        .map_err(failed)?;
    Ok(n)
}
