//! `keel data add`: read, hash, store and record a file or folder as a dataset version.
//!
//! Order matters for "nothing half-stored": tabular data is read and profiled first (bad input
//! fails before anything is written), then each distinct content is stored once and made
//! durable, and only then is the version recorded. An interrupted add leaves at most objects
//! nobody refers to, which the next add of the same bytes reuses.

use std::path::{Path, PathBuf};

use keel_core::data::{DataKind, DataVersion, validate_name};

use crate::backend::DataBackend;
use crate::error::{DataError, Result};
use crate::format::Format;
use crate::hash::{self, Manifest, Stamp};
use crate::objects::{self, Stored};
use crate::profile;
use crate::workspace::{Tracked, Workspace};

/// What to add.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// A file or a folder.
    pub path: PathBuf,
    /// Dataset name; defaults to the file's stem or the folder's name.
    pub name: Option<String>,
    /// Format; defaults to what the extension (or a folder's files) suggest.
    pub format: Option<Format>,
    /// Free text for the version.
    pub description: String,
    /// Who adds it.
    pub created_by: String,
    /// Whether to wait until the stored bytes are on disk before recording the version (a
    /// crash soon after an add without it may leave a damaged object: `get` refuses it by its
    /// hash, and the next add of the same bytes stores them again).
    pub sync: bool,
}

/// What an add did.
#[derive(Debug, Clone)]
pub struct Added {
    /// The version recorded (or the unchanged newest one).
    pub version: DataVersion,
    /// Whether a new version was recorded.
    pub created: bool,
    /// What was written to the artifact store.
    pub stored: Stored,
}

/// Progress reporting for long steps.
pub trait Progress: Sync {
    /// A step starts with `total` bytes of work.
    fn step(&self, label: &str, total: u64);
    /// `n` more bytes done.
    fn advance(&self, n: u64);
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// The default dataset name for a path: the file's stem or the folder's name.
pub fn default_name(path: &Path, kind: DataKind) -> Option<String> {
    let n = match kind {
        DataKind::File => path.file_stem(),
        DataKind::Folder => path.file_name(),
    }?;
    Some(n.to_string_lossy().into_owned())
}

/// Adds `req.path` as the next version of its dataset.
pub async fn add(
    req: AddRequest,
    backend: &dyn DataBackend,
    ws: &mut Workspace,
    progress: &dyn Progress,
) -> Result<Added> {
    let path = std::path::absolute(&req.path).map_err(|e| DataError::io(&req.path, e))?;
    let info = std::fs::metadata(&path).map_err(|e| DataError::io(&path, e))?;
    let kind = if info.is_dir() {
        DataKind::Folder
    } else {
        DataKind::File
    };
    let name = match req.name.or_else(|| default_name(&path, kind)) {
        Some(n) => n,
        None => {
            return Err(DataError::Invalid(
                "give the dataset a name with --name".into(),
            ));
        }
    };
    validate_name(&name)?;
    let files: Vec<(String, PathBuf)> = match kind {
        DataKind::File => {
            let rel = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            vec![(rel, path.clone())]
        }
        DataKind::Folder => hash::list_folder(&path)?,
    };
    if files.is_empty() {
        return Err(DataError::content(&path, "the folder holds no files"));
    }
    let format = req
        .format
        .unwrap_or_else(|| Format::of_files(files.iter().map(|(_, p)| p.as_path())));

    // Hash first: an unchanged path needs neither reading nor storing again.
    let total: u64 = files
        .iter()
        .map(|(_, p)| Stamp::of(p).map(|s| s.size))
        .sum::<Result<u64>>()?;
    progress.step("hashing", total);
    let hashed = hash::hash_files(&files, &|p: &Path, s: &Stamp| ws.cached_hash(p, s), &|n| {
        progress.advance(n)
    })?;
    ws.remember(&files, &hashed);
    let manifest = (kind == DataKind::Folder)
        .then(|| Manifest::new(hashed.iter().map(|h| h.entry.clone()).collect()));
    let content_hash = match &manifest {
        Some(m) => hash::encode_manifest(m).1,
        None => hashed[0].entry.hash.clone(),
    };
    if let Some(latest) = backend.version(&name, None).await?
        && latest.hash == content_hash
        && ws.tracked(&path).is_some_and(|t| t.hash == content_hash)
    {
        ws.save()?;
        return Ok(Added {
            version: latest,
            created: false,
            stored: Stored::default(),
        });
    }

    // Read and profile tabular data before anything is written.
    let table = if format.is_tabular() {
        progress.step("profiling", 0);
        let paths: Vec<&Path> = files.iter().map(|(_, p)| p.as_path()).collect();
        Some(profile::profile_files(format, &paths)?)
    } else {
        None
    };

    progress.step("storing", total);
    let pairs: Vec<(PathBuf, hash::ManifestEntry)> = files
        .iter()
        .zip(&hashed)
        .map(|((_, p), h)| (p.clone(), h.entry.clone()))
        .collect();
    let stored = objects::store_files(backend, &pairs, &|n| progress.advance(n), req.sync).await?;
    if let Some(m) = &manifest {
        objects::store_manifest(backend, m).await?;
    }

    let size: u64 = hashed.iter().map(|h| h.entry.size).sum();
    let (row_count, schema, profile) = match table {
        Some(t) => (
            Some(t.row_count as i64),
            Some(serde_json::to_value(&t.schema).unwrap_or_default()),
            Some(serde_json::to_value(&t.profile).unwrap_or_default()),
        ),
        None => (None, None, None),
    };
    let (version, created) = backend
        .record(DataVersion {
            name,
            version: 0,
            hash: content_hash.clone(),
            kind,
            format: format.as_str().into(),
            size_bytes: size as i64,
            file_count: files.len() as i64,
            row_count,
            schema,
            profile,
            source: path.to_string_lossy().into_owned(),
            created_by: req.created_by,
            creation_time: 0,
            description: req.description,
        })
        .await?;
    ws.track(
        &path,
        Tracked {
            name: version.name.clone(),
            version: version.version,
            hash: content_hash,
            kind,
        },
    );
    ws.save()?;
    Ok(Added {
        version,
        created,
        stored,
    })
}
