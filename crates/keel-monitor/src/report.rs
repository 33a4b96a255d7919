//! One monitoring check as a report: what was compared (model, version, window, reference),
//! the drift per column and for the dataset, and its course over the window (the window cut
//! in equal parts, each checked against the same reference), as JSON or one HTML page.

use std::collections::BTreeMap;
use std::path::Path;

use keel_data::Format;
use keel_data::diff::ColumnChange;
use keel_data::profile::{Sample, Table, profile_planned};
use keel_stats::drift::Choice;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use polars::prelude::*;
use serde::Serialize;

use crate::charts;
use crate::drift::{self, DriftReport};
use crate::error::{MonitorError, Result};
use crate::log::{Current, Selection, current};
use crate::performance::{Metrics, Performance};
use crate::window::{Window, rfc3339};

/// The logged output holding a model's prediction (its label, or its value): `out_label`
/// (keel's classifiers), `out_output_label` (scikit-learn's through skl2onnx), `out_variable`
/// (regressors), `out_predictions`, or the only output when there is one.
pub fn prediction_column(logged: &[String]) -> Option<String> {
    let prefix = keel_core::predlog::OUTPUT_PREFIX;
    for name in [
        "label",
        "output_label",
        "variable",
        "predictions",
        "prediction",
    ] {
        let c = format!("{prefix}{name}");
        if logged.contains(&c) {
            return Some(c);
        }
    }
    let mut outputs = logged.iter().filter(|c| c.starts_with(prefix));
    match (outputs.next(), outputs.next()) {
        (Some(only), None) => Some(only.clone()),
        _ => None,
    }
}

/// Reads a reference table (a dataset version's files) for comparison with logged rows whose
/// columns are `logged` ([`Current::columns`]). The column `target` the model learned to
/// predict, when given and not itself a logged input, is read as the logged prediction
/// ([`prediction_column`]), so what the model predicts is compared with the values it
/// learned from.
pub fn read_reference(
    format: Format,
    paths: &[&Path],
    logged: Vec<String>,
    target: Option<&str>,
) -> Result<(Table, Vec<Sample>)> {
    let rename = target
        .filter(|t| !logged.iter().any(|l| l == t))
        .zip(prediction_column(&logged))
        .map(|(t, p)| (t.to_string(), p));
    let plan = move |mut lf: LazyFrame| {
        let Some((target, prediction)) = &rename else {
            return Ok(lf);
        };
        let schema = lf.collect_schema()?;
        let columns: Vec<Expr> = schema
            .iter_names()
            .map(|n| {
                if n.as_str() == target {
                    col(n.clone()).alias(prediction.as_str())
                } else {
                    col(n.clone())
                }
            })
            .collect();
        Ok(lf.select(columns))
    };
    Ok(profile_planned(format, paths, &plan)?)
}

/// The check over one part of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The part's start (RFC 3339).
    pub since: String,
    /// Its start, ms since the epoch.
    pub since_ms: i64,
    /// Its end (exclusive).
    pub until_ms: i64,
    /// Rows logged in it.
    pub rows: u64,
    /// Share of compared columns that drifted.
    pub share: f64,
    /// Whether the dataset drifted in it.
    pub dataset_drifted: bool,
    /// Each compared column's score (a p-value or a distance, as in the whole check).
    pub scores: BTreeMap<String, f64>,
}

impl Point {
    /// The part from `since` to `until` (ms) and its check.
    pub fn of(since: i64, until: i64, r: &DriftReport) -> Self {
        Point {
            since: rfc3339(since),
            since_ms: since,
            until_ms: until,
            rows: r.current_rows,
            share: r.share,
            dataset_drifted: r.dataset_drifted,
            scores: r
                .columns
                .iter()
                .filter_map(|c| Some((c.column.clone(), c.drift.as_ref()?.score)))
                .collect(),
        }
    }
}

/// The window from the first to the last logged row cut in `parts` equal parts, each checked
/// against `reference` (with the tests `choices` names); parts without rows are left out.
pub fn timeline(
    log_dir: &Path,
    sel: &Selection,
    current: &Current,
    reference: (&Table, &[Sample]),
    drift_share: f64,
    choices: &BTreeMap<String, Choice>,
    parts: usize,
) -> Result<Vec<Point>> {
    let (start, end) = (current.first_ms, current.last_ms.saturating_add(1));
    let parts = parts.max(1) as i64;
    let step = ((end - start) + parts - 1) / parts;
    let columns = current.columns();
    let spans = (0..parts)
        .map(|k| {
            let since = start + k * step;
            (since, (since + step).min(end))
        })
        .filter(|(since, until)| since < until);
    points(
        spans,
        sel,
        &|part| current_part(log_dir, part, &columns),
        reference,
        drift_share,
        choices,
    )
}

/// Each span (ms since, until) of `sel`'s window read by `read` and checked against `reference`
/// (with the tests `choices` names); spans without rows are left out.
pub(crate) fn points(
    spans: impl Iterator<Item = (i64, i64)>,
    sel: &Selection,
    read: &dyn Fn(&Selection) -> Result<Current>,
    reference: (&Table, &[Sample]),
    drift_share: f64,
    choices: &BTreeMap<String, Choice>,
) -> Result<Vec<Point>> {
    let mut out = Vec::new();
    for (since, until) in spans {
        let part = Selection {
            window: Window::new(since, until)?,
            ..sel.clone()
        };
        let c = match read(&part) {
            Ok(c) => c,
            Err(MonitorError::NoRows { .. }) => continue,
            Err(e) => return Err(e),
        };
        let r = drift::check_with(reference, (&c.table, &c.samples), drift_share, choices)?;
        out.push(Point::of(since, until, &r));
    }
    Ok(out)
}

/// A part of the window read like the whole: the same columns are expected.
fn current_part(log_dir: &Path, part: &Selection, columns: &[String]) -> Result<Current> {
    let c = current(log_dir, part)?;
    let got = c.columns();
    if let Some(missing) = columns.iter().find(|n| !got.contains(n)) {
        return Err(MonitorError::MissingColumn {
            column: missing.clone(),
            file: format!("the log's rows in {}", part.window),
        });
    }
    Ok(c)
}

/// One check, as printed, stored as `report.json` and drawn in `report.html`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The registered model.
    pub model: String,
    /// The version whose rows were read.
    pub version: Option<String>,
    /// The window asked for (RFC 3339 times).
    pub since: String,
    /// Its end (exclusive).
    pub until: String,
    /// When the first and the last row read were logged.
    pub rows_between: (String, String),
    /// Log files holding the rows (sketch files, when read from sketches).
    pub log_files: usize,
    /// Read from the hourly sketches: the sampled rows numeric columns were compared through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_rows: Option<u64>,
    /// What the rows were compared with (`NAME@V`, or a window of the log).
    pub reference: String,
    /// The comparison.
    pub drift: DriftReport,
    /// Its course over the window.
    pub timeline: Vec<Point>,
    /// Live performance over the same rows, when the log holds a prediction keel recognises.
    pub performance: Option<Performance>,
}

impl Report {
    /// Brings the parts of a check together.
    pub fn new(
        sel: &Selection,
        current: &Current,
        reference: String,
        drift: DriftReport,
        timeline: Vec<Point>,
    ) -> Self {
        Report {
            model: sel.model.clone(),
            version: sel.version.clone(),
            since: rfc3339(sel.window.since_ms),
            until: rfc3339(sel.window.until_ms),
            rows_between: (rfc3339(current.first_ms), rfc3339(current.last_ms)),
            log_files: current.files,
            sampled_rows: current.sampled_rows,
            reference,
            drift,
            timeline,
            performance: None,
        }
    }

    /// `NAME/VERSION` (or `NAME`).
    pub fn subject(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/{v}", self.model),
            None => self.model.clone(),
        }
    }

    /// One line: how many columns drifted and whether the dataset did.
    pub fn verdict(&self) -> String {
        let d = &self.drift;
        format!(
            "{} of {} compared columns drifted (share {:.2}; the dataset drifts at {}): {}",
            d.drifted,
            d.columns.len(),
            d.share,
            d.drift_share,
            if d.dataset_drifted {
                "drift"
            } else {
                "no drift"
            }
        )
    }
}

/// The report as one self-contained page: the facts, the dataset's drift share over the
/// window, then per column its decision, its reference and current distributions and its
/// score over the window. `reference` and `current` are the two sides' tables and samples.
pub fn html(
    report: &Report,
    reference: (&Table, &[Sample]),
    current: (&Table, &[Sample]),
) -> String {
    let sample = |side: (&Table, &[Sample]), name: &str| -> Option<Sample> {
        let i = side.0.schema.columns.iter().position(|c| c.name == name)?;
        side.1.get(i).cloned()
    };
    let share_points: Vec<(i64, f64)> = report
        .timeline
        .iter()
        .map(|p| (p.since_ms, p.share))
        .collect();
    let title = format!("Drift of {}", report.subject());
    let d = &report.drift;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · keel" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p.verdict.(if d.dataset_drifted { "bad" } else { "ok" }) { (report.verdict()) }
                table.facts {
                    tr { th { "window" } td { (report.since) " .. " (report.until) } }
                    tr { th { "rows logged" } td { (report.rows_between.0) " .. " (report.rows_between.1) } }
                    tr { th { "current rows" } td { (d.current_rows) " in " (report.log_files) " log files" } }
                    tr { th { "reference" } td { (report.reference) " (" (d.reference_rows) " rows)" } }
                    @if !d.not_logged.is_empty() {
                        tr { th { "not logged" } td { (d.not_logged.join(", ")) } }
                    }
                    @if !d.not_in_reference.is_empty() {
                        tr { th { "not in the reference" } td { (d.not_in_reference.join(", ")) } }
                    }
                }
                p.legend {
                    span.swatch style=(swatch(charts::REFERENCE)) {} " reference "
                    span.swatch style=(swatch(charts::CURRENT)) {} " current"
                }
                @if share_points.len() > 1 {
                    section.column {
                        h2 { "Share of drifted columns over the window" }
                        @if let Some(svg) = charts::timeline(&share_points, Some(d.drift_share), "share") {
                            (PreEscaped(svg))
                        }
                    }
                }
                @if let Some(p) = &report.performance {
                    (performance(p))
                }
                @for c in &d.columns {
                    (column(c, report, sample(reference, &c.column), sample(current, &c.column)))
                }
            }
        }
    };
    page.into_string()
}

fn column(c: &ColumnChange, report: &Report, r: Option<Sample>, cur: Option<Sample>) -> Markup {
    let points: Vec<(i64, f64)> = report
        .timeline
        .iter()
        .filter_map(|p| Some((p.since_ms, *p.scores.get(&c.column)?)))
        .collect();
    let chart = r.zip(cur).and_then(|(r, c)| charts::distributions(&r, &c));
    html! {
        section.column data-column=(c.column) {
            h2 {
                (c.column)
                @match &c.drift {
                    Some(x) if x.drifted => span.bad { "drifted" },
                    Some(_) => span.ok { "no drift" },
                    None => span.kind { "not compared" },
                }
            }
            div.body {
                table.stats {
                    @if let Some(x) = &c.drift {
                        tr { th { "test" } td { (serde_json::to_value(x.test).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()) } }
                        tr { th { (if x.test.is_pvalue() { "p-value" } else { "distance" }) } td { (format!("{:.4}", x.score)) } }
                        tr { th { "drifts when" } td { (x.rule()) } }
                        tr { th { "PSI" } td { (format!("{:.4}", x.psi)) } }
                    }
                    @if let Some(note) = &c.note {
                        tr { th { "note" } td { (note) } }
                    }
                    tr { th { "missing" } td { (c.nulls.0) " → " (c.nulls.1) } }
                }
                @if let Some(svg) = chart {
                    div { (PreEscaped(svg)) }
                }
                @if points.len() > 1 {
                    div { (PreEscaped(charts::timeline(&points, c.drift.as_ref().map(|x| x.threshold), "score").unwrap_or_default())) }
                }
            }
        }
    }
}

/// Live performance: realised, estimated and training metrics side by side, their course over
/// the window, and latency.
fn performance(p: &Performance) -> Markup {
    let names: Vec<&String> = p
        .realised
        .keys()
        .chain(p.estimated.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let cell = |m: &Metrics, k: &str| {
        m.get(k)
            .map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
    };
    let main = if p.task == "classification" {
        "accuracy"
    } else {
        "rmse"
    };
    let series =
        |pick: &dyn Fn(&crate::performance::PerformancePoint) -> Option<f64>| -> Vec<(i64, f64)> {
            p.timeline
                .iter()
                .filter_map(|t| Some((t.since_ms, pick(t)?)))
                .collect()
        };
    let realised = series(&|t| t.realised.get(main).copied());
    let estimated = series(&|t| t.estimated.get(main).copied());
    let p99 = series(&|t| Some(t.latency.p99_ms));
    let chart = charts::lines(
        &[
            (charts::CURRENT, &realised),
            (charts::REFERENCE, &estimated),
        ],
        p.training.get(main).copied(),
        main,
    );
    html! {
        section.column #performance {
            h2 { "Performance" span.kind { (p.task) ", " (p.labelled) " of " (p.rows) " rows labelled" @if let Some(l) = &p.labels { " (by /feedback and " (l) ")" } } }
            div.body {
                table.stats {
                    tr { th { "metric" } th { "realised" } th { "estimated" } th { "training" } }
                    @for k in &names {
                        tr { th { (k) } td { (cell(&p.realised, k)) } td { (cell(&p.estimated, k)) } td { (cell(&p.training, k)) } }
                    }
                    tr { th { "requests" } td { (p.latency.requests) } }
                    tr { th { "errors" } td { (p.latency.errors) " (" (format!("{:.2}", p.latency.error_rate * 100.0)) "%)" } }
                    tr { th { "latency p50 / p95 / p99" } td colspan="3" { (format!("{:.2} / {:.2} / {:.2} ms", p.latency.p50_ms, p.latency.p95_ms, p.latency.p99_ms)) } }
                }
                @if realised.len() + estimated.len() > 1 {
                    div {
                        p.legend {
                            span.swatch style=(swatch(charts::CURRENT)) {} " realised "
                            span.swatch style=(swatch(charts::REFERENCE)) {} " estimated "
                            @if p.training.contains_key(main) { "- - training" }
                        }
                        (PreEscaped(chart.unwrap_or_default()))
                    }
                }
                @if p99.len() > 1 {
                    div { p.legend { "p99 latency, ms" } (PreEscaped(charts::timeline(&p99, None, "ms").unwrap_or_default())) }
                }
            }
        }
    }
}

fn swatch(c: plotters::style::RGBColor) -> String {
    format!(
        "display:inline-block;width:12px;height:12px;background:rgb({},{},{});opacity:.6",
        c.0, c.1, c.2
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#1d2733;padding:0 1rem}\
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .5rem}\
h2 span{font-weight:normal;margin-left:.6rem;font-size:.9rem}.bad{color:#b03030}.ok{color:#2d7a3e}.kind{color:#5b6b7c}\
.verdict{font-weight:600}\
table{border-collapse:collapse}th{text-align:left;font-weight:600;padding:2px 12px 2px 0;color:#3d4b59}\
td{padding:2px 0;font-variant-numeric:tabular-nums}\
.facts{margin-bottom:1rem}.column{border-top:1px solid #d8dee6;padding:1rem 0}\
.body{display:flex;gap:1.5rem;align-items:flex-start;flex-wrap:wrap}.stats{min-width:200px}";
