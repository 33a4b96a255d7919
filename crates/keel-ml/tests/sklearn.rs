//! keel's training against scikit-learn on the same rows (`sklearn_fits.py` writes the data
//! sets, fits scikit-learn's estimators through the pipeline keel documents and records what
//! they made of the held-out rows):
//!
//! - linear, ridge and logistic regression: every coefficient and intercept within 1e-4
//!   (relative above 1) of scikit-learn's, and the held-out predictions or probabilities within
//!   1e-6; where least squares has no unique solution (one-hot columns beside the intercept)
//!   only the predictions, which are unique;
//! - k-nearest neighbours: held-out predictions and probabilities equal (1e-9);
//! - k-means: held-out inertia of the best of 10 starts within 1e-6 (relative) on separated
//!   blobs, where both must find the same optimum, and the inertia of one run from the same
//!   starts within 1e-9;
//! - trees, forests and boosting (histogram-based in keel, so not split for split): held-out
//!   accuracy or R2 within a stated tolerance of scikit-learn's `DecisionTree*`,
//!   `RandomForest*` and `HistGradientBoosting*` with the same settings.
//!
//! The data sets: generated regression (Friedman #1) and three-class sets with a text column
//! and missing values, scikit-learn's bundled diabetes and breast-cancer sets, and keel's
//! bundled penguins (text columns, missing values) for both tasks.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use keel_data::columns::{Columns, load_columns};
use keel_data::format::Format;
use keel_ml::clustering::{KMeansSpec, fit_kmeans_from};
use keel_ml::train::{Evaluation, HeldOut, Holdout, Model, TrainRequest, train};
use serde::Deserialize;

/// What scikit-learn made of one (data set, algorithm, parameters).
#[derive(Deserialize)]
struct Reference {
    set: String,
    algorithm: String,
    params: Vec<String>,
    coef: Option<Vec<BTreeMap<String, f64>>>,
    intercept: Option<Vec<f64>>,
    rank: Option<usize>,
    features: Option<usize>,
    classes: Option<Vec<String>>,
    proba: Option<Vec<Vec<f64>>>,
    predicted: Option<Vec<f64>>,
    score: Option<f64>,
    test_inertia: Option<f64>,
    from_first_rows_inertia: Option<f64>,
}

/// Largest held-out score difference allowed for the tree algorithms, and why (measured
/// differences over the data sets here: trees up to 0.05, forests 0.01, boosting 0.006).
fn tree_tolerance(algorithm: &str) -> f64 {
    match algorithm {
        // One tree of depth 6: binned thresholds move splits, and a moved split near the root
        // changes the whole subtree.
        "decision_tree" => 0.08,
        // 100 trees average the differences out; the bootstrap samples differ.
        "random_forest" => 0.03,
        // Both histogram-based with the same settings.
        "gradient_boosting" => 0.02,
        other => panic!("no tolerance for {other}"),
    }
}

/// The comparisons of one case: what disagreed, and the largest relative difference seen.
struct Tally<'a> {
    case: &'a str,
    failures: &'a mut Vec<String>,
    worst: f64,
}

impl Tally<'_> {
    /// `keel` within `tol` of `reference` (relative above 1).
    fn check(&mut self, what: &str, keel: f64, reference: f64, tol: f64) {
        let scale = reference.abs().max(1.0);
        let difference = (keel - reference).abs() / scale;
        self.worst = self.worst.max(difference);
        // A NaN on either side is a disagreement too.
        if difference.is_nan() || difference > tol {
            self.failures.push(format!(
                "{}: {what}: keel {keel} scikit-learn {reference}",
                self.case
            ));
        }
    }

    fn fail(&mut self, what: String) {
        self.failures.push(format!("{}: {what}", self.case));
    }
}

#[test]
fn training_matches_scikit_learn_on_the_same_rows() {
    let test = "training_matches_scikit_learn_on_the_same_rows";
    let Some(python) = keel_testenv::python(test, &["sklearn", "pandas"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(python)
        .arg(here.join("tests/sklearn_fits.py"))
        .arg(dir.path())
        .arg(here.join("../keel/data/penguins.csv"))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let references: Vec<Reference> =
        serde_json::from_slice(&std::fs::read(dir.path().join("reference.json")).unwrap()).unwrap();
    assert!(references.len() > 40, "{} references", references.len());
    let mut tables: HashMap<String, (Columns, Columns)> = HashMap::new();
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for r in &references {
        let (train_rows, test_rows) = tables.entry(r.set.clone()).or_insert_with(|| {
            let load = |part: &str| {
                let path = dir.path().join(format!("{}.{part}.csv", r.set));
                load_columns(Format::Csv, &[path.as_path()]).unwrap()
            };
            (load("train"), load("test"))
        });
        let algorithm = keel_ml::params::algorithm(&r.algorithm).unwrap();
        let clustering = r.algorithm == "k_means";
        let request = TrainRequest {
            target: (!clustering).then_some("target"),
            task: None,
            algorithm,
            params: algorithm.parse(&r.params).unwrap(),
            holdout: Holdout::Data,
            seed: 0,
            features: None,
            drop: Vec::new(),
            test: Some(test_rows),
        };
        let case = format!("{} {} {:?}", r.set, r.algorithm, r.params);
        let trained = match train(train_rows, &request) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{case}: keel failed: {e}"));
                continue;
            }
        };
        let mut tally = Tally {
            case: &case,
            failures: &mut failures,
            worst: 0.0,
        };
        // Coefficients, matched by feature name and class.
        if let (Some(coef), Some(intercept), Model::Linear(model)) =
            (&r.coef, &r.intercept, &trained.model)
        {
            let unique = r.algorithm != "linear_regression" || r.rank == r.features;
            if unique {
                let names = trained.pipeline.feature_names();
                let rows: Vec<usize> = match &r.classes {
                    Some(classes) if classes.len() > 2 => trained
                        .classes
                        .iter()
                        .map(|c| classes.iter().position(|s| s == c).unwrap())
                        .collect(),
                    _ => vec![0],
                };
                assert_eq!(model.coef.len(), rows.len(), "{case}");
                for (k, &row) in rows.iter().enumerate() {
                    for (name, value) in names.iter().zip(&model.coef[k]) {
                        let Some(&reference) = coef[row].get(name) else {
                            tally.fail(format!("no reference for feature {name}"));
                            continue;
                        };
                        tally.check(
                            &format!("coefficient {name} (output {k})"),
                            *value,
                            reference,
                            1e-4,
                        );
                    }
                    tally.check(
                        &format!("intercept (output {k})"),
                        model.intercept[k],
                        intercept[row],
                        1e-4,
                    );
                }
            }
        }
        match (&trained.held_out, &r.proba, &r.predicted) {
            (Some(HeldOut::Classes { proba, .. }), Some(reference), _) => {
                let classes = r.classes.as_ref().unwrap();
                let tol = if r.algorithm == "k_neighbors" {
                    1e-9
                } else {
                    1e-6
                };
                assert_eq!(proba.len(), reference.len(), "{case}");
                for (i, (p, q)) in proba.iter().zip(reference).enumerate() {
                    for (k, class) in trained.classes.iter().enumerate() {
                        let j = classes.iter().position(|s| s == class).unwrap();
                        tally.check(&format!("row {i} P({class})"), p[k], q[j], tol);
                    }
                }
            }
            (Some(HeldOut::Values { predicted, .. }), _, Some(reference)) => {
                let tol = if r.algorithm == "k_neighbors" {
                    1e-9
                } else {
                    1e-6
                };
                assert_eq!(predicted.len(), reference.len(), "{case}");
                for (i, (p, q)) in predicted.iter().zip(reference).enumerate() {
                    tally.check(&format!("row {i} prediction"), *p, *q, tol);
                }
            }
            _ => {}
        }
        let worst = tally.worst;
        let evaluation = trained.evaluations.last().unwrap();
        if let Some(reference) = r.score {
            let score = match evaluation {
                Evaluation::Classification(m) => m.accuracy,
                Evaluation::Regression(m) => m.r2,
                Evaluation::Clustering(_) => panic!("{case}: a clustering score"),
            };
            let tol = tree_tolerance(&r.algorithm);
            report.push(format!(
                "{case}: held-out score keel {score:.4} scikit-learn {reference:.4} (tolerance {tol})"
            ));
            if (score - reference).abs() > tol {
                failures.push(format!(
                    "{case}: held-out score keel {score:.4} scikit-learn {reference:.4}, more than {tol} apart"
                ));
            }
        } else if let (Some(reference), Evaluation::Clustering(m)) = (r.test_inertia, evaluation) {
            // One run from the same starts (the first four training rows, scaled by keel's
            // pipeline) to convergence.
            if let Some(from_first) = r.from_first_rows_inertia {
                let all: Vec<usize> = (0..train_rows.rows()).collect();
                let x = trained.pipeline.transform(train_rows, &all).unwrap();
                let starts: Vec<Vec<f64>> = (0..4).map(|i| x.row(i).to_vec()).collect();
                let spec = KMeansSpec {
                    n_clusters: 4,
                    n_init: 1,
                    max_iter: 300,
                    tol: 1e-12,
                    seed: 0,
                };
                let model = fit_kmeans_from(&x, &starts, &spec).unwrap();
                let inertia: f64 = model.assign(&x).iter().map(|(_, d)| d).sum();
                report.push(format!(
                    "{case}: inertia from the first rows keel {inertia:.9} scikit-learn {from_first:.9}"
                ));
                if (inertia - from_first).abs() > 1e-9 * from_first {
                    failures.push(format!(
                        "{case}: inertia from the first rows keel {inertia} scikit-learn {from_first}"
                    ));
                }
            }
            report.push(format!(
                "{case}: held-out inertia keel {:.6} scikit-learn {reference:.6}",
                m.inertia
            ));
            if (m.inertia - reference).abs() > 1e-6 * reference {
                failures.push(format!(
                    "{case}: held-out inertia keel {} scikit-learn {reference}",
                    m.inertia
                ));
            }
        } else {
            report.push(format!("{case}: largest relative difference {worst:.2e}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{} disagreements with scikit-learn:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
