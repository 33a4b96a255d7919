//! Live performance of a served version: its logged predictions joined to the ground truth
//! sent to `/feedback` or read from a labelled dataset version ([`crate::truth`]) by request
//! id and row (the latest record wins, a dataset's label over any), the realised metrics on
//! the labelled rows, the metrics estimated from the model's probabilities on every row
//! ([`keel_stats::cbpe`]), request latency, all over the window and over its parts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keel_core::predlog::{ERRORS, FEEDBACK, HOUR_MS, OUTPUT_PREFIX, model_partition};
use keel_data::profile::quantile_sorted;
use keel_stats::cbpe;
use polars::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::log::{Current, Selection, hour_files, scan, unreadable};
use crate::report::prediction_column;
use crate::truth::Labels;

/// Metrics by name (`accuracy`, `roc_auc`, `rmse`, ...).
pub type Metrics = BTreeMap<String, f64>;

/// How a version performed over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Performance {
    /// `classification` or `regression`.
    pub task: &'static str,
    /// Predicted rows in the window.
    pub rows: u64,
    /// Of them, rows with ground truth.
    pub labelled: u64,
    /// The labelled dataset version read beside `/feedback`, if any (`NAME@V`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Metrics on the labelled rows.
    pub realised: Metrics,
    /// Metrics estimated on every row from the probabilities (classification with
    /// probabilities; assumes them calibrated).
    pub estimated: Metrics,
    /// The training run's held-out metrics, for comparison (set by the caller).
    pub training: Metrics,
    /// Request latency.
    pub latency: Latency,
    /// The same over equal parts of the window.
    pub timeline: Vec<PerformancePoint>,
}

/// Requests over a window: how many were answered, how many failed, and the latency of the
/// answered ones (each request counted once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Requests answered with predictions.
    pub requests: u64,
    /// Requests answered with an error (the log's `errors/`).
    pub errors: u64,
    /// `errors` over all requests (0 without any).
    pub error_rate: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// Performance over one part of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformancePoint {
    /// The part's start, ms since the epoch.
    pub since_ms: i64,
    /// Predicted rows.
    pub rows: u64,
    /// Labelled rows.
    pub labelled: u64,
    /// Metrics on the labelled rows.
    pub realised: Metrics,
    /// Estimated metrics.
    pub estimated: Metrics,
    /// Request latency.
    pub latency: Latency,
}

/// Which logged outputs hold the prediction and the class probabilities.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outputs {
    /// The predicted label or value.
    prediction: String,
    /// (class, column) of each class probability.
    classes: Vec<(String, String)>,
}

/// Probability columns: `out_probability_<class>` (keel's classifiers) or
/// `out_output_probability_<class>` (scikit-learn's through skl2onnx).
fn probability_columns(columns: &[String]) -> Vec<(String, String)> {
    ["probability_", "output_probability_"]
        .iter()
        .map(|p| format!("{OUTPUT_PREFIX}{p}"))
        .find_map(|prefix| {
            let found: Vec<(String, String)> = columns
                .iter()
                .filter_map(|c| Some((c.strip_prefix(&prefix)?.to_string(), c.clone())))
                .collect();
            (!found.is_empty()).then_some(found)
        })
        .unwrap_or_default()
}

/// One row as read: when, its request id and index, its request's latency, its prediction,
/// its probabilities and its ground truth.
pub(crate) struct Row {
    pub(crate) time: i64,
    pub(crate) request: String,
    pub(crate) row: i64,
    latency: f64,
    pub(crate) predicted: Predicted,
    proba: Option<Vec<f64>>,
    pub(crate) truth: Option<Predicted>,
}

/// A label (as text) or a value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Predicted {
    Label(String),
    Value(f64),
}

/// A number as a label: `1` for 1.0, else as written.
fn label_of(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// The ground truth sent for the rows `current` read, joined by request id and row, and the
/// performance over the window and its `parts`. `None` when the log holds no prediction column
/// keel recognises.
pub fn performance(
    log_dir: &Path,
    sel: &Selection,
    current: &Current,
    labels: Option<&Labels>,
    parts: usize,
) -> Result<Option<Performance>> {
    let Some((outputs, rows, classification)) = predicted_rows(log_dir, sel, current, labels)?
    else {
        return Ok(None);
    };
    let failures = failure_times(log_dir, sel)?;
    let failed_in = |since: i64, until: i64| -> u64 {
        failures
            .iter()
            .filter(|t| (since..until).contains(*t))
            .count() as u64
    };
    let class_names: Vec<String> = outputs.classes.iter().map(|(c, _)| c.clone()).collect();
    let measure = |rows: &[&Row]| {
        if classification {
            classification_metrics(rows, &class_names)
        } else {
            (regression_metrics(rows), Metrics::new())
        }
    };
    let all: Vec<&Row> = rows.iter().collect();
    let (realised, estimated) = measure(&all);
    let (start, end) = (current.first_ms, current.last_ms.saturating_add(1));
    let n = parts.max(1) as i64;
    let step = ((end - start) + n - 1) / n;
    let mut timeline = Vec::new();
    for k in 0..n {
        let since = start + k * step;
        let part: Vec<&Row> = rows
            .iter()
            .filter(|r| r.time >= since && r.time < since + step)
            .collect();
        if part.is_empty() {
            continue;
        }
        let (realised, estimated) = measure(&part);
        timeline.push(PerformancePoint {
            since_ms: since,
            rows: part.len() as u64,
            labelled: part.iter().filter(|r| r.truth.is_some()).count() as u64,
            realised,
            estimated,
            latency: latency(&part, failed_in(since, since + step)),
        });
    }
    Ok(Some(Performance {
        task: if classification {
            "classification"
        } else {
            "regression"
        },
        rows: rows.len() as u64,
        labelled: rows.iter().filter(|r| r.truth.is_some()).count() as u64,
        labels: labels.map(|l| l.source.clone()),
        realised,
        estimated,
        training: Metrics::new(),
        latency: latency(&all, failures.len() as u64),
        timeline,
    }))
}

/// The rows `current` read with their prediction and ground truth, what the outputs are, and
/// whether the model classifies; `None` when the log holds no prediction column keel
/// recognises.
pub(crate) fn predicted_rows(
    log_dir: &Path,
    sel: &Selection,
    current: &Current,
    labels: Option<&Labels>,
) -> Result<Option<(Outputs, Vec<Row>, bool)>> {
    let columns = current.columns();
    let Some(prediction) = prediction_column(&columns) else {
        return Ok(None);
    };
    let classes = probability_columns(&columns);
    let outputs = Outputs {
        prediction,
        classes,
    };
    let rows = read_rows(log_dir, sel, current, &outputs, labels)?;
    let classification = !outputs.classes.is_empty()
        || rows
            .iter()
            .any(|r| matches!(r.predicted, Predicted::Label(_)))
        || outputs.prediction.ends_with("label");
    Ok(Some((outputs, rows, classification)))
}

/// The latest ground-truth record of each request row, from the `/feedback` files of the hours
/// that end after `since_ms` (truth arrives after its prediction) and from `labels`, which come
/// after every `/feedback` record: `request_id`, `row`, `truth_number`, `truth_text`; `None`
/// when there is none.
pub(crate) fn latest_truths(
    log_dir: &Path,
    since_ms: i64,
    labels: Option<&Labels>,
) -> Result<Option<LazyFrame>> {
    let mut truths = Vec::new();
    let files = feedback_files(log_dir, since_ms)?;
    for path in &files {
        let lf = scan(path).map_err(|e| unreadable(path, e))?;
        truths.push(
            lf.select([
                col("request_id"),
                col("row").cast(DataType::Int64),
                col("time")
                    .dt()
                    .timestamp(TimeUnit::Milliseconds)
                    .alias("truth_time"),
                col("truth_number"),
                col("truth_text"),
            ]),
        );
    }
    truths.extend(labels.map(Labels::records));
    if truths.is_empty() {
        return Ok(None);
    }
    let first = files
        .first()
        .cloned()
        .unwrap_or_else(|| log_dir.join(FEEDBACK));
    let latest = concat(truths, UnionArgs::default())
        .map_err(|e| unreadable(&first, e))?
        .sort(
            ["truth_time"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .group_by([col("request_id"), col("row")])
        .agg([col("truth_number").last(), col("truth_text").last()]);
    Ok(Some(latest))
}

/// The finished ground-truth files of hours that end after `since_ms` (truth arrives after
/// its prediction).
fn feedback_files(log_dir: &Path, since_ms: i64) -> Result<Vec<PathBuf>> {
    hour_files(&log_dir.join(FEEDBACK), &|start| {
        start.saturating_add(HOUR_MS) > since_ms
    })
}

fn read_rows(
    log_dir: &Path,
    sel: &Selection,
    current: &Current,
    outputs: &Outputs,
    labels: Option<&Labels>,
) -> Result<Vec<Row>> {
    let mut wanted = vec![
        col("request_id"),
        col("row"),
        col("time").dt().timestamp(TimeUnit::Milliseconds),
        col("latency_ms"),
        col(outputs.prediction.as_str()).alias("prediction"),
    ];
    wanted.extend(outputs.classes.iter().enumerate().map(|(i, (_, c))| {
        col(c.as_str())
            .cast(DataType::Float64)
            .alias(format!("p{i}"))
    }));
    let mut frames = Vec::new();
    for path in &current.paths {
        let lf = scan(path).map_err(|e| unreadable(path, e))?;
        frames.push(lf.filter(sel.rows()).select(wanted.clone()));
    }
    let Some(first) = current.paths.first() else {
        return Ok(Vec::new());
    };
    let predictions = concat(frames, UnionArgs::default()).map_err(|e| unreadable(first, e))?;
    let joined = match latest_truths(log_dir, sel.window.since_ms, labels)? {
        None => predictions.with_columns([
            lit(NULL).cast(DataType::Float64).alias("truth_number"),
            lit(NULL).cast(DataType::String).alias("truth_text"),
        ]),
        Some(latest) => predictions.join(
            latest,
            [col("request_id"), col("row")],
            [col("request_id"), col("row")],
            JoinArgs::new(JoinType::Left),
        ),
    };
    let df = joined
        .sort(
            ["time"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()
        .map_err(|e| unreadable(first, e))?;
    to_rows(&df, outputs.classes.len()).map_err(|e| unreadable(first, e))
}

fn to_rows(df: &DataFrame, classes: usize) -> PolarsResult<Vec<Row>> {
    let time = df.column("time")?.i64()?;
    let request = df.column("request_id")?.str()?;
    let row = df.column("row")?.cast(&DataType::Int64)?;
    let row = row.i64()?;
    let latency = df.column("latency_ms")?.f64()?;
    let prediction = df.column("prediction")?;
    let labels = prediction
        .dtype()
        .is_string()
        .then(|| prediction.str())
        .transpose()?;
    let values = (!prediction.dtype().is_string())
        .then(|| prediction.cast(&DataType::Float64))
        .transpose()?;
    let values = values.as_ref().map(|v| v.f64()).transpose()?;
    let probs: Vec<&Float64Chunked> = (0..classes)
        .map(|i| df.column(&format!("p{i}")).and_then(|c| c.f64()))
        .collect::<PolarsResult<_>>()?;
    let truth_number = df.column("truth_number")?.cast(&DataType::Float64)?;
    let truth_number = truth_number.f64()?;
    let truth_text = df.column("truth_text")?.cast(&DataType::String)?;
    let truth_text = truth_text.str()?;
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let predicted = match (labels, values) {
            (Some(l), _) => l.get(i).map(|s| Predicted::Label(s.to_string())),
            (None, Some(v)) => v.get(i).map(Predicted::Value),
            _ => None,
        };
        let Some(predicted) = predicted else {
            continue;
        };
        let truth = match (&predicted, truth_text.get(i), truth_number.get(i)) {
            (Predicted::Value(_), _, Some(x)) => Some(Predicted::Value(x)),
            (Predicted::Value(_), Some(t), None) => t.trim().parse().ok().map(Predicted::Value),
            (Predicted::Label(_), Some(t), _) => Some(Predicted::Label(t.to_string())),
            (Predicted::Label(_), None, Some(x)) => Some(Predicted::Label(label_of(x))),
            _ => None,
        };
        let proba = (classes > 0)
            .then(|| probs.iter().map(|p| p.get(i)).collect::<Option<Vec<f64>>>())
            .flatten();
        rows.push(Row {
            time: time.get(i).unwrap_or_default(),
            request: request.get(i).unwrap_or_default().to_string(),
            row: row.get(i).unwrap_or_default(),
            latency: latency.get(i).unwrap_or(f64::NAN),
            predicted,
            proba,
            truth,
        });
    }
    Ok(rows)
}

/// A predicted label as text (a numeric label as [`label_of`] writes it).
pub(crate) fn label_text(p: &Predicted) -> String {
    match p {
        Predicted::Label(s) => s.clone(),
        Predicted::Value(x) => label_of(*x),
    }
}

/// Realised and estimated metrics of a classifier's rows.
fn classification_metrics(rows: &[&Row], classes: &[String]) -> (Metrics, Metrics) {
    let mut realised = Metrics::new();
    let labelled: Vec<&&Row> = rows.iter().filter(|r| r.truth.is_some()).collect();
    if !labelled.is_empty() {
        let right = labelled
            .iter()
            .filter(|r| r.truth.as_ref().map(label_text) == Some(label_text(&r.predicted)))
            .count();
        realised.insert("accuracy".into(), right as f64 / labelled.len() as f64);
        // With probabilities and every true class among the model's: the rest of the
        // training metrics.
        let truth_index: Option<Vec<usize>> = labelled
            .iter()
            .map(|r| {
                let t = label_text(r.truth.as_ref()?);
                classes.iter().position(|c| *c == t)
            })
            .collect();
        let proba: Option<Vec<Vec<f64>>> = labelled.iter().map(|r| r.proba.clone()).collect();
        if let (Some(y), Some(p)) = (truth_index, proba)
            && classes.len() >= 2
            && let Ok(m) = keel_stats::classification(&y, &p, classes.len())
        {
            realised.insert("precision".into(), m.precision);
            realised.insert("recall".into(), m.recall);
            realised.insert("f1".into(), m.f1);
            realised.insert("log_loss".into(), m.log_loss);
            if let Some(auc) = m.roc_auc {
                realised.insert("roc_auc".into(), auc);
            }
        }
    }
    let mut estimated = Metrics::new();
    let proba: Option<Vec<Vec<f64>>> = rows.iter().map(|r| r.proba.clone()).collect();
    if let Some(proba) = proba
        && classes.len() >= 2
    {
        let predicted: Vec<usize> = rows
            .iter()
            .zip(&proba)
            .map(|(r, p)| {
                let l = label_text(&r.predicted);
                classes
                    .iter()
                    .position(|c| *c == l)
                    .unwrap_or_else(|| keel_stats::classification::argmax(p))
            })
            .collect();
        if let Some(a) = cbpe::expected_accuracy(&proba, &predicted) {
            estimated.insert("accuracy".into(), a);
        }
        if let Some(a) = cbpe::expected_roc_auc_classes(&proba, classes.len()) {
            estimated.insert("roc_auc".into(), a);
        }
    }
    (realised, estimated)
}

/// Realised metrics of a regressor's labelled rows.
fn regression_metrics(rows: &[&Row]) -> Metrics {
    let (truth, predicted): (Vec<f64>, Vec<f64>) = rows
        .iter()
        .filter_map(|r| match (&r.truth, &r.predicted) {
            (Some(Predicted::Value(t)), Predicted::Value(p)) => Some((*t, *p)),
            _ => None,
        })
        .unzip();
    let mut m = Metrics::new();
    if let Ok(r) = keel_stats::regression(&truth, &predicted) {
        m.insert("rmse".into(), r.rmse);
        m.insert("mae".into(), r.mae);
        m.insert("r2".into(), r.r2);
        m.insert("mape".into(), r.mape);
    }
    m
}

/// When each of the version's requests answered with an error in the window was answered.
fn failure_times(log_dir: &Path, sel: &Selection) -> Result<Vec<i64>> {
    let dir = log_dir.join(ERRORS).join(model_partition(&sel.model));
    let mut times = Vec::new();
    for path in hour_files(&dir, &|start| sel.window.overlaps_hour(start))? {
        let df = scan(&path)
            .and_then(|lf| {
                lf.filter(sel.rows())
                    .select([col("time").dt().timestamp(TimeUnit::Milliseconds)])
                    .collect()
            })
            .map_err(|e| unreadable(&path, e))?;
        let t = df
            .column("time")
            .and_then(|c| c.i64().cloned())
            .map_err(|e| unreadable(&path, e))?;
        times.extend(t.iter().flatten());
    }
    Ok(times)
}

/// Latency percentiles of the requests holding `rows` (a request's rows share its latency),
/// with `errors` requests answered with an error.
fn latency(rows: &[&Row], errors: u64) -> Latency {
    let mut seen = std::collections::HashSet::new();
    let mut ms: Vec<f64> = rows
        .iter()
        .filter(|r| seen.insert(r.request.as_str()))
        .map(|r| r.latency)
        .filter(|x| x.is_finite())
        .collect();
    ms.sort_by(f64::total_cmp);
    let requests = seen.len() as u64;
    Latency {
        requests,
        errors,
        error_rate: if requests + errors > 0 {
            errors as f64 / (requests + errors) as f64
        } else {
            0.0
        },
        p50_ms: quantile_sorted(&ms, 0.5),
        p95_ms: quantile_sorted(&ms, 0.95),
        p99_ms: quantile_sorted(&ms, 0.99),
    }
}
