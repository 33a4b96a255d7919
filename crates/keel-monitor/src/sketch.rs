//! Checks read from the log's hourly sketches (see [`keel_core::sketch`]) instead of its rows:
//! a window of whole hours, whatever its traffic and however many replicas served it, costs
//! the reading of one small file per replica and hour.
//!
//! What a sketch answers, and how far it may be from the log's rows:
//!
//! - **exact**: rows, first and last time, each column's missing values, and every text
//!   column's count per category (unless it had more than
//!   [`keel_core::sketch::MAX_CATEGORIES`] distinct values): the drift tests of text columns
//!   (chi-squared, Z, Jensen-Shannon, PSI) give the same score as over the rows;
//! - **sampled**: numeric columns are compared through a uniform sample of the window's rows
//!   (every row when no hour holds more than `k`, the sketch size: the answer is then exact
//!   too). With `m` sampled rows, the Dvoretzky-Kiefer-Wolfowitz inequality bounds how far the
//!   sample's distribution function is from the window's: at most
//!   `sqrt(ln(2 / 0.01) / (2 m))` with 99% confidence (0.051 at `m` = 1,024; 0.010 over a day
//!   of 24 full hours). K-S and PSI move with it; the normalised Wasserstein distance moves by
//!   at most that bound times the column's range over the reference's standard deviation, and
//!   in practice (measured in the tests) by a few hundredths. Decisions can differ only for
//!   columns whose score lies that close to the threshold. A K-S p-value is the sample's: a
//!   valid test (the sample is drawn from the window's rows whatever their distribution), less
//!   powerful than one over every row when the sample is not much larger than the reference
//!   (with a reference of `n` rows and `m` sampled, it weighs like `n m / (n + m)` rows
//!   instead of about `n`): its false alarms stay at the threshold's rate, while taking the
//!   p-value at the window's full size would turn sampling noise into false alarms.
//!
//! The sample is a deterministic function of the rows (their request ids and row indexes):
//! the same rows give the same answer, whatever the order they came in.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use keel_core::predlog::{INPUT_PREFIX, OUTPUT_PREFIX, model_partition};
use keel_core::sketch::{
    HASH_COLUMN, SKETCHES, SUMMARY_KEY, Summary, VersionSummary, sample_threshold,
};
use keel_data::Format;
use keel_data::profile::{ColumnStats, Sample, profile_planned};
use keel_stats::drift::Choice;
use polars::prelude::*;

use crate::error::{MonitorError, Result};
use crate::log::{Current, Selection, hour_files, model_name, scan, unreadable};
use crate::report::Point;
use crate::window::{Window, hour_start};

/// One sketch file and what it says.
struct SketchFile {
    path: PathBuf,
    hour: i64,
    summary: Summary,
}

/// The sketch files of `model` in the hours that overlap `window`, oldest hour first.
pub fn sketch_files(log_dir: &Path, model: &str, window: &Window) -> Result<Vec<PathBuf>> {
    let dir = log_dir.join(SKETCHES).join(model_partition(model));
    hour_files(&dir, &|start| window.overlaps_hour(start))
}

fn read_summary(path: &Path) -> Result<Summary> {
    let bad = |msg: String| {
        MonitorError::Data(keel_data::DataError::content(
            path,
            format!("is not a keel sketch: {msg}"),
        ))
    };
    let file = File::open(path).map_err(|e| crate::log::io(path, e))?;
    let meta = parquet::file::metadata::ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| bad(e.to_string()))?;
    let text = meta
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .find(|kv| kv.key == SUMMARY_KEY)
        .and_then(|kv| kv.value.clone())
        .ok_or_else(|| bad(format!("it has no {SUMMARY_KEY} metadata")))?;
    serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
}

/// The selected versions' figures in one summary.
fn selected(summary: &Summary, sel: &Selection) -> VersionSummary {
    let mut total = VersionSummary::default();
    for (v, s) in &summary.versions {
        if sel.version.as_ref().is_none_or(|want| want == v) {
            total.merge(s);
        }
    }
    total
}

/// Reads the rows `sel` selects from the sketches under `log_dir`: the window counts every
/// hour it overlaps, whole. The table's row count, missing values and text categories are
/// exact; numeric samples are the sketches' merged sample ([`Current::sampled_rows`]).
pub fn current(log_dir: &Path, sel: &Selection) -> Result<Current> {
    let no_rows = || MonitorError::NoRows {
        model: sel.label(),
        window: format!("{} (from sketches)", sel.window),
    };
    let mut files = Vec::new();
    for path in sketch_files(log_dir, &sel.model, &sel.window)? {
        let hour = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| hour_start(&n.to_string_lossy()))
            .unwrap_or_default();
        let summary = read_summary(&path)?;
        if selected(&summary, sel).rows > 0 {
            files.push(SketchFile {
                path,
                hour,
                summary,
            });
        }
    }
    let Some(first) = files.first() else {
        return Err(no_rows());
    };
    // The columns the first file's rows have; every other file must have them too.
    let logged = |f: &SketchFile| -> Vec<String> {
        let s = selected(&f.summary, sel);
        s.columns
            .iter()
            .filter(|(_, c)| c.nulls < s.rows)
            .map(|(n, _)| n.clone())
            .collect()
    };
    let columns = logged(first);
    for f in &files[1..] {
        let has = selected(&f.summary, sel);
        if let Some(missing) = columns.iter().find(|c| !has.columns.contains_key(*c)) {
            return Err(MonitorError::MissingColumn {
                column: model_name(missing).to_string(),
                file: f.path.display().to_string(),
            });
        }
    }
    let mut total = VersionSummary::default();
    for f in &files {
        total.merge(&selected(&f.summary, sel));
    }
    let k = files
        .iter()
        .map(|f| f.summary.sample_rows)
        .min()
        .unwrap_or(0);

    // Each (hour, version)'s sample hashes, over every replica's file.
    let version_filter = |lf: LazyFrame| match &sel.version {
        Some(v) => lf.filter(col("version").eq(lit(v.clone()))),
        None => lf,
    };
    let mut groups: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    for f in &files {
        let df = version_filter(scan(&f.path).map_err(|e| unreadable(&f.path, e))?)
            .select([col(HASH_COLUMN), col("version")])
            .collect()
            .map_err(|e| unreadable(&f.path, e))?;
        let hashes = df
            .column(HASH_COLUMN)
            .and_then(|c| c.i64().cloned())
            .map_err(|e| unreadable(&f.path, e))?;
        let versions = df
            .column("version")
            .and_then(|c| c.str().cloned())
            .map_err(|e| unreadable(&f.path, e))?;
        for (h, v) in hashes.iter().zip(versions.iter()) {
            if let (Some(h), Some(v)) = (h, v) {
                groups.entry((f.hour, v.to_string())).or_default().push(h);
            }
        }
    }
    let mut hashes: Vec<Vec<i64>> = groups.into_values().collect();
    let threshold = sample_threshold(&mut hashes, k);
    let sampled = hashes.iter().flatten().filter(|h| **h <= threshold).count() as u64;

    let projection: Vec<Expr> = columns
        .iter()
        .filter(|c| c.starts_with(INPUT_PREFIX) || c.starts_with(OUTPUT_PREFIX))
        .map(|c| col(c.as_str()).alias(model_name(c)))
        .collect();
    let version = sel.version.clone();
    let plan = move |lf: LazyFrame| {
        let mut keep = col(HASH_COLUMN).lt_eq(lit(threshold));
        if let Some(v) = &version {
            keep = keep.and(col("version").eq(lit(v.clone())));
        }
        Ok(lf.filter(keep).select(projection.clone()))
    };
    let paths: Vec<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    let (mut table, mut samples) = profile_planned(Format::Parquet, &paths, &plan)?;

    // The exact figures over the sampled ones.
    table.row_count = total.rows;
    table.profile.row_count = total.rows;
    table.profile.exact = false;
    for (i, p) in table.profile.columns.iter_mut().enumerate() {
        let logged = if columns.iter().any(|c| c == &p.name) {
            p.name.clone()
        } else {
            format!("{INPUT_PREFIX}{}", p.name)
        };
        let Some(exact) = total.columns.get(&logged) else {
            continue;
        };
        p.nulls = exact.nulls;
        p.count = total.rows.saturating_sub(exact.nulls);
        let text = matches!(p.stats, ColumnStats::Categorical(_) | ColumnStats::Text(_));
        if text && exact.text && !exact.capped {
            samples[i] = Sample::Counts(exact.categories.clone());
        }
    }
    if total.rows == 0 {
        return Err(no_rows());
    }
    Ok(Current {
        table,
        samples,
        files: files.len(),
        paths: files.into_iter().map(|f| f.path).collect(),
        first_ms: total.first_ms,
        last_ms: total.last_ms,
        sampled_rows: Some(sampled),
    })
}

/// The window's hours, each checked from its sketches against `reference` (with the tests
/// `choices` names); hours without rows are left out.
pub fn timeline(
    log_dir: &Path,
    sel: &Selection,
    reference: (&keel_data::profile::Table, &[Sample]),
    drift_share: f64,
    choices: &BTreeMap<String, Choice>,
) -> Result<Vec<Point>> {
    let mut hours: Vec<i64> = sketch_files(log_dir, &sel.model, &sel.window)?
        .iter()
        .filter_map(|p| hour_start(&p.parent()?.file_name()?.to_string_lossy()))
        .collect();
    hours.dedup();
    let spans = hours
        .into_iter()
        .map(|since| (since, since + keel_core::predlog::HOUR_MS));
    crate::report::points(
        spans,
        sel,
        &|part| current(log_dir, part),
        reference,
        drift_share,
        choices,
    )
}
