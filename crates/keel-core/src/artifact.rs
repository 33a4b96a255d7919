//! Artifact paths that cannot escape the store's root, and the [`ArtifactStore`] trait.

use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::{Error, Result};

/// A stream of bytes going to or coming from an artifact store.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A relative artifact path whose components are all plain names: no `..`, no `.`, no empty
/// component, no absolute path, no backslash, no NUL. Built only by [`ArtifactPath::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// Checks a `/`-separated path (already percent-decoded once). A trailing `/` is allowed.
    pub fn parse(raw: &str) -> Result<Self> {
        // "Invalid path" first, as MLflow words it.
        let bad = |why: &str| Error::invalid(format!("Invalid path '{raw}': {why}"));
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if raw.starts_with('/') {
            return Err(bad("absolute paths are not allowed"));
        }
        if raw.contains('\\') || raw.contains('\0') {
            return Err(bad("backslashes and NUL bytes are not allowed"));
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        let mut parts = Vec::new();
        for comp in trimmed.split('/') {
            match comp {
                "" => return Err(bad("empty path components ('//') are not allowed")),
                "." | ".." => return Err(bad("'.' and '..' components are not allowed")),
                c if c.len() == 2 && c.ends_with(':') => {
                    return Err(bad("drive letters are not allowed"));
                }
                c => parts.push(c),
            }
        }
        Ok(ArtifactPath(parts.join("/")))
    }

    /// Joins a child path below this one.
    pub fn join(&self, child: &ArtifactPath) -> ArtifactPath {
        ArtifactPath(format!("{}/{}", self.0, child.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl std::fmt::Display for ArtifactPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scheme of the artifact URIs a keel server hands out, served by its artifact proxy.
pub const ARTIFACT_SCHEME: &str = "mlflow-artifacts:";

/// The store path behind an artifact URI of the proxied scheme (`mlflow-artifacts:/1/<run>/artifacts`,
/// also written with a `//host:port` part), checked as every artifact path is; `None` when the
/// URI has another scheme.
pub fn proxied_path(uri: &str) -> Option<Result<ArtifactPath>> {
    let rest = uri.strip_prefix(ARTIFACT_SCHEME)?;
    let rest = match rest.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path.split_once('/').map_or("", |(_, p)| p),
        None => rest.trim_start_matches('/'),
    };
    Some(ArtifactPath::parse(rest))
}

/// One entry of a directory listing, in MLflow's `FileInfo` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// The entry's path (a bare name from [`ArtifactStore::list`]).
    pub path: String,
    pub is_dir: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// Where artifacts live: bytes stream in and out, never whole in memory.
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync + 'static {
    /// Stores `body` at `path`, replacing any file there; returns the number of bytes written.
    /// A failed upload leaves no partial file behind.
    async fn put(&self, path: &ArtifactPath, body: ByteStream) -> Result<u64>;
    /// Opens the file at `path`: its size and a stream of its bytes.
    async fn get(&self, path: &ArtifactPath) -> Result<(u64, ByteStream)>;
    /// Lists the direct children of `dir` (the root when `None`), each `path` being the child's
    /// name, sorted by name. A missing directory lists as empty.
    async fn list(&self, dir: Option<&ArtifactPath>) -> Result<Vec<FileInfo>>;
    /// Deletes the file or directory tree at `path`.
    async fn delete(&self, path: &ArtifactPath) -> Result<()>;
    /// A URI that names the store's root, for display (`file:///...`, `s3://...`).
    fn root_uri(&self) -> String;
    /// The size of the file at `path`, or `None` when there is no file there.
    async fn head(&self, path: &ArtifactPath) -> Result<Option<u64>>;
    /// Stores the local file `src` at `path`. Unlike [`ArtifactStore::put`] it may return
    /// before the bytes are durable: call [`ArtifactStore::sync`] once after a batch of these
    /// and before recording anything that refers to them.
    async fn put_file(&self, path: &ArtifactPath, src: &std::path::Path) -> Result<u64>;
    /// Makes every earlier [`ArtifactStore::put_file`] durable.
    async fn sync(&self) -> Result<()>;

    /// The sizes of several files (`None` where there is none), in order. By default
    /// [`ArtifactStore::head`] on each, [`BATCH_CONCURRENCY`] at a time.
    async fn head_many(&self, paths: &[ArtifactPath]) -> Result<Vec<Option<u64>>> {
        futures::stream::iter(paths.iter().cloned())
            .map(|p| async move { self.head(&p).await })
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Stores several local files (`(path, src)` pairs) as [`ArtifactStore::put_file`] does,
    /// calling `done` with each file's size as it lands; returns the sizes in order. By
    /// default [`ArtifactStore::put_file`] on each, [`BATCH_CONCURRENCY`] at a time.
    async fn put_files(
        &self,
        files: &[(ArtifactPath, std::path::PathBuf)],
        done: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u64>> {
        futures::stream::iter(files.iter().cloned())
            .map(|(p, src)| async move {
                let n = self.put_file(&p, &src).await?;
                done(n);
                Ok(n)
            })
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }
}

/// Requests in flight at once in the default batch methods of [`ArtifactStore`].
pub const BATCH_CONCURRENCY: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_uris_give_checked_store_paths() {
        let path = |uri: &str| proxied_path(uri).map(|p| p.map(|p| p.as_str().to_string()));
        assert_eq!(
            path("mlflow-artifacts:/1/abc/artifacts"),
            Some(Ok("1/abc/artifacts".into()))
        );
        assert_eq!(
            path("mlflow-artifacts://host:5000/1/abc/artifacts/"),
            Some(Ok("1/abc/artifacts".into()))
        );
        assert_eq!(path("s3://bucket/1/abc"), None);
        for escaping in [
            "mlflow-artifacts:/1/../../etc",
            "mlflow-artifacts://h/..",
            "mlflow-artifacts:/",
        ] {
            let e = path(escaping)
                .expect("the proxied scheme")
                .expect_err("refused");
            assert!(e.message.starts_with("Invalid path"), "{escaping}: {e}");
        }
    }

    #[test]
    fn paths_cannot_escape() {
        assert_eq!(
            ArtifactPath::parse("0/abc/artifacts/model/MLmodel")
                .unwrap()
                .as_str(),
            "0/abc/artifacts/model/MLmodel"
        );
        assert_eq!(ArtifactPath::parse("a/b/").unwrap().as_str(), "a/b");
        for bad in [
            "",
            "/etc/passwd",
            "a/../../b",
            "..",
            "a/./b",
            "a//b",
            "a\\..\\b",
            "C:/x",
            "a\0b",
        ] {
            assert!(
                ArtifactPath::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
