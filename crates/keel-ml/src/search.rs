//! Hyperparameter search spaces and the trials drawn from them.
//!
//! A space is YAML mapping each parameter (scikit-learn's name) to a list of values, or to a
//! range for random search:
//!
//! ```yaml
//! C: [0.01, 0.1, 1, 10]
//! max_depth: [3, 6, null]        # null (or None) as in scikit-learn: no limit
//! weights: [uniform, distance]   # the words --param takes
//! max_iter: {low: 50, high: 500, int: true}
//! tol: {low: 1e-6, high: 1e-2, log: true}
//! ```
//!
//! A list takes whatever `--param KEY=VALUE` takes (numbers, `null`/`None`, `true`/`false`,
//! a parameter's words); every value is checked when the space is read, and an error names
//! the key and the value.
//!
//! Grid search tries every combination of the lists (ranges are refused); random search draws
//! `trials` combinations with a seeded generator: a list's value uniformly, a range's uniformly
//! or, with `log: true`, log-uniformly, rounded when `int: true`.

use std::collections::BTreeMap;

use crate::error::{MlError, Result, invalid};
use crate::params::Algorithm;
use crate::rng::Rng;

/// One parameter's candidates.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// These values, as `--param` text.
    Values(Vec<String>),
    /// A range.
    Range {
        /// Smallest value.
        low: f64,
        /// Largest value.
        high: f64,
        /// Draw the logarithm uniformly.
        log: bool,
        /// Round to whole numbers.
        int: bool,
    },
}

/// A search space: candidates per parameter, by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Space(pub BTreeMap<String, Dim>);

/// A YAML scalar as `--param` text: numbers as written, `null` as `None`, booleans as words.
fn choice(name: &str, v: &serde_norway::Value) -> Result<String> {
    use serde_norway::Value;
    Ok(match v {
        Value::Null => "None".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => {
            return invalid(format!(
                "search space: '{name}' lists a value that is not a number, a word, true/false or null"
            ));
        }
    })
}

/// One key's candidates: a list, or a `{low, high, log, int}` range.
fn dim(name: &str, v: &serde_norway::Value) -> Result<Dim> {
    use serde_norway::Value;
    match v {
        Value::Sequence(items) => Ok(Dim::Values(
            items
                .iter()
                .map(|i| choice(name, i))
                .collect::<Result<_>>()?,
        )),
        Value::Mapping(m) => {
            let mut range = (None, None, false, false);
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                let number = || {
                    v.as_f64().ok_or_else(|| {
                        MlError::Invalid(format!(
                            "search space: '{name}': {key} must be a number, not {}",
                            choice(name, v).unwrap_or_else(|_| "a list".into())
                        ))
                    })
                };
                let flag = || {
                    v.as_bool().ok_or_else(|| {
                        MlError::Invalid(format!(
                            "search space: '{name}': {key} must be true or false"
                        ))
                    })
                };
                match key {
                    "low" => range.0 = Some(number()?),
                    "high" => range.1 = Some(number()?),
                    "log" => range.2 = flag()?,
                    "int" => range.3 = flag()?,
                    other => {
                        return invalid(format!(
                            "search space: '{name}': unknown range key '{other}' (low, high, log, int)"
                        ));
                    }
                }
            }
            match range {
                (Some(low), Some(high), log, int) => Ok(Dim::Range {
                    low,
                    high,
                    log,
                    int,
                }),
                _ => invalid(format!(
                    "search space: '{name}': a range needs low and high"
                )),
            }
        }
        other => Ok(Dim::Values(vec![choice(name, other)?])),
    }
}

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
        let yaml: serde_norway::Value = serde_norway::from_str(text)
            .map_err(|e| MlError::Invalid(format!("the search space cannot be read: {e}")))?;
        let serde_norway::Value::Mapping(keys) = yaml else {
            return invalid("the search space must map parameter names to values or ranges");
        };
        let mut space = Space::default();
        for (k, v) in &keys {
            let Some(name) = k.as_str() else {
                return invalid("the search space's keys must be parameter names");
            };
            space.0.insert(name.to_string(), dim(name, v)?);
        }
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
                Dim::Values(values) => {
                    for v in values {
                        algo.parse(&[format!("{name}={v}")]).map_err(|e| {
                            MlError::Invalid(format!("search space: '{name}': {v}: {e}"))
                        })?;
                    }
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
                                        values[i].clone()
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
                                        (if *int { x.round() } else { x }).to_string()
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
        let e = space
            .trials(Search::Grid)
            .expect_err("an error")
            .to_string();
        assert!(
            e.contains("grid search needs a list of values for 'C'"),
            "{e}"
        );
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
        {
            let e = Space::from_yaml("C: []\n", lr)
                .expect_err("an error")
                .to_string();
            assert!(e.contains("'C' lists no value"), "{e}");
        }
        {
            let e = Space::from_yaml("{}\n", lr)
                .expect_err("an error")
                .to_string();
            assert!(e.contains("names no parameter"), "{e}");
        }
    }

    #[test]
    fn lists_take_what_param_takes_and_errors_name_the_key() {
        let forest = algorithm("random_forest").unwrap();
        let space = Space::from_yaml(
            "max_depth: [3, None, null]\nbootstrap: [true, false]\nmax_features: [sqrt, 0.5]\n",
            forest,
        )
        .unwrap();
        let trials = space.trials(Search::Grid).unwrap();
        assert_eq!(trials.len(), 12);
        assert!(trials.contains(&vec![
            "bootstrap=true".to_string(),
            "max_depth=None".into(),
            "max_features=sqrt".into()
        ]));
        for t in &trials {
            forest.parse(t).unwrap();
        }
        for (yaml, says) in [
            ("max_depth: [3, deep]\n", "'max_depth': deep"),
            ("max_depth: [[3]]\n", "'max_depth' lists a value"),
            (
                "max_depth: {low: 1}\n",
                "'max_depth': a range needs low and high",
            ),
            (
                "max_depth: {low: 1, high: x}\n",
                "'max_depth': high must be a number",
            ),
            (
                "max_depth: {low: 1, high: 3, step: 1}\n",
                "unknown range key 'step'",
            ),
        ] {
            let e = Space::from_yaml(yaml, forest).unwrap_err().to_string();
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }
}
