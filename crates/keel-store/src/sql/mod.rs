//! The metadata store written once for both SQL dialects: each module holds one entity's
//! statements, row mapping and messages, over the primitive in [`crate::db`].

mod approvals;
pub(crate) mod audit;
pub(crate) mod auth;
mod data;
pub(crate) mod experiments;
mod import;
pub(crate) mod logged_models;
pub(crate) mod paging;
pub(crate) mod registry;
pub(crate) mod rollups;
pub(crate) mod runs;

use std::sync::atomic::{AtomicBool, AtomicU64};

use keel_core::entities::clamp_infinite;

use crate::db::Db;
use crate::postgres::runs::MetricKeys;

/// [`keel_core::MetadataStore`] on SQLite or PostgreSQL: opened by
/// [`crate::sqlite::SqliteStore::open`] or [`crate::postgres::PgStore::open`].
pub struct SqlStore {
    pub(crate) db: Db,
    /// The URI prefix new experiments get their artifact location under.
    pub(crate) artifact_root: String,
    /// Metric name -> key id, for PostgreSQL's batch writer and search, which bind ids (SQLite
    /// resolves names inside its statements). Ids are assigned once and never change or get
    /// reused, so this cache can never disagree with the database or with other servers.
    pub(crate) metric_keys: MetricKeys,
    /// Runs this process created, for refreshing PostgreSQL's statistics.
    pub(crate) runs_created: AtomicU64,
    /// Whether every write appends to the audit log ([`audit`]).
    pub(crate) audit: AtomicBool,
}

impl SqlStore {
    pub(crate) fn new(db: Db, artifact_root: &str) -> Self {
        SqlStore {
            db,
            artifact_root: artifact_root.trim_end_matches('/').to_string(),
            metric_keys: MetricKeys::default(),
            runs_created: AtomicU64::new(0),
            audit: AtomicBool::new(false),
        }
    }
}

/// A run with its info and data, before its inputs and outputs are attached.
pub(crate) fn bare_run(
    info: keel_core::entities::RunInfo,
    data: keel_core::entities::RunData,
) -> keel_core::entities::Run {
    keel_core::entities::Run {
        info,
        data,
        inputs: Default::default(),
        outputs: Default::default(),
    }
}

/// Reads a metric value as stored (finite value, NaN flag).
pub(crate) fn metric_value(value: f64, is_nan: i16) -> f64 {
    if is_nan != 0 { f64::NAN } else { value }
}

/// Splits a value for storage: (value, is_nan), infinities clamped as MLflow does.
pub(crate) fn store_value(v: f64) -> (f64, bool) {
    if v.is_nan() {
        (0.0, true)
    } else {
        (clamp_infinite(v), false)
    }
}

#[async_trait::async_trait]
impl keel_core::MetadataStore for SqlStore {
    async fn ping(&self) -> keel_core::Result<()> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt("SELECT 1");
        c.exec(sql).await.map(|_| ())
    }
}
