//! The algorithms keel trains and their parameters, named as scikit-learn names the same
//! concepts (`logistic_regression` with `C`, `max_iter`, `tol`), each with its range and
//! default; `--param KEY=VALUE` arguments are checked here, each problem named in one line.

use std::collections::BTreeMap;

use crate::error::{Result, invalid};

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A class.
    Classification,
    /// A number.
    Regression,
}

impl Task {
    /// `classification` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

/// The values a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A number above `min` (or at least `min` when `inclusive`) and at most `max`.
    Float {
        /// Lower bound.
        min: f64,
        /// Whether `min` itself is allowed.
        inclusive: bool,
        /// Upper bound.
        max: f64,
    },
    /// A whole number from `min` to `max`.
    Int {
        /// Smallest.
        min: i64,
        /// Largest.
        max: i64,
    },
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    /// Its name, as scikit-learn spells it.
    pub name: &'static str,
    /// Its values.
    pub kind: Kind,
    /// Its value when not given.
    pub default: f64,
    /// What it does.
    pub help: &'static str,
}

/// One algorithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Algorithm {
    /// `--algo` name.
    pub name: &'static str,
    /// What it predicts.
    pub tasks: &'static [Task],
    /// Its parameters.
    pub params: &'static [Param],
    /// What it is, and which crate fits it.
    pub help: &'static str,
}

/// Every algorithm keel trains.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        name: "linear_regression",
        tasks: &[Task::Regression],
        params: &[],
        help: "ordinary least squares with an intercept (linfa-linear)",
    },
    Algorithm {
        name: "logistic_regression",
        tasks: &[Task::Classification],
        params: &[
            Param {
                name: "C",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: false,
                    max: f64::INFINITY,
                },
                default: 1.0,
                help: "inverse of the L2 regularisation strength; smaller regularises more",
            },
            Param {
                name: "max_iter",
                kind: Kind::Int {
                    min: 1,
                    max: 1_000_000,
                },
                default: 100.0,
                help: "most iterations of the L-BFGS solver",
            },
            Param {
                name: "tol",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: false,
                    max: f64::INFINITY,
                },
                default: 1e-4,
                help: "stop when the gradient is this small",
            },
        ],
        help: "L2-regularised logistic regression, binary or multinomial (linfa-logistic)",
    },
];

/// The algorithm called `name`.
pub fn algorithm(name: &str) -> Result<&'static Algorithm> {
    ALGORITHMS.iter().find(|a| a.name == name).map_or_else(
        || {
            let known: Vec<&str> = ALGORITHMS.iter().map(|a| a.name).collect();
            invalid(format!(
                "unknown --algo '{name}': use one of {}",
                known.join(", ")
            ))
        },
        Ok,
    )
}

/// Parameter values, every parameter of the algorithm present (given or default).
#[derive(Debug, Clone, PartialEq)]
pub struct Params(BTreeMap<&'static str, f64>);

impl Params {
    /// The value of `name` (NaN for a name the algorithm does not have).
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(f64::NAN)
    }

    /// Every parameter with its value, by name, as text for logging.
    pub fn logged(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl Algorithm {
    /// Whether it predicts for `task`.
    pub fn supports(&self, task: Task) -> bool {
        self.tasks.contains(&task)
    }

    /// Checks `KEY=VALUE` arguments against the parameters and fills in the defaults.
    pub fn parse(&self, args: &[String]) -> Result<Params> {
        let mut values: BTreeMap<&'static str, f64> =
            self.params.iter().map(|p| (p.name, p.default)).collect();
        let mut given: Vec<&str> = Vec::new();
        for arg in args {
            let Some((key, raw)) = arg.split_once('=') else {
                return invalid(format!("--param '{arg}': write KEY=VALUE"));
            };
            let (key, raw) = (key.trim(), raw.trim());
            let Some(p) = self.params.iter().find(|p| p.name == key) else {
                let names: Vec<&str> = self.params.iter().map(|p| p.name).collect();
                return invalid(format!(
                    "unknown parameter '{key}' for {}: {}",
                    self.name,
                    if names.is_empty() {
                        "it takes none".to_string()
                    } else {
                        format!("it takes {}", names.join(", "))
                    }
                ));
            };
            if given.contains(&key) {
                return invalid(format!("parameter '{key}' is given twice"));
            }
            given.push(p.name);
            values.insert(p.name, check(p, raw)?);
        }
        Ok(Params(values))
    }

    /// The parameters as a table for `--help-params`.
    pub fn describe(&self) -> String {
        let mut out = format!("{}: {}\n", self.name, self.help);
        if self.params.is_empty() {
            out.push_str("  (no parameters)\n");
        }
        for p in self.params {
            let range = match p.kind {
                Kind::Float {
                    min,
                    inclusive,
                    max,
                } => format!(
                    "number {} {min}{}",
                    if inclusive { ">=" } else { ">" },
                    if max.is_finite() {
                        format!(", <= {max}")
                    } else {
                        String::new()
                    }
                ),
                Kind::Int { min, max } => format!("whole number {min}..={max}"),
            };
            out.push_str(&format!(
                "  {:<18} {:<28} default {:<8} {}\n",
                p.name, range, p.default, p.help
            ));
        }
        out
    }
}

fn check(p: &Param, raw: &str) -> Result<f64> {
    let Ok(v) = raw.parse::<f64>() else {
        return invalid(format!("{} must be a number, not '{raw}'", p.name));
    };
    match p.kind {
        Kind::Float {
            min,
            inclusive,
            max,
        } => {
            let above = if inclusive { v >= min } else { v > min };
            if !(above && v <= max) {
                return invalid(format!(
                    "{} must be {} {min}{}, not {raw}",
                    p.name,
                    if inclusive { "at least" } else { "above" },
                    if max.is_finite() {
                        format!(" and at most {max}")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        Kind::Int { min, max } => {
            if v.fract() != 0.0 || v < min as f64 || v > max as f64 {
                return invalid(format!(
                    "{} must be a whole number from {min} to {max}, not {raw}",
                    p.name
                ));
            }
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parameters_take_defaults_and_checked_values() {
        let lr = algorithm("logistic_regression").unwrap();
        assert!(lr.supports(Task::Classification) && !lr.supports(Task::Regression));
        let p = lr.parse(&args(&["C=0.5", "max_iter = 300"])).unwrap();
        assert_eq!(
            (p.get("C"), p.get("max_iter"), p.get("tol")),
            (0.5, 300.0, 1e-4)
        );
        assert!(lr.describe().contains("max_iter"));
    }

    #[test]
    fn bad_parameters_are_named() {
        let lr = algorithm("logistic_regression").unwrap();
        let err = |a: &[&str]| lr.parse(&args(a)).unwrap_err().to_string();
        assert_eq!(
            err(&["n_estimators=10"]),
            "unknown parameter 'n_estimators' for logistic_regression: it takes C, max_iter, tol"
        );
        assert_eq!(err(&["C=0"]), "C must be above 0, not 0");
        assert_eq!(err(&["C=abc"]), "C must be a number, not 'abc'");
        assert_eq!(
            err(&["max_iter=1.5"]),
            "max_iter must be a whole number from 1 to 1000000, not 1.5"
        );
        assert_eq!(err(&["C"]), "--param 'C': write KEY=VALUE");
        assert_eq!(err(&["C=1", "C=2"]), "parameter 'C' is given twice");
        let e = algorithm("xgboost").unwrap_err().to_string();
        assert!(e.starts_with("unknown --algo 'xgboost': use one of"), "{e}");
        let ols = algorithm("linear_regression").unwrap();
        assert_eq!(
            ols.parse(&args(&["alpha=1"])).unwrap_err().to_string(),
            "unknown parameter 'alpha' for linear_regression: it takes none"
        );
    }
}
