//! Content-addressed objects in the artifact store: each distinct content is stored once,
//! under `data/objects/<2 hex>/<62 hex>` of its BLAKE3 hash, and verified when read back.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use keel_core::ArtifactPath;
use keel_core::data::{DataKind, DataVersion};
use tokio::io::AsyncWriteExt;

use crate::backend::{CONCURRENCY, DataBackend};
use crate::error::{DataError, Result};
use crate::hash::{Manifest, ManifestEntry};

/// What storing a set of files did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Objects written.
    pub objects: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Files whose content was already stored (here or earlier).
    pub deduplicated: usize,
}

/// Stores each file's content unless an object with its hash (and size) exists, then, when
/// `sync`, makes the writes durable. `files` pairs local paths with their entries; `done` gets
/// each file's size.
pub async fn store_files(
    backend: &dyn DataBackend,
    files: &[(PathBuf, ManifestEntry)],
    done: &(dyn Fn(u64) + Sync),
    sync: bool,
) -> Result<Stored> {
    let mut seen = HashSet::new();
    let unique: Vec<&(PathBuf, ManifestEntry)> = files
        .iter()
        .filter(|(_, e)| seen.insert(e.hash.as_str()))
        .collect();
    let wanted: Vec<(String, u64)> = unique
        .iter()
        .map(|(_, e)| (e.hash.clone(), e.size))
        .collect();
    let missing: HashSet<String> = backend.missing(&wanted).await?.into_iter().collect();
    let mut stored = Stored {
        deduplicated: files.len() - missing.len(),
        ..Stored::default()
    };
    for (_, e) in files {
        if !missing.contains(&e.hash) {
            done(e.size);
        }
    }
    let uploads: Vec<(String, PathBuf)> = unique
        .into_iter()
        .filter(|(_, e)| missing.contains(&e.hash))
        .map(|(path, e)| (e.hash.clone(), path.clone()))
        .collect();
    let written = backend.upload_files(&uploads, done).await?;
    stored.objects = written.len();
    stored.bytes = written.iter().sum();
    if sync {
        backend.sync().await?;
    }
    Ok(stored)
}

/// Stores a folder's manifest as an object of its own (its hash is the folder's hash).
pub async fn store_manifest(backend: &dyn DataBackend, manifest: &Manifest) -> Result<String> {
    let (bytes, hash) = crate::hash::encode_manifest(manifest);
    if !backend
        .missing(&[(hash.clone(), bytes.len() as u64)])
        .await?
        .is_empty()
    {
        backend.upload_bytes(&hash, bytes).await?;
    }
    Ok(hash)
}

/// Reads a stored folder manifest, checking it against its hash.
pub async fn read_manifest(backend: &dyn DataBackend, hash: &str) -> Result<Manifest> {
    let mut body = backend.download(hash).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| DataError::Invalid(e.to_string()))?);
    }
    let actual = crate::hash::hash_bytes(&bytes);
    if actual != hash {
        return Err(DataError::Invalid(format!(
            "stored manifest {hash} is damaged: its content hashes to {actual}"
        )));
    }
    Ok(Manifest::decode(&bytes)?)
}

/// Writes object `hash` to `target`, hashing as it streams; the file appears (atomically, by
/// rename) only if its hash matches. Returns the bytes written.
pub async fn restore_object(backend: &dyn DataBackend, hash: &str, target: &Path) -> Result<u64> {
    let mut body = backend.download(hash).await?;
    let dir = target.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| DataError::io(dir, e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.keel-get-{}", &hash[..16]));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| DataError::io(&tmp, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| DataError::io(target, e))?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| DataError::io(&tmp, e))?;
        }
        file.flush().await.map_err(|e| DataError::io(&tmp, e))?;
        drop(file);
        let actual = hasher.finalize().to_hex().to_string();
        if actual != hash {
            return Err(DataError::Invalid(format!(
                "stored object {hash} is damaged: its content hashes to {actual}; {} was not written",
                target.display()
            )));
        }
        tokio::fs::rename(&tmp, target)
            .await
            .map_err(|e| DataError::io(target, e))?;
        Ok(n)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Restores a version's bytes at `to`: a file version as the file `to`, a folder version
/// into the folder `to`. Every file is verified by hash. Returns (files, bytes) written.
pub async fn restore(
    backend: &dyn DataBackend,
    version: &DataVersion,
    to: &Path,
    done: &(dyn Fn(u64) + Sync),
) -> Result<(usize, u64)> {
    match version.kind {
        DataKind::File => {
            let n = restore_object(backend, &version.hash, to).await?;
            done(n);
            Ok((1, n))
        }
        DataKind::Folder => {
            let manifest = read_manifest(backend, &version.hash).await?;
            // Owned hashes: a stream closure taking borrowed entries would make the future
            // of every caller unprovably Send when spawned.
            let targets: Vec<(PathBuf, String)> = manifest
                .files
                .iter()
                .map(|f| {
                    // The same rule as artifact paths: plain names only, nothing escapes `to`.
                    let rel = ArtifactPath::parse(&f.path).map_err(|_| {
                        DataError::Invalid(format!(
                            "stored manifest {} names an unsafe path '{}'",
                            version.hash, f.path
                        ))
                    })?;
                    let mut p = to.to_path_buf();
                    p.extend(rel.components());
                    Ok((p, f.hash.clone()))
                })
                .collect::<Result<_>>()?;
            let bytes: Vec<u64> = futures::stream::iter(targets)
                .map(|(p, hash)| async move {
                    let n = restore_object(backend, &hash, &p).await?;
                    done(n);
                    Ok::<_, DataError>(n)
                })
                .buffer_unordered(CONCURRENCY)
                .try_collect()
                .await?;
            Ok((bytes.len(), bytes.iter().sum()))
        }
    }
}
