//! keel's export folder: a whole store as files, to move between backends or machines.
//!
//! ```text
//! DIR/keel-export.json          manifest, written last: {"format": "keel-export", "version": 1, ...}
//! DIR/experiments.jsonl         one experiment per line (MLflow's JSON shape)
//! DIR/runs.jsonl                {"experiment_id": ..., "run": {info, data, inputs, outputs}}
//! DIR/metrics/<run_id>.jsonl    every value of every metric of the run, one per line
//! DIR/logged_models.jsonl       {info, data}
//! DIR/registered_models.jsonl   {"model": {...}, "versions": [...]}
//! DIR/files/runs/<run_id>/...   the run's artifacts
//! DIR/files/models/<id>/...     a logged model's artifacts
//! ```
//!
//! `keel export` writes it from a store; [`FolderSource`] reads it back for `keel import`, which
//! refuses a folder without the manifest (an export that did not finish).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use keel_core::artifact::ByteStream;
use keel_core::entities::*;
use keel_core::store::{SearchExperiments, SearchLoggedModels, SearchRegistry, SearchRuns};
use keel_core::{ArtifactPath, ArtifactStore, MetadataStore, validate};
use keel_server::api::store_path;
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::source::{
    Source, SrcExperiment, SrcLoggedModel, SrcMetric, SrcModelVersion, SrcRegisteredModel, SrcRun,
};
use super::{Summary, add, bar};

const MANIFEST: &str = "keel-export.json";
const FORMAT_VERSION: u64 = 1;
const PAGE: usize = 1000;

/// Appends JSON lines to a file.
struct Lines(tokio::io::BufWriter<tokio::fs::File>);

impl Lines {
    async fn create(path: &Path) -> Result<Self> {
        let f = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Lines(tokio::io::BufWriter::new(f)))
    }
    async fn write<T: serde::Serialize>(&mut self, v: &T) -> Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.0.write_all(&line).await?;
        Ok(())
    }
    async fn finish(mut self) -> Result<()> {
        self.0.flush().await?;
        self.0.get_mut().sync_all().await?;
        Ok(())
    }
}

/// Copies every file below `root` in the artifact store into `dir`.
async fn export_files(
    artifacts: &Arc<dyn ArtifactStore>,
    root: &ArtifactPath,
    dir: &Path,
    sum: &Summary,
) -> Result<()> {
    let mut pending = vec![root.clone()];
    while let Some(folder) = pending.pop() {
        for entry in artifacts.list(Some(&folder)).await? {
            let child = folder.join(&ArtifactPath::parse(&entry.path)?);
            if entry.is_dir {
                pending.push(child);
                continue;
            }
            let rel = &child.as_str()[root.as_str().len() + 1..];
            let dest = dir.join(rel);
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let (_, mut body) = artifacts.get(&child).await?;
            let mut f = tokio::fs::File::create(&dest)
                .await
                .with_context(|| format!("cannot create {}", dest.display()))?;
            let mut n = 0usize;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                n += chunk.len();
                f.write_all(&chunk).await?;
            }
            f.sync_all().await?;
            add(&sum.files, 1);
            add(&sum.bytes, n);
        }
    }
    Ok(())
}

/// Writes the whole store into the empty (or new) folder `dir`.
pub async fn export(
    meta: &Arc<dyn MetadataStore>,
    artifacts: &Arc<dyn ArtifactStore>,
    dir: &Path,
    quiet: bool,
) -> Result<Summary> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} is not empty: export into a new folder", dir.display());
    }
    for sub in ["metrics", "files/runs", "files/models"] {
        tokio::fs::create_dir_all(dir.join(sub))
            .await
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    let sum = Summary::default();

    let mut experiments = Vec::new();
    loop {
        let page = meta
            .search_experiments(SearchExperiments {
                view: ViewType::All,
                max_results: PAGE,
                offset: experiments.len() as u64,
                ..Default::default()
            })
            .await?;
        let more = page.next_page_token.is_some();
        experiments.extend(page.items);
        if !more {
            break;
        }
    }
    let mut out = Lines::create(&dir.join("experiments.jsonl")).await?;
    for e in &experiments {
        out.write(e).await?;
        add(&sum.experiments_created, 1);
    }
    out.finish().await?;
    let exp_ids: Vec<String> = experiments
        .iter()
        .map(|e| e.experiment_id.clone())
        .collect();

    let mut models = Vec::new();
    loop {
        let page = meta
            .search_logged_models(SearchLoggedModels {
                experiment_ids: exp_ids.clone(),
                max_results: PAGE,
                offset: models.len() as u64,
                ..Default::default()
            })
            .await?;
        let more = page.next_page_token.is_some();
        models.extend(page.items);
        if !more {
            break;
        }
    }
    let pb = bar(models.len() as u64, "logged models", quiet);
    let mut out = Lines::create(&dir.join("logged_models.jsonl")).await?;
    for m in &models {
        out.write(m).await?;
        let root = store_path(&m.info.artifact_uri)?;
        export_files(
            artifacts,
            &root,
            &dir.join("files/models").join(&m.info.model_id),
            &sum,
        )
        .await
        .with_context(|| format!("logged model {}", m.info.model_id))?;
        add(&sum.logged_models, 1);
        pb.inc(1);
    }
    out.finish().await?;
    pb.finish();

    let pb = bar(0, "runs", quiet);
    let mut out = Lines::create(&dir.join("runs.jsonl")).await?;
    for e in &experiments {
        let mut offset = 0u64;
        loop {
            let page = meta
                .search_runs(SearchRuns {
                    experiment_ids: vec![e.experiment_id.clone()],
                    view: ViewType::All,
                    max_results: PAGE,
                    offset,
                    ..Default::default()
                })
                .await?;
            offset += page.items.len() as u64;
            pb.inc_length(page.items.len() as u64);
            for run in &page.items {
                export_run(meta, artifacts, dir, run, &sum)
                    .await
                    .with_context(|| format!("run {}", run.info.run_id))?;
                out.write(&json!({"experiment_id": e.experiment_id, "run": run}))
                    .await?;
                add(&sum.runs, 1);
                pb.inc(1);
            }
            if page.next_page_token.is_none() {
                break;
            }
        }
    }
    out.finish().await?;
    pb.finish();

    let mut registered = Vec::new();
    loop {
        let page = meta
            .search_registered_models(SearchRegistry {
                max_results: PAGE,
                offset: registered.len() as u64,
                ..Default::default()
            })
            .await?;
        let more = page.next_page_token.is_some();
        registered.extend(page.items);
        if !more {
            break;
        }
    }
    let mut out = Lines::create(&dir.join("registered_models.jsonl")).await?;
    for m in &registered {
        let filter = format!("name = '{}'", m.name.replace('\'', "\\'"));
        let mut versions = Vec::new();
        loop {
            let page = meta
                .search_model_versions(SearchRegistry {
                    filter: keel_core::filter::registry::parse_filter(&filter, true)?,
                    max_results: PAGE,
                    offset: versions.len() as u64,
                    ..Default::default()
                })
                .await?;
            let more = page.next_page_token.is_some();
            versions.extend(page.items);
            if !more {
                break;
            }
        }
        add(&sum.model_versions, versions.len());
        add(&sum.aliases, m.aliases.len());
        add(&sum.registered_models, 1);
        out.write(&json!({"model": m, "versions": versions}))
            .await?;
    }
    out.finish().await?;

    let manifest = json!({
        "format": "keel-export",
        "version": FORMAT_VERSION,
        "keel_version": env!("CARGO_PKG_VERSION"),
        "created_ms": keel_core::now_millis(),
        "experiments": experiments.len(),
        "runs": sum.runs.load(std::sync::atomic::Ordering::Relaxed),
        "logged_models": models.len(),
        "registered_models": registered.len(),
    });
    tokio::fs::write(dir.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)
        .await
        .context("cannot write the export manifest")?;
    Ok(sum)
}

async fn export_run(
    meta: &Arc<dyn MetadataStore>,
    artifacts: &Arc<dyn ArtifactStore>,
    dir: &Path,
    run: &Run,
    sum: &Summary,
) -> Result<()> {
    let run_id = &run.info.run_id;
    let mut out = Lines::create(&dir.join("metrics").join(format!("{run_id}.jsonl"))).await?;
    for m in &run.data.metrics {
        let mut offset = 0u64;
        loop {
            let page = meta.metric_history(run_id, &m.key, offset, 25_000).await?;
            offset += page.items.len() as u64;
            add(&sum.metric_values, page.items.len());
            for v in &page.items {
                out.write(v).await?;
            }
            if page.next_page_token.is_none() {
                break;
            }
        }
    }
    out.finish().await?;
    add(&sum.params, run.data.params.len());
    add(&sum.tags, run.data.tags.len());
    add(&sum.dataset_inputs, run.inputs.dataset_inputs.len());
    let root = store_path(&run.info.artifact_uri)?;
    export_files(artifacts, &root, &dir.join("files/runs").join(run_id), sum).await
}

#[derive(Deserialize)]
struct RunLine {
    experiment_id: String,
    run: SrcRun,
}

#[derive(Deserialize)]
struct RegisteredLine {
    model: SrcRegisteredModel,
    #[serde(default)]
    versions: Vec<SrcModelVersion>,
}

/// Reads an export folder.
pub struct FolderSource {
    dir: PathBuf,
    experiments: Vec<SrcExperiment>,
    runs: HashMap<String, Vec<SrcRun>>,
    models: Vec<SrcLoggedModel>,
    registered: Vec<SrcRegisteredModel>,
    versions: HashMap<String, Vec<SrcModelVersion>>,
}

fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// The files below `dir`, relative to it, sorted.
fn walk(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", d.display())),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

impl FolderSource {
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).with_context(|| {
                format!(
                    "{} is not a finished keel export (no {MANIFEST})",
                    dir.display()
                )
            })?)
            .with_context(|| format!("{} is not valid JSON", manifest_path.display()))?;
        if manifest["format"] != "keel-export" {
            bail!("{} is not a keel export manifest", manifest_path.display());
        }
        let version = manifest["version"].as_u64().unwrap_or(0);
        if version != FORMAT_VERSION {
            bail!(
                "{} has export format version {version}; this keel reads version {FORMAT_VERSION}",
                dir.display()
            );
        }
        let mut runs: HashMap<String, Vec<SrcRun>> = HashMap::new();
        for line in read_lines::<RunLine>(&dir.join("runs.jsonl"))? {
            validate::run_id(&line.run.info.run_id)?;
            runs.entry(line.experiment_id).or_default().push(line.run);
        }
        let mut registered = Vec::new();
        let mut versions = HashMap::new();
        for line in read_lines::<RegisteredLine>(&dir.join("registered_models.jsonl"))? {
            versions.insert(line.model.name.clone(), line.versions);
            registered.push(line.model);
        }
        Ok(FolderSource {
            dir: dir.to_path_buf(),
            experiments: read_lines(&dir.join("experiments.jsonl"))?,
            runs,
            models: read_lines(&dir.join("logged_models.jsonl"))?,
            registered,
            versions,
        })
    }

    fn model_dir(&self, model_id: &str) -> Result<PathBuf> {
        let id = ArtifactPath::parse(model_id)?;
        Ok(self.dir.join("files/models").join(id.as_str()))
    }

    fn run_dir(&self, run_id: &str) -> Result<PathBuf> {
        validate::run_id(run_id)?;
        Ok(self.dir.join("files/runs").join(run_id))
    }

    async fn open_file(&self, dir: PathBuf, path: &str) -> Result<ByteStream> {
        let rel = ArtifactPath::parse(path)?;
        let full = dir.join(rel.as_str());
        let f = tokio::fs::File::open(&full)
            .await
            .with_context(|| format!("cannot open {}", full.display()))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            f,
            256 * 1024,
        )))
    }
}

#[async_trait::async_trait]
impl Source for FolderSource {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
    async fn experiments(&self) -> Result<Vec<SrcExperiment>> {
        Ok(self.experiments.clone())
    }
    async fn runs(&self, experiment_id: &str) -> Result<Vec<SrcRun>> {
        Ok(self.runs.get(experiment_id).cloned().unwrap_or_default())
    }
    async fn histories(&self, run_id: &str, keys: &[String]) -> Result<Vec<SrcMetric>> {
        validate::run_id(run_id)?;
        let all: Vec<SrcMetric> =
            read_lines(&self.dir.join("metrics").join(format!("{run_id}.jsonl")))?;
        Ok(all.into_iter().filter(|m| keys.contains(&m.key)).collect())
    }
    async fn logged_models(&self, experiment_ids: &[String]) -> Result<Vec<SrcLoggedModel>> {
        Ok(self
            .models
            .iter()
            .filter(|m| experiment_ids.contains(&m.info.experiment_id))
            .cloned()
            .collect())
    }
    async fn registered_models(&self) -> Result<Vec<SrcRegisteredModel>> {
        Ok(self.registered.clone())
    }
    async fn model_versions(&self, name: &str) -> Result<Vec<SrcModelVersion>> {
        Ok(self.versions.get(name).cloned().unwrap_or_default())
    }
    async fn run_files(&self, run_id: &str) -> Result<Vec<String>> {
        walk(&self.run_dir(run_id)?)
    }
    async fn run_file(&self, run_id: &str, path: &str) -> Result<ByteStream> {
        self.open_file(self.run_dir(run_id)?, path).await
    }
    async fn model_files(&self, model_id: &str) -> Result<Vec<String>> {
        walk(&self.model_dir(model_id)?)
    }
    async fn model_file(&self, model_id: &str, path: &str) -> Result<ByteStream> {
        self.open_file(self.model_dir(model_id)?, path).await
    }
}
