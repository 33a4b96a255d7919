//! Where dataset versions and their objects live: the local stores directly, or a keel server
//! (the CLI's `--tracking-uri`), behind one interface.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use keel_core::artifact::ByteStream;
use keel_core::data::{DataSummary, DataUse, DataValidation, DataVersion, object_path};
use keel_core::{ArtifactStore, MetadataStore};

use crate::error::Result;

/// Uploads or probes in flight at once.
pub const CONCURRENCY: usize = 16;

/// What `keel data` needs from a store: listing, adding and restoring dataset versions.
#[async_trait::async_trait]
pub trait DataBackend: Send + Sync {
    /// Every dataset with its newest version.
    async fn list(&self) -> Result<Vec<DataSummary>>;
    /// One dataset's versions, newest first; an error when the dataset does not exist.
    async fn versions(&self, name: &str) -> Result<Vec<DataVersion>>;
    /// A version (the newest when `version` is `None`) and the runs that used its content;
    /// `None` when the dataset or version does not exist.
    async fn version_with_uses(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<(DataVersion, Vec<DataUse>)>>;
    /// A version of a dataset (the newest when `version` is `None`); `None` when the dataset
    /// or version does not exist.
    async fn version(&self, name: &str, version: Option<i64>) -> Result<Option<DataVersion>>;
    /// The hashes of those `objects` (hash, size) that are not stored, or are stored with
    /// another size (a copy a crash cut short, which must be stored again).
    async fn missing(&self, objects: &[(String, u64)]) -> Result<Vec<String>>;
    /// Stores the local file `src` as object `hash` (durable after [`DataBackend::sync`]).
    async fn upload_file(&self, hash: &str, src: &Path) -> Result<u64>;
    /// Stores several local files (`(hash, src)` pairs), calling `done` with each size as it
    /// lands; returns the sizes in order. By default [`DataBackend::upload_file`] on each,
    /// [`CONCURRENCY`] at a time.
    async fn upload_files(
        &self,
        files: &[(String, PathBuf)],
        done: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u64>> {
        futures::stream::iter(files.iter().cloned())
            .map(|(hash, src)| async move {
                let n = self.upload_file(&hash, &src).await?;
                done(n);
                Ok(n)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await
    }
    /// Stores bytes as object `hash`.
    async fn upload_bytes(&self, hash: &str, bytes: Vec<u8>) -> Result<()>;
    /// Makes the uploads so far durable.
    async fn sync(&self) -> Result<()>;
    /// Records a version (see [`MetadataStore::create_data_version`]).
    async fn record(&self, v: DataVersion) -> Result<(DataVersion, bool)>;
    /// Reads object `hash`.
    async fn download(&self, hash: &str) -> Result<ByteStream>;
    /// Records a validation report against version `version` of `name` (see
    /// [`keel_core::data::DataValidation::from_report`]).
    async fn record_validation(
        &self,
        name: &str,
        version: i64,
        created_by: &str,
        report: serde_json::Value,
    ) -> Result<()>;
}

/// The local metadata and artifact stores.
pub struct LocalBackend {
    /// Metadata store.
    pub meta: Arc<dyn MetadataStore>,
    /// Artifact store.
    pub artifacts: Arc<dyn ArtifactStore>,
}

#[async_trait::async_trait]
impl DataBackend for LocalBackend {
    async fn list(&self) -> Result<Vec<DataSummary>> {
        Ok(self.meta.list_data().await?)
    }

    async fn versions(&self, name: &str) -> Result<Vec<DataVersion>> {
        Ok(self.meta.list_data_versions(name).await?)
    }

    async fn version_with_uses(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<Option<(DataVersion, Vec<DataUse>)>> {
        let Some(v) = self.version(name, version).await? else {
            return Ok(None);
        };
        let uses = self.meta.data_uses(&v.hash).await?;
        Ok(Some((v, uses)))
    }

    async fn version(&self, name: &str, version: Option<i64>) -> Result<Option<DataVersion>> {
        match self.meta.get_data_version(name, version).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == keel_core::ErrorCode::ResourceDoesNotExist => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn missing(&self, objects: &[(String, u64)]) -> Result<Vec<String>> {
        let paths = objects
            .iter()
            .map(|(h, _)| object_path(h))
            .collect::<keel_core::Result<Vec<_>>>()?;
        let sizes = self.artifacts.head_many(&paths).await?;
        Ok(objects
            .iter()
            .zip(sizes)
            .filter(|((_, want), size)| *size != Some(*want))
            .map(|((h, _), _)| h.clone())
            .collect())
    }

    async fn upload_file(&self, hash: &str, src: &Path) -> Result<u64> {
        Ok(self.artifacts.put_file(&object_path(hash)?, src).await?)
    }

    async fn upload_files(
        &self,
        files: &[(String, PathBuf)],
        done: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u64>> {
        let files = files
            .iter()
            .map(|(h, src)| Ok((object_path(h)?, src.clone())))
            .collect::<keel_core::Result<Vec<_>>>()?;
        Ok(self.artifacts.put_files(&files, done).await?)
    }

    async fn upload_bytes(&self, hash: &str, bytes: Vec<u8>) -> Result<()> {
        let body = futures::stream::once(async move { Ok(bytes::Bytes::from(bytes)) });
        self.artifacts
            .put(&object_path(hash)?, Box::pin(body))
            .await?;
        Ok(())
    }

    async fn sync(&self) -> Result<()> {
        Ok(self.artifacts.sync().await?)
    }

    async fn record(&self, v: DataVersion) -> Result<(DataVersion, bool)> {
        Ok(self.meta.create_data_version(v).await?)
    }

    async fn download(&self, hash: &str) -> Result<ByteStream> {
        Ok(self.artifacts.get(&object_path(hash)?).await?.1)
    }

    async fn record_validation(
        &self,
        name: &str,
        version: i64,
        created_by: &str,
        report: serde_json::Value,
    ) -> Result<()> {
        let record = DataValidation::from_report(name, version, created_by, report)?;
        self.meta.record_validation(record).await?;
        Ok(())
    }
}
