//! Pearson's chi-squared test of independence on a contingency table, as scipy's
//! `chi2_contingency` with its defaults (Yates' continuity correction when the table has one
//! degree of freedom).

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::{Result, StatsError};

/// The outcome of a chi-squared test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Chi2 {
    /// The test statistic.
    pub statistic: f64,
    /// Its p-value under the chi-squared distribution with `dof` degrees of freedom.
    pub pvalue: f64,
    /// Degrees of freedom: (rows - 1) * (columns - 1).
    pub dof: usize,
}

/// Tests independence of the rows and columns of `table` (counts, rows of equal length).
/// For comparing two samples' categories, pass two rows: each sample's count per category.
pub fn chi2_contingency(table: &[Vec<f64>]) -> Result<Chi2> {
    let rows = table.len();
    let cols = table.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return Err(StatsError::Empty("the contingency table"));
    }
    if table.iter().any(|r| r.len() != cols) {
        return Err(StatsError::Shape(
            "the contingency table's rows differ in length".into(),
        ));
    }
    if table.iter().flatten().any(|x| !x.is_finite() || *x < 0.0) {
        return Err(StatsError::Shape(
            "the contingency table holds a negative or non-finite count".into(),
        ));
    }
    let row_sums: Vec<f64> = table.iter().map(|r| r.iter().sum()).collect();
    let col_sums: Vec<f64> = (0..cols)
        .map(|c| table.iter().map(|r| r[c]).sum())
        .collect();
    let total: f64 = row_sums.iter().sum();
    if row_sums.contains(&0.0) || col_sums.contains(&0.0) {
        return Err(StatsError::Shape(
            "the contingency table has a row or column of zeros, so expected frequencies would be zero"
                .into(),
        ));
    }
    let dof = (rows - 1) * (cols - 1);
    if dof == 0 {
        return Ok(Chi2 {
            statistic: 0.0,
            pvalue: 1.0,
            dof,
        });
    }
    let mut statistic = 0.0;
    for (r, row) in table.iter().enumerate() {
        for (c, observed) in row.iter().enumerate() {
            let expected = row_sums[r] * col_sums[c] / total;
            let mut diff = observed - expected;
            if dof == 1 {
                // Yates: move each observation half a count towards its expectation.
                diff = diff.signum() * (diff.abs() - 0.5).max(0.0);
            }
            statistic += diff * diff / expected;
        }
    }
    let pvalue = ChiSquared::new(dof as f64)
        .map(|d| d.sf(statistic))
        .map_err(|e| StatsError::Shape(format!("chi-squared distribution: {e}")))?;
    Ok(Chi2 {
        statistic,
        pvalue,
        dof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_table_has_statistic_zero() {
        let r = chi2_contingency(&[vec![10.0, 20.0, 30.0], vec![20.0, 40.0, 60.0]]).unwrap();
        assert!(r.statistic.abs() < 1e-12);
        assert!((r.pvalue - 1.0).abs() < 1e-12);
        assert_eq!(r.dof, 2);
    }

    #[test]
    fn yates_correction_applies_to_two_by_two() {
        // Expected 15 everywhere, |O - E| = 5, corrected to 4.5: 4 * 4.5^2 / 15 = 5.4.
        let r = chi2_contingency(&[vec![10.0, 20.0], vec![20.0, 10.0]]).unwrap();
        assert!((r.statistic - 5.4).abs() < 1e-12, "{}", r.statistic);
        assert_eq!(r.dof, 1);
    }

    #[test]
    fn zero_column_is_refused() {
        {
            let e = chi2_contingency(&[vec![1.0, 0.0], vec![2.0, 0.0]])
                .expect_err("an error")
                .to_string();
            assert!(e.contains("a row or column of zeros"), "{e}");
        }
    }
}
