//! The loop's automatic steps. `keel monitor retrain` reruns the champion's recorded training
//! (algorithm, params, features, target, seed and holdout, from its source run) on newer data
//! and registers the result with the `challenger` alias; `keel serve NAME@champion --shadow
//! NAME@challenger` (or `--canary NAME@challenger:PCT`) follows that alias. `keel monitor
//! promote` compares challenger and champion on the same live traffic and moves the champion
//! alias only when the challenger is shown better. Each step is a run of the monitoring
//! experiment with its evidence; each can be a dry run, and promotion can wait for a person.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_data::Format;
use keel_monitor::Window;
use keel_monitor::compare::Promotion;
use keel_monitor::rules::Truth;
use keel_monitor::truth::Labels;
use serde_json::{Value, json};

use super::check::{self, lineage, local_log, now_ms};
use super::record::record_step;
use crate::args::StoreArgs;
use crate::client::Client;
use crate::data::{DataRef, Store};
use crate::stores::Stores;
use crate::train::{TrainArgs, train_quietly};

/// Params a training run records that are not the algorithm's own.
const TRAINING_PARAMS: [&str; 9] = [
    "target",
    "algo",
    "task",
    "seed",
    "dataset",
    "split",
    "cv",
    "test_data",
    "features",
];

/// Why a retraining on the newest data did not happen: the champion was trained on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NothingNewer(pub String);

/// What a retraining trains on.
pub(crate) enum TrainingData {
    /// This dataset version.
    Given(String),
    /// The newest version of the dataset the champion was trained on.
    Newest,
    /// That version plus the rows logged in the last span (`7d`) with ground truth.
    Feedback(String),
}

/// One retraining, as asked.
pub(crate) struct RetrainRequest {
    /// The champion: `NAME@ALIAS`.
    pub model: String,
    /// The data.
    pub data: TrainingData,
    /// The prediction log (for the feedback rows).
    pub log_dir: PathBuf,
    /// The alias the new version gets.
    pub alias: String,
    /// Record the plan, train nothing.
    pub dry_run: bool,
    /// The experiment the step is recorded in.
    pub experiment: String,
    /// Ground truth for the feedback rows from a labelled dataset version, beside
    /// `/feedback`'s.
    pub truth: Option<Truth>,
}

/// What a retraining did.
pub(crate) struct Retrained {
    /// The champion's version.
    pub champion: String,
    /// The dataset version trained on (`NAME@V`).
    pub data: String,
    /// The new version (none for a dry run).
    pub challenger: Option<String>,
    /// The training run (none for a dry run).
    pub training_run: Option<String>,
    /// The step's run.
    pub run_id: String,
}

/// A `NAME@ALIAS` spec's parts.
fn alias_spec(model: &str) -> Result<(String, String)> {
    match model.split_once('@') {
        Some((n, a)) if !n.is_empty() && !a.is_empty() => Ok((n.to_string(), a.to_string())),
        _ => bail!(
            "'{model}': retraining and promotion move aliases, so the champion is named NAME@ALIAS"
        ),
    }
}

/// The version `alias` of `name` names, or `None` when it names none.
pub(crate) async fn alias_version(
    client: &Client,
    name: &str,
    alias: &str,
) -> Result<Option<String>> {
    let spec = keel_serve::source::ModelSpec::Alias {
        name: name.to_string(),
        alias: alias.to_string(),
    };
    match crate::serve::registered_version(client, &spec).await {
        Ok(v) => Ok(Some(v)),
        Err(keel_serve::error::ServeError::NotFound(_)) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// Reruns the champion's training as `req` asks and registers the result with its alias.
pub(crate) async fn retrain(
    stores: &Stores,
    client: &Client,
    req: &RetrainRequest,
) -> Result<Retrained> {
    let (name, _) = alias_spec(&req.model)?;
    let (_, champion) = check::resolve(client, &req.model).await?;
    let trained = lineage(client, &name, &champion).await?;
    let Some(run_id) = trained.run_id.clone() else {
        bail!("{name}/{champion} has no source run: keel cannot tell how it was trained");
    };
    let Some(algo) = trained.params.get("algo").cloned() else {
        bail!(
            "the source run {run_id} of {name}/{champion} records no algo param: only a `keel train` run can be rerun"
        );
    };
    let Some(base) = trained.dataset else {
        bail!(
            "keel cannot tell which dataset version {name}/{champion} was trained on (its run {run_id} has no input that is a keel dataset version)"
        );
    };
    let store = stores.data();
    let base_version = base.version.unwrap_or_default();
    let data = match &req.data {
        TrainingData::Given(r) => {
            let (v, _) = crate::data::version(store.as_ref(), &DataRef::parse(r)?).await?;
            format!("{}@{}", v.name, v.version)
        }
        TrainingData::Newest => {
            let newest = DataRef {
                name: base.name.clone(),
                version: None,
            };
            let (v, _) = crate::data::version(store.as_ref(), &newest).await?;
            if v.version <= base_version {
                return Err(NothingNewer(format!(
                    "{}@{base_version}, which {name}/{champion} was trained on, is the newest version of '{}': add a newer one, or retrain on the feedback",
                    base.name, base.name
                ))
                .into());
            }
            format!("{}@{}", v.name, v.version)
        }
        TrainingData::Feedback(span) if req.dry_run => {
            format!(
                "{}@{base_version} plus the labelled rows of the last {span}",
                base.name
            )
        }
        TrainingData::Feedback(span) => {
            let target = trained.target.clone().with_context(|| {
                format!("the source run {run_id} records no target: there is nothing to label")
            })?;
            let window = Window::last(span, now_ms())?;
            let labels = match &req.truth {
                Some(t) => Some(check::read_labels(store.as_ref(), t, Some(&target)).await?),
                None => None,
            };
            let logged = (req.log_dir.as_path(), name.as_str(), window, labels);
            with_feedback(store.as_ref(), &base, logged, &target).await?
        }
    };
    let params = vec![
        ("model".to_string(), name.clone()),
        ("champion_version".into(), champion.clone()),
        ("source_run".into(), run_id.clone()),
        ("algo".into(), algo.clone()),
        ("data".into(), data.clone()),
        ("trained_on".into(), format!("{}@{base_version}", base.name)),
        ("alias".into(), req.alias.clone()),
    ];
    if req.dry_run {
        let run = record_step(
            client,
            &req.experiment,
            (&name, &champion),
            "retrain",
            "dry-run",
            params,
            Vec::new(),
            Vec::new(),
        )
        .await?;
        return Ok(Retrained {
            champion,
            data,
            challenger: None,
            training_run: None,
            run_id: run,
        });
    }
    let experiment = match &trained.experiment_id {
        Some(id) => {
            let e: Value = client
                .get("experiments/get", &[("experiment_id", id.clone())])
                .await?;
            e["experiment"]["name"]
                .as_str()
                .unwrap_or("Default")
                .to_string()
        }
        None => "Default".into(),
    };
    let args = training_args(&trained.params, &data, &name, &experiment, &champion)?;
    let (run, registered) = train_quietly(store.as_ref(), &crate::tracking::Tracking(client), args)
        .await
        .with_context(|| format!("retraining {name}/{champion} on {data} failed"))?;
    let Some((_, version)) = registered else {
        bail!("the retrained model was not registered");
    };
    let _: Value = client
        .post(
            "registered-models/alias",
            &json!({"name": name, "alias": req.alias, "version": version}),
        )
        .await?;
    let mut params = params;
    params.push(("training_run".into(), run.run_id.clone()));
    params.push(("challenger_version".into(), version.clone()));
    let step = record_step(
        client,
        &req.experiment,
        (&name, &champion),
        "retrain",
        "trained",
        params,
        Vec::new(),
        Vec::new(),
    )
    .await?;
    Ok(Retrained {
        champion,
        data,
        challenger: Some(version),
        training_run: Some(run.run_id),
        run_id: step,
    })
}

/// `keel train`'s arguments that rerun a recorded training (its `params`) on `data`,
/// registering the result as a new version of `model`.
fn training_args(
    params: &BTreeMap<String, String>,
    data: &str,
    model: &str,
    experiment: &str,
    champion: &str,
) -> Result<TrainArgs> {
    let number = |key: &str| -> Result<Option<f64>> {
        params
            .get(key)
            .map(|v| {
                v.parse::<f64>()
                    .with_context(|| format!("param {key} is '{v}', not a number"))
            })
            .transpose()
    };
    let features = params
        .get("features")
        .filter(|f| !f.is_empty())
        .map(|f| f.split(',').map(str::to_string).collect());
    Ok(TrainArgs {
        data: Some(data.to_string()),
        target: params.get("target").cloned(),
        task: params.get("task").cloned(),
        algo: params.get("algo").cloned(),
        params: params
            .iter()
            .filter(|(k, _)| !TRAINING_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        split: number("split")?,
        cv: number("cv")?.map(|k| k as usize),
        test_data: params.get("test_data").cloned(),
        seed: number("seed")?.map_or(0, |s| s as u64),
        experiment: experiment.to_string(),
        run_name: Some(format!("retrain {model}/{champion} on {data}")),
        features,
        drop: Vec::new(),
        search: None,
        space: None,
        trials: None,
        metric: None,
        register: Some(model.to_string()),
        help_params: false,
        store: StoreArgs {
            json: true,
            ..StoreArgs::default()
        },
    })
}

/// Stores `base` plus `model`'s rows logged in `window` with ground truth (the truth as
/// `target`) as a new version of `base`'s dataset; its `NAME@V`.
async fn with_feedback(
    store: &Store,
    base: &DataRef,
    (log_dir, model, window, labels): (&Path, &str, Window, Option<Labels>),
    target: &str,
) -> Result<String> {
    let (v, _) = crate::data::version(store, base).await?;
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let files = crate::data::materialise(store, &v, scratch.path()).await?;
    let fetched = local_log(log_dir, model, &[window], false).await?;
    let (dir, model_name, target_name) = (
        fetched.path().to_path_buf(),
        model.to_string(),
        target.to_string(),
    );
    let out = scratch.path().join(format!("{}.parquet", v.name));
    let written = out.clone();
    let truth_source = labels.as_ref().map(|l| l.source.clone());
    let added_rows = tokio::task::spawn_blocking(move || {
        let paths: Vec<&Path> = files.files.iter().map(|(_, p)| p.as_path()).collect();
        keel_monitor::labelled::with_labelled_rows(
            (files.format, &paths),
            (&dir, &model_name, &window, labels.as_ref()),
            &target_name,
            &written,
        )
    })
    .await
    .context("the retraining task failed")??;
    if added_rows == 0 {
        bail!("no logged prediction of {model} in {window} has ground truth");
    }
    let mut ws = keel_data::workspace::Workspace::open(scratch.path())?;
    let added = keel_data::add(
        keel_data::AddRequest {
            path: out,
            name: Some(v.name.clone()),
            format: Some(Format::Parquet),
            description: format!(
                "{}@{} plus {added_rows} rows {model} answered in {window}, labelled by its feedback{}",
                v.name,
                v.version,
                truth_source
                    .map(|s| format!(" and {s}"))
                    .unwrap_or_default()
            ),
            created_by: crate::data::user(),
            sync: false,
        },
        store,
        &mut ws,
        &keel_data::Quiet,
    )
    .await?;
    drop(fetched);
    Ok(format!("{}@{}", added.version.name, added.version.version))
}

/// One comparison of challenger and champion, as asked.
pub(crate) struct PromoteRequest {
    /// The champion: `NAME@ALIAS`.
    pub model: String,
    /// The challenger's alias.
    pub challenger: String,
    /// The prediction log.
    pub log_dir: PathBuf,
    /// The span of the log compared, up to now.
    pub window: String,
    /// Labelled rows each side needs.
    pub min_rows: u64,
    /// The significance level.
    pub alpha: f64,
    /// Whether a better challenger may be promoted now (else a person approves it).
    pub approved: bool,
    /// Record the decision, move nothing.
    pub dry_run: bool,
    /// The experiment the step is recorded in.
    pub experiment: String,
    /// Ground truth from a labelled dataset version, beside `/feedback`'s.
    pub truth: Option<Truth>,
}

/// What a comparison decided.
pub(crate) struct Promoted {
    /// The comparison.
    pub promotion: Promotion,
    /// `promoted`, `kept`, `waiting`, `dry-run`, `awaiting-approval`, or `requested` (the
    /// champion alias is protected: a request to move it waits for approval).
    pub decision: &'static str,
    /// The step's run.
    pub run_id: String,
}

/// Compares the challenger with the champion and promotes it when shown better (and allowed).
pub(crate) async fn promote(
    stores: &Stores,
    client: &Client,
    req: &PromoteRequest,
) -> Result<Promoted> {
    let (name, champion_alias) = alias_spec(&req.model)?;
    let Some(champion) = alias_version(client, &name, &champion_alias).await? else {
        bail!("{name}@{champion_alias} names no version");
    };
    let Some(challenger) = alias_version(client, &name, &req.challenger).await? else {
        bail!(
            "{name}@{} names no version: there is no challenger to compare",
            req.challenger
        );
    };
    let window = Window::last(&req.window, now_ms())?;
    let labels = match &req.truth {
        Some(t) => {
            let target = lineage(client, &name, &champion).await?.target;
            Some(check::read_labels(stores.data().as_ref(), t, target.as_deref()).await?)
        }
        None => None,
    };
    let truth_source = labels.as_ref().map(|l| l.source.clone());
    let fetched = local_log(&req.log_dir, &name, &[window], false).await?;
    let (dir, model, (a, b)) = (
        fetched.path().to_path_buf(),
        name.clone(),
        (champion.clone(), challenger.clone()),
    );
    let (min_rows, alpha) = (req.min_rows, req.alpha);
    let promotion = tokio::task::spawn_blocking(move || {
        keel_monitor::compare::compare(
            &dir,
            &model,
            (&a, &b),
            window,
            labels.as_ref(),
            min_rows,
            alpha,
        )
    })
    .await
    .context("the comparison task failed")??;
    let decision = match (promotion.better, promotion.test.is_some()) {
        (true, _) if req.dry_run => "dry-run",
        (true, _) if !req.approved => "awaiting-approval",
        (true, _) => "promoted",
        (false, true) => "kept",
        (false, false) => "waiting",
    };
    let params = vec![
        ("model".to_string(), name.clone()),
        ("champion_version".into(), champion.clone()),
        ("challenger_version".into(), challenger.clone()),
        ("window".into(), window.to_string()),
        ("min_rows".into(), req.min_rows.to_string()),
        ("alpha".into(), req.alpha.to_string()),
        (
            "reason".into(),
            promotion.reason.chars().take(500).collect(),
        ),
    ];
    let mut params = params;
    params.extend(truth_source.map(|s| ("truth".to_string(), s)));
    let mut metrics = vec![("paired_rows".to_string(), promotion.paired as f64, 0)];
    for (who, side) in [
        ("champion", &promotion.champion),
        ("challenger", &promotion.challenger),
    ] {
        metrics.push((format!("{who}.labelled_rows"), side.labelled as f64, 0));
        metrics.push((format!("{who}.compared_rows"), side.compared as f64, 0));
        metrics.push((format!("{who}.{}", promotion.metric), side.value, 0));
    }
    if let Some(t) = &promotion.test {
        metrics.push(("p_value".into(), t.pvalue, 0));
        if t.statistic.is_finite() {
            metrics.push(("statistic".into(), t.statistic, 0));
        }
    }
    metrics.retain(|(_, v, _)| v.is_finite());
    let mut decision = decision;
    if decision == "promoted" {
        let moved: Result<Value> = client
            .post(
                "registered-models/alias",
                &json!({"name": name, "alias": champion_alias, "version": challenger}),
            )
            .await;
        match moved {
            Ok(_) => {
                let _: Value = client
                    .delete(
                        "registered-models/alias",
                        &json!({"name": name, "alias": req.challenger}),
                    )
                    .await?;
            }
            // A protected champion moves only by an approved request: file one, with the
            // comparison as its reason, for another manager to approve against the gates.
            Err(e) if is_protected(&e) => {
                let filed: Value = client
                    .keel_post(
                        "/api/keel/v1/alias-requests",
                        &json!({
                            "name": name,
                            "alias": champion_alias,
                            "version": challenger,
                            "reason": format!("keel monitor promotion: {}", promotion.reason),
                        }),
                    )
                    .await?;
                decision = "requested";
                let id = filed["alias_request"]["id"].to_string();
                params.push(("alias_request".into(), id));
            }
            Err(e) => return Err(e),
        }
    }
    let evidence =
        serde_json::to_vec_pretty(&json!({"decision": decision, "comparison": promotion}))?;
    let run_id = record_step(
        client,
        &req.experiment,
        (&name, &champion),
        "promotion",
        decision,
        params,
        metrics,
        vec![("promotion.json", evidence)],
    )
    .await?;
    Ok(Promoted {
        promotion,
        decision,
        run_id,
    })
}

/// Whether `e` is the refusal of a write to a protected alias.
fn is_protected(e: &anyhow::Error) -> bool {
    crate::client::refusal(e)
        .is_some_and(|r| r.code == "PERMISSION_DENIED" && r.message.contains("is protected"))
}

/// What `keel monitor retrain` was asked.
#[derive(Args)]
pub(crate) struct RetrainArgs {
    /// The champion: NAME@ALIAS.
    model: String,
    /// Train on this dataset version [default: the newest version of the dataset the champion
    /// was trained on].
    #[arg(long, value_name = "NAME@VERSION", conflicts_with = "feedback")]
    data: Option<String>,
    /// Train on the champion's dataset version plus the rows logged in --window that have
    /// ground truth (stored first as a new version of that dataset).
    #[arg(long)]
    feedback: bool,
    /// With --feedback: the last span of the log.
    #[arg(long, default_value = "7d", requires = "feedback")]
    window: String,
    /// The alias the new version gets.
    #[arg(long, default_value = "challenger")]
    alias: String,
    /// With --feedback: ground truth also from a labelled dataset version.
    #[command(flatten)]
    truth: check::TruthArgs,
    #[command(flatten)]
    step: StepArgs,
}

/// What `keel monitor promote` was asked.
#[derive(Args)]
pub(crate) struct PromoteArgs {
    /// The champion: NAME@ALIAS.
    model: String,
    /// The challenger's alias.
    #[arg(long, default_value = "challenger")]
    challenger: String,
    /// The last span of the log compared.
    #[arg(long, default_value = "1h")]
    window: String,
    /// Labelled rows each side needs (rows both answered, for a shadow).
    #[arg(long, default_value_t = 200)]
    min_rows: u64,
    /// The significance level of the one-sided test.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    #[command(flatten)]
    truth: check::TruthArgs,
    #[command(flatten)]
    step: StepArgs,
}

/// What both steps take.
#[derive(Args)]
pub(crate) struct StepArgs {
    /// The prediction log's folder.
    #[arg(
        long,
        env = "KEEL_PREDICTION_LOG",
        default_value = "keel-data/predictions"
    )]
    log_dir: PathBuf,
    /// Record what the step would do (train, move an alias), do nothing.
    #[arg(long)]
    dry_run: bool,
    /// The experiment the step is recorded in.
    #[arg(long, default_value = "keel-monitoring")]
    experiment: String,
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) async fn retrain_command(a: RetrainArgs) -> Result<()> {
    if !a.feedback && a.truth.source().is_some() {
        bail!("--truth labels the logged rows a retraining adds to its data: it needs --feedback");
    }
    let stores = Stores::open(&a.step.store).await?;
    let client = stores.client().await?;
    let req = RetrainRequest {
        model: a.model.clone(),
        data: match (&a.data, a.feedback) {
            (Some(d), _) => TrainingData::Given(d.clone()),
            (None, true) => TrainingData::Feedback(a.window.clone()),
            (None, false) => TrainingData::Newest,
        },
        log_dir: a.step.log_dir.clone(),
        alias: a.alias.clone(),
        dry_run: a.step.dry_run,
        experiment: a.step.experiment.clone(),
        truth: a.truth.source(),
    };
    let r = retrain(&stores, &client, &req).await?;
    let (name, _) = alias_spec(&a.model)?;
    if a.step.store.json {
        println!(
            "{}",
            json!({"model": name, "champion": r.champion, "data": r.data, "challenger": r.challenger,
                   "alias": a.alias, "training_run": r.training_run, "run_id": r.run_id, "dry_run": a.step.dry_run})
        );
    } else {
        match &r.challenger {
            Some(v) => println!(
                "retrained {name}/{} on {}: version {v} is {name}@{} (training run {})",
                r.champion,
                r.data,
                a.alias,
                r.training_run.as_deref().unwrap_or_default()
            ),
            None => println!("dry run: would retrain {name}/{} on {}", r.champion, r.data),
        }
        println!("recorded as run {}", r.run_id);
    }
    Ok(())
}

pub(crate) async fn promote_command(a: PromoteArgs) -> Result<()> {
    let stores = Stores::open(&a.step.store).await?;
    let client = stores.client().await?;
    let req = PromoteRequest {
        model: a.model.clone(),
        challenger: a.challenger.clone(),
        log_dir: a.step.log_dir.clone(),
        window: a.window.clone(),
        min_rows: a.min_rows,
        alpha: a.alpha,
        approved: true,
        dry_run: a.step.dry_run,
        experiment: a.step.experiment.clone(),
        truth: a.truth.source(),
    };
    let p = promote(&stores, &client, &req).await?;
    if a.step.store.json {
        let mut v = serde_json::to_value(&p.promotion)?;
        v["decision"] = json!(p.decision);
        v["run_id"] = json!(p.run_id);
        println!("{v}");
    } else {
        println!("{}: {}", p.decision, p.promotion.reason);
        println!("recorded as run {}", p.run_id);
    }
    Ok(())
}
