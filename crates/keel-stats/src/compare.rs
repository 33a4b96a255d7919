//! One-sided tests that a challenger model does better than the champion on live traffic:
//! paired when both answered the same rows (a shadow), unpaired when each answered its own
//! (a canary). Each follows scipy's definition with `alternative="greater"` (the champion's
//! loss greater, or the challenger's share of right answers greater), so results can be
//! checked against it.

use serde::Serialize;
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, StudentsT};
use statrs::function::erf::erfc;

use crate::{Result, StatsError, finite};

/// A test's outcome: small p-values say the challenger is better.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// The test: `mcnemar`, `paired_t`, `welch_t` or `two_proportion_z`.
    pub test: &'static str,
    /// Its statistic (the challenger's wins for McNemar's test, t or z otherwise).
    pub statistic: f64,
    /// The one-sided p-value.
    pub pvalue: f64,
}

/// McNemar's exact test on paired right-or-wrong answers: `champion_only` rows only the
/// champion answered right, `challenger_only` rows only the challenger did. The p-value is
/// P(X >= challenger_only) for X ~ Binomial(champion_only + challenger_only, 1/2) (scipy's
/// `binomtest(c, b + c, 0.5, alternative="greater")`); 1 without discordant rows.
pub fn mcnemar_greater(champion_only: u64, challenger_only: u64) -> Comparison {
    let n = champion_only + challenger_only;
    let pvalue = if challenger_only == 0 || n == 0 {
        1.0
    } else {
        Binomial::new(0.5, n).map_or(1.0, |b| b.sf(challenger_only - 1))
    };
    Comparison {
        test: "mcnemar",
        statistic: challenger_only as f64,
        pvalue: pvalue.clamp(0.0, 1.0),
    }
}

fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// The upper tail of t at `df` degrees of freedom, with the limits of a zero spread: a
/// positive mean difference is then certain, none is not.
fn t_upper(diff: f64, se: f64, df: f64) -> (f64, f64) {
    if se <= 0.0 || !se.is_finite() {
        let t = if diff > 0.0 { f64::INFINITY } else { 0.0 };
        return (t, if diff > 0.0 { 0.0 } else { 1.0 });
    }
    let t = diff / se;
    let p = StudentsT::new(0.0, 1.0, df).map_or(1.0, |d| d.sf(t));
    (t, p)
}

/// The paired t-test that the champion's losses exceed the challenger's on the same rows
/// (scipy's `ttest_rel(champion, challenger, alternative="greater")`).
pub fn paired_t_greater(champion: &[f64], challenger: &[f64]) -> Result<Comparison> {
    finite(champion, "the champion's losses")?;
    finite(challenger, "the challenger's losses")?;
    if champion.len() != challenger.len() {
        return Err(StatsError::Shape(format!(
            "a paired test needs as many losses on each side, not {} and {}",
            champion.len(),
            challenger.len()
        )));
    }
    if champion.len() < 2 {
        return Err(StatsError::Shape("a paired t-test needs two rows".into()));
    }
    let d: Vec<f64> = champion
        .iter()
        .zip(challenger)
        .map(|(a, b)| a - b)
        .collect();
    let (mean, var) = mean_var(&d);
    let n = d.len() as f64;
    let (statistic, pvalue) = t_upper(mean, (var / n).sqrt(), n - 1.0);
    Ok(Comparison {
        test: "paired_t",
        statistic,
        pvalue,
    })
}

/// Welch's t-test that the champion's losses exceed the challenger's, each on its own rows
/// (scipy's `ttest_ind(champion, challenger, equal_var=False, alternative="greater")`).
pub fn welch_t_greater(champion: &[f64], challenger: &[f64]) -> Result<Comparison> {
    finite(champion, "the champion's losses")?;
    finite(challenger, "the challenger's losses")?;
    if champion.len() < 2 || challenger.len() < 2 {
        return Err(StatsError::Shape(
            "Welch's t-test needs two rows a side".into(),
        ));
    }
    let (ma, va) = mean_var(champion);
    let (mb, vb) = mean_var(challenger);
    let (sa, sb) = (va / champion.len() as f64, vb / challenger.len() as f64);
    let df = (sa + sb).powi(2)
        / (sa * sa / (champion.len() as f64 - 1.0) + sb * sb / (challenger.len() as f64 - 1.0));
    let (statistic, pvalue) = t_upper(ma - mb, (sa + sb).sqrt(), df);
    Ok(Comparison {
        test: "welch_t",
        statistic,
        pvalue,
    })
}

/// The one-sided two-proportion Z-test (pooled variance) that the challenger's share of right
/// answers, `challenger` of `n_challenger`, is above the champion's, `champion` of
/// `n_champion`.
pub fn proportions_greater(
    champion: u64,
    n_champion: u64,
    challenger: u64,
    n_challenger: u64,
) -> Result<Comparison> {
    if n_champion == 0 || n_challenger == 0 {
        return Err(StatsError::Empty("a side of the two-proportion test"));
    }
    let (na, nb) = (n_champion as f64, n_challenger as f64);
    let (pa, pb) = (champion as f64 / na, challenger as f64 / nb);
    let pooled = (champion + challenger) as f64 / (na + nb);
    let var = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb);
    let (statistic, pvalue) = if var <= 0.0 {
        (0.0, 1.0)
    } else {
        let z = (pb - pa) / var.sqrt();
        (z, erfc(z / std::f64::consts::SQRT_2) / 2.0)
    };
    Ok(Comparison {
        test: "two_proportion_z",
        statistic,
        pvalue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_counts_the_challengers_wins_among_the_disagreements() {
        // P(X >= 8 | n = 10, 1/2) = (45 + 10 + 1) / 1024.
        let r = mcnemar_greater(2, 8);
        assert!((r.pvalue - 56.0 / 1024.0).abs() < 1e-12, "{r:?}");
        assert_eq!(mcnemar_greater(5, 0).pvalue, 1.0);
        assert_eq!(mcnemar_greater(0, 0).pvalue, 1.0);
        // Losing is never significant.
        assert!(mcnemar_greater(8, 2).pvalue > 0.9);
    }

    #[test]
    fn t_tests_handle_rows_without_spread() {
        let r = paired_t_greater(&[2.0, 3.0, 4.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((r.pvalue, r.statistic), (0.0, f64::INFINITY));
        let r = paired_t_greater(&[1.0, 2.0], &[1.0, 2.0]).unwrap();
        assert_eq!(r.pvalue, 1.0);
        assert!(paired_t_greater(&[1.0], &[1.0]).is_err());
        assert!(paired_t_greater(&[1.0, 2.0], &[1.0]).is_err());
        assert!(welch_t_greater(&[1.0, f64::NAN], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn the_proportions_test_is_one_sided() {
        // z = (0.6 - 0.5) / sqrt(0.55 * 0.45 * (2 / 100)) = 1.4213; P(Z > z) = 0.0776092 (scipy).
        let r = proportions_greater(50, 100, 60, 100).unwrap();
        assert!(
            (r.statistic - 1.421_338_109_037_403_6).abs() < 1e-9,
            "{r:?}"
        );
        assert!((r.pvalue - 0.077_609_245).abs() < 1e-8, "{r:?}");
        let worse = proportions_greater(60, 100, 50, 100).unwrap();
        assert!((worse.pvalue - (1.0 - r.pvalue)).abs() < 1e-12);
    }
}
