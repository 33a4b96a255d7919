//! Dataset-version SQL and rows, the same on SQLite and PostgreSQL: each statement is written
//! once (with `?`) and numbered (`$1, $2, ...`) for PostgreSQL.

use std::sync::LazyLock;

use keel_core::data::{DataKind, DataSummary, DataUse, DataVersion};
use keel_core::entities::DatasetSummary;
use keel_core::{Error, Result};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::search::{Bind, Dialect, Sql};

/// The dataset statements for one dialect.
pub(crate) struct DataSql {
    /// One version: name, version.
    pub version_at: String,
    /// The newest version: name.
    pub latest: String,
    /// Every dataset's newest version with its first time and version count.
    pub list: String,
    /// One dataset's versions, newest first: name.
    pub versions: String,
    /// The versions with a digest: digest.
    pub by_digest: String,
    /// The runs that logged an input with a digest: digest.
    pub uses: String,
    /// A new version: the [`DATA_COLUMNS`] then the digest.
    pub insert: String,
}

impl DataSql {
    fn new(dialect: Dialect) -> Self {
        let sql = |text: String| match dialect {
            Dialect::Sqlite => text,
            Dialect::Postgres => {
                let mut out = String::with_capacity(text.len() + 16);
                let mut n = 0;
                for c in text.chars() {
                    if c == '?' {
                        n += 1;
                        out.push_str(&format!("${n}"));
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        };
        let c = DATA_COLUMNS;
        DataSql {
            version_at: sql(format!(
                "SELECT {c} FROM data_versions WHERE name = ? AND version = ?"
            )),
            latest: sql(format!(
                "SELECT {c} FROM data_versions WHERE name = ? ORDER BY version DESC LIMIT 1"
            )),
            list: format!(
                "SELECT {c}, (SELECT creation_time FROM data_names n WHERE n.name = v.name), (SELECT count(*) FROM data_versions c WHERE c.name = v.name) FROM data_versions v WHERE version = (SELECT max(version) FROM data_versions m WHERE m.name = v.name) ORDER BY name"
            ),
            versions: sql(format!(
                "SELECT {c} FROM data_versions WHERE name = ? ORDER BY version DESC"
            )),
            by_digest: sql(format!(
                "SELECT {c} FROM data_versions WHERE digest = ? ORDER BY name, version"
            )),
            uses: sql("SELECT i.run_uuid, r.experiment_id, d.name, (SELECT t.value FROM run_dataset_input_tags t WHERE t.run_uuid = i.run_uuid AND t.dataset_uuid = i.dataset_uuid AND t.key = 'mlflow.data.context') FROM datasets d JOIN run_dataset_inputs i ON i.dataset_uuid = d.dataset_uuid JOIN runs r ON r.run_uuid = i.run_uuid WHERE d.digest = ? ORDER BY r.start_time DESC, i.run_uuid".into()),
            insert: sql(format!(
                "INSERT INTO data_versions ({c}, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )),
        }
    }
}

/// The statements for SQLite.
pub(crate) static SQLITE: LazyLock<DataSql> = LazyLock::new(|| DataSql::new(Dialect::Sqlite));
/// The statements for PostgreSQL.
pub(crate) static POSTGRES: LazyLock<DataSql> = LazyLock::new(|| DataSql::new(Dialect::Postgres));

/// The `data_versions` columns in the order [`data_version`] reads them.
pub(crate) const DATA_COLUMNS: &str = "name, version, hash, kind, format, size_bytes, file_count, row_count, schema, profile, source, created_by, creation_time, description";

/// A `data_versions` row selected with [`DATA_COLUMNS`] first.
pub(crate) fn data_version<'r, R>(r: &'r R) -> Result<DataVersion>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let db = |e: sqlx::Error| Error::internal(format!("database error: {e}"));
    let json = |text: Option<String>, what: &str| -> Result<Option<serde_json::Value>> {
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| Error::internal(format!("stored dataset {what} is not JSON: {e}")))
        })
        .transpose()
    };
    Ok(DataVersion {
        name: r.try_get(0).map_err(db)?,
        version: r.try_get(1).map_err(db)?,
        hash: r.try_get(2).map_err(db)?,
        kind: DataKind::parse(&r.try_get::<String, _>(3).map_err(db)?)?,
        format: r.try_get(4).map_err(db)?,
        size_bytes: r.try_get(5).map_err(db)?,
        file_count: r.try_get(6).map_err(db)?,
        row_count: r.try_get(7).map_err(db)?,
        schema: json(r.try_get(8).map_err(db)?, "schema")?,
        profile: json(r.try_get(9).map_err(db)?, "profile")?,
        source: r.try_get(10).map_err(db)?,
        created_by: r.try_get(11).map_err(db)?,
        creation_time: r.try_get(12).map_err(db)?,
        description: r.try_get(13).map_err(db)?,
    })
}

/// A [`DataSql::list`] row.
pub(crate) fn data_summary<'r, R>(r: &'r R) -> Result<DataSummary>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let db = |e: sqlx::Error| Error::internal(format!("database error: {e}"));
    let latest = data_version(r)?;
    Ok(DataSummary {
        name: latest.name.clone(),
        creation_time: r.try_get(14).map_err(db)?,
        version_count: r.try_get(15).map_err(db)?,
        latest,
    })
}

/// A [`DataSql::uses`] row.
pub(crate) fn data_use<'r, R>(r: &'r R) -> Result<DataUse>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let db = |e: sqlx::Error| Error::internal(format!("database error: {e}"));
    Ok(DataUse {
        run_id: r.try_get(0).map_err(db)?,
        experiment_id: r.try_get::<i64, _>(1).map_err(db)?.to_string(),
        dataset_name: r.try_get(2).map_err(db)?,
        context: r.try_get(3).map_err(db)?,
    })
}

/// The datasets the runs of `experiments` logged, with each input's context tag, at most
/// 1,000: one statement for either dialect.
pub(crate) fn dataset_summaries_sql(dialect: Dialect, experiments: &[i64]) -> Sql {
    let mut sql = Sql::new(dialect);
    sql.push(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest, t.value FROM datasets d \
         JOIN run_dataset_inputs i ON i.dataset_uuid = d.dataset_uuid \
         LEFT JOIN run_dataset_input_tags t ON t.run_uuid = i.run_uuid \
         AND t.dataset_uuid = i.dataset_uuid AND t.key = 'mlflow.data.context' \
         WHERE d.experiment_id IN ",
    );
    sql.bind_list(experiments.iter().map(|e| Bind::I64(*e)));
    sql.push(" ORDER BY d.experiment_id, d.name, d.digest, t.value LIMIT 1000");
    sql
}

pub(crate) fn dataset_summary<'r, R>(r: &'r R) -> Result<DatasetSummary>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let db = |e: sqlx::Error| Error::internal(format!("database error: {e}"));
    Ok(DatasetSummary {
        experiment_id: r.try_get::<i64, _>(0).map_err(db)?.to_string(),
        name: r.try_get(1).map_err(db)?,
        digest: r.try_get(2).map_err(db)?,
        context: r.try_get(3).map_err(db)?,
    })
}

/// The JSON text stored for a schema or profile.
pub(crate) fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// The error for a missing dataset or version.
pub(crate) fn not_found(name: &str, version: Option<i64>) -> Error {
    match version {
        Some(v) => Error::not_found(format!("Dataset '{name}' has no version {v}")),
        None => Error::not_found(format!("Dataset '{name}' not found")),
    }
}
