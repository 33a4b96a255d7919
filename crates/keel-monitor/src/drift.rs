//! Drift of the logged rows against a reference: per column with the statistic Evidently picks
//! (see [`keel_stats::drift`]), PSI beside it, and the dataset drifted when at least a share of
//! the compared columns did.

use std::collections::BTreeMap;

use keel_data::diff::{self, ColumnChange};
use keel_data::profile::{Sample, Table};
use keel_stats::drift::Choice;
use serde::Serialize;

use crate::error::{MonitorError, Result};

/// Evidently's default: the dataset drifted when half its columns did.
pub const DEFAULT_DRIFT_SHARE: f64 = 0.5;

/// One drift check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// Reference rows.
    pub reference_rows: u64,
    /// Current rows.
    pub current_rows: u64,
    /// The columns in both, each with its drift decision (or why there is none).
    pub columns: Vec<ColumnChange>,
    /// Reference columns the log does not hold (a label, an id the model does not take).
    pub not_logged: Vec<String>,
    /// Logged columns the reference does not hold (outputs, when the reference is a dataset).
    pub not_in_reference: Vec<String>,
    /// How many compared columns drifted.
    pub drifted: usize,
    /// `drifted` over the compared columns (Evidently's and `keel data diff`'s rule).
    pub share: f64,
    /// The share at which the dataset counts as drifted.
    pub drift_share: f64,
    /// Whether it did.
    pub dataset_drifted: bool,
}

/// Compares `current` against `reference`; `drift_share` in (0, 1].
pub fn check(
    reference: (&Table, &[Sample]),
    current: (&Table, &[Sample]),
    drift_share: f64,
) -> Result<DriftReport> {
    check_with(reference, current, drift_share, &BTreeMap::new())
}

/// Compares like [`check`], with the tests `choices` names for some columns (the monitor
/// file's `columns`).
pub fn check_with(
    reference: (&Table, &[Sample]),
    current: (&Table, &[Sample]),
    drift_share: f64,
    choices: &BTreeMap<String, Choice>,
) -> Result<DriftReport> {
    if !(drift_share > 0.0 && drift_share <= 1.0) {
        return Err(MonitorError::Invalid(format!(
            "the drift share must be above 0 and at most 1, not {drift_share}"
        )));
    }
    let d = diff::compare_with(reference.0, reference.1, current.0, current.1, &|c| {
        choices.get(c).copied()
    });
    let named = |change: &str| -> Vec<String> {
        d.schema
            .iter()
            .filter(|c| c.change == change)
            .map(|c| c.column.clone())
            .collect()
    };
    let (share, dataset_drifted) = d.dataset_drift(drift_share);
    Ok(DriftReport {
        reference_rows: d.rows.0,
        current_rows: d.rows.1,
        not_logged: named("removed"),
        not_in_reference: named("added"),
        drifted: d.drifted,
        share,
        drift_share,
        dataset_drifted,
        columns: d.columns,
    })
}
