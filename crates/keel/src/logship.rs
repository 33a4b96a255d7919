//! The prediction log on object storage (`keel serve --log-dir s3://bucket/prefix`): the log is
//! written as ever into a local spool folder, and each file, once finished, is copied to the
//! same relative key under the prefix and then removed from the spool. File names carry the
//! time and a random id, so replicas shipping to one prefix never collide, and monitoring reads
//! them all as one model's log. A file is removed only after its copy succeeded; one whose copy
//! failed stays and is tried again, also by the next process using the same spool.
//!
//! `keel monitor` reads such a log by copying the files a check needs (the hours its windows
//! touch) into a temporary folder first ([`fetch`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::TryStreamExt;
use keel_core::ArtifactStore;
use keel_core::artifact::ArtifactPath;
use keel_core::predlog::{ERRORS, FEEDBACK, HOUR_MS, PREDICTIONS, is_log_file, model_partition};
use keel_core::sketch::SKETCHES;
use keel_monitor::Window;
use keel_monitor::window::hour_start;
use tokio::io::AsyncWriteExt;

/// The object store a remote log setting names.
pub(crate) async fn open(url: &Path) -> Result<Arc<dyn ArtifactStore>> {
    let url = url.to_string_lossy();
    keel_store::open_artifact_store(&url)
        .await
        .with_context(|| format!("cannot open the prediction log's store {url}"))
}

/// Finished log files under `spool` (not those still being written: they live in hidden
/// staging folders), with their keys relative to it.
fn finished(spool: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![spool.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                todo.push(path);
            } else if is_log_file(&name)
                && let Ok(rel) = path.strip_prefix(spool)
            {
                let key: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    key.first().map(String::as_str),
                    Some(PREDICTIONS | FEEDBACK | ERRORS | SKETCHES)
                ) {
                    out.push((path, key.join("/")));
                }
            }
        }
    }
    out.sort();
    out
}

/// Copies every finished file of `spool` to `store` and removes it; how many were shipped.
pub(crate) async fn ship(spool: &Path, store: &dyn ArtifactStore) -> Result<usize> {
    let mut n = 0;
    for (path, key) in finished(spool) {
        let target = ArtifactPath::parse(&key)?;
        store
            .put_file(&target, &path)
            .await
            .with_context(|| format!("cannot copy {} to {}", path.display(), store.root_uri()))?;
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove the shipped {}", path.display()))?;
        n += 1;
    }
    Ok(n)
}

/// Ships a spool every few seconds until [`Shipper::finish`].
pub(crate) struct Shipper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    spool: PathBuf,
    store: Arc<dyn ArtifactStore>,
}

impl Shipper {
    /// Starts shipping `spool` to `store` every `every` (files a previous process left are
    /// shipped first).
    pub(crate) fn start(spool: PathBuf, store: Arc<dyn ArtifactStore>, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let (dir, to) = (spool.clone(), store.clone());
        let task = tokio::spawn(async move {
            loop {
                if let Err(e) = ship(&dir, to.as_ref()).await {
                    eprintln!(
                        "prediction log: shipping failed, the files stay in the spool and are tried again: {e:#}"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = &mut stopped => return,
                }
            }
        });
        Shipper {
            stop,
            task,
            spool,
            store,
        }
    }

    /// Stops the schedule and ships what the log finished at shutdown.
    pub(crate) async fn finish(self) -> Result<()> {
        let _ = self.stop.send(());
        let _ = self.task.await;
        ship(&self.spool, self.store.as_ref()).await?;
        Ok(())
    }
}

/// Copies from the remote log `url` into a new temporary folder the files a check of `model`
/// needs: the predictions and failed requests of every hour any of `windows` touches (all of
/// them without windows), and the ground truth of every hour ending after the earliest window
/// starts; or, for a check from `sketches`, only the sketches of those hours.
pub(crate) async fn fetch(
    url: &Path,
    model: &str,
    windows: &[Window],
    sketches: bool,
) -> Result<tempfile::TempDir> {
    let store = open(url).await?;
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let wanted = |start: i64| windows.is_empty() || windows.iter().any(|w| w.overlaps_hour(start));
    if sketches {
        let prefix = format!("{SKETCHES}/{}", model_partition(model));
        copy_hours(store.as_ref(), &prefix, tmp.path(), &wanted).await?;
        return Ok(tmp);
    }
    let since = windows.iter().map(|w| w.since_ms).min().unwrap_or(i64::MIN);
    let predictions = format!("{PREDICTIONS}/{}", model_partition(model));
    copy_hours(store.as_ref(), &predictions, tmp.path(), &wanted).await?;
    let errors = format!("{ERRORS}/{}", model_partition(model));
    copy_hours(store.as_ref(), &errors, tmp.path(), &wanted).await?;
    copy_hours(store.as_ref(), FEEDBACK, tmp.path(), &|start| {
        start.saturating_add(HOUR_MS) > since
    })
    .await?;
    Ok(tmp)
}

/// Copies the finished files of the `hour=...` folders under `prefix` that `wanted` keeps.
async fn copy_hours(
    store: &dyn ArtifactStore,
    prefix: &str,
    into: &Path,
    wanted: &(dyn Fn(i64) -> bool + Sync),
) -> Result<()> {
    let dir = ArtifactPath::parse(prefix)?;
    let hours = match store.list(Some(&dir)).await {
        Ok(h) => h,
        Err(e) if e.code == keel_core::ErrorCode::ResourceDoesNotExist => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot list {prefix} in {}", store.root_uri()));
        }
    };
    for hour in hours.into_iter().filter(|h| h.is_dir) {
        let Some(start) = hour_start(&hour.path) else {
            continue;
        };
        if !wanted(start) {
            continue;
        }
        let hour_dir = dir.join(&ArtifactPath::parse(&hour.path)?);
        for file in store.list(Some(&hour_dir)).await? {
            if file.is_dir || !is_log_file(&file.path) {
                continue;
            }
            let key = hour_dir.join(&ArtifactPath::parse(&file.path)?);
            let target = into.join(key.as_str());
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let (_, mut bytes) = store.get(&key).await?;
            let mut out = tokio::fs::File::create(&target).await?;
            while let Some(chunk) = bytes.try_next().await? {
                out.write_all(&chunk).await?;
            }
            out.flush().await?;
        }
    }
    Ok(())
}
