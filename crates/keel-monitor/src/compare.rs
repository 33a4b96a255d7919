//! Challenger against champion on live traffic: both versions' logged predictions joined to
//! their ground truth, then a one-sided test that the challenger does better
//! ([`keel_stats::compare`]). A shadow answers the champion's own rows, so the test is paired
//! (McNemar's exact test on right and wrong labels, the paired t-test on squared errors); a
//! canary answers rows of its own, so it is unpaired (two proportions of right labels, Welch's
//! t-test on squared errors). Nothing is decided below the minimum of labelled rows.

use std::collections::HashMap;
use std::path::Path;

use keel_stats::compare::{
    Comparison, mcnemar_greater, paired_t_greater, proportions_greater, welch_t_greater,
};
use serde::Serialize;

use crate::error::{MonitorError, Result};
use crate::log::{Selection, current};
use crate::performance::{Predicted, Row, label_text, predicted_rows};
use crate::truth::Labels;
use crate::window::Window;

/// One version's side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The version.
    pub version: String,
    /// Its logged rows with ground truth in the window.
    pub labelled: u64,
    /// The rows compared (the paired ones, or all labelled rows).
    pub compared: u64,
    /// Accuracy (classification) or RMSE (regression) on the compared rows.
    pub value: f64,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Promotion {
    /// The registered model.
    pub model: String,
    /// `accuracy` or `rmse`.
    pub metric: &'static str,
    /// The champion's side.
    pub champion: Side,
    /// The challenger's side.
    pub challenger: Side,
    /// Rows both versions answered (a shadow's) with ground truth.
    pub paired: u64,
    /// The test, when there were enough rows to make one.
    pub test: Option<Comparison>,
    /// Labelled rows each side needs (paired rows, for a shadow).
    pub min_rows: u64,
    /// The significance level.
    pub alpha: f64,
    /// Whether the challenger is better: its p-value below `alpha`.
    pub better: bool,
    /// Why, in one line.
    pub reason: String,
}

/// One version's rows with ground truth in the window, and whether the model classifies.
fn labelled(
    log_dir: &Path,
    model: &str,
    version: &str,
    window: Window,
    labels: Option<&Labels>,
) -> Result<(Vec<Row>, bool)> {
    let sel = Selection {
        model: model.to_string(),
        version: Some(version.to_string()),
        window,
    };
    let cur = match current(log_dir, &sel) {
        Ok(c) => c,
        Err(MonitorError::NoRows { .. }) => return Ok((Vec::new(), false)),
        Err(e) => return Err(e),
    };
    let Some((_, rows, classification)) = predicted_rows(log_dir, &sel, &cur, labels)? else {
        return Err(MonitorError::Invalid(format!(
            "{model}/{version} logs no prediction keel recognises (out_label, out_variable, ...)"
        )));
    };
    Ok((
        rows.into_iter().filter(|r| r.truth.is_some()).collect(),
        classification,
    ))
}

/// Whether a labelled row's prediction is right.
fn right(r: &Row) -> bool {
    r.truth.as_ref().map(label_text) == Some(label_text(&r.predicted))
}

/// A labelled row's squared error (a regressor's).
fn squared_error(r: &Row) -> Option<f64> {
    match (&r.predicted, &r.truth) {
        (Predicted::Value(p), Some(Predicted::Value(t))) => Some((p - t).powi(2)),
        _ => None,
    }
}

fn accuracy(rows: &[&Row]) -> f64 {
    rows.iter().filter(|r| right(r)).count() as f64 / rows.len().max(1) as f64
}

fn rmse(losses: &[f64]) -> f64 {
    (losses.iter().sum::<f64>() / losses.len().max(1) as f64).sqrt()
}

/// Compares `challenger` against `champion`, versions of `model`, on their rows logged in
/// `window` with ground truth.
pub fn compare(
    log_dir: &Path,
    model: &str,
    (champion, challenger): (&str, &str),
    window: Window,
    labels: Option<&Labels>,
    min_rows: u64,
    alpha: f64,
) -> Result<Promotion> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(MonitorError::Invalid(format!(
            "the significance level must be between 0 and 1, not {alpha}"
        )));
    }
    if champion == challenger {
        return Err(MonitorError::Invalid(format!(
            "the champion and the challenger are the same version ({champion})"
        )));
    }
    let (a, class_a) = labelled(log_dir, model, champion, window, labels)?;
    let (b, class_b) = labelled(log_dir, model, challenger, window, labels)?;
    let classification = class_a || class_b;
    let by_key: HashMap<(&str, i64), &Row> =
        a.iter().map(|r| ((r.request.as_str(), r.row), r)).collect();
    let pairs: Vec<(&Row, &Row)> = b
        .iter()
        .filter_map(|r| Some((*by_key.get(&(r.request.as_str(), r.row))?, r)))
        .collect();
    let paired = pairs.len() as u64;
    let (na, nb) = (a.len() as u64, b.len() as u64);
    let metric = if classification { "accuracy" } else { "rmse" };
    let side = |version: &str, labelled: u64, compared: usize, value: f64| Side {
        version: version.to_string(),
        labelled,
        compared: compared as u64,
        value,
    };
    let losses =
        |rows: &[&Row]| -> Vec<f64> { rows.iter().filter_map(|r| squared_error(r)).collect() };
    let (test, sides) = if paired > 0 {
        // A shadow: the rows both answered.
        let (ra, rb): (Vec<&Row>, Vec<&Row>) = pairs.iter().copied().unzip();
        let sides = if classification {
            (accuracy(&ra), accuracy(&rb))
        } else {
            (rmse(&losses(&ra)), rmse(&losses(&rb)))
        };
        let test = if paired < min_rows {
            None
        } else if classification {
            let champion_only = pairs.iter().filter(|(x, y)| right(x) && !right(y)).count();
            let challenger_only = pairs.iter().filter(|(x, y)| !right(x) && right(y)).count();
            Some(mcnemar_greater(
                champion_only as u64,
                challenger_only as u64,
            ))
        } else {
            Some(paired_t_greater(&losses(&ra), &losses(&rb)).map_err(stats)?)
        };
        (test, (sides, paired as usize, paired as usize))
    } else {
        // A canary: each answered its own rows. The champion's count from the challenger's
        // first row on, so both sides are measured over the same stretch of traffic.
        let since = b.iter().map(|r| r.time).min().unwrap_or(i64::MIN);
        let ra: Vec<&Row> = a.iter().filter(|r| r.time >= since).collect();
        let rb: Vec<&Row> = b.iter().collect();
        let na = ra.len() as u64;
        let sides = if classification {
            (accuracy(&ra), accuracy(&rb))
        } else {
            (rmse(&losses(&ra)), rmse(&losses(&rb)))
        };
        let test = if na < min_rows || nb < min_rows {
            None
        } else if classification {
            let (ca, cb) = (
                ra.iter().filter(|r| right(r)).count(),
                rb.iter().filter(|r| right(r)).count(),
            );
            Some(proportions_greater(ca as u64, na, cb as u64, nb).map_err(stats)?)
        } else {
            Some(welch_t_greater(&losses(&ra), &losses(&rb)).map_err(stats)?)
        };
        (test, (sides, ra.len(), rb.len()))
    };
    let ((va, vb), (ca, cb)) = (sides.0, (sides.1, sides.2));
    let figures = format!(
        "{metric} {vb:.4} against {va:.4} on {}",
        if paired > 0 {
            format!("{paired} rows both answered")
        } else {
            format!("{cb} and {ca} labelled rows")
        }
    );
    let (better, reason) = match &test {
        None => (
            false,
            format!(
                "not enough labelled rows to decide: {}, {min_rows} needed",
                if paired > 0 {
                    format!("{paired} rows both answered")
                } else {
                    format!(
                        "no row both answered; the champion {ca} since the challenger's first, the challenger {cb}"
                    )
                }
            ),
        ),
        Some(t) if t.pvalue < alpha => (
            true,
            format!(
                "the challenger is better: {figures}; {} p = {:.3e} < {alpha}",
                t.test, t.pvalue
            ),
        ),
        Some(t) => (
            false,
            format!(
                "the challenger is not shown better: {figures}; {} p = {:.3e} >= {alpha}",
                t.test, t.pvalue
            ),
        ),
    };
    Ok(Promotion {
        model: model.to_string(),
        metric,
        champion: side(champion, na, ca, va),
        challenger: side(challenger, nb, cb, vb),
        paired,
        test,
        min_rows,
        alpha,
        better,
        reason,
    })
}

fn stats(e: keel_stats::StatsError) -> MonitorError {
    MonitorError::Invalid(e.to_string())
}
