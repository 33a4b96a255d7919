//! Per-column drift decisions: which test applies to a column and whether it says the column
//! moved, following Evidently's defaults (`_get_default_stattest` in Evidently 0.7) formula for
//! formula, so decisions agree with it.
//!
//! - A reference of at most 1,000 values: numeric columns with more than 5 distinct values (over
//!   both samples) use the two-sample Kolmogorov-Smirnov test (drift when p <= 0.05); everything
//!   else is compared as categories: two of them with the two-proportion Z-test, more with the
//!   chi-squared goodness-of-fit test of the current counts against the reference's scaled to
//!   the current size (drift when p < 0.05).
//! - Larger references: numeric columns with more than 5 distinct values use the Wasserstein
//!   distance divided by the reference's standard deviation (at least 0.001), everything else
//!   the Jensen-Shannon distance over categories; drift when the score is at least 0.1.
//!
//! The population stability index over the same categories, or over Sturges bins spanning both
//! samples for numbers, is reported beside every decision.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    Result, StatsError, chisquare, jensen_shannon, ks_2samp, proportions_z_test, psi,
    wasserstein_distance,
};

/// Samples up to this size are compared with p-value tests, larger ones with distances.
pub const SMALL_SAMPLE: usize = 1000;
/// p-value below which a test says the column drifted.
pub const PVALUE_THRESHOLD: f64 = 0.05;
/// Distance at or above which a distance says the column drifted.
pub const DISTANCE_THRESHOLD: f64 = 0.1;

/// The test a decision rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Kolmogorov-Smirnov p-value.
    Ks,
    /// Chi-squared goodness-of-fit p-value of the current category counts against the
    /// reference's.
    Chi2,
    /// Two-proportion Z-test p-value, for two categories.
    Z,
    /// Wasserstein distance over the reference's standard deviation.
    Wasserstein,
    /// Jensen-Shannon distance over categories or bins.
    JensenShannon,
    /// Population stability index over categories or bins (only when chosen).
    Psi,
}

impl Test {
    /// Whether a smaller score means more change (p-values) or a larger one (distances).
    pub fn is_pvalue(self) -> bool {
        matches!(self, Test::Ks | Test::Chi2 | Test::Z)
    }

    /// The threshold Evidently uses for it: 0.05 for p-values, 0.1 for distances and PSI.
    pub fn default_threshold(self) -> f64 {
        if self.is_pvalue() {
            PVALUE_THRESHOLD
        } else {
            DISTANCE_THRESHOLD
        }
    }
}

/// A test (and threshold, else [`Test::default_threshold`]) chosen for a column instead of
/// the default choice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// The test.
    pub method: Test,
    /// Its threshold.
    #[serde(default)]
    pub threshold: Option<f64>,
}

impl Choice {
    fn threshold(&self) -> f64 {
        self.threshold.unwrap_or(self.method.default_threshold())
    }
}

/// A drift decision for one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    /// The test applied.
    pub test: Test,
    /// Its score: a p-value or a distance, see [`Test::is_pvalue`].
    pub score: f64,
    /// The threshold the score was held against.
    pub threshold: f64,
    /// Whether the column moved.
    pub drifted: bool,
    /// Population stability index over the same bins or categories.
    pub psi: f64,
}

impl ColumnDrift {
    /// When the score means drift, as people read it: `< 0.05`, `<= 0.05` (K-S), `>= 0.1`.
    pub fn rule(&self) -> String {
        match self.test {
            Test::Ks => format!("<= {}", self.threshold),
            t if t.is_pvalue() => format!("< {}", self.threshold),
            _ => format!(">= {}", self.threshold),
        }
    }
}

fn decide_at(test: Test, threshold: f64, score: f64, psi: f64) -> ColumnDrift {
    let drifted = if test == Test::Ks {
        // Evidently's K-S alone counts a p-value equal to the threshold as drift.
        score <= threshold
    } else if test.is_pvalue() {
        score < threshold
    } else {
        score >= threshold
    };
    ColumnDrift {
        test,
        score,
        threshold,
        drifted,
        psi,
    }
}

/// Drift of a numeric column: `reference` and `current` hold its finite values.
pub fn numeric(reference: &[f64], current: &[f64]) -> Result<ColumnDrift> {
    crate::finite(reference, "the reference sample")?;
    crate::finite(current, "the current sample")?;
    let mut distinct: BTreeSet<u64> = BTreeSet::new();
    for x in reference.iter().chain(current) {
        distinct.insert(canonical_bits(*x));
        if distinct.len() > 5 {
            break;
        }
    }
    if distinct.len() <= 5 {
        // Few values: compare them as categories.
        return categorical(&value_counts(reference), &value_counts(current));
    }
    let method = if reference.len() <= SMALL_SAMPLE {
        Test::Ks
    } else {
        Test::Wasserstein
    };
    numeric_with(
        Choice {
            method,
            threshold: None,
        },
        reference,
        current,
    )
}

/// Drift of a categorical column given each side's count per category.
pub fn categorical(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Result<ColumnDrift> {
    let n_ref: u64 = reference.values().sum();
    let categories = reference
        .keys()
        .chain(current.keys())
        .collect::<BTreeSet<_>>()
        .len();
    let method = if n_ref as usize > SMALL_SAMPLE {
        Test::JensenShannon
    } else if categories <= 2 {
        Test::Z
    } else {
        Test::Chi2
    };
    categorical_with(
        Choice {
            method,
            threshold: None,
        },
        reference,
        current,
    )
}

/// Each value's count, its text the category.
fn value_counts(xs: &[f64]) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for x in xs {
        *m.entry(x.to_string()).or_default() += 1;
    }
    m
}

/// Drift of a numeric column with a chosen test: K-S, normalised Wasserstein, Jensen-Shannon
/// or PSI over Sturges bins, or the Z-test or chi-squared on its values as categories.
pub fn numeric_with(choice: Choice, reference: &[f64], current: &[f64]) -> Result<ColumnDrift> {
    crate::finite(reference, "the reference sample")?;
    crate::finite(current, "the current sample")?;
    let (r, c) = sturges_histograms(reference, current);
    let binned_psi = psi(&r, &c)?;
    let score = match choice.method {
        Test::Ks => ks_2samp(reference, current)?.pvalue,
        Test::Wasserstein => {
            wasserstein_distance(reference, current)? / population_std(reference).max(0.001)
        }
        Test::JensenShannon => jensen_shannon(&r, &c)?,
        Test::Psi => binned_psi,
        Test::Chi2 | Test::Z => {
            return categorical_with(choice, &value_counts(reference), &value_counts(current));
        }
    };
    Ok(decide_at(
        choice.method,
        choice.threshold(),
        score,
        binned_psi,
    ))
}

/// Drift of a categorical column with a chosen test: chi-squared (the current counts against
/// the reference's scaled to the current size), the Z-test (two categories; one category on
/// both sides cannot have changed), Jensen-Shannon or PSI; K-S and Wasserstein need numbers.
pub fn categorical_with(
    choice: Choice,
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Result<ColumnDrift> {
    let keys: BTreeSet<&String> = reference.keys().chain(current.keys()).collect();
    let r: Vec<f64> = keys
        .iter()
        .map(|k| reference.get(*k).copied().unwrap_or(0) as f64)
        .collect();
    let c: Vec<f64> = keys
        .iter()
        .map(|k| current.get(*k).copied().unwrap_or(0) as f64)
        .collect();
    let (n_ref, n_cur): (f64, f64) = (r.iter().sum(), c.iter().sum());
    if n_ref == 0.0 {
        return Err(StatsError::Empty("the reference sample"));
    }
    if n_cur == 0.0 {
        return Err(StatsError::Empty("the current sample"));
    }
    let p = psi(&r, &c)?;
    let score = match choice.method {
        Test::Chi2 => {
            let expected: Vec<f64> = r.iter().map(|x| x * n_cur / n_ref).collect();
            chisquare(&c, &expected)?.pvalue
        }
        Test::Z if keys.len() <= 2 => match (r.get(1), c.get(1)) {
            (Some(a), Some(b)) => proportions_z_test(*a, n_ref, *b, n_cur)?,
            _ => 1.0,
        },
        Test::Z => {
            return Err(StatsError::Shape(format!(
                "the Z-test compares two categories, and the column has {}",
                keys.len()
            )));
        }
        Test::JensenShannon => jensen_shannon(&r, &c)?,
        Test::Psi => p,
        Test::Ks | Test::Wasserstein => {
            return Err(StatsError::Shape(
                "ks and wasserstein compare numbers, and the column holds categories".into(),
            ));
        }
    };
    Ok(decide_at(choice.method, choice.threshold(), score, p))
}

/// Counts of both samples over Sturges' number of equal-width bins spanning both (numpy's
/// `histogram_bin_edges(..., bins="sturges")`; the last bin is closed).
pub fn sturges_histograms(a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = a.len() + b.len();
    let bins = ((n as f64).log2() + 1.0).ceil().max(1.0) as usize;
    let (lo, hi) = a
        .iter()
        .chain(b)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        });
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / bins as f64;
    let count = |xs: &[f64]| {
        let mut h = vec![0.0; bins];
        for x in xs {
            let i = (((x - lo) / width) as usize).min(bins - 1);
            h[i] += 1.0;
        }
        h
    };
    (count(a), count(b))
}

fn population_std(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Bits that identify a number, with -0.0 and 0.0 as one.
fn canonical_bits(x: f64) -> u64 {
    if x == 0.0 { 0 } else { x.to_bits() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize, shift: f64) -> Vec<f64> {
        (0..n).map(|i| i as f64 / n as f64 + shift).collect()
    }

    #[test]
    fn small_numeric_samples_use_ks() {
        let same = numeric(&ramp(500, 0.0), &ramp(400, 0.0)).unwrap();
        assert_eq!(same.test, Test::Ks);
        assert!(!same.drifted);
        let moved = numeric(&ramp(500, 0.0), &ramp(400, 0.5)).unwrap();
        assert!(moved.drifted, "{moved:?}");
    }

    #[test]
    fn large_numeric_samples_use_normed_wasserstein() {
        let moved = numeric(&ramp(5000, 0.0), &ramp(5000, 0.2)).unwrap();
        assert_eq!(moved.test, Test::Wasserstein);
        // Shift 0.2 over the std of a uniform [0, 1) ramp (0.2887) is about 0.69.
        assert!((moved.score - 0.2 / 0.288_675).abs() < 1e-3, "{moved:?}");
        assert!(moved.drifted);
        assert!(
            !numeric(&ramp(5000, 0.0), &ramp(5000, 0.01))
                .unwrap()
                .drifted
        );
    }

    #[test]
    fn a_chosen_test_and_threshold_replace_the_default() {
        let choose = |method, threshold| Choice { method, threshold };
        let (a, b) = (ramp(5000, 0.0), ramp(5000, 0.05));
        // Wasserstein 0.05 / 0.2887 = 0.173: drift at the default 0.1, not at 0.2.
        assert!(
            numeric_with(choose(Test::Wasserstein, None), &a, &b)
                .unwrap()
                .drifted
        );
        let lenient = numeric_with(choose(Test::Wasserstein, Some(0.2)), &a, &b).unwrap();
        assert!(!lenient.drifted && lenient.threshold == 0.2, "{lenient:?}");
        let psi = numeric_with(choose(Test::Psi, None), &a, &b).unwrap();
        assert_eq!((psi.test, psi.score), (Test::Psi, psi.psi));
        assert_eq!(
            numeric_with(choose(Test::Ks, None), &a, &b).unwrap().test,
            Test::Ks
        );
        let counts = |a: u64, b: u64| BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        let js = categorical_with(
            choose(Test::JensenShannon, Some(0.01)),
            &counts(50, 50),
            &counts(60, 40),
        )
        .unwrap();
        assert!(js.drifted, "{js:?}");
        let e = categorical_with(choose(Test::Ks, None), &counts(1, 1), &counts(1, 1)).unwrap_err();
        assert!(e.to_string().contains("compare numbers"), "{e}");
        let parsed: Choice =
            serde_json::from_str(r#"{"method": "jensen_shannon", "threshold": 0.2}"#).unwrap();
        assert_eq!(parsed, choose(Test::JensenShannon, Some(0.2)));
    }

    #[test]
    fn sorted_samples_with_many_values_stay_numeric() {
        let mut a: Vec<f64> = (0..3000).map(|i| (i % 100) as f64).collect();
        a.sort_by(f64::total_cmp);
        let b: Vec<f64> = (0..2000).map(|i| (i % 100 + 40) as f64).collect();
        assert_eq!(numeric(&a, &b).unwrap().test, Test::Wasserstein);
        let few: Vec<f64> = (0..3000).map(|i| (i % 3) as f64).collect();
        assert_eq!(numeric(&few, &few).unwrap().test, Test::JensenShannon);
    }

    #[test]
    fn categories_use_z_or_chi2_then_jensen_shannon() {
        let counts = |a: u64, b: u64| BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
        let small = categorical(&counts(50, 50), &counts(90, 10)).unwrap();
        assert_eq!(small.test, Test::Z);
        assert!(small.drifted);
        let same = categorical(&counts(50, 50), &counts(40, 40)).unwrap();
        assert_eq!((same.test, same.score), (Test::Z, 1.0));
        let three = |a: u64, b: u64, c: u64| {
            BTreeMap::from([
                ("a".to_string(), a),
                ("b".to_string(), b),
                ("c".to_string(), c),
            ])
        };
        let moved = categorical(&three(100, 100, 100), &three(30, 10, 20)).unwrap();
        // Expected 20 each: statistic 10 on 2 degrees of freedom.
        assert_eq!(moved.test, Test::Chi2);
        assert!((moved.score - (-5.0f64).exp()).abs() < 1e-12, "{moved:?}");
        // A category the reference never held.
        let new = categorical(&counts(100, 0), &counts(50, 1)).unwrap();
        assert_eq!(
            (new.test, new.score),
            (Test::Z, proportions_z_test(0.0, 100.0, 1.0, 51.0).unwrap())
        );
        let new = categorical(&three(50, 50, 0), &three(20, 20, 1)).unwrap();
        assert_eq!((new.test, new.score, new.drifted), (Test::Chi2, 0.0, true));
        let large = categorical(&counts(5000, 5000), &counts(5100, 4900)).unwrap();
        assert_eq!(large.test, Test::JensenShannon);
        assert!(!large.drifted);
    }
}
