//! Pearson's chi-squared tests: of independence on a contingency table, as scipy's
//! `chi2_contingency` with its defaults (Yates' continuity correction when the table has one
//! degree of freedom), and of goodness of fit, as scipy's `chisquare`; and the two-proportion
//! Z-test (pooled variance, two-sided).

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use statrs::function::erf::erfc;

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

/// Tests whether `observed` counts follow `expected` ones (same length, equal totals), as
/// scipy's `chisquare(f_obs, f_exp)`: `k - 1` degrees of freedom. A category expected zero
/// times but observed makes the statistic infinite and the p-value 0, as in scipy.
pub fn chisquare(observed: &[f64], expected: &[f64]) -> Result<Chi2> {
    if observed.is_empty() {
        return Err(StatsError::Empty("the observed counts"));
    }
    if observed.len() != expected.len() {
        return Err(StatsError::Shape(
            "observed and expected counts differ in length".into(),
        ));
    }
    if observed
        .iter()
        .chain(expected)
        .any(|x| !x.is_finite() || *x < 0.0)
    {
        return Err(StatsError::Shape(
            "a count is negative or not a finite number".into(),
        ));
    }
    let dof = observed.len() - 1;
    let mut statistic = 0.0;
    for (o, e) in observed.iter().zip(expected) {
        let d = o - e;
        statistic += if *e > 0.0 {
            d * d / e
        } else if d == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let pvalue = if dof == 0 {
        1.0
    } else if statistic.is_infinite() {
        0.0
    } else {
        ChiSquared::new(dof as f64)
            .map(|d| d.sf(statistic))
            .map_err(|e| StatsError::Shape(format!("chi-squared distribution: {e}")))?
    };
    Ok(Chi2 {
        statistic,
        pvalue,
        dof,
    })
}

/// The two-sided p-value of the Z-test that two samples share a proportion: `a` of `n_a`
/// against `b` of `n_b`, with the pooled proportion's variance. 1 when neither sample varies
/// (both proportions 0, or both 1).
pub fn proportions_z_test(a: f64, n_a: f64, b: f64, n_b: f64) -> Result<f64> {
    if !(n_a > 0.0 && n_b > 0.0) {
        return Err(StatsError::Empty("a sample of the Z-test"));
    }
    let (pa, pb) = (a / n_a, b / n_b);
    let pooled = (a + b) / (n_a + n_b);
    let var = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b);
    if var <= 0.0 {
        return Ok(1.0);
    }
    let z = (pa - pb) / var.sqrt();
    Ok(erfc(z.abs() / std::f64::consts::SQRT_2))
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
    fn goodness_of_fit_and_z_test_match_their_definitions() {
        // scipy.stats.chisquare([30, 10, 20], [20, 20, 20]): statistic 10, p = exp(-5).
        let r = chisquare(&[30.0, 10.0, 20.0], &[20.0, 20.0, 20.0]).unwrap();
        assert!((r.statistic - 10.0).abs() < 1e-12);
        assert!((r.pvalue - (-5.0f64).exp()).abs() < 1e-12, "{}", r.pvalue);
        assert_eq!(r.dof, 2);
        // A category the reference never held.
        assert_eq!(chisquare(&[1.0, 9.0], &[0.0, 10.0]).unwrap().pvalue, 0.0);
        // 40 of 100 against 60 of 100: pooled 0.5, z = -0.2 / sqrt(0.005) = -2.828,
        // p = erfc(2.828 / sqrt 2) = 0.004678.
        let p = proportions_z_test(40.0, 100.0, 60.0, 100.0).unwrap();
        assert!((p - 0.004_677_734_981_047_265).abs() < 1e-12, "{p}");
        assert_eq!(proportions_z_test(0.0, 10.0, 0.0, 20.0).unwrap(), 1.0);
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
