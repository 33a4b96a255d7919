//! The PostgreSQL metadata store, for teams that outgrow one SQLite file and for several keel
//! servers sharing one database.
//!
//! Same tables and meaning as the SQLite store ([`crate::sqlite`]), its own migrations
//! (`migrations/postgres/`), and no in-process state: every read and write goes to the database,
//! and each write is one transaction on a pooled connection, so any number of servers can share
//! it. Concurrency is PostgreSQL's: row locks where a write reads before it writes (a version
//! number, a run's state), unique constraints everywhere else.

pub(crate) mod runs;
mod schema;

use std::str::FromStr;

use keel_core::{Error, Result};

use crate::db::{Conn, Db};
use crate::sql::SqlStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

pub use schema::MIGRATIONS;

use crate::schema::SchemaStatus;

pub(crate) use crate::db::DbResult;

/// Connections per server process: enough for both cores' worth of requests plus slow readers,
/// few enough that a handful of replicas stay well under PostgreSQL's default 100.
const POOL_SIZE: u32 = 12;

fn options(url: &str) -> Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid(format!("Invalid PostgreSQL URL: {e}")))?
        .disable_statement_logging())
}

/// Opens PostgreSQL metadata stores.
pub struct PgStore;

impl PgStore {
    /// Connects, applies pending migrations (under PostgreSQL's advisory lock, so replicas that
    /// start together migrate once) and makes sure the `Default` experiment (id 0) exists.
    pub async fn open(url: &str, artifact_root: &str) -> Result<SqlStore> {
        let opts = options(url)?;
        {
            let mut conn = opts.connect().await.map_err(connect_error)?;
            crate::schema::migrate(&mut Conn::Pg(&mut conn), MIGRATIONS).await?;
            let _ = conn.close().await;
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(opts)
            .await
            .map_err(connect_error)?;
        let store = SqlStore::new(Db::Pg(pool), artifact_root);
        store.ensure_default_experiment().await?;
        store.load_audit_flag().await?;
        Ok(store)
    }

    /// The migration state of the database at `url`, without changing it.
    pub async fn schema_status(url: &str) -> Result<SchemaStatus> {
        let mut conn = options(url)?.connect().await.map_err(connect_error)?;
        crate::schema::status(&mut Conn::Pg(&mut conn), MIGRATIONS).await
    }

    /// Applies pending migrations without opening a store.
    pub async fn migrate(url: &str) -> Result<()> {
        let mut conn = options(url)?.connect().await.map_err(connect_error)?;
        crate::schema::migrate(&mut Conn::Pg(&mut conn), MIGRATIONS).await
    }
}

fn connect_error(e: sqlx::Error) -> Error {
    Error::internal(format!("cannot connect to PostgreSQL: {e}"))
}
