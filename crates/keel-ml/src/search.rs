//! Hyperparameter search spaces and the trials drawn from them.
//!
//! A space is YAML mapping each parameter (scikit-learn's name) to a list of values, or to a
//! range for random search:
//!
//! ```yaml
//! C: [0.01, 0.1, 1, 10]
//! max_iter: {low: 50, high: 500, int: true}
//! tol: {low: 1e-6, high: 1e-2, log: true}
//! ```
//!
//! Grid search tries every combination of the lists (ranges are refused); random search draws
//! `trials` combinations with a seeded generator: a list's value uniformly, a range's uniformly
//! or, with `log: true`, log-uniformly, rounded when `int: true`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{MlError, Result, invalid};
use crate::params::Algorithm;
use crate::rng::Rng;

/// One parameter's candidates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// These values.
    Values(Vec<f64>),
    /// A range.
    Range {
        /// Smallest value.
        low: f64,
        /// Largest value.
        high: f64,
        /// Draw the logarithm uniformly.
        #[serde(default)]
        log: bool,
        /// Round to whole numbers.
        #[serde(default)]
        int: bool,
    },
}

/// A search space: candidates per parameter, by name.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(transparent)]
pub struct Space(pub BTreeMap<String, Dim>);

/// How trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// Every combination.
    Grid,
    /// This many seeded draws.
    Random {
        /// Trials.
        trials: usize,
        /// Seed.
        seed: u64,
    },
}

impl Space {
    /// Reads a space from YAML and checks its names and ranges against `algo`.
    pub fn from_yaml(text: &str, algo: &Algorithm) -> Result<Space> {
        let space: Space = serde_norway::from_str(text)
            .map_err(|e| MlError::Invalid(format!("the search space cannot be read: {e}")))?;
        if space.0.is_empty() {
            return invalid("the search space names no parameter");
        }
        for (name, dim) in &space.0 {
            if !algo.params.iter().any(|p| p.name == name) {
                let names: Vec<&str> = algo.params.iter().map(|p| p.name).collect();
                return invalid(format!(
                    "search space: unknown parameter '{name}' for {}: it takes {}",
                    algo.name,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            }
            match dim {
                Dim::Values(v) if v.is_empty() => {
                    return invalid(format!("search space: '{name}' lists no value"));
                }
                Dim::Range { low, high, log, .. }
                    if low.is_nan() || high.is_nan() || low > high || (*log && *low <= 0.0) =>
                {
                    return invalid(format!(
                        "search space: '{name}' needs low <= high{}",
                        if *log { " and low > 0 for log" } else { "" }
                    ));
                }
                _ => {}
            }
        }
        Ok(space)
    }

    /// The trials, each as `KEY=VALUE` arguments for [`Algorithm::parse`].
    pub fn trials(&self, search: Search) -> Result<Vec<Vec<String>>> {
        match search {
            Search::Grid => {
                let mut trials: Vec<Vec<String>> = vec![Vec::new()];
                for (name, dim) in &self.0 {
                    let Dim::Values(values) = dim else {
                        return invalid(format!(
                            "grid search needs a list of values for '{name}', not a range"
                        ));
                    };
                    trials = trials
                        .into_iter()
                        .flat_map(|t| {
                            values.iter().map(move |v| {
                                let mut t = t.clone();
                                t.push(format!("{name}={v}"));
                                t
                            })
                        })
                        .collect();
                }
                Ok(trials)
            }
            Search::Random { trials, seed } => {
                if trials == 0 {
                    return invalid("--trials must be at least 1");
                }
                let mut rng = Rng::new(seed);
                let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                Ok((0..trials)
                    .map(|_| {
                        self.0
                            .iter()
                            .map(|(name, dim)| {
                                let v = match dim {
                                    Dim::Values(values) => {
                                        let i = ((unit() * values.len() as f64) as usize)
                                            .min(values.len() - 1);
                                        values[i]
                                    }
                                    Dim::Range {
                                        low,
                                        high,
                                        log,
                                        int,
                                    } => {
                                        let u = unit();
                                        let x = if *log {
                                            (low.ln() + u * (high.ln() - low.ln())).exp()
                                        } else {
                                            low + u * (high - low)
                                        };
                                        if *int { x.round() } else { x }
                                    }
                                };
                                format!("{name}={v}")
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::algorithm;

    #[test]
    fn grids_multiply_and_random_draws_repeat_by_seed() {
        let lr = algorithm("logistic_regression").unwrap();
        let grid = Space::from_yaml("C: [0.1, 1]\nmax_iter: [100, 200, 300]\n", lr).unwrap();
        let trials = grid.trials(Search::Grid).unwrap();
        assert_eq!(trials.len(), 6);
        assert_eq!(trials[0], ["C=0.1", "max_iter=100"]);
        assert_eq!(trials[5], ["C=1", "max_iter=300"]);
        for t in &trials {
            lr.parse(t).unwrap();
        }
        let space = Space::from_yaml(
            "C: {low: 0.001, high: 100, log: true}\nmax_iter: {low: 50, high: 500, int: true}\n",
            lr,
        )
        .unwrap();
        let a = space.trials(Search::Random { trials: 8, seed: 1 }).unwrap();
        assert_eq!(
            a,
            space.trials(Search::Random { trials: 8, seed: 1 }).unwrap()
        );
        assert_ne!(
            a,
            space.trials(Search::Random { trials: 8, seed: 2 }).unwrap()
        );
        for t in &a {
            let p = lr.parse(t).unwrap();
            assert!((0.001..=100.0).contains(&p.get("C")), "{t:?}");
            assert_eq!(p.get("max_iter").fract(), 0.0);
        }
        assert!(space.trials(Search::Grid).is_err());
    }

    #[test]
    fn bad_spaces_are_named() {
        let lr = algorithm("logistic_regression").unwrap();
        let e = Space::from_yaml("n_estimators: [10]\n", lr)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown parameter 'n_estimators'"), "{e}");
        let e = Space::from_yaml("C: {low: 0, high: 1, log: true}\n", lr)
            .unwrap_err()
            .to_string();
        assert!(e.contains("low > 0 for log"), "{e}");
        assert!(Space::from_yaml("C: []\n", lr).is_err());
        assert!(Space::from_yaml("{}\n", lr).is_err());
    }
}
