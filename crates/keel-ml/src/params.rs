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
    /// A group of similar rows, without a target.
    Clustering,
}

impl Task {
    /// `classification` or `regression`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::Clustering => "clustering",
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
    /// Words that stand for values (`None` for 0, `true` for 1...), accepted and logged.
    pub words: &'static [(&'static str, f64)],
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
        name: "ridge_regression",
        tasks: &[Task::Regression],
        params: &[Param {
            name: "alpha",
            kind: Kind::Float {
                min: 0.0,
                inclusive: true,
                max: f64::INFINITY,
            },
            default: 1.0,
            words: &[],
            help: "L2 regularisation strength on the standardised features; 0 is least squares",
        }],
        help: "least squares with an L2 penalty on the coefficients, scikit-learn's Ridge, \
               on standardised features (linfa-linear on the augmented system)",
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
                words: &[],
                help: "inverse of the L2 regularisation strength; smaller regularises more",
            },
            Param {
                name: "max_iter",
                kind: Kind::Int {
                    min: 1,
                    max: 1_000_000,
                },
                default: 100.0,
                words: &[],
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
                words: &[],
                help: "stop when the gradient of the mean loss is this small",
            },
        ],
        help: "L2-regularised logistic regression, binary or multinomial (argmin's L-BFGS on \
               scikit-learn's lbfgs objective)",
    },
    Algorithm {
        name: "decision_tree",
        tasks: &[Task::Classification, Task::Regression],
        params: &[
            MAX_DEPTH,
            MIN_SAMPLES_SPLIT,
            MIN_SAMPLES_LEAF,
            MAX_LEAF_NODES,
            MAX_BINS,
        ],
        help: "one tree, Gini impurity for classes and squared error for values, \
               split on histograms of at most max_bins bins per feature (keel's own grower)",
    },
    Algorithm {
        name: "random_forest",
        tasks: &[Task::Classification, Task::Regression],
        params: &[
            Param {
                name: "n_estimators",
                kind: Kind::Int {
                    min: 1,
                    max: 100_000,
                },
                default: 100.0,
                words: &[],
                help: "number of trees",
            },
            MAX_DEPTH,
            MIN_SAMPLES_SPLIT,
            MIN_SAMPLES_LEAF,
            MAX_LEAF_NODES,
            Param {
                name: "max_features",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: true,
                    max: 1.0,
                },
                default: 0.0,
                words: &[("sqrt", 0.0)],
                help: "share of the features drawn at each split; sqrt (0): the square root \
                       of their number for classes, all of them for values",
            },
            Param {
                name: "bootstrap",
                kind: Kind::Int { min: 0, max: 1 },
                default: 1.0,
                words: &[("false", 0.0), ("true", 1.0)],
                help: "whether each tree sees a bootstrap sample of the rows",
            },
            MAX_BINS,
            N_JOBS,
        ],
        help: "averaged trees on bootstrap samples with random features per split (keel's \
               own histogram grower, trees fitted in parallel)",
    },
    Algorithm {
        name: "gradient_boosting",
        tasks: &[Task::Classification, Task::Regression],
        params: &[
            Param {
                name: "learning_rate",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: false,
                    max: f64::INFINITY,
                },
                default: 0.1,
                words: &[],
                help: "shrinkage of every tree's contribution",
            },
            Param {
                name: "max_iter",
                kind: Kind::Int {
                    min: 1,
                    max: 100_000,
                },
                default: 100.0,
                words: &[],
                help: "most boosting iterations (one tree per class and iteration)",
            },
            Param {
                name: "max_leaf_nodes",
                kind: Kind::Int {
                    min: 0,
                    max: 1_000_000,
                },
                default: 31.0,
                words: &[("None", 0.0)],
                help: "most leaves per tree; 0 (None) for no limit",
            },
            MAX_DEPTH,
            Param {
                name: "min_samples_leaf",
                kind: Kind::Int {
                    min: 1,
                    max: 1_000_000_000,
                },
                default: 20.0,
                words: &[],
                help: "fewest rows in a leaf",
            },
            Param {
                name: "l2_regularization",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: true,
                    max: f64::INFINITY,
                },
                default: 0.0,
                words: &[],
                help: "L2 penalty on leaf values",
            },
            MAX_BINS,
            Param {
                name: "early_stopping",
                kind: Kind::Int { min: -1, max: 1 },
                default: -1.0,
                words: &[("auto", -1.0), ("false", 0.0), ("true", 1.0)],
                help: "hold rows back and stop when their loss stops improving; auto (-1): \
                       when there are more than 10,000 training rows",
            },
            Param {
                name: "validation_fraction",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: false,
                    max: 0.99,
                },
                default: 0.1,
                words: &[],
                help: "share of the training rows held back for early stopping",
            },
            Param {
                name: "n_iter_no_change",
                kind: Kind::Int {
                    min: 1,
                    max: 100_000,
                },
                default: 10.0,
                words: &[],
                help: "iterations without improvement before early stopping",
            },
            Param {
                name: "tol",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: true,
                    max: f64::INFINITY,
                },
                default: 1e-7,
                words: &[],
                help: "smallest loss improvement that counts for early stopping",
            },
            N_JOBS,
        ],
        help: "gradient-boosted trees on histograms, grown leaf-wise, log loss for classes and \
               squared error for values (keel's own grower, scikit-learn's \
               HistGradientBoosting parameters)",
    },
    Algorithm {
        name: "k_neighbors",
        tasks: &[Task::Classification, Task::Regression],
        params: &[
            Param {
                name: "n_neighbors",
                kind: Kind::Int {
                    min: 1,
                    max: 100_000,
                },
                default: 5.0,
                words: &[],
                help: "neighbours that vote (classes) or are averaged (values)",
            },
            Param {
                name: "weights",
                kind: Kind::Int { min: 0, max: 1 },
                default: 0.0,
                words: &[("uniform", 0.0), ("distance", 1.0)],
                help: "uniform: every neighbour counts the same; distance: by 1 / distance",
            },
            Param {
                name: "p",
                kind: Kind::Int { min: 1, max: 2 },
                default: 2.0,
                words: &[],
                help: "Minkowski power of the distance: 1 Manhattan, 2 Euclidean",
            },
        ],
        help: "k-nearest neighbours on standardised features, scikit-learn's KNeighbors \
               (linfa-nn's k-d tree; the model keeps the training rows)",
    },
    Algorithm {
        name: "k_means",
        tasks: &[Task::Clustering],
        params: &[
            Param {
                name: "n_clusters",
                kind: Kind::Int {
                    min: 1,
                    max: 100_000,
                },
                default: 8.0,
                words: &[],
                help: "number of clusters",
            },
            Param {
                name: "n_init",
                kind: Kind::Int { min: 1, max: 1000 },
                default: 1.0,
                words: &[("auto", 1.0)],
                help: "runs from different k-means++ starts; the one with the least inertia \
                       is kept",
            },
            Param {
                name: "max_iter",
                kind: Kind::Int {
                    min: 1,
                    max: 1_000_000,
                },
                default: 300.0,
                words: &[],
                help: "most iterations of one run",
            },
            Param {
                name: "tol",
                kind: Kind::Float {
                    min: 0.0,
                    inclusive: true,
                    max: f64::INFINITY,
                },
                default: 1e-4,
                words: &[],
                help: "stop when the centroids' summed squared movement is below this",
            },
        ],
        help: "k-means clustering on standardised features, no target, scikit-learn's KMeans \
               (linfa-clustering, k-means++ starts)",
    },
];

const MAX_DEPTH: Param = Param {
    name: "max_depth",
    kind: Kind::Int { min: 0, max: 1000 },
    default: 0.0,
    words: &[("None", 0.0)],
    help: "deepest level of a tree (the root is 0); 0 (None) for no limit",
};

const MIN_SAMPLES_SPLIT: Param = Param {
    name: "min_samples_split",
    kind: Kind::Int {
        min: 2,
        max: 1_000_000_000,
    },
    default: 2.0,
    words: &[],
    help: "fewest rows in a node that is split",
};

const MIN_SAMPLES_LEAF: Param = Param {
    name: "min_samples_leaf",
    kind: Kind::Int {
        min: 1,
        max: 1_000_000_000,
    },
    default: 1.0,
    words: &[],
    help: "fewest rows in a leaf",
};

const MAX_LEAF_NODES: Param = Param {
    name: "max_leaf_nodes",
    kind: Kind::Int {
        min: 0,
        max: 1_000_000,
    },
    default: 0.0,
    words: &[("None", 0.0)],
    help: "most leaves per tree, best splits first; 0 (None) for no limit",
};

const MAX_BINS: Param = Param {
    name: "max_bins",
    kind: Kind::Int { min: 2, max: 255 },
    default: 255.0,
    words: &[],
    help: "bins per feature that split thresholds are chosen among",
};

const N_JOBS: Param = Param {
    name: "n_jobs",
    kind: Kind::Int { min: -1, max: 1024 },
    default: -1.0,
    words: &[],
    help: "threads; -1 (or 0) for one per core",
};

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
pub struct Params(BTreeMap<&'static str, (f64, Words)>);

/// A parameter's named values.
type Words = &'static [(&'static str, f64)];

impl Params {
    /// The value of `name` (NaN for a name the algorithm does not have).
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).map_or(f64::NAN, |v| v.0)
    }

    /// Every parameter with its value, by name, as text for logging (a named value by its
    /// name: `max_depth=None`).
    pub fn logged(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, (v, words))| {
                let text = words
                    .iter()
                    .find(|w| w.1 == *v)
                    .map_or_else(|| v.to_string(), |w| w.0.to_string());
                (k.to_string(), text)
            })
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
        let mut values: BTreeMap<&'static str, (f64, Words)> = self
            .params
            .iter()
            .map(|p| (p.name, (p.default, p.words)))
            .collect();
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
            values.insert(p.name, (check(p, raw)?, p.words));
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
            } + &p
                .words
                .iter()
                .map(|w| format!(" | {}", w.0))
                .collect::<String>();
            out.push_str(&format!(
                "  {:<18} {:<28} default {:<8} {}\n",
                p.name, range, p.default, p.help
            ));
        }
        out
    }
}

fn check(p: &Param, raw: &str) -> Result<f64> {
    if let Some((_, v)) = p.words.iter().find(|(w, _)| w.eq_ignore_ascii_case(raw)) {
        return Ok(*v);
    }
    let Ok(v) = raw.parse::<f64>() else {
        if !p.words.is_empty() {
            let words: Vec<&str> = p.words.iter().map(|w| w.0).collect();
            return invalid(format!(
                "{} must be a number or one of {}, not '{raw}'",
                p.name,
                words.join(", ")
            ));
        }
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
        // Named values are read and logged by name.
        let rf = algorithm("random_forest").unwrap();
        let p = rf
            .parse(&args(&["max_depth=None", "bootstrap=False"]))
            .unwrap();
        assert_eq!((p.get("max_depth"), p.get("bootstrap")), (0.0, 0.0));
        let logged = p.logged();
        assert!(
            logged.contains(&("max_depth".into(), "None".into())),
            "{logged:?}"
        );
        assert!(
            logged.contains(&("max_features".into(), "sqrt".into())),
            "{logged:?}"
        );
        assert!(
            logged.contains(&("n_estimators".into(), "100".into())),
            "{logged:?}"
        );
        assert_eq!(
            rf.parse(&args(&["bootstrap=maybe"]))
                .unwrap_err()
                .to_string(),
            "bootstrap must be a number or one of false, true, not 'maybe'"
        );
        assert!(rf.describe().contains("whole number 0..=1000 | None"));
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
