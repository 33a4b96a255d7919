//! `keel train`: fits a model on a dataset version and records it as a tracked run: params,
//! held-out metrics (per fold with cross-validation), the dataset version as the run's input,
//! the model directory and charts as artifacts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use keel_data::columns::Columns;

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_core::entities::{Dataset, Tag};
use keel_ml::model_dir::{self, KeelModel};
use keel_ml::params::{Algorithm, Params, Task, algorithm};
use keel_ml::search::{Search, Space};
use keel_ml::train::{Evaluation, HeldOut, Holdout, TrainRequest, Trained, train};
use serde_json::json;

use crate::args::StoreArgs;
use crate::data::{DataRef, Store, materialise};
use crate::output;
use crate::tracking::{ModelRef, RunRef, Tracking};

/// What `keel train` was asked.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("holdout").args(["split", "cv"])))]
pub struct TrainArgs {
    /// The dataset version to train on (NAME@VERSION; NAME alone is the newest).
    #[arg(long, required_unless_present = "help_params")]
    pub data: Option<String>,
    /// The column to predict (none for clustering).
    #[arg(long)]
    pub target: Option<String>,
    /// classification, regression or clustering [default: clustering for k_means, else
    /// classification for a text target and regression for a numeric one].
    #[arg(long)]
    pub task: Option<String>,
    /// The algorithm (`--help-params` lists them with their parameters).
    #[arg(long, required_unless_present = "help_params")]
    pub algo: Option<String>,
    /// A parameter, KEY=VALUE, named as scikit-learn names it (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Train on this share of the rows and evaluate on the rest [default: 0.8].
    #[arg(long)]
    pub split: Option<f64>,
    /// Cross-validate over K folds instead (the model kept is then fitted on every row).
    #[arg(long, value_name = "K")]
    pub cv: Option<usize>,
    /// Train on every row of --data and evaluate on this dataset version instead.
    #[arg(long, value_name = "NAME@VERSION")]
    pub test_data: Option<String>,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The experiment to record the run in (created when missing).
    #[arg(long, default_value = "Default")]
    pub experiment: String,
    /// The run's name [default: ALGO-DATASET].
    #[arg(long)]
    pub run_name: Option<String>,
    /// Only these columns as features (comma-separated) [default: every column but the target].
    #[arg(long, value_delimiter = ',', value_name = "COL,...")]
    pub features: Option<Vec<String>>,
    /// A column not to use as a feature (repeatable).
    #[arg(long = "drop", value_name = "COL")]
    pub drop: Vec<String>,
    /// Search hyperparameters: grid (every combination) or random (--trials draws); each trial
    /// is a child run of one parent run.
    #[arg(long, value_parser = ["grid", "random"])]
    pub search: Option<String>,
    /// The search space (YAML: parameter -> list of values, or {low, high, log, int}).
    #[arg(long, value_name = "FILE", requires = "search")]
    pub space: Option<PathBuf>,
    /// Trials of a random search [default: 10].
    #[arg(long, requires = "search")]
    pub trials: Option<usize>,
    /// The metric that picks the best trial [default: roc_auc, else accuracy, for
    /// classification; rmse for regression].
    #[arg(long, requires = "search")]
    pub metric: Option<String>,
    /// Register the model as a new version of this registered model (created when missing).
    #[arg(long, value_name = "MODEL")]
    pub register: Option<String>,
    /// List the algorithms' parameters (of --algo, or all) and exit.
    #[arg(long)]
    pub help_params: bool,
    #[command(flatten)]
    pub store: StoreArgs,
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
    if let Some(h) = &trained.history {
        for (name, losses) in [
            ("train_loss", &h.train_loss),
            ("validation_loss", &h.validation_loss),
        ] {
            for (step, v) in losses.iter().enumerate() {
                logged.push((name.to_string(), *v, step as i64));
            }
        }
        let iterations = h.train_loss.len().saturating_sub(1) as f64;
        logged.push(("n_iter".into(), iterations, 0));
        table.push(("n_iter".into(), iterations, None));
    }
    logged.push(("fit_seconds".into(), trained.fit_seconds, 0));
    table.push(("fit_seconds".into(), trained.fit_seconds, None));
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
        // A silhouette needs two clusters among the rows scored: NaN when they fall in one.
        Evaluation::Clustering(m) => vec![
            ("inertia", m.inertia),
            ("silhouette", m.silhouette.unwrap_or(f64::NAN)),
        ],
    }
}

/// `2026-11-30 08:00:00.000000`, as MLflow writes `utc_time_created`.
fn created_now() -> String {
    let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    now.trim_end_matches('Z').replacen('T', " ", 1)
}

/// What every training of one `keel train` shares: the data, the target and the split.
struct Job {
    version: keel_core::data::DataVersion,
    label: String,
    /// `--test-data`: its version, label and rows.
    test: Option<(keel_core::data::DataVersion, String, Arc<Columns>)>,
    table: Arc<Columns>,
    algo: &'static Algorithm,
    task: Option<Task>,
    holdout: Holdout,
    args: TrainArgs,
    lineage: Vec<Tag>,
}

impl Job {
    /// Fits with `params` (on a blocking thread).
    async fn fit(&self, params: Params) -> Result<Trained> {
        let test = self.test.as_ref().map(|t| t.2.clone());
        self.fit_on(params, self.table.clone(), self.holdout, test)
            .await
    }

    /// Fits with `params` on `table`, held out as `holdout` says (with `test` for
    /// [`Holdout::Data`]).
    async fn fit_on(
        &self,
        params: Params,
        table: Arc<Columns>,
        holdout: Holdout,
        test: Option<Arc<Columns>>,
    ) -> Result<Trained> {
        let (algo, task) = (self.algo, self.task);
        let target = self.args.target.clone();
        let (seed, features, drop) = (
            self.args.seed,
            self.args.features.clone(),
            self.args.drop.clone(),
        );
        tokio::task::spawn_blocking(move || {
            train(
                &table,
                &TrainRequest {
                    target: target.as_deref(),
                    task,
                    algorithm: algo,
                    params,
                    holdout,
                    seed,
                    features,
                    drop,
                    test: test.as_deref(),
                },
            )
        })
        .await
        .context("training task failed")?
        .map_err(Into::into)
    }

    /// Records one training as a run (a child of `parent` in a search): params, metrics, the
    /// dataset input, the model directory, charts and feature importance.
    async fn record(
        &self,
        tracking: &Tracking<'_>,
        trained: &Trained,
        params: &Params,
        name: &str,
        parent: Option<&RunRef>,
        holdout: Holdout,
    ) -> Result<(RunRef, ModelRef)> {
        let model = KeelModel::of(trained, self.args.target.as_deref(), &self.table)?;
        let mut charts = charts(trained);
        let names = trained.pipeline.feature_names();
        let importance = trained.model.importance();
        if let Some(svg) = keel_ml::charts::importance(&names, &importance, 20) {
            charts.push(("feature_importance.svg".into(), svg));
        }
        let importance_json = serde_json::to_vec_pretty(&json!({
            "kind": trained.model.importance_kind(),
            "features": names.iter().zip(&importance)
                .map(|(n, v)| json!({"feature": n, "importance": v}))
                .collect::<Vec<_>>(),
        }))?;
        let (logged, _) = metrics(trained);
        let mut run_params: Vec<(String, String)> = params.logged();
        if let Some(target) = &self.args.target {
            run_params.push(("target".into(), target.clone()));
        }
        run_params.extend([
            ("algo".to_string(), self.algo.name.to_string()),
            ("task".into(), trained.task.as_str().into()),
            ("seed".into(), self.args.seed.to_string()),
            ("dataset".into(), self.label.clone()),
        ]);
        // The input columns, so the training can be rerun on other data with the same ones
        // (MLflow keeps a param's value up to 6,000 characters).
        let features = trained.features.join(",");
        if features.len() <= 6000 {
            run_params.push(("features".into(), features));
        }
        // What the metrics were measured on: a held-out share, folds, or the test data.
        match holdout {
            Holdout::Split(s) => run_params.push(("split".into(), s.to_string())),
            Holdout::Folds(k) => run_params.push(("cv".into(), k.to_string())),
            Holdout::Data => {
                if let Some((_, label, _)) = &self.test {
                    run_params.push(("test_data".into(), label.clone()));
                }
            }
        }
        let mut tags = self.lineage.clone();
        if let Some(p) = parent {
            tags.push(Tag {
                key: "mlflow.parentRunId".into(),
                value: p.run_id.clone(),
            });
        }
        let run = tracking.start(&self.args.experiment, name, tags).await?;
        let recorded = async {
            let logged_model = tracking
                .create_model(
                    &run,
                    "model",
                    self.algo.name,
                    &run_params,
                    self.lineage.clone(),
                )
                .await?;
            tracking
                .log(&run, run_params, logged, Some(&logged_model))
                .await?;
            tracking
                .log_dataset(&run, dataset(&self.version, trained)?, "training")
                .await?;
            if let Some((version, _, _)) = &self.test {
                tracking
                    .log_dataset(&run, dataset(version, trained)?, "evaluation")
                    .await?;
            }
            let uploaded = self
                .upload_model(tracking, &model, &run, &logged_model)
                .await;
            tracking
                .finish_model(&run, &logged_model, uploaded.is_ok())
                .await?;
            uploaded?;
            tracking
                .upload(&run, "feature_importance.json", importance_json)
                .await?;
            for (file, svg) in &charts {
                tracking
                    .upload(&run, &format!("charts/{file}"), svg.clone().into_bytes())
                    .await?;
            }
            anyhow::Ok(logged_model)
        }
        .await;
        tracking.finish(&run, recorded.is_ok()).await?;
        Ok((run, recorded?))
    }

    /// Writes the model directory and uploads its files as the logged model's.
    async fn upload_model(
        &self,
        tracking: &Tracking<'_>,
        model: &KeelModel,
        run: &RunRef,
        logged: &ModelRef,
    ) -> Result<()> {
        let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
        let dir = scratch.path().join("model");
        let created = created_now();
        let stamp = model_dir::Stamp {
            created: &created,
            run_id: Some(&run.run_id),
            model_id: Some(&logged.model_id),
        };
        model_dir::write(&dir, model, &self.table, &stamp)?;
        for entry in std::fs::read_dir(&dir).context("model directory")? {
            let entry = entry?;
            let file = entry.file_name().to_string_lossy().into_owned();
            tracking
                .upload_model(logged, &file, std::fs::read(entry.path())?)
                .await?;
        }
        Ok(())
    }

    /// `--run-name`, else `PREFIX` + `ALGO-DATASET`.
    fn run_name(&self, prefix: &str) -> String {
        self.args
            .run_name
            .clone()
            .unwrap_or_else(|| format!("{prefix}{}-{}", self.algo.name, self.version.name))
    }

    /// Registers `run`'s logged model under `--register`, if given.
    async fn register(
        &self,
        tracking: &Tracking<'_>,
        run: &RunRef,
        logged: &ModelRef,
    ) -> Result<Option<(String, String)>> {
        let Some(model) = &self.args.register else {
            return Ok(None);
        };
        let mut tags = self.lineage.clone();
        tags.push(Tag {
            key: "keel.run_id".into(),
            value: run.run_id.clone(),
        });
        let version = tracking.register(model, run, logged, tags).await?;
        Ok(Some((model.clone(), version)))
    }
}

/// Reads the dataset version and its rows, and checks the arguments.
async fn prepare(store: &Store, a: TrainArgs) -> Result<Job> {
    let Some(algo_name) = a.algo.as_deref() else {
        bail!("--algo is needed (`--help-params` lists the algorithms)");
    };
    let algo = algorithm(algo_name)?;
    algo.parse(&a.params)?;
    let task = match a.task.as_deref() {
        None => None,
        Some("classification") => Some(Task::Classification),
        Some("regression") => Some(Task::Regression),
        Some("clustering") => Some(Task::Clustering),
        Some(other) => bail!("--task '{other}': use classification, regression or clustering"),
    };
    if a.target.is_none() && task != Some(Task::Clustering) && !algo.supports(Task::Clustering) {
        bail!("--target is needed: {} predicts a column", algo.name);
    }
    let holdout = match (a.split, a.cv, &a.test_data) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            bail!("give one of --split, --cv and --test-data")
        }
        (_, Some(k), _) => Holdout::Folds(k),
        (Some(s), None, _) => Holdout::Split(s),
        (None, None, Some(_)) => Holdout::Data,
        (None, None, None) => Holdout::Split(0.8),
    };
    let Some(data) = a.data.as_deref() else {
        bail!("--data is needed: NAME@VERSION, or NAME for its newest version");
    };
    let (version, label, table) = load(store, data).await?;
    let test = match &a.test_data {
        Some(r) => {
            let (v, l, t) = load(store, r).await?;
            Some((v, l, Arc::new(t)))
        }
        None => None,
    };
    let mut lineage = vec![
        Tag {
            key: "keel.dataset".into(),
            value: label.clone(),
        },
        Tag {
            key: "keel.dataset_digest".into(),
            value: keel_core::data::digest_of(&version.hash)?.to_string(),
        },
    ];
    if let Some(commit) = git_commit() {
        lineage.push(Tag {
            key: "mlflow.source.git.commit".into(),
            value: commit,
        });
    }
    Ok(Job {
        version,
        label,
        test,
        table: Arc::new(table),
        algo,
        task,
        holdout,
        args: a,
        lineage,
    })
}

/// A dataset version, its label (`NAME@VERSION`) and its rows.
pub(crate) async fn load(
    store: &Store,
    reference: &str,
) -> Result<(keel_core::data::DataVersion, String, Columns)> {
    let (version, _) = crate::data::version(store, &DataRef::parse(reference)?).await?;
    let label = format!("{}@{}", version.name, version.version);
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let files = materialise(store, &version, &scratch.path().join("data")).await?;
    let table = tokio::task::spawn_blocking(move || {
        let paths: Vec<&Path> = files.files.iter().map(|(_, p)| p.as_path()).collect();
        keel_data::columns::load_columns(files.format, &paths)
    })
    .await
    .context("reading task failed")??;
    Ok((version, label, table))
}

/// `keel train`.
/// One training as `a` asks (not a search), recorded and registered like `keel train`'s,
/// without output: the run and the registered version.
pub(crate) async fn train_quietly(
    store: &Store,
    tracking: &Tracking<'_>,
    a: TrainArgs,
) -> Result<(RunRef, Option<(String, String)>)> {
    let (_, _, run, _, registered) = train_once(store, tracking, a, false).await?;
    Ok((run, registered))
}

/// What one training made: the job, the model, its run and logged model, and its registered
/// version.
type Once = (Job, Trained, RunRef, ModelRef, Option<(String, String)>);

/// Prepares, fits (under a spinner when `spin` and not `--json`), records and registers one
/// training.
async fn train_once(
    store: &Store,
    tracking: &Tracking<'_>,
    a: TrainArgs,
    spin: bool,
) -> Result<Once> {
    let job = prepare(store, a).await?;
    let params = job.algo.parse(&job.args.params)?;
    let spinner = crate::data_validate::spinner(
        job.args.store.json || !spin,
        format!("training {} on {}", job.algo.name, job.label),
    );
    let trained = job.fit(params.clone()).await;
    spinner.finish_and_clear();
    let trained = trained?;
    let name = job.run_name("");
    let (run, logged) = job
        .record(tracking, &trained, &params, &name, None, job.holdout)
        .await?;
    let registered = job.register(tracking, &run, &logged).await?;
    Ok((job, trained, run, logged, registered))
}

pub async fn run(store: &Store, tracking: Tracking<'_>, a: TrainArgs) -> Result<()> {
    if a.search.is_some() {
        return run_search(store, tracking, a).await;
    }
    let (job, trained, run, logged, registered) = train_once(store, &tracking, a, true).await?;
    let (_, rows) = metrics(&trained);
    if job.args.store.json {
        let metrics: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(k, v, _)| (k.clone(), json!(v))).collect();
        println!(
            "{}",
            json!({
                "run_id": run.run_id, "experiment_id": run.experiment_id,
                "model_id": logged.model_id, "dataset": job.label,
                "task": trained.task.as_str(), "task_reason": trained.task_reason,
                "classes": trained.classes, "rows": trained.rows,
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
        "{} on {} ({} rows{}), {}:",
        job.algo.name,
        job.label,
        trained.rows,
        if trained.missing_target > 0 {
            format!(", {} without a target left out", trained.missing_target)
        } else {
            String::new()
        },
        match job.holdout {
            Holdout::Split(s) => format!("trained on {}%, held-out metrics", (s * 100.0).round()),
            Holdout::Folds(k) => format!("{k}-fold cross-validation, mean ± std"),
            Holdout::Data => format!(
                "metrics on {}",
                job.test.as_ref().map_or("the test data", |t| t.1.as_str())
            ),
        }
    );
    println!("task: {}", trained.task_reason);
    println!("{t}");
    println!(
        "run {} (experiment '{}'), model {}",
        run.run_id, job.args.experiment, logged.model_id
    );
    if let Some((model, version)) = registered {
        println!("registered {model} version {version}");
    }
    Ok(())
}

/// The metrics a training reports (classification, regression, clustering).
const METRICS: [&str; 12] = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
    "mape",
    "silhouette",
    "inertia",
];

/// Whether a larger value of `metric` is better.
fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "log_loss" | "rmse" | "mae" | "mape" | "inertia")
}

/// `keel train --search grid|random`: one parent run, one child run per trial (fitted
/// several at a time, as many as there are cores), the best by `--metric` logged on the
/// parent and registered with `--register`.
async fn run_search(store: &Store, tracking: Tracking<'_>, a: TrainArgs) -> Result<()> {
    let (kind, space_file, trials, metric) = (
        a.search.clone().unwrap_or_default(),
        a.space.clone(),
        a.trials,
        a.metric.clone(),
    );
    if let Some(m) = &metric
        && !METRICS.contains(&m.as_str())
    {
        bail!("--metric '{m}': use one of {}", METRICS.join(", "));
    }
    let job = prepare(store, a).await?;
    let Some(space_file) = space_file else {
        bail!("--search needs --space FILE (YAML: parameter -> values or range)");
    };
    let text = std::fs::read_to_string(&space_file)
        .with_context(|| format!("cannot read {}", space_file.display()))?;
    let space =
        Space::from_yaml(&text, job.algo).with_context(|| space_file.display().to_string())?;
    let search = match kind.as_str() {
        "grid" => Search::Grid,
        "random" => Search::Random {
            trials: trials.unwrap_or(10),
            seed: job.args.seed,
        },
        other => bail!("--search '{other}': use grid or random"),
    };
    // A trial's values replace the same parameters given with --param.
    let key = |p: &str| p.split_once('=').map_or(p, |(k, _)| k.trim()).to_string();
    let mut fixed: Vec<String> = job
        .args
        .params
        .iter()
        .filter(|p| !space.0.contains_key(&key(p)))
        .cloned()
        .collect();
    let drawn = space.trials(search)?;
    // Trials run side by side, as many as there are cores; an algorithm with threads of its
    // own gets its share of the cores unless n_jobs was given, so the cores are not
    // oversubscribed.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parallel = cores.min(drawn.len()).max(1);
    let n_jobs_given =
        space.0.contains_key("n_jobs") || job.args.params.iter().any(|p| key(p) == "n_jobs");
    if job.algo.params.iter().any(|p| p.name == "n_jobs") && !n_jobs_given {
        fixed.push(format!("n_jobs={}", (cores / parallel).max(1)));
    }
    let trial_params: Vec<Params> = drawn
        .into_iter()
        .map(|t| job.algo.parse(&[fixed.clone(), t].concat()))
        .collect::<keel_ml::Result<_>>()?;
    let parent_name = job.run_name("search-");
    let parent = tracking
        .start(&job.args.experiment, &parent_name, job.lineage.clone())
        .await?;
    let spinner = crate::data_validate::spinner(
        job.args.store.json,
        format!(
            "{} trials of {} on {}",
            trial_params.len(),
            job.algo.name,
            job.label
        ),
    );
    // Trials are chosen by cross-validation on training rows only; the rows that score the
    // chosen one (the held-out split, or --test-data) play no part in the choice. With --cv
    // there are no such rows: the choice's own score is all there is, and says so.
    let selection = Selection::of(&job)?;
    let fitted: Vec<Result<Trained>> = futures::stream::iter(trial_params.iter().cloned())
        .map(|p| job.fit_on(p, selection.train.clone(), selection.holdout, None))
        .buffered(parallel)
        .collect()
        .await;
    spinner.finish_and_clear();
    let outcome = async {
        let mut done = Vec::new();
        let mut models = Vec::new();
        for (i, (trained, params)) in fitted.into_iter().zip(&trial_params).enumerate() {
            let trained = trained?;
            let recorded = job
                .record(
                    &tracking,
                    &trained,
                    params,
                    &format!("{parent_name}-{}", i + 1),
                    Some(&parent),
                    selection.holdout,
                )
                .await?;
            let (_, rows) = metrics(&trained);
            done.push((recorded, params.clone(), rows));
            models.push(trained);
        }
        let metric = match metric {
            Some(m) => m,
            None => match done.first().map(|(_, _, rows)| rows) {
                Some(rows) if score(rows, "roc_auc").is_some() => "roc_auc".into(),
                Some(rows) if score(rows, "accuracy").is_some() => "accuracy".into(),
                Some(rows) if score(rows, "silhouette").is_some() => "silhouette".into(),
                _ => "rmse".into(),
            },
        };
        let score = |rows: &[Shown]| score(rows, &metric);
        if done.iter().any(|(_, _, rows)| score(rows).is_none()) {
            bail!("--metric '{metric}' is not among the metrics of these trials");
        }
        let up = higher_is_better(&metric);
        let best = (0..done.len())
            .max_by(|&x, &y| {
                let (a, b) = (
                    score(&done[x].2).unwrap_or(f64::NAN),
                    score(&done[y].2).unwrap_or(f64::NAN),
                );
                let order = a.total_cmp(&b);
                // Ties go to the earlier trial.
                (if up { order } else { order.reverse() }).then(y.cmp(&x))
            })
            .unwrap_or(0);
        let best_score = score(&done[best].2).unwrap_or(f64::NAN);
        // The chosen model scored once on rows the choice never saw.
        let tested: Vec<(&'static str, f64)> = match (&selection.test, job.args.target.as_deref()) {
            (Some(test), Some(target)) => {
                named(&keel_ml::train::evaluate_on(&models[best], target, test)?)
            }
            _ => Vec::new(),
        };
        let mut logged = vec![(format!("best_{metric}"), best_score, 0)];
        logged.extend(tested.iter().map(|(k, v)| (format!("test_{k}"), *v, 0)));
        tracking
            .log(
                &parent,
                vec![
                    ("search".into(), kind.clone()),
                    ("trials".into(), done.len().to_string()),
                    ("metric".into(), metric.clone()),
                    ("selection".into(), selection.describe.clone()),
                    ("algo".into(), job.algo.name.into()),
                    ("dataset".into(), job.label.clone()),
                ],
                logged,
                None,
            )
            .await?;
        anyhow::Ok((done, best, metric, best_score, tested))
    }
    .await;
    tracking.finish(&parent, outcome.is_ok()).await?;
    let (done, best, metric, best_score, tested) = outcome?;
    let test_score = tested
        .iter()
        .find(|(k, _)| *k == metric.as_str())
        .map(|(_, v)| *v);
    let (best_run, best_model) = &done[best].0;
    let registered = job.register(&tracking, best_run, best_model).await?;
    if job.args.store.json {
        let trials: Vec<serde_json::Value> = done
            .iter()
            .map(|((run, logged), params, rows)| {
                let metrics: serde_json::Map<String, serde_json::Value> =
                    rows.iter().map(|(k, v, _)| (k.clone(), json!(v))).collect();
                json!({"run_id": run.run_id, "model_id": logged.model_id, "params": params.logged().into_iter().collect::<std::collections::BTreeMap<_, _>>(), "metrics": metrics})
            })
            .collect();
        println!(
            "{}",
            json!({
                "parent_run_id": parent.run_id, "experiment_id": parent.experiment_id,
                "metric": metric, "best_run_id": best_run.run_id, "best": best_score,
                "selection": selection.describe, "evaluation": selection.evaluation,
                "test": tested.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "trials": trials,
                "registered": registered.as_ref().map(|(m, v)| json!({"name": m, "version": v})),
            })
        );
        return Ok(());
    }
    let mut t = output::table(&["trial", "run", "params", &metric]);
    for (i, ((run, _), params, rows)) in done.iter().enumerate() {
        let changed: Vec<String> = params
            .logged()
            .into_iter()
            .filter(|(k, _)| space.0.contains_key(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mark = if i == best { " *" } else { "" };
        t.add_row(vec![
            format!("{}{mark}", i + 1),
            run.run_id.clone(),
            changed.join(" "),
            score(rows, &metric).map_or("-".into(), |v| format!("{v:.4}")),
        ]);
    }
    println!(
        "{} search over {} trials of {} on {}, best {metric} {best_score:.4} (*), chosen by {}:",
        kind,
        done.len(),
        job.algo.name,
        job.label,
        selection.describe
    );
    println!("{t}");
    match test_score {
        Some(v) => println!(
            "the chosen model on {}: {metric} {v:.4} (these rows took no part in the choice)",
            selection.evaluation
        ),
        None => println!("{}", selection.evaluation),
    }
    println!(
        "parent run {} (experiment '{}')",
        parent.run_id, job.args.experiment
    );
    if let Some((model, version)) = registered {
        println!("registered {model} version {version} (the best trial)");
    }
    Ok(())
}

/// The folds a search chooses its trial by.
const SEARCH_FOLDS: usize = 3;

/// How a search chooses among its trials and where the chosen one is scored.
struct Selection {
    /// The rows trials are fitted and compared on.
    train: Arc<Columns>,
    /// How trials are compared on them.
    holdout: Holdout,
    /// Rows that score the chosen trial, when there are any.
    test: Option<Arc<Columns>>,
    /// The comparison, in words.
    describe: String,
    /// The scoring, in words.
    evaluation: String,
}

impl Selection {
    fn of(job: &Job) -> Result<Selection> {
        let folds = |rows: usize| {
            format!("{SEARCH_FOLDS}-fold cross-validation on the {rows} training rows")
        };
        Ok(match job.holdout {
            Holdout::Split(train_share) => {
                let split = keel_ml::split::train_test(
                    job.table.rows(),
                    1.0 - train_share,
                    job.args.seed,
                    None,
                )?;
                Selection {
                    describe: folds(split.train.len()),
                    evaluation: format!("the {} held-out rows", split.test.len()),
                    train: Arc::new(job.table.take(&split.train)),
                    test: Some(Arc::new(job.table.take(&split.test))),
                    holdout: Holdout::Folds(SEARCH_FOLDS),
                }
            }
            Holdout::Data => Selection {
                describe: folds(job.table.rows()),
                evaluation: format!(
                    "the test data {}",
                    job.test.as_ref().map_or("", |t| t.1.as_str())
                ),
                train: job.table.clone(),
                test: job.test.as_ref().map(|t| t.2.clone()),
                holdout: Holdout::Folds(SEARCH_FOLDS),
            },
            Holdout::Folds(k) => Selection {
                describe: format!("{k}-fold cross-validation on all {} rows", job.table.rows()),
                evaluation: "no rows were left out of the choice, so the best score is \
                             optimistic (--split or --test-data keep rows to score it on)"
                    .into(),
                train: job.table.clone(),
                test: None,
                holdout: Holdout::Folds(k),
            },
        })
    }
}

/// The value of `metric` among shown rows.
fn score(rows: &[Shown], metric: &str) -> Option<f64> {
    rows.iter().find(|(k, _, _)| k == metric).map(|r| r.1)
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
        (None, Some(Evaluation::Clustering(m))) => {
            if let Some(svg) = keel_ml::charts::cluster_sizes(&m.sizes) {
                out.push(("cluster_sizes.svg".to_string(), svg));
            }
        }
        _ => {}
    }
    out
}

/// Runs `keel train`.
pub(crate) async fn command(cmd: TrainArgs) -> Result<()> {
    if cmd.help_params {
        return help_params(cmd.algo.as_deref());
    }
    let stores = crate::stores::Stores::open(&cmd.store).await?;
    let client = stores.client().await?;
    run(stores.data().as_ref(), Tracking(&client), cmd).await
}
