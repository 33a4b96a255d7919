//! Artifacts in S3-compatible object storage (AWS S3, MinIO, Ceph, R2, ...), through
//! `object_store`.
//!
//! `s3://bucket/prefix` names the root; endpoint, region and credentials come from the usual
//! `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...), with MLflow's
//! `MLFLOW_S3_ENDPOINT_URL` understood as well. Uploads stream: up to one part is buffered, larger
//! bodies become a multipart upload with a bounded number of parts in flight, and a failed
//! upload is aborted so no partial object becomes visible. Downloads stream from the response.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use keel_core::artifact::ByteStream;
use keel_core::{ArtifactPath, ArtifactStore, Error, FileInfo, Result};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

/// Size of one multipart part, and the most a small upload buffers before it becomes multipart.
/// S3 requires parts of at least 5 MiB (but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per upload: memory per upload stays under `PART_SIZE * (PARTS_IN_FLIGHT + 1)`.
const PARTS_IN_FLIGHT: usize = 4;

/// [`ArtifactStore`] on an S3-compatible bucket.
pub struct S3ArtifactStore {
    store: Arc<dyn ObjectStore>,
    uri: String,
}

fn s3_err(what: &str, path: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => {
            Error::not_found(format!("Artifact '{path}' not found"))
        }
        e => Error::internal(format!("{what} '{path}' in object storage: {e}")),
    }
}

/// The object key of an artifact path below the store's prefix.
fn key(path: &ArtifactPath) -> Path {
    Path::from_iter(path.components())
}

impl S3ArtifactStore {
    /// Connects to `s3://bucket[/prefix]`. Nothing is requested from the server yet; the first
    /// operation reports missing credentials or an unknown bucket.
    pub fn open(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            Error::invalid(format!(
                "Invalid S3 URL '{url}': expected s3://bucket/prefix"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::invalid(format!(
                "Invalid S3 URL '{url}': no bucket name"
            )));
        }
        let prefix = prefix.trim_matches('/');
        let prefix_path = if prefix.is_empty() {
            Path::default()
        } else {
            let p = ArtifactPath::parse(prefix)
                .map_err(|e| Error::invalid(format!("Invalid S3 URL '{url}': {}", e.message)))?;
            key(&p)
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let aws_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .into_iter()
            .find_map(|v| std::env::var(v).ok().filter(|e| !e.is_empty()));
        let endpoint = match aws_endpoint {
            Some(e) => Some(e),
            None => {
                let mlflow = std::env::var("MLFLOW_S3_ENDPOINT_URL")
                    .ok()
                    .filter(|e| !e.is_empty());
                if let Some(e) = &mlflow {
                    builder = builder.with_endpoint(e);
                }
                mlflow
            }
        };
        // An explicit plain-HTTP endpoint (a MinIO or a test server on the local network) is what
        // the operator asked for; TLS stays required everywhere else.
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let s3 = builder
            .build()
            .map_err(|e| Error::invalid(format!("Cannot use S3 URL '{url}': {e}")))?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix_path))
        };
        let uri = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        Ok(S3ArtifactStore { store, uri })
    }
}

#[async_trait::async_trait]
impl ArtifactStore for S3ArtifactStore {
    async fn put(&self, path: &ArtifactPath, mut body: ByteStream) -> Result<u64> {
        let mut writer = BufWriter::with_capacity(self.store.clone(), key(path), PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let streamed = async {
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::bad_request(format!("upload of '{path}' was interrupted: {e}"))
                })?;
                written += chunk.len() as u64;
                writer
                    .put(chunk)
                    .await
                    .map_err(|e| s3_err("cannot upload", path.as_str(), e))?;
            }
            Ok(written)
        }
        .await;
        let written = match streamed {
            Ok(n) => n,
            Err(e) => {
                // Drops the parts of an unfinished multipart upload; a small upload never
                // started.
                if let Err(abort) = writer.abort().await {
                    tracing::warn!("cannot abort the upload of '{path}': {abort}");
                }
                return Err(e);
            }
        };
        // A failed completion cannot be aborted through the writer any more (it has shut
        // down): the store's lifecycle rules remove what an unfinished multipart upload left.
        writer.shutdown().await.map_err(|e| {
            tracing::warn!("the upload of '{path}' could not be completed: {e}");
            Error::internal(format!("cannot upload '{path}' to object storage: {e}"))
        })?;
        Ok(written)
    }

    async fn get(&self, path: &ArtifactPath) -> Result<(u64, ByteStream)> {
        let got = self
            .store
            .get(&key(path))
            .await
            .map_err(|e| s3_err("cannot read", path.as_str(), e))?;
        let size = got.meta.size;
        let stream = got.into_stream().map_err(std::io::Error::other);
        Ok((size, Box::pin(stream)))
    }

    async fn list(&self, dir: Option<&ArtifactPath>) -> Result<Vec<FileInfo>> {
        let prefix = dir.map(key);
        let shown = dir.map(ArtifactPath::as_str).unwrap_or("");
        let listing = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| s3_err("cannot list", shown, e))?;
        let mut out = Vec::with_capacity(listing.common_prefixes.len() + listing.objects.len());
        for p in &listing.common_prefixes {
            if let Some(name) = p.filename() {
                out.push(FileInfo {
                    path: name.to_string(),
                    is_dir: true,
                    file_size: None,
                });
            }
        }
        for o in &listing.objects {
            if let Some(name) = o.location.filename() {
                out.push(FileInfo {
                    path: name.to_string(),
                    is_dir: false,
                    file_size: Some(o.size),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        let k = key(path);
        match self.store.delete(&k).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(s3_err("cannot delete", path.as_str(), e)),
        }
        // A "folder": everything under the path.
        let below = self.store.list(Some(&k)).map_ok(|m| m.location).boxed();
        self.store
            .delete_stream(below)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| s3_err("cannot delete", path.as_str(), e))?;
        Ok(())
    }

    fn root_uri(&self) -> String {
        self.uri.clone()
    }

    async fn head(&self, path: &ArtifactPath) -> Result<Option<u64>> {
        match self.store.head(&key(path)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(s3_err("cannot inspect", path.as_str(), e)),
        }
    }

    /// Streams the file up (multipart when large); an acknowledged upload is durable.
    async fn put_file(&self, path: &ArtifactPath, src: &std::path::Path) -> Result<u64> {
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", src.display())))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        self.put(path, Box::pin(stream)).await
    }

    async fn sync(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = S3ArtifactStore::open("s3://bucket/some/prefix/").unwrap();
        assert_eq!(s.root_uri(), "s3://bucket/some/prefix");
        let s = S3ArtifactStore::open("s3://bucket").unwrap();
        assert_eq!(s.root_uri(), "s3://bucket");
        {
            let e = S3ArtifactStore::open("s3:///x")
                .err()
                .expect("an error")
                .to_string();
            assert!(e.contains("no bucket name"), "{e}");
        }
        {
            let e = S3ArtifactStore::open("s3://bucket/a/../b")
                .err()
                .expect("an error")
                .to_string();
            assert!(e.contains("'.' and '..' components are not allowed"), "{e}");
        }
    }
}
