//! The SQLite metadata store.
//!
//! One file in WAL mode. Reads use a small pool of read-only connections and never block on
//! writes. Every write goes through one writer task ([`writer`]): it drains the queue, runs each
//! write in its own savepoint inside one transaction, commits (fsync) once, then answers every
//! caller. So concurrent clients never see "database is locked", one failed write does not undo
//! its neighbours, and a write is acknowledged only once it is durable.

pub(crate) mod log_batch;
pub(crate) mod rows;
mod schema;
pub(crate) mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use keel_core::{Error, Result};

use crate::db::{Conn, Db};
use crate::sql::SqlStore;
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use crate::schema::SchemaStatus;
pub use schema::MIGRATIONS;

pub(crate) use crate::db::DbResult;

/// Read connections: enough to keep both cores of a small machine busy on reads while the
/// writer works.
const READERS: u32 = 3;

/// Opens SQLite metadata stores.
pub struct SqliteStore;

impl SqliteStore {
    /// Opens the database file (creating it and its folder if needed), applies migrations and
    /// makes sure the `Default` experiment (id 0) exists.
    pub async fn open(path: &Path, artifact_root: &str) -> Result<SqlStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::internal(format!("cannot create folder {}: {e}", dir.display()))
            })?;
        }
        let base = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .db()?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("temp_store", "memory")
            .disable_statement_logging();

        // Page caches: 8 MiB for the writer, 4 MiB per reader (the OS caches the file too).
        let mut write_conn = base
            .clone()
            .create_if_missing(true)
            .pragma("cache_size", "-8192")
            .connect()
            .await
            .db()?;
        crate::schema::migrate(&mut Conn::Sqlite(&mut write_conn), MIGRATIONS).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(1)
            .connect_with(base.read_only(true).pragma("cache_size", "-4096"))
            .await
            .db()?;
        let store = SqlStore::new(
            Db::Sqlite {
                read,
                writer: writer::Writer::spawn(write_conn),
            },
            artifact_root,
        );
        store.ensure_default_experiment().await?;
        store.load_audit_flag().await?;
        Ok(store)
    }

    /// The migration state of the database file at `path`, without changing it.
    pub async fn schema_status(path: &Path) -> Result<SchemaStatus> {
        let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .db()?
            .read_only(true)
            .connect()
            .await
            .db()?;
        crate::schema::status(&mut Conn::Sqlite(&mut conn), MIGRATIONS).await
    }
}
