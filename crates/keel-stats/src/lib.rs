//! Two-sample statistics that keel compares data with, shared by `keel data diff` and by
//! monitoring: the same numbers wherever a distribution change is measured; and the quality
//! metrics of models ([`classification`], [`regression`]), shared by training and by
//! performance monitoring, and their estimate without labels ([`cbpe`]).
//!
//! Each test follows the definition scipy uses (`ks_2samp`, `wasserstein_distance`,
//! `jensenshannon`, `chi2_contingency`, `chisquare`), so results can be checked against it; [`drift`] picks
//! the test per column the way Evidently's defaults do.

pub mod cbpe;
pub mod chi2;
pub mod classification;
pub mod compare;
pub mod divergence;
pub mod drift;
pub mod ks;
pub mod regression;

pub use chi2::{Chi2, chi2_contingency, chisquare, proportions_z_test};
pub use classification::{ClassificationMetrics, classification};
pub use divergence::{jensen_shannon, psi, wasserstein_distance};
pub use ks::{Ks, ks_2samp};
pub use regression::{RegressionMetrics, regression};

/// Why a statistic cannot be computed from the given samples.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    /// A sample has no values (after dropping missing ones).
    #[error("{0}: no values")]
    Empty(&'static str),
    /// A value is NaN or infinite where only finite numbers make sense.
    #[error("{0}: a value is not a finite number")]
    NotFinite(&'static str),
    /// Two inputs that must line up do not.
    #[error("{0}")]
    Shape(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, StatsError>;

/// Checks that `xs` is non-empty and all finite.
pub(crate) fn finite(xs: &[f64], what: &'static str) -> Result<()> {
    if xs.is_empty() {
        return Err(StatsError::Empty(what));
    }
    if xs.iter().any(|x| !x.is_finite()) {
        return Err(StatsError::NotFinite(what));
    }
    Ok(())
}

/// A sorted copy of `xs` (total order; callers reject NaN first).
pub(crate) fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v = xs.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    v
}
