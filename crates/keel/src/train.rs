//! `keel train`: fits a model on a dataset version and records it as a tracked run: params,
//! held-out metrics (per fold with cross-validation), the dataset version as the run's input,
//! the model directory and charts as artifacts.

use std::path::Path;

use anyhow::{Context, Result, bail};
use keel_core::entities::{Dataset, Tag};
use keel_ml::model_dir::{self, KeelModel};
use keel_ml::params::{Task, algorithm};
use keel_ml::train::{Evaluation, HeldOut, Holdout, TrainRequest, Trained, train};
use serde_json::json;

use crate::data::{DataRef, Store, materialise};
use crate::output;
use crate::tracking::Tracking;

/// What `keel train` was asked.
pub struct TrainArgs {
    pub data: String,
    pub target: String,
    pub task: Option<String>,
    pub algo: String,
    pub params: Vec<String>,
    pub split: Option<f64>,
    pub cv: Option<usize>,
    pub seed: u64,
    pub experiment: String,
    pub run_name: Option<String>,
    pub features: Option<Vec<String>>,
    pub drop: Vec<String>,
    pub register: Option<String>,
    pub json: bool,
}

/// The commit checked out in the working folder, when it is inside a git repository.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()))
        .then_some(commit)
}

/// `keel train --algo X --help-params` (all algorithms without `--algo`).
pub fn help_params(algo: Option<&str>) -> Result<()> {
    match algo {
        Some(name) => print!("{}", algorithm(name)?.describe()),
        None => {
            for a in keel_ml::params::ALGORITHMS {
                print!("{}", a.describe());
            }
        }
    }
    Ok(())
}

/// A metric as logged: key, value, step.
type Logged = (String, f64, i64);
/// A metric as shown: name, value (the mean over folds), spread over folds.
type Shown = (String, f64, Option<f64>);

/// Metrics as logged for the run, and as rows for the table.
fn metrics(trained: &Trained) -> (Vec<Logged>, Vec<Shown>) {
    let per_fold: Vec<Vec<(&'static str, f64)>> = trained.evaluations.iter().map(named).collect();
    let mut logged = Vec::new();
    let mut table = Vec::new();
    let Some(first) = per_fold.first() else {
        return (logged, table);
    };
    for (k, (name, _)) in first.iter().enumerate() {
        let values: Vec<f64> = per_fold.iter().map(|f| f[k].1).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        logged.push((name.to_string(), mean, 0));
        if values.len() > 1 {
            let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
            logged.push((format!("{name}_std"), std, 0));
            for (step, v) in values.iter().enumerate() {
                logged.push((format!("fold_{name}"), *v, step as i64));
            }
            table.push((name.to_string(), mean, Some(std)));
        } else {
            table.push((name.to_string(), mean, None));
        }
    }
    (logged, table)
}

fn named(e: &Evaluation) -> Vec<(&'static str, f64)> {
    match e {
        Evaluation::Classification(m) => {
            let mut v = vec![
                ("accuracy", m.accuracy),
                ("precision", m.precision),
                ("recall", m.recall),
                ("f1", m.f1),
            ];
            if let Some(auc) = m.roc_auc {
                v.push(("roc_auc", auc));
            }
            v.push(("log_loss", m.log_loss));
            v
        }
        Evaluation::Regression(m) => vec![
            ("rmse", m.rmse),
            ("mae", m.mae),
            ("r2", m.r2),
            ("mape", m.mape),
        ],
    }
}

/// `2026-11-30 08:00:00.000000`, as MLflow writes `utc_time_created`.
fn created_now() -> String {
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    now.trim_end_matches('Z').replacen('T', " ", 1)
}

/// `keel train`.
pub async fn run(store: &Store, tracking: Tracking<'_>, a: TrainArgs) -> Result<()> {
    let algo = algorithm(&a.algo)?;
    let params = algo.parse(&a.params)?;
    let task = match a.task.as_deref() {
        None => None,
        Some("classification") => Some(Task::Classification),
        Some("regression") => Some(Task::Regression),
        Some(other) => bail!("--task '{other}': use classification or regression"),
    };
    let holdout = match (a.split, a.cv) {
        (Some(_), Some(_)) => bail!("give --split or --cv, not both"),
        (_, Some(k)) => Holdout::Folds(k),
        (Some(s), None) => Holdout::Split(s),
        (None, None) => Holdout::Split(0.8),
    };
    let r = DataRef::parse(&a.data)?;
    let (version, _) = store.version(&r).await?;
    let label = format!("{}@{}", version.name, version.version);
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let files = materialise(store, &version, &scratch.path().join("data")).await?;
    let target = a.target.clone();
    let fit_params = params.clone();
    let seed = a.seed;
    let (features, drop) = (a.features.clone(), a.drop.clone());
    let spinner =
        crate::data_validate::spinner(a.json, format!("training {} on {label}", algo.name));
    let fitted = tokio::task::spawn_blocking(move || -> Result<_> {
        let paths: Vec<&Path> = files.files.iter().map(|(_, p)| p.as_path()).collect();
        let table = keel_data::columns::load_columns(files.format, &paths)?;
        let trained = train(
            &table,
            &TrainRequest {
                target: &target,
                task,
                algorithm: algo,
                params: fit_params,
                holdout,
                seed,
                features,
                drop,
            },
        )?;
        Ok((table, trained))
    })
    .await
    .context("training task failed");
    spinner.finish_and_clear();
    let (table, trained) = fitted??;

    // The model directory and charts, written locally first.
    let model = KeelModel::of(&trained, &a.target, &table)?;
    let model_dir = scratch.path().join("model");
    model_dir::write(&model_dir, &model, &table, &created_now())?;
    let mut charts = charts(&trained);
    let names = trained.pipeline.feature_names();
    let importance = trained.model.importance();
    if let Some(svg) = keel_ml::charts::importance(&names, &importance, 20) {
        charts.push(("feature_importance.svg".into(), svg));
    }
    let importance_json = serde_json::to_vec_pretty(&json!({
        "kind": "mean absolute coefficient",
        "features": names.iter().zip(&importance)
            .map(|(n, v)| json!({"feature": n, "importance": v}))
            .collect::<Vec<_>>(),
    }))?;
    let (logged, rows) = metrics(&trained);

    let mut run_params: Vec<(String, String)> = params.logged();
    run_params.extend([
        ("algo".to_string(), algo.name.to_string()),
        ("target".into(), a.target.clone()),
        ("task".into(), trained.task.as_str().into()),
        ("seed".into(), a.seed.to_string()),
        ("dataset".into(), label.clone()),
    ]);
    match holdout {
        Holdout::Split(s) => run_params.push(("split".into(), s.to_string())),
        Holdout::Folds(k) => run_params.push(("cv".into(), k.to_string())),
    }
    let name = a
        .run_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", algo.name, version.name));
    let digest = keel_core::data::digest_of(&version.hash)?.to_string();
    let mut lineage = vec![
        Tag {
            key: "keel.dataset".into(),
            value: label.clone(),
        },
        Tag {
            key: "keel.dataset_digest".into(),
            value: digest,
        },
    ];
    if let Some(commit) = git_commit() {
        lineage.push(Tag {
            key: "mlflow.source.git.commit".into(),
            value: commit,
        });
    }
    let run = tracking
        .start(&a.experiment, &name, lineage.clone())
        .await?;
    let recorded = async {
        tracking.log(&run, run_params, logged.clone()).await?;
        tracking
            .log_dataset(&run, dataset(&version, &trained)?, "training")
            .await?;
        for entry in std::fs::read_dir(&model_dir).context("model directory")? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            tracking
                .upload(&run, &format!("model/{file}"), std::fs::read(entry.path())?)
                .await?;
        }
        tracking
            .upload(&run, "feature_importance.json", importance_json.clone())
            .await?;
        for (file, svg) in &charts {
            tracking
                .upload(&run, &format!("charts/{file}"), svg.clone().into_bytes())
                .await?;
        }
        anyhow::Ok(())
    }
    .await;
    tracking.finish(&run, recorded.is_ok()).await?;
    recorded?;
    let registered = match &a.register {
        Some(model) => {
            let mut tags = lineage;
            tags.push(Tag {
                key: "keel.run_id".into(),
                value: run.run_id.clone(),
            });
            Some((model.clone(), tracking.register(model, &run, tags).await?))
        }
        None => None,
    };

    if a.json {
        let metrics: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, v, _)| (k.clone(), json!(v))).collect();
        println!(
            "{}",
            json!({
                "run_id": run.run_id, "experiment_id": run.experiment_id, "dataset": label,
                "task": trained.task.as_str(), "classes": trained.classes, "rows": trained.rows,
                "missing_target": trained.missing_target, "features": trained.features,
                "metrics": metrics,
                "registered": registered.as_ref().map(|(m, v)| json!({"name": m, "version": v})),
            })
        );
        return Ok(());
    }
    let mut t = output::table(&["metric", "value"]);
    for (k, v, std) in &rows {
        let shown = match std {
            Some(s) => format!("{v:.4} ± {s:.4}"),
            None => format!("{v:.4}"),
        };
        t.add_row(vec![k.clone(), shown]);
    }
    println!(
        "{} on {label} ({} rows{}), {}:",
        algo.name,
        trained.rows,
        if trained.missing_target > 0 {
            format!(", {} without a target left out", trained.missing_target)
        } else {
            String::new()
        },
        match holdout {
            Holdout::Split(s) => format!("trained on {}%, held-out metrics", (s * 100.0).round()),
            Holdout::Folds(k) => format!("{k}-fold cross-validation, mean ± std"),
        }
    );
    println!("{t}");
    println!("run {} (experiment '{}')", run.run_id, a.experiment);
    if let Some((model, version)) = registered {
        println!("registered {model} version {version}");
    }
    Ok(())
}

/// The dataset input linking the run to its version: the digest is the version's MLflow
/// digest (see `keel_core::data::digest_of`), so the version is found from the run.
fn dataset(v: &keel_core::data::DataVersion, trained: &Trained) -> Result<Dataset> {
    let colspec: Vec<serde_json::Value> = trained
        .features
        .iter()
        .map(|f| json!({"name": f}))
        .collect();
    Ok(Dataset {
        name: v.name.clone(),
        digest: keel_core::data::digest_of(&v.hash)?.to_string(),
        source_type: "keel".into(),
        source: json!({"uri": format!("keel-data:{}@{}", v.name, v.version)}).to_string(),
        schema: Some(json!({"mlflow_colspec": colspec}).to_string()),
        profile: Some(json!({"num_rows": v.row_count}).to_string()),
    })
}

/// The charts of a training on its last split's held-out rows, as (file name, SVG): the
/// confusion matrix and, for two classes, the ROC curve of a classifier; predicted against
/// actual values and residuals of a regressor.
fn charts(trained: &Trained) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match (&trained.held_out, trained.evaluations.last()) {
        (Some(HeldOut::Classes { truth, proba }), Some(Evaluation::Classification(m))) => {
            if let Some(svg) = keel_ml::charts::confusion(&m.confusion, &trained.classes) {
                out.push(("confusion_matrix.svg".to_string(), svg));
            }
            if let (2, Some(auc)) = (trained.classes.len(), m.roc_auc) {
                let positive: Vec<bool> = truth.iter().map(|c| *c == 1).collect();
                let scores: Vec<f64> = proba.iter().map(|p| p[1]).collect();
                let curve = keel_stats::classification::roc_curve(&positive, &scores);
                if let Some(svg) = keel_ml::charts::roc(&curve, auc) {
                    out.push(("roc.svg".to_string(), svg));
                }
            }
        }
        (Some(HeldOut::Values { truth, predicted }), _) => {
            if let Some(svg) = keel_ml::charts::residuals(truth, predicted) {
                out.push(("residuals.svg".to_string(), svg));
            }
        }
        _ => {}
    }
    out
}
