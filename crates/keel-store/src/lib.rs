//! keel-store: where keel keeps things.
//!
//! [`SqlStore`] implements [`keel_core::MetadataStore`] once for two engines: one SQLite file in
//! WAL mode with a single writer task that batches concurrent writes into transactions
//! ([`sqlite::SqliteStore::open`]), or PostgreSQL shared by any number of servers
//! ([`postgres::PgStore::open`]).
//! [`local::LocalArtifactStore`] and [`s3::S3ArtifactStore`] implement [`keel_core::ArtifactStore`]
//! on a folder and on an S3-compatible bucket, streaming bytes both ways. [`open_metadata_store`] and [`open_artifact_store`] pick a backend from a URL.

mod db;
pub mod local;
mod names;
pub mod postgres;
pub mod s3;
mod schema;
mod search;
mod sql;

pub use sql::SqlStore;
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use keel_core::{ArtifactStore, Error, MetadataStore, Result};

/// Where metadata lives, parsed from `--db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `sqlite:///abs/path.db`, `sqlite://rel/path.db` or a bare file path.
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database[?options]`.
    Postgres(String),
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<Self> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            if rest.is_empty() {
                return Err(Error::invalid(format!(
                    "Invalid database URL '{url}': no file path"
                )));
            }
            return Ok(DbUrl::Sqlite(PathBuf::from(rest)));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            return Ok(DbUrl::Sqlite(PathBuf::from(rest)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(url.to_string()));
        }
        if url.contains("://") {
            return Err(Error::invalid(format!(
                "Unsupported database URL '{url}': expected sqlite:///path/keel.db or postgres://..."
            )));
        }
        Ok(DbUrl::Sqlite(PathBuf::from(url)))
    }
}

/// Opens (creating and migrating if needed) the metadata store at `url`, behind the service
/// layer ([`keel_core::service::Service`]) that applies MLflow's rules to every caller's writes.
/// `artifact_root` is the URI prefix new experiments get their artifact location under
/// (`mlflow-artifacts:`).
pub async fn open_metadata_store(url: &str, artifact_root: &str) -> Result<Arc<dyn MetadataStore>> {
    let store: Arc<dyn MetadataStore> = match DbUrl::parse(url)? {
        DbUrl::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(&path, artifact_root).await?),
        DbUrl::Postgres(url) => Arc::new(postgres::PgStore::open(&url, artifact_root).await?),
    };
    Ok(Arc::new(keel_core::service::Service::new(store)))
}

/// Opens the artifact store at `url`: `s3://bucket/prefix`, `file:///path` or a bare path.
pub async fn open_artifact_store(url: &str) -> Result<Arc<dyn ArtifactStore>> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(s3::S3ArtifactStore::open(url)?));
    }
    let path = if let Some(rest) = url.strip_prefix("file://") {
        PathBuf::from(rest)
    } else if url.contains("://") {
        return Err(Error::invalid(format!(
            "Unsupported artifact store URL '{url}': expected s3://bucket/prefix, file:///path or a folder path"
        )));
    } else {
        PathBuf::from(url)
    };
    Ok(Arc::new(local::LocalArtifactStore::open(&path).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_urls() {
        assert_eq!(
            DbUrl::parse("sqlite:///tmp/a.db").unwrap(),
            DbUrl::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            DbUrl::parse("keel.db").unwrap(),
            DbUrl::Sqlite("keel.db".into())
        );
        {
            let e = DbUrl::parse("mysql://x").expect_err("an error").to_string();
            assert!(e.contains("Unsupported database URL 'mysql://x'"), "{e}");
        }
        assert_eq!(
            DbUrl::parse("postgres://u@h/db").unwrap(),
            DbUrl::Postgres("postgres://u@h/db".into())
        );
        {
            let e = DbUrl::parse("sqlite://").expect_err("an error").to_string();
            assert!(e.contains("no file path"), "{e}");
        }
    }
}
