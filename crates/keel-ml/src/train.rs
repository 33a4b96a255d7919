//! One training: the target and features picked from a table, rows split (or folded), the
//! feature pipeline and the model fitted on training rows only, and the held-out metrics.
//!
//! Rows whose target is missing are left out (and counted). Without an explicit task, the
//! target decides, as scikit-learn's `type_of_target` does but stricter about integers: text
//! means classification; numbers that are all integers with at most
//! [`MAX_INTEGER_CLASSES`] distinct values are classes (a 0/1 flag, a rating); any other
//! numbers mean regression. [`Trained::task_reason`] says which rule chose. With `k` folds, each fold's
//! metrics are reported with their mean and standard deviation, and the model kept is then
//! fitted on every row.

use std::time::Instant;

use keel_core::table::{Columns, Values};
use keel_stats::{ClassificationMetrics, RegressionMetrics};
use serde::{Deserialize, Serialize};

use crate::clustering::{ClusteringMetrics, KMeansModel, KMeansSpec, fit_kmeans};
use crate::error::{Result, invalid};
use crate::linear::{LinearModel, fit_least_squares, fit_ridge};
use crate::logistic::fit_logistic;
use crate::matrix::Matrix;
use crate::neighbours::{NeighboursModel, Weights, fit_neighbours};
use crate::params::{Algorithm, Params, Task};
use crate::pipeline::{Encoding, Pipeline, PipelineSpec};
use crate::split::{Split, k_folds, train_test};
use crate::trees::TreeModel;
use crate::trees::boosting::{BoostSpec, History, fit_boosting};
use crate::trees::forest::{ForestSpec, Labels, fit_forest};
use crate::trees::grow::GrowSpec;

/// How rows are held out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Holdout {
    /// Train on this share of the rows, evaluate on the rest.
    Split(f64),
    /// Cross-validate over this many folds.
    Folds(usize),
    /// Train on every row, evaluate on the rows of [`TrainRequest::test`].
    Data,
}

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainRequest<'a> {
    /// Target column (none for clustering).
    pub target: Option<&'a str>,
    /// Task; inferred from the algorithm (clustering) or the target's type when `None`.
    pub task: Option<Task>,
    /// Algorithm.
    pub algorithm: &'static Algorithm,
    /// Its parameters (see [`Algorithm::parse`]).
    pub params: Params,
    /// Held-out rows.
    pub holdout: Holdout,
    /// Seed of the split and of any randomness in fitting.
    pub seed: u64,
    /// Columns to use as features (`None`: every column but the target and `drop`).
    pub features: Option<Vec<String>>,
    /// Columns never to use as features.
    pub drop: Vec<String>,
    /// The held-out table with [`Holdout::Data`].
    pub test: Option<&'a Columns>,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// Coefficients of a linear or logistic model.
    Linear(LinearModel),
    /// A tree, forest or boosted ensemble.
    Trees(TreeModel),
    /// k-nearest neighbours: the training rows.
    Neighbours(NeighboursModel),
    /// k-means: the centroids.
    Clusters(KMeansModel),
}

impl Model {
    /// Importance of each pipeline feature: for a linear model the mean absolute coefficient
    /// over its outputs (numeric features are standardised for logistic regression, so their
    /// coefficients compare; a one-hot feature's is that of its 0/1 indicator); for trees the
    /// share of the splits' gains (impurity decrease).
    pub fn importance(&self) -> Vec<f64> {
        match self {
            Model::Linear(m) => {
                let outputs = m.coef.len().max(1) as f64;
                let width = m.coef.first().map_or(0, Vec::len);
                (0..width)
                    .map(|j| m.coef.iter().map(|row| row[j].abs()).sum::<f64>() / outputs)
                    .collect()
            }
            Model::Trees(t) => t.importance.clone(),
            Model::Neighbours(_) | Model::Clusters(_) => Vec::new(),
        }
    }

    /// What [`Model::importance`] measures.
    pub fn importance_kind(&self) -> &'static str {
        match self {
            Model::Linear(_) => "mean absolute coefficient",
            Model::Trees(_) => "share of split gain (impurity decrease)",
            Model::Neighbours(_) | Model::Clusters(_) => {
                "none (distances weigh every standardised feature alike)"
            }
        }
    }

    /// Predicted values (regression).
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f64>> {
        Ok(match self {
            Model::Linear(m) => m.predict_values(x),
            Model::Trees(t) => t.predict_values(x),
            Model::Neighbours(m) => m.predict_values(x)?,
            Model::Clusters(_) => return invalid("k-means predicts clusters, not values"),
        })
    }

    /// Class probabilities (classification).
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<Vec<f64>>> {
        Ok(match self {
            Model::Linear(m) => m.predict_proba(x),
            Model::Trees(t) => t.predict_proba(x),
            Model::Neighbours(m) => m.predict_proba(x)?,
            Model::Clusters(_) => return invalid("k-means predicts clusters, not classes"),
        })
    }
}

/// Held-out quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Evaluation {
    /// Classification metrics.
    Classification(ClassificationMetrics),
    /// Regression metrics.
    Regression(RegressionMetrics),
    /// Clustering metrics.
    Clustering(ClusteringMetrics),
}

/// The held-out rows of the last split with what the model made of them (for charts).
#[derive(Debug, Clone, PartialEq)]
pub enum HeldOut {
    /// True classes and predicted probabilities.
    Classes {
        /// True class per row.
        truth: Vec<usize>,
        /// Probabilities per row.
        proba: Vec<Vec<f64>>,
    },
    /// True and predicted values.
    Values {
        /// True value per row.
        truth: Vec<f64>,
        /// Predicted value per row.
        predicted: Vec<f64>,
    },
}

/// The result of a training.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The task trained for.
    pub task: Task,
    /// Why that task: asked for, or which rule inferred it from the target.
    pub task_reason: String,
    /// The type of the target's values, which labels are given back in (classification).
    pub label_type: LabelType,
    /// Class names, in the order of the model's outputs (classification).
    pub classes: Vec<String>,
    /// Feature columns, in order.
    pub features: Vec<String>,
    /// The fitted feature pipeline.
    pub pipeline: Pipeline,
    /// The fitted model.
    pub model: Model,
    /// Metrics on held-out rows (with folds: of each fold, in order).
    pub evaluations: Vec<Evaluation>,
    /// The last split's held-out rows and predictions.
    pub held_out: Option<HeldOut>,
    /// Rows trained and evaluated on (missing targets excluded).
    pub rows: usize,
    /// Rows left out because their target was missing.
    pub missing_target: usize,
    /// Loss per iteration of the kept model, for algorithms that iterate (boosting).
    pub history: Option<History>,
    /// Seconds the kept model's fit took (pipeline and model, not evaluation).
    pub fit_seconds: f64,
}

/// The target as the model sees it.
enum Target {
    Classes(Vec<usize>),
    Values(Vec<f64>),
}

/// Trains `req` on `table`.
pub fn train(table: &Columns, req: &TrainRequest) -> Result<Trained> {
    if req.task == Some(Task::Clustering)
        || (req.task.is_none() && req.algorithm.tasks == [Task::Clustering])
    {
        return train_clusters(table, req);
    }
    let Some(name) = req.target else {
        return invalid(format!(
            "{} needs a target column to predict",
            req.algorithm.name
        ));
    };
    let Some(target) = table.get(name) else {
        return invalid(format!(
            "unknown target column '{name}': the columns are {}",
            table.names.join(", ")
        ));
    };
    let (task, task_reason) = choose_task(req, name, target)?;
    // Rows with a target; everything below indexes into them.
    let kept = with_target(target);
    let missing_target = table.rows() - kept.len();
    let (y, classes) = encode_target(name, target, &kept, task)?;
    let features = feature_columns(table, req, Some(name))?;
    let strata = match &y {
        Target::Classes(c) => Some(c.as_slice()),
        Target::Values(_) => None,
    };
    let n = kept.len();
    let splits = splits(req, n, strata)?;
    let spec = pipeline_spec(req.algorithm.name);
    let rows_of = |idx: &[usize]| idx.iter().map(|&i| kept[i]).collect::<Vec<usize>>();
    let mut evaluations = Vec::with_capacity(splits.len());
    let mut held_out = None;
    let mut last = None;
    for split in &splits {
        let started = Instant::now();
        let pipeline = Pipeline::fit(table, &features, &rows_of(&split.train), spec)?;
        let x_train = pipeline.transform(table, &rows_of(&split.train))?;
        let (model, history) = fit(req, &x_train, &y, &split.train, classes.len())?;
        let seconds = started.elapsed().as_secs_f64();
        let x_test = pipeline.transform(table, &rows_of(&split.test))?;
        let (evaluation, rows) = evaluate(&model, &x_test, &y, &split.test, classes.len())?;
        evaluations.push(evaluation);
        held_out = Some(rows);
        last = Some((pipeline, model, history, seconds));
    }
    let (pipeline, model, history, fit_seconds) = match (req.holdout, last) {
        (Holdout::Split(_), Some(fitted)) => fitted,
        _ => {
            // Cross-validation measured the method; the model kept learns from every row.
            let all: Vec<usize> = (0..n).collect();
            let started = Instant::now();
            let pipeline = Pipeline::fit(table, &features, &kept, spec)?;
            let x = pipeline.transform(table, &kept)?;
            let (model, history) = fit(req, &x, &y, &all, classes.len())?;
            (pipeline, model, history, started.elapsed().as_secs_f64())
        }
    };
    if req.holdout == Holdout::Data {
        let Some(test) = req.test else {
            return invalid("no test data given to evaluate on");
        };
        let (evaluation, rows) = evaluate_table(&pipeline, &model, test, name, task, &classes)?;
        evaluations.push(evaluation);
        held_out = Some(rows);
    }
    Ok(Trained {
        task,
        task_reason,
        label_type: LabelType::of(target),
        classes,
        features,
        pipeline,
        model,
        evaluations,
        held_out,
        rows: n,
        missing_target,
        history,
        fit_seconds,
    })
}

/// The held-out splits of `n` rows (none with separate test data), stratified by `strata`.
fn splits(req: &TrainRequest, n: usize, strata: Option<&[usize]>) -> Result<Vec<Split>> {
    Ok(match req.holdout {
        Holdout::Split(train_share) => vec![train_test(n, 1.0 - train_share, req.seed, strata)?],
        Holdout::Folds(k) => k_folds(n, k, req.seed, strata)?,
        Holdout::Data => Vec::new(),
    })
}

/// The most distinct values an integer target may hold to be taken as classes when no task
/// is given.
pub const MAX_INTEGER_CLASSES: usize = 20;

/// The task for `target` (asked for, or inferred from its values) and why, refused when the
/// algorithm does not do it.
fn choose_task(req: &TrainRequest, name: &str, target: &Values) -> Result<(Task, String)> {
    let (task, reason) = match (req.task, target) {
        (Some(task), _) => (task, format!("{} as asked", task.as_str())),
        (None, Values::Text(_)) => (
            Task::Classification,
            format!("classification: target '{name}' holds text"),
        ),
        (None, Values::Numbers(v)) => {
            let mut distinct: Vec<f64> = v.iter().flatten().copied().collect();
            let integers = distinct.iter().all(|x| x.fract() == 0.0);
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            if integers && distinct.len() <= MAX_INTEGER_CLASSES {
                (
                    Task::Classification,
                    format!(
                        "classification: target '{name}' holds {} distinct integers (integers with at most {MAX_INTEGER_CLASSES} distinct values are classes; --task regression predicts them as numbers)",
                        distinct.len()
                    ),
                )
            } else if integers {
                (
                    Task::Regression,
                    format!(
                        "regression: target '{name}' holds {} distinct integers (more than {MAX_INTEGER_CLASSES}; --task classification takes them as classes)",
                        distinct.len()
                    ),
                )
            } else {
                (
                    Task::Regression,
                    format!("regression: target '{name}' holds numbers with fractions"),
                )
            }
        }
    };
    if !req.algorithm.supports(task) {
        let other = req
            .algorithm
            .tasks
            .iter()
            .map(|t| format!("--task {}", t.as_str()))
            .collect::<Vec<_>>()
            .join(" or ");
        return invalid(format!(
            "{} does not do {} (chosen: {reason}); pass {other}, or choose an algorithm that does {}",
            req.algorithm.name,
            task.as_str(),
            task.as_str()
        ));
    }
    Ok((task, reason))
}

fn supported(req: &TrainRequest, task: Task) -> Result<()> {
    if req.algorithm.supports(task) {
        Ok(())
    } else {
        invalid(format!(
            "{} does not do {}; pass --task {}",
            req.algorithm.name,
            task.as_str(),
            req.algorithm
                .tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(" or --task ")
        ))
    }
}

/// The type of a classification target's values: labels come back in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelType {
    /// Text.
    #[default]
    String,
    /// Whole numbers.
    Long,
    /// Numbers with fractions.
    Double,
}

impl LabelType {
    /// The type of `target`'s values.
    pub fn of(target: &Values) -> LabelType {
        match target {
            Values::Text(_) => LabelType::String,
            Values::Numbers(v) if v.iter().flatten().all(|x| x.fract() == 0.0) => LabelType::Long,
            Values::Numbers(_) => LabelType::Double,
        }
    }

    /// Whether labels are text (the default, left out of stored models).
    pub fn is_string(&self) -> bool {
        *self == LabelType::String
    }

    /// MLflow's name of the type (`string`, `long`, `double`).
    pub fn as_str(self) -> &'static str {
        match self {
            LabelType::String => "string",
            LabelType::Long => "long",
            LabelType::Double => "double",
        }
    }
}

/// The feature columns: `--features`, else every column but the target, less `--drop`.
fn feature_columns(
    table: &Columns,
    req: &TrainRequest,
    target: Option<&str>,
) -> Result<Vec<String>> {
    for name in req.features.iter().flatten().chain(&req.drop) {
        if table.get(name).is_none() {
            return invalid(format!(
                "unknown feature column '{name}': the columns are {}",
                table.names.join(", ")
            ));
        }
        if Some(name.as_str()) == target {
            return invalid(format!("the target '{name}' cannot be a feature"));
        }
    }
    let features: Vec<String> = match &req.features {
        Some(chosen) => chosen.clone(),
        None => table
            .names
            .iter()
            .filter(|n| Some(n.as_str()) != target)
            .cloned()
            .collect(),
    }
    .into_iter()
    .filter(|n| !req.drop.contains(n))
    .collect();
    if features.is_empty() {
        return invalid(match target {
            Some(t) => format!("no feature columns besides the target '{t}'"),
            None => "no feature columns left".to_string(),
        });
    }
    Ok(features)
}

/// Clustering: no target; k-means fitted on the training rows (every row with folds or
/// `--test-data`), scored on the held-out ones.
fn train_clusters(table: &Columns, req: &TrainRequest) -> Result<Trained> {
    supported(req, Task::Clustering)?;
    if let Some(t) = req.target {
        return invalid(format!(
            "{} groups rows without a target; leave out the target '{t}'",
            req.algorithm.name
        ));
    }
    let features = feature_columns(table, req, None)?;
    let n = table.rows();
    let splits = splits(req, n, None)?;
    let p = &req.params;
    let spec = KMeansSpec {
        n_clusters: p.get("n_clusters") as usize,
        n_init: p.get("n_init") as usize,
        max_iter: p.get("max_iter") as u64,
        tol: p.get("tol"),
        seed: req.seed,
    };
    let pipeline_spec = pipeline_spec(req.algorithm.name);
    let fit = |rows: &[usize]| -> Result<(Pipeline, KMeansModel, f64)> {
        let started = Instant::now();
        let pipeline = Pipeline::fit(table, &features, rows, pipeline_spec)?;
        let x = pipeline.transform(table, rows)?;
        let model = fit_kmeans(&x, &spec)?;
        Ok((pipeline, model, started.elapsed().as_secs_f64()))
    };
    let mut evaluations = Vec::with_capacity(splits.len());
    let mut last = None;
    for split in &splits {
        let (pipeline, model, seconds) = fit(&split.train)?;
        let x_test = pipeline.transform(table, &split.test)?;
        evaluations.push(Evaluation::Clustering(model.evaluate(&x_test, req.seed)));
        last = Some((pipeline, model, seconds));
    }
    let (pipeline, model, fit_seconds) = match (req.holdout, last) {
        (Holdout::Split(_), Some(fitted)) => fitted,
        _ => fit(&(0..n).collect::<Vec<_>>())?,
    };
    if req.holdout == Holdout::Data {
        let Some(test) = req.test else {
            return invalid("no test data given to evaluate on");
        };
        let x = pipeline.transform(test, &(0..test.rows()).collect::<Vec<_>>())?;
        evaluations.push(Evaluation::Clustering(model.evaluate(&x, req.seed)));
    }
    Ok(Trained {
        task: Task::Clustering,
        task_reason: if req.task.is_some() {
            "clustering as asked".into()
        } else {
            format!("clustering: {} only clusters", req.algorithm.name)
        },
        label_type: LabelType::String,
        classes: Vec::new(),
        features,
        pipeline,
        model: Model::Clusters(model),
        evaluations,
        held_out: None,
        rows: n,
        missing_target: 0,
        history: None,
        fit_seconds,
    })
}

/// The rows whose target is present (not missing, not NaN).
fn with_target(target: &Values) -> Vec<usize> {
    match target {
        Values::Text(v) => (0..v.len()).filter(|&i| v[i].is_some()).collect(),
        Values::Numbers(v) => (0..v.len())
            .filter(|&i| v[i].is_some_and(|x| !x.is_nan()))
            .collect(),
    }
}

/// Evaluates on every row of `test` that has a target; its classes must be known ones.
/// The metrics of a trained model on other rows (`target` being the column it predicts):
/// how a model chosen on some rows is scored on rows the choice never saw.
pub fn evaluate_on(trained: &Trained, target: &str, table: &Columns) -> Result<Evaluation> {
    evaluate_table(
        &trained.pipeline,
        &trained.model,
        table,
        target,
        trained.task,
        &trained.classes,
    )
    .map(|(e, _)| e)
}

fn evaluate_table(
    pipeline: &Pipeline,
    model: &Model,
    test: &Columns,
    name: &str,
    task: Task,
    classes: &[String],
) -> Result<(Evaluation, HeldOut)> {
    let Some(target) = test.get(name) else {
        return invalid(format!("the test data has no target column '{}'", name));
    };
    let kept = with_target(target);
    if kept.is_empty() {
        return invalid(format!("the test data has no row with a target '{}'", name));
    }
    let y = match (task, target) {
        (Task::Regression, Values::Numbers(v)) => {
            Target::Values(kept.iter().map(|&i| v[i].unwrap_or(f64::NAN)).collect())
        }
        (Task::Regression, Values::Text(_)) => {
            return invalid(format!(
                "the test data's target '{}' holds text; regression needs numbers",
                name
            ));
        }
        (Task::Clustering, _) => return invalid("clustering has no target to evaluate"),
        (Task::Classification, values) => {
            let mut y = Vec::with_capacity(kept.len());
            for label in labels(values, &kept) {
                let Some(k) = classes.iter().position(|c| *c == label) else {
                    return invalid(format!(
                        "the test data's target '{}' has class '{label}', which the training \
                         data does not",
                        name
                    ));
                };
                y.push(k);
            }
            Target::Classes(y)
        }
    };
    let x = pipeline.transform(test, &kept)?;
    let all: Vec<usize> = (0..kept.len()).collect();
    evaluate(model, &x, &y, &all, classes.len())
}

/// Class labels of `rows` as text (numbers written briefly).
fn labels(values: &Values, rows: &[usize]) -> Vec<String> {
    rows.iter()
        .map(|&i| match values {
            Values::Text(v) => v[i].clone().unwrap_or_default(),
            Values::Numbers(v) => keel_core::table::num(v[i].unwrap_or(f64::NAN)),
        })
        .collect()
}

fn encode_target(
    name: &str,
    target: &Values,
    kept: &[usize],
    task: Task,
) -> Result<(Target, Vec<String>)> {
    match (task, target) {
        (Task::Regression, Values::Numbers(v)) => Ok((
            Target::Values(kept.iter().map(|&i| v[i].unwrap_or(f64::NAN)).collect()),
            Vec::new(),
        )),
        (Task::Regression, Values::Text(_)) => invalid(format!(
            "target '{name}' holds text; regression needs numbers (pass --task classification)"
        )),
        (Task::Clustering, _) => invalid("clustering has no target"),
        (Task::Classification, values) => {
            let labels: Vec<String> = labels(values, kept);
            let mut classes: Vec<String> = labels.clone();
            // Numbers sort as numbers, text as text.
            match values {
                Values::Numbers(_) => classes.sort_by(|a, b| {
                    let (x, y) = (a.parse::<f64>(), b.parse::<f64>());
                    match (x, y) {
                        (Ok(x), Ok(y)) => x.total_cmp(&y),
                        _ => a.cmp(b),
                    }
                }),
                Values::Text(_) => classes.sort(),
            }
            classes.dedup();
            if classes.len() < 2 {
                return invalid(format!(
                    "target '{name}' has a single class{}: classification needs two or more",
                    classes
                        .first()
                        .map(|c| format!(" '{c}'"))
                        .unwrap_or_default()
                ));
            }
            let index: std::collections::HashMap<&str, usize> = classes
                .iter()
                .enumerate()
                .map(|(k, c)| (c.as_str(), k))
                .collect();
            let y = labels
                .iter()
                .map(|l| index.get(l.as_str()).copied().unwrap_or(0))
                .collect();
            Ok((Target::Classes(y), classes))
        }
    }
}

/// How an algorithm's features are prepared: trees split on raw values and ordinal codes;
/// the others get one-hot indicators, and standardised numbers where a penalty (logistic and
/// ridge regression) or a distance (k-nearest neighbours) treats every feature alike.
fn pipeline_spec(algorithm: &str) -> PipelineSpec {
    match algorithm {
        "decision_tree" | "random_forest" | "gradient_boosting" => PipelineSpec {
            encoding: Encoding::Ordinal,
            scale: false,
        },
        name => PipelineSpec {
            encoding: Encoding::OneHot,
            scale: matches!(
                name,
                "logistic_regression" | "ridge_regression" | "k_neighbors" | "k_means"
            ),
        },
    }
}

/// `n_jobs` as a thread count (0: one per core).
fn threads(p: &Params) -> usize {
    usize::try_from(p.get("n_jobs") as i64).unwrap_or(0)
}

fn fit(
    req: &TrainRequest,
    x: &Matrix,
    y: &Target,
    rows: &[usize],
    n_classes: usize,
) -> Result<(Model, Option<History>)> {
    let p = &req.params;
    let classes: Vec<usize>;
    let values: Vec<f64>;
    let labels = match y {
        Target::Classes(c) => {
            classes = rows.iter().map(|&i| c[i]).collect();
            Labels::Classes {
                y: &classes,
                n: n_classes,
            }
        }
        Target::Values(v) => {
            values = rows.iter().map(|&i| v[i]).collect();
            Labels::Values(&values)
        }
    };
    let int = |name: &str| p.get(name) as usize;
    let grow = GrowSpec {
        max_depth: int("max_depth"),
        max_leaf_nodes: int("max_leaf_nodes"),
        min_samples_split: int("min_samples_split").max(2),
        min_samples_leaf: int("min_samples_leaf").max(1),
        min_hessian: 0.0,
        l2: 0.0,
        max_features: usize::MAX,
        parallel: true,
    };
    let model = match (req.algorithm.name, labels) {
        ("linear_regression", Labels::Values(v)) => Model::Linear(fit_least_squares(x, v)?),
        ("ridge_regression", Labels::Values(v)) => Model::Linear(fit_ridge(x, v, p.get("alpha"))?),
        ("logistic_regression", Labels::Classes { y, n }) => Model::Linear(fit_logistic(
            x,
            y,
            n,
            p.get("C"),
            p.get("max_iter") as u64,
            p.get("tol"),
        )?),
        ("decision_tree", labels) => {
            let spec = ForestSpec {
                n_estimators: 1,
                bootstrap: false,
                grow,
                max_bins: int("max_bins"),
                threads: 0,
                seed: req.seed,
            };
            Model::Trees(fit_forest(x, labels, &spec)?)
        }
        ("random_forest", labels) => {
            let share = p.get("max_features");
            let max_features = match (share, labels) {
                (0.0, Labels::Classes { .. }) => (x.cols as f64).sqrt() as usize,
                (0.0, Labels::Values(_)) => x.cols,
                (share, _) => (share * x.cols as f64) as usize,
            };
            let spec = ForestSpec {
                n_estimators: int("n_estimators"),
                bootstrap: p.get("bootstrap") == 1.0,
                grow: GrowSpec {
                    max_features: max_features.max(1),
                    parallel: false,
                    ..grow
                },
                max_bins: int("max_bins"),
                threads: threads(p),
                seed: req.seed,
            };
            Model::Trees(fit_forest(x, labels, &spec)?)
        }
        ("gradient_boosting", labels) => {
            let early = p.get("early_stopping");
            let spec = BoostSpec {
                learning_rate: p.get("learning_rate"),
                max_iter: int("max_iter"),
                grow: GrowSpec {
                    min_hessian: 1e-3,
                    l2: p.get("l2_regularization"),
                    ..grow
                },
                max_bins: int("max_bins"),
                early_stopping: early == 1.0 || (early == -1.0 && x.rows > 10_000),
                validation_fraction: p.get("validation_fraction"),
                n_iter_no_change: int("n_iter_no_change"),
                tol: p.get("tol"),
                threads: threads(p),
                seed: req.seed,
            };
            let (model, history) = fit_boosting(x, labels, &spec)?;
            return Ok((Model::Trees(model), Some(history)));
        }
        ("k_neighbors", labels) => {
            let weights = if p.get("weights") == 1.0 {
                Weights::Distance
            } else {
                Weights::Uniform
            };
            Model::Neighbours(fit_neighbours(
                x,
                labels,
                int("n_neighbors"),
                weights,
                p.get("p") as u8,
            )?)
        }
        (name, _) => return invalid(format!("{name} cannot fit this target")),
    };
    Ok((model, None))
}

fn evaluate(
    model: &Model,
    x: &Matrix,
    y: &Target,
    rows: &[usize],
    n: usize,
) -> Result<(Evaluation, HeldOut)> {
    let fail = |e: keel_stats::StatsError| crate::error::MlError::Invalid(e.to_string());
    match y {
        Target::Classes(c) => {
            let truth: Vec<usize> = rows.iter().map(|&i| c[i]).collect();
            let proba = model.predict_proba(x)?;
            let metrics = keel_stats::classification(&truth, &proba, n).map_err(fail)?;
            Ok((
                Evaluation::Classification(metrics),
                HeldOut::Classes { truth, proba },
            ))
        }
        Target::Values(v) => {
            let truth: Vec<f64> = rows.iter().map(|&i| v[i]).collect();
            let predicted = model.predict_values(x)?;
            let metrics = keel_stats::regression(&truth, &predicted).map_err(fail)?;
            Ok((
                Evaluation::Regression(metrics),
                HeldOut::Values { truth, predicted },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::algorithm;

    /// 400 rows: x numeric, colour text; label "yes" when x + (colour == red) > 1, with a
    /// missing label every 50th row; price = 3x + 10 (red) + 1.
    fn table() -> Columns {
        let n = 400;
        let x: Vec<Option<f64>> = (0..n).map(|i| Some((i % 40) as f64 / 20.0)).collect();
        let colour: Vec<Option<String>> = (0..n)
            .map(|i| Some(["red", "blue", "green"][i % 3].to_string()))
            .collect();
        let label = (0..n)
            .map(|i| {
                (i % 50 != 7).then(|| {
                    let red = if i % 3 == 0 { 1.0 } else { 0.0 };
                    if x[i].unwrap() + red > 1.0 {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string()
                })
            })
            .collect();
        let price = (0..n)
            .map(|i| Some(3.0 * x[i].unwrap() + if i % 3 == 0 { 10.0 } else { 0.0 } + 1.0))
            .collect();
        Columns {
            names: vec!["x".into(), "colour".into(), "label".into(), "price".into()],
            values: vec![
                Values::Numbers(x),
                Values::Text(colour),
                Values::Text(label),
                Values::Numbers(price),
            ],
        }
    }

    fn request<'a>(target: &'a str, algo: &str, holdout: Holdout) -> TrainRequest<'a> {
        let a = algorithm(algo).unwrap();
        TrainRequest {
            target: Some(target),
            task: None,
            algorithm: a,
            params: a.parse(&[]).unwrap(),
            holdout,
            seed: 42,
            features: None,
            drop: Vec::new(),
            test: None,
        }
    }

    #[test]
    fn classification_on_text_and_numbers_with_a_split_and_folds() {
        let mut t = table();
        // price gives the label away; leave it out of this table.
        t.names.pop();
        t.values.pop();
        let r = train(
            &t,
            &request("label", "logistic_regression", Holdout::Split(0.8)),
        )
        .unwrap();
        assert_eq!(r.task, Task::Classification);
        assert_eq!(r.classes, ["no", "yes"]);
        assert_eq!((r.rows, r.missing_target), (392, 8));
        assert_eq!(
            r.pipeline.feature_names(),
            ["x", "colour=blue", "colour=green", "colour=red"]
        );
        let Evaluation::Classification(m) = &r.evaluations[0] else {
            panic!("classification expected")
        };
        assert!(m.roc_auc.unwrap() > 0.95, "{m:?}");
        assert_eq!(m.confusion.iter().flatten().sum::<u64>(), 78);

        let cv = train(
            &t,
            &request("label", "logistic_regression", Holdout::Folds(4)),
        )
        .unwrap();
        assert_eq!(cv.evaluations.len(), 4);
        // The same data, params and seed give the same model.
        let again = train(
            &t,
            &request("label", "logistic_regression", Holdout::Folds(4)),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&again.model).unwrap(),
            serde_json::to_string(&cv.model).unwrap()
        );
    }

    #[test]
    fn every_algorithm_meets_a_quality_floor() {
        let without = |column: usize| {
            let mut t = table();
            t.names.remove(column);
            t.values.remove(column);
            t
        };
        let (classes, values) = (without(3), without(2));
        for a in crate::params::ALGORITHMS {
            if a.supports(Task::Classification) {
                let r = train(&classes, &request("label", a.name, Holdout::Split(0.8))).unwrap();
                let Evaluation::Classification(m) = &r.evaluations[0] else {
                    panic!("{}: classification expected", a.name)
                };
                assert!(m.roc_auc.unwrap() > 0.95, "{}: {m:?}", a.name);
            }
            if a.supports(Task::Regression) {
                let r = train(&values, &request("price", a.name, Holdout::Split(0.8))).unwrap();
                let Evaluation::Regression(m) = &r.evaluations[0] else {
                    panic!("{}: regression expected", a.name)
                };
                assert!(m.r2 > 0.95, "{}: {m:?}", a.name);
            }
        }
    }

    #[test]
    fn regression_recovers_a_linear_target() {
        let mut t = table();
        t.names.remove(2);
        t.values.remove(2);
        let r = train(
            &t,
            &request("price", "linear_regression", Holdout::Split(0.75)),
        )
        .unwrap();
        let Evaluation::Regression(m) = &r.evaluations[0] else {
            panic!("regression expected")
        };
        assert!(m.rmse < 1e-6 && m.r2 > 0.999_999, "{m:?}");
    }

    #[test]
    fn tree_models_train_on_ordinal_features_for_both_tasks() {
        let mut t = table();
        t.names.pop();
        t.values.pop();
        for algo in ["decision_tree", "random_forest", "gradient_boosting"] {
            let r = train(&t, &request("label", algo, Holdout::Split(0.8))).unwrap();
            assert_eq!(r.pipeline.feature_names(), ["x", "colour"], "{algo}");
            let Evaluation::Classification(m) = &r.evaluations[0] else {
                panic!("classification expected")
            };
            assert!(m.accuracy > 0.95, "{algo}: {m:?}");
            assert_eq!(r.history.is_some(), algo == "gradient_boosting");
            assert!((r.model.importance().iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        let mut t = table();
        t.names.remove(2);
        t.values.remove(2);
        let r = train(
            &t,
            &request("price", "gradient_boosting", Holdout::Folds(3)),
        )
        .unwrap();
        let Evaluation::Regression(m) = &r.evaluations[0] else {
            panic!("regression expected")
        };
        assert!(m.r2 > 0.99, "{m:?}");
        let h = r.history.unwrap();
        assert_eq!(h.train_loss.len(), 101);
        assert!(
            h.validation_loss.is_empty(),
            "early stopping is off below 10,000 rows"
        );
        let again = train(
            &t,
            &request("price", "gradient_boosting", Holdout::Folds(3)),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&again.model).unwrap(),
            serde_json::to_string(&r.model).unwrap()
        );
    }

    #[test]
    fn a_separate_test_table_is_evaluated_on() {
        let mut t = table();
        t.names.pop();
        t.values.pop();
        let mut r = request("label", "logistic_regression", Holdout::Data);
        let test = t.clone();
        r.test = Some(&test);
        let trained = train(&t, &r).unwrap();
        let Evaluation::Classification(m) = &trained.evaluations[0] else {
            panic!("classification expected")
        };
        // Evaluated on all 392 labelled rows of the test table.
        assert_eq!(m.confusion.iter().flatten().sum::<u64>(), 392);
        let mut other = t.clone();
        other.values[2] = Values::Text(vec![Some("maybe".into()); 400]);
        r.test = Some(&other);
        assert_eq!(
            train(&t, &r).unwrap_err().to_string(),
            "the test data's target 'label' has class 'maybe', which the training data does not"
        );
        let mut no_x = t.clone();
        no_x.names[0] = "y".into();
        r.test = Some(&no_x);
        let e = train(&t, &r).unwrap_err().to_string();
        assert!(e.contains("'x'"), "{e}");
    }

    #[test]
    fn features_can_be_chosen_or_dropped() {
        let t = table();
        let mut r = request("label", "logistic_regression", Holdout::Split(0.8));
        r.drop = vec!["price".into()];
        let trained = train(&t, &r).unwrap();
        assert_eq!(trained.features, ["x", "colour"]);
        assert_eq!(trained.model.importance().len(), 4);
        r.drop.clear();
        r.features = Some(vec!["x".into()]);
        assert_eq!(train(&t, &r).unwrap().features, ["x"]);
        r.features = Some(vec!["nope".into()]);
        let e = train(&t, &r).unwrap_err().to_string();
        assert!(e.starts_with("unknown feature column 'nope'"), "{e}");
        r.features = Some(vec!["label".into()]);
        let e = train(&t, &r).unwrap_err().to_string();
        assert_eq!(e, "the target 'label' cannot be a feature");
    }

    #[test]
    fn bad_requests_are_named() {
        let t = table();
        let err = |r: TrainRequest| train(&t, &r).unwrap_err().to_string();
        assert_eq!(
            err(request("nope", "logistic_regression", Holdout::Split(0.8))),
            "unknown target column 'nope': the columns are x, colour, label, price"
        );
        assert_eq!(
            err(request("label", "linear_regression", Holdout::Split(0.8))),
            "linear_regression does not do classification (chosen: classification: target 'label' holds text); pass --task regression, or choose an algorithm that does classification"
        );
        let mut r = request("colour", "linear_regression", Holdout::Split(0.8));
        r.task = Some(Task::Regression);
        assert!(err(r).starts_with("target 'colour' holds text; regression needs numbers"));
        let mut one = table();
        one.values[1] = Values::Text(vec![Some("red".into()); 400]);
        let e = train(
            &one,
            &request("colour", "logistic_regression", Holdout::Split(0.8)),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "target 'colour' has a single class 'red': classification needs two or more"
        );
        assert!(
            err(request("label", "logistic_regression", Holdout::Split(1.0)))
                .contains("between 0 and 1")
        );
    }

    #[test]
    fn the_task_is_inferred_from_the_target_by_a_stated_rule() {
        let mut t = table();
        let flag: Vec<Option<f64>> = (0..400)
            .map(|i| Some(f64::from(u8::from(i % 40 >= 20 || i % 3 == 0))))
            .collect();
        let count: Vec<Option<f64>> = (0..400).map(|i| Some((i % 40) as f64)).collect();
        t.names.extend(["flag".to_string(), "count".to_string()]);
        t.values
            .extend([Values::Numbers(flag), Values::Numbers(count)]);
        let mut r = request("flag", "random_forest", Holdout::Split(0.8));
        r.drop = vec!["label".into(), "count".into(), "price".into()];
        let trained = train(&t, &r).unwrap();
        assert_eq!(trained.task, Task::Classification);
        assert_eq!(trained.label_type, LabelType::Long);
        assert_eq!(trained.classes, ["0", "1"]);
        assert!(
            trained.task_reason.contains("2 distinct integers"),
            "{}",
            trained.task_reason
        );
        let mut r = request("count", "random_forest", Holdout::Split(0.8));
        r.drop = vec!["label".into(), "flag".into(), "price".into()];
        let trained = train(&t, &r).unwrap();
        assert_eq!(trained.task, Task::Regression);
        assert!(
            trained
                .task_reason
                .contains("40 distinct integers (more than 20"),
            "{}",
            trained.task_reason
        );
        let mut r = request("price", "random_forest", Holdout::Split(0.8));
        r.drop = vec!["label".into(), "flag".into(), "count".into()];
        assert!(train(&t, &r).unwrap().task_reason.contains("fractions"));
        // An algorithm that cannot do the inferred task says how to choose.
        let mut r = request("price", "logistic_regression", Holdout::Split(0.8));
        r.drop = vec!["label".into(), "flag".into(), "count".into()];
        let e = train(&t, &r).unwrap_err().to_string();
        assert!(e.contains("pass --task classification"), "{e}");
        // Asked for, the task is taken as asked.
        let mut r = request("count", "random_forest", Holdout::Split(0.8));
        r.drop = vec!["label".into(), "flag".into(), "price".into()];
        r.task = Some(Task::Classification);
        let trained = train(&t, &r).unwrap();
        assert_eq!(trained.task_reason, "classification as asked");
        assert_eq!(trained.classes.len(), 40);
    }
}
