//! `keel import`: copies a running MLflow server's (or a keel export folder's) experiments, runs
//! (params, tags, whole metric histories, dataset inputs, model outputs, artifacts), logged
//! models, registered models, versions and aliases into a keel store, keeping ids, names and
//! timestamps. `keel export` writes such a folder from a keel store.
//!
//! Every write is "create unless present" or idempotent, so a second import of the same source
//! changes nothing. A journal file records each finished run and logged model, so an interrupted
//! import resumes where it stopped instead of copying everything again.

pub mod cli;
mod folder;
mod journal;
mod source;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keel_core::entities::*;
use keel_core::{ArtifactPath, ArtifactStore, MetadataStore};
use keel_server::api::store_path;

pub use folder::{FolderSource, export};
use journal::Journal;
pub use source::{MlflowSource, Source};
use source::{SrcLoggedModel, SrcMetric, SrcRun};

/// Runs copied at the same time.
const PARALLEL_RUNS: usize = 4;
/// MLflow's limits for one log-batch call.
const BATCH_METRICS: usize = 1000;
const BATCH_PARAMS: usize = 100;
const BATCH_TAGS: usize = 100;

/// What an import moved.
#[derive(Debug, Default)]
pub struct Summary {
    pub experiments_created: AtomicU64,
    pub experiments_existing: AtomicU64,
    pub runs: AtomicU64,
    pub runs_skipped: AtomicU64,
    pub params: AtomicU64,
    pub tags: AtomicU64,
    pub metric_values: AtomicU64,
    pub dataset_inputs: AtomicU64,
    pub logged_models: AtomicU64,
    pub logged_models_skipped: AtomicU64,
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub registered_models: AtomicU64,
    pub model_versions: AtomicU64,
    pub aliases: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Summary {
    /// `(what, how many)` rows for the table after an export.
    pub fn export_rows(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("experiments", g(&self.experiments_created)),
            ("runs", g(&self.runs)),
            ("params", g(&self.params)),
            ("tags", g(&self.tags)),
            ("metric values", g(&self.metric_values)),
            ("dataset inputs", g(&self.dataset_inputs)),
            ("logged models", g(&self.logged_models)),
            ("artifact files", g(&self.files)),
            ("artifact bytes", g(&self.bytes)),
            ("registered models", g(&self.registered_models)),
            ("model versions", g(&self.model_versions)),
            ("aliases", g(&self.aliases)),
        ]
    }

    /// `(what, how many)` rows for the table after an import.
    pub fn rows(&self) -> Vec<(&'static str, u64)> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("experiments created", g(&self.experiments_created)),
            ("experiments already present", g(&self.experiments_existing)),
            ("runs copied", g(&self.runs)),
            ("runs already imported (skipped)", g(&self.runs_skipped)),
            ("params", g(&self.params)),
            ("tags", g(&self.tags)),
            ("metric values", g(&self.metric_values)),
            ("dataset inputs", g(&self.dataset_inputs)),
            ("logged models copied", g(&self.logged_models)),
            (
                "logged models already imported",
                g(&self.logged_models_skipped),
            ),
            ("artifact files", g(&self.files)),
            ("artifact bytes", g(&self.bytes)),
            ("registered models", g(&self.registered_models)),
            ("model versions", g(&self.model_versions)),
            ("aliases", g(&self.aliases)),
        ]
    }
}

/// Where the import writes.
pub struct Target {
    pub meta: Arc<dyn MetadataStore>,
    pub artifacts: Arc<dyn ArtifactStore>,
}

fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    let pb = if quiet {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(len)
    };
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {what:<16} {{pos:>6}}/{{len:<6}} [{{bar:30}}] {{elapsed_precise}} {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style.progress_chars("=> "));
    pb
}

/// Copies everything from `src` into `target`; `journal` is the resume file.
pub async fn copy_all(
    src: &dyn Source,
    target: &Target,
    journal: &Path,
    quiet: bool,
) -> Result<Summary> {
    let journal = Journal::open(journal)?;
    let sum = Summary::default();

    // Experiments first: everything else hangs off them.
    let experiments = src.experiments().await?;
    let mut exp_ids: HashMap<String, String> = HashMap::new();
    let pb = bar(experiments.len() as u64, "experiments", quiet);
    for e in &experiments {
        let exp = Experiment {
            experiment_id: e.experiment_id.clone(),
            name: e.name.clone(),
            artifact_location: String::new(),
            lifecycle_stage: LifecycleStage::parse(&e.lifecycle_stage),
            creation_time: e.creation_time.unwrap_or_default(),
            last_update_time: e.last_update_time.or(e.creation_time).unwrap_or_default(),
            tags: e.tags.clone(),
        };
        let (id, created) = target
            .meta
            .import_experiment(exp)
            .await
            .with_context(|| format!("experiment '{}'", e.name))?;
        add(
            if created {
                &sum.experiments_created
            } else {
                &sum.experiments_existing
            },
            1,
        );
        exp_ids.insert(e.experiment_id.clone(), id);
        pb.inc(1);
    }
    pb.finish();

    // Logged models before runs: run outputs and metrics refer to them.
    let src_exp_ids: Vec<String> = experiments
        .iter()
        .map(|e| e.experiment_id.clone())
        .collect();
    let models = src.logged_models(&src_exp_ids).await?;
    let pb = bar(models.len() as u64, "logged models", quiet);
    for m in models {
        let id = m.info.model_id.clone();
        if journal.done("model", &id) {
            add(&sum.logged_models_skipped, 1);
        } else {
            copy_logged_model(src, target, &exp_ids, m, &sum)
                .await
                .with_context(|| format!("logged model {id}"))?;
            journal.record("model", &id)?;
            add(&sum.logged_models, 1);
        }
        pb.inc(1);
    }
    pb.finish();

    // Runs, a few at a time.
    let mut runs = Vec::new();
    for e in &experiments {
        runs.extend(
            src.runs(&e.experiment_id)
                .await?
                .into_iter()
                .map(|r| (e.experiment_id.clone(), r)),
        );
    }
    let pb = bar(runs.len() as u64, "runs", quiet);
    futures::stream::iter(runs)
        .map(|(exp, run)| {
            let (journal, sum, exp_ids, pb) = (&journal, &sum, &exp_ids, &pb);
            async move {
                let id = run.info.run_id.clone();
                if journal.done("run", &id) {
                    add(&sum.runs_skipped, 1);
                } else {
                    let local_exp = exp_ids
                        .get(&exp)
                        .with_context(|| format!("run {id}: unknown experiment {exp}"))?;
                    copy_run(src, target, local_exp, run, sum)
                        .await
                        .with_context(|| format!("run {id}"))?;
                    journal.record("run", &id)?;
                    add(&sum.runs, 1);
                }
                pb.inc(1);
                pb.set_message(format!(
                    "{} files, {:.1} MiB",
                    sum.files.load(Ordering::Relaxed),
                    sum.bytes.load(Ordering::Relaxed) as f64 / 1048576.0
                ));
                anyhow::Ok(())
            }
        })
        .buffer_unordered(PARALLEL_RUNS)
        .try_collect::<Vec<()>>()
        .await?;
    pb.finish();

    // The registry last: versions point at runs and logged models.
    let registered = src.registered_models().await?;
    let pb = bar(registered.len() as u64, "registered models", quiet);
    for m in registered {
        let name = m.name.clone();
        copy_registered_model(src, target, m, &sum)
            .await
            .with_context(|| format!("registered model '{name}'"))?;
        pb.inc(1);
    }
    pb.finish();
    Ok(sum)
}

fn metric(m: SrcMetric) -> Metric {
    Metric {
        key: m.key,
        value: m.value.unwrap_or_default(),
        timestamp: m.timestamp.unwrap_or_default(),
        step: m.step.unwrap_or_default(),
        run_id: None,
        model_id: m.model_id.filter(|s| !s.is_empty()),
        dataset_name: m.dataset_name.filter(|s| !s.is_empty()),
        dataset_digest: m.dataset_digest.filter(|s| !s.is_empty()),
    }
}

async fn copy_run(
    src: &dyn Source,
    target: &Target,
    experiment_id: &str,
    run: SrcRun,
    sum: &Summary,
) -> Result<()> {
    let meta = &target.meta;
    let info = RunInfo {
        run_id: run.info.run_id.clone(),
        run_uuid: run.info.run_id.clone(),
        run_name: run.info.run_name.clone(),
        experiment_id: experiment_id.to_string(),
        user_id: run.info.user_id.clone(),
        status: RunStatus::parse(&run.info.status).unwrap_or(RunStatus::Finished),
        start_time: run.info.start_time.unwrap_or_default(),
        end_time: run.info.end_time,
        artifact_uri: String::new(),
        lifecycle_stage: LifecycleStage::Active,
    };
    let run_id = info.run_id.clone();
    let (stored, _) = meta.import_run(experiment_id, info).await?;

    for chunk in run.data.params.chunks(BATCH_PARAMS) {
        meta.log_batch(&run_id, vec![], chunk.to_vec(), vec![])
            .await?;
        add(&sum.params, chunk.len());
    }
    for chunk in run.data.tags.chunks(BATCH_TAGS) {
        meta.log_batch(&run_id, vec![], vec![], chunk.to_vec())
            .await?;
        add(&sum.tags, chunk.len());
    }
    let keys: Vec<String> = run.data.metrics.iter().map(|m| m.key.clone()).collect();
    if !keys.is_empty() {
        let history: Vec<Metric> = src
            .histories(&run_id, &keys)
            .await?
            .into_iter()
            .map(metric)
            .collect();
        for chunk in history.chunks(BATCH_METRICS) {
            meta.log_batch(&run_id, chunk.to_vec(), vec![], vec![])
                .await?;
        }
        add(&sum.metric_values, history.len());
    }
    let datasets: Vec<DatasetInput> = run
        .inputs
        .dataset_inputs
        .into_iter()
        .map(|d| d.into_input())
        .collect();
    let models: Vec<ModelInput> = run
        .inputs
        .model_inputs
        .into_iter()
        .map(|m| ModelInput {
            model_id: m.model_id,
        })
        .collect();
    if !datasets.is_empty() || !models.is_empty() {
        add(&sum.dataset_inputs, datasets.len());
        meta.log_inputs(&run_id, datasets, models).await?;
    }
    let outputs: Vec<ModelOutput> = run
        .outputs
        .model_outputs
        .into_iter()
        .map(|m| ModelOutput {
            model_id: m.model_id,
            step: m.step.unwrap_or_default(),
        })
        .collect();
    if !outputs.is_empty() {
        meta.log_outputs(&run_id, outputs).await?;
    }

    let root = store_path(&stored.artifact_uri)?;
    for file in src.run_files(&run_id).await? {
        let body = src.run_file(&run_id, &file).await?;
        put(target, &root, &file, body, sum).await?;
    }
    if LifecycleStage::parse(&run.info.lifecycle_stage) == LifecycleStage::Deleted {
        meta.delete_run(&run_id).await?;
    }
    Ok(())
}

async fn copy_logged_model(
    src: &dyn Source,
    target: &Target,
    exp_ids: &HashMap<String, String>,
    m: SrcLoggedModel,
    sum: &Summary,
) -> Result<()> {
    let meta = &target.meta;
    let local_exp = exp_ids
        .get(&m.info.experiment_id)
        .with_context(|| format!("unknown experiment {}", m.info.experiment_id))?;
    let status = m
        .info
        .status
        .as_deref()
        .and_then(LoggedModelStatus::parse)
        .unwrap_or(LoggedModelStatus::Ready);
    let id = m.info.model_id.clone();
    let info = LoggedModelInfo {
        model_id: id.clone(),
        experiment_id: local_exp.clone(),
        name: m.info.name,
        creation_timestamp_ms: m.info.creation_timestamp_ms.unwrap_or_default(),
        last_updated_timestamp_ms: m
            .info
            .last_updated_timestamp_ms
            .or(m.info.creation_timestamp_ms)
            .unwrap_or_default(),
        artifact_uri: String::new(),
        status,
        model_type: m.info.model_type,
        source_run_id: m.info.source_run_id,
        status_message: m.info.status_message,
        tags: vec![],
        lifecycle_stage: LifecycleStage::Active,
    };
    let (stored, _) = meta.import_logged_model(local_exp, info).await?;
    if !m.info.tags.is_empty() {
        add(&sum.tags, m.info.tags.len());
        meta.set_logged_model_tags(&id, m.info.tags).await?;
    }
    if !m.data.params.is_empty() {
        add(&sum.params, m.data.params.len());
        meta.log_logged_model_params(&id, m.data.params).await?;
    }
    let root = store_path(&stored.info.artifact_uri)?;
    for file in src.model_files(&id).await? {
        let body = src.model_file(&id, &file).await?;
        put(target, &root, &file, body, sum).await?;
    }
    Ok(())
}

/// Stores one artifact file below `root`, refusing paths that would leave it.
async fn put(
    target: &Target,
    root: &ArtifactPath,
    file: &str,
    body: keel_core::artifact::ByteStream,
    sum: &Summary,
) -> Result<()> {
    let rel = ArtifactPath::parse(file).with_context(|| format!("artifact '{file}'"))?;
    let n = target
        .artifacts
        .put(&root.join(&rel), body)
        .await
        .with_context(|| format!("artifact '{file}'"))?;
    add(&sum.files, 1);
    add(&sum.bytes, n as usize);
    Ok(())
}

async fn copy_registered_model(
    src: &dyn Source,
    target: &Target,
    m: source::SrcRegisteredModel,
    sum: &Summary,
) -> Result<()> {
    let meta = &target.meta;
    let model = RegisteredModel {
        name: m.name.clone(),
        creation_timestamp: m.creation_timestamp.unwrap_or_default(),
        last_updated_timestamp: m
            .last_updated_timestamp
            .or(m.creation_timestamp)
            .unwrap_or_default(),
        user_id: m.user_id,
        description: m.description,
        latest_versions: vec![],
        tags: m.tags,
        aliases: vec![],
    };
    add(&sum.tags, model.tags.len());
    if meta.import_registered_model(model).await? {
        add(&sum.registered_models, 1);
    }
    let mut versions = src.model_versions(&m.name).await?;
    versions.sort_by_key(|v| v.version.parse::<i64>().unwrap_or_default());
    for v in versions {
        let version = ModelVersion {
            name: v.name,
            version: v.version,
            creation_timestamp: v.creation_timestamp.unwrap_or_default(),
            last_updated_timestamp: v
                .last_updated_timestamp
                .or(v.creation_timestamp)
                .unwrap_or_default(),
            user_id: v.user_id,
            current_stage: canonical_stage(&v.current_stage)
                .unwrap_or("None")
                .to_string(),
            description: v.description,
            source: v.source,
            run_id: v.run_id,
            status: if v.status.is_empty() {
                "READY".to_string()
            } else {
                v.status
            },
            status_message: v.status_message,
            tags: v.tags,
            run_link: v.run_link,
            aliases: vec![],
            model_id: v.model_id,
        };
        add(&sum.tags, version.tags.len());
        if meta.import_model_version(version).await? {
            add(&sum.model_versions, 1);
        }
    }
    for a in m.aliases {
        meta.set_alias(&m.name, &a.alias, &a.version).await?;
        add(&sum.aliases, 1);
    }
    Ok(())
}
