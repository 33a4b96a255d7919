//! The PostgreSQL metadata store, for teams that outgrow one SQLite file and for several keel
//! servers sharing one database.
//!
//! Same tables and meaning as the SQLite store ([`crate::sqlite`]), its own migrations
//! (`migrations/postgres/`), and no in-process state: every read and write goes to the database,
//! and each write is one transaction on a pooled connection, so any number of servers can share
//! it. Concurrency is PostgreSQL's: row locks where a write reads before it writes (a version
//! number, a run's state), unique constraints everywhere else.

mod import;
mod paging;
mod runs;
mod schema;
mod store_impl;

use std::str::FromStr;

use keel_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
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

/// The metadata store on PostgreSQL.
pub struct PgStore {
    pool: PgPool,
    core: crate::sql::Core,
    artifact_root: String,
    /// Metric name -> key id. Ids are assigned once and never change or get reused, so this
    /// cache can never disagree with the database or with other servers.
    metric_keys: runs::MetricKeys,
    /// Runs this process created, for [`PgStore::run_created`].
    runs_created: std::sync::atomic::AtomicU64,
}

/// How many new runs make [`PgStore::run_created`] refresh the planner's statistics.
const ANALYZE_EVERY: u64 = 500;

impl PgStore {
    /// Connects, applies pending migrations (under PostgreSQL's advisory lock, so replicas that
    /// start together migrate once) and makes sure the `Default` experiment (id 0) exists.
    pub async fn open(url: &str, artifact_root: &str) -> Result<Self> {
        let opts = options(url)?;
        {
            let mut conn = opts.connect().await.map_err(connect_error)?;
            schema::migrate(&mut conn).await?;
            let _ = conn.close().await;
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(opts)
            .await
            .map_err(connect_error)?;
        let store = PgStore {
            core: crate::sql::Core {
                db: crate::db::Db::Pg(pool.clone()),
                artifact_root: artifact_root.trim_end_matches('/').to_string(),
            },
            pool,
            artifact_root: artifact_root.trim_end_matches('/').to_string(),
            metric_keys: runs::MetricKeys::default(),
            runs_created: std::sync::atomic::AtomicU64::new(0),
        };
        store.core.ensure_default_experiment().await?;
        Ok(store)
    }

    /// The migration state of the database at `url`, without changing it.
    pub async fn schema_status(url: &str) -> Result<SchemaStatus> {
        let mut conn = options(url)?.connect().await.map_err(connect_error)?;
        schema::status(&mut conn).await
    }

    /// Applies pending migrations without opening a store.
    pub async fn migrate(url: &str) -> Result<()> {
        let mut conn = options(url)?.connect().await.map_err(connect_error)?;
        schema::migrate(&mut conn).await
    }
}

impl PgStore {
    /// Counts a new run and, every [`ANALYZE_EVERY`], refreshes the planner's statistics of the
    /// tables search reads, in the background. Autovacuum analyzes a table only after it grew by
    /// a tenth and a minute passed; until then the planner takes a table that went from empty to
    /// thousands of runs for empty and picks nested loops that make a search ten times slower.
    pub(crate) fn run_created(&self) {
        let n = self
            .runs_created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n.is_multiple_of(ANALYZE_EVERY) {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    sqlx::query("ANALYZE runs, params, tags, latest_metrics, metric_keys")
                        .execute(&pool)
                        .await
                {
                    tracing::warn!("cannot refresh PostgreSQL statistics: {e}");
                }
            });
        }
    }
}

/// An experiment with its tags.
pub(crate) async fn experiment(
    conn: &mut sqlx::PgConnection,
    id: i64,
) -> Result<keel_core::entities::Experiment> {
    crate::sql::experiments::experiment(&mut crate::db::Conn::Pg(conn), id).await
}

fn connect_error(e: sqlx::Error) -> Error {
    Error::internal(format!("cannot connect to PostgreSQL: {e}"))
}
