//! Dataset versions: named, numbered snapshots of data with their schema and profile.
//!
//! A new version locks its name's row first, so concurrent adds of one dataset (from several
//! servers on PostgreSQL) are numbered one after the other.

use keel_core::DataStore;
use keel_core::data::{DataKind, DataSummary, DataUse, DataValidation, DataVersion, digest_of};
use keel_core::entities::DatasetSummary;
use keel_core::{Error, Result, now_millis};

use super::SqlStore;
use super::audit::{On, kind, version_id};
use crate::db::{Bind, Conn, Lock, Row};

/// The `data_versions` columns in the order [`data_version`] reads them.
const DATA_COLUMNS: &str = "name, version, hash, kind, format, size_bytes, file_count, row_count, schema, profile, source, created_by, creation_time, description";

/// A `data_versions` row selected with [`DATA_COLUMNS`] first.
fn data_version(r: &Row) -> Result<DataVersion> {
    let json = |text: Option<String>, what: &str| -> Result<Option<serde_json::Value>> {
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| Error::internal(format!("stored dataset {what} is not JSON: {e}")))
        })
        .transpose()
    };
    Ok(DataVersion {
        name: r.get(0)?,
        version: r.get(1)?,
        hash: r.get(2)?,
        kind: DataKind::parse(&r.get::<String>(3)?)?,
        format: r.get(4)?,
        size_bytes: r.get(5)?,
        file_count: r.get(6)?,
        row_count: r.get(7)?,
        schema: json(r.get(8)?, "schema")?,
        profile: json(r.get(9)?, "profile")?,
        source: r.get(10)?,
        created_by: r.get(11)?,
        creation_time: r.get(12)?,
        description: r.get(13)?,
    })
}

/// The JSON text stored for a schema or profile.
fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// The error for a missing dataset or version.
fn not_found(name: &str, version: Option<i64>) -> Error {
    match version {
        Some(v) => Error::not_found(format!("Dataset '{name}' has no version {v}")),
        None => Error::not_found(format!("Dataset '{name}' not found")),
    }
}

/// One version of `name`, or its newest.
async fn version_row(
    c: &mut Conn<'_>,
    name: &str,
    version: Option<i64>,
) -> Result<Option<DataVersion>> {
    let sql = match version {
        Some(v) => c
            .stmt(&format!(
                "SELECT {DATA_COLUMNS} FROM data_versions WHERE name = ? AND version = ?"
            ))
            .arg(name)
            .arg(v),
        None => c
            .stmt(&format!(
                "SELECT {DATA_COLUMNS} FROM data_versions WHERE name = ? ORDER BY version DESC LIMIT 1"
            ))
            .arg(name),
    };
    c.row(sql).await?.as_ref().map(data_version).transpose()
}

#[async_trait::async_trait]
impl DataStore for SqlStore {
    /// Adds a version of `v.name`, or returns the newest one unchanged (and `false`) when it
    /// holds the same content.
    async fn create_data_version(&self, v: DataVersion) -> Result<(DataVersion, bool)> {
        let digest = digest_of(&v.hash)?.to_string();
        self.write(On::Bare(kind::DATASET, v.name.clone()), move |mut c| {
                Box::pin(async move {
                    let now = now_millis();
                    let name = c
                        .stmt("INSERT INTO data_names (name, last_version, creation_time) VALUES (?, 0, ?) ON CONFLICT (name) DO NOTHING")
                        .arg(&v.name)
                        .arg(now);
                    c.exec(name).await?;
                    let lock = c.lock(Lock::Update);
                    let last = c
                        .stmt(&format!(
                            "SELECT last_version FROM data_names WHERE name = ?{lock}"
                        ))
                        .arg(&v.name);
                    let last: i64 = c.value(last).await?.unwrap_or_default();
                    if let Some(latest) = version_row(&mut c, &v.name, None).await?
                        && latest.hash == v.hash
                    {
                        return Ok((latest, false));
                    }
                    let version = last + 1;
                    let bump = c
                        .stmt("UPDATE data_names SET last_version = ? WHERE name = ?")
                        .arg(version)
                        .arg(&v.name);
                    c.exec(bump).await?;
                    let insert = c
                        .stmt(&format!(
                            "INSERT INTO data_versions ({DATA_COLUMNS}, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        ))
                        .arg(&v.name)
                        .arg(version)
                        .arg(&v.hash)
                        .arg(v.kind.as_str())
                        .arg(&v.format)
                        .arg(v.size_bytes)
                        .arg(v.file_count)
                        .arg(v.row_count)
                        .arg(json_text(&v.schema))
                        .arg(json_text(&v.profile))
                        .arg(&v.source)
                        .arg(&v.created_by)
                        .arg(now)
                        .arg(&v.description)
                        .arg(digest);
                    c.exec(insert).await?;
                    Ok((
                        DataVersion {
                            version,
                            creation_time: now,
                            ..v
                        },
                        true,
                    ))
                })
            })
            .await
    }

    /// One version of a dataset, or its newest.
    async fn get_data_version(&self, name: &str, version: Option<i64>) -> Result<DataVersion> {
        version_row(&mut self.db.reader().await?.conn(), name, version)
            .await?
            .ok_or_else(|| not_found(name, version))
    }

    /// Every dataset's newest version with its first time and version count.
    async fn list_data(&self) -> Result<Vec<DataSummary>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt(&format!(
            "SELECT {DATA_COLUMNS}, (SELECT creation_time FROM data_names n WHERE n.name = v.name), (SELECT count(*) FROM data_versions c WHERE c.name = v.name) FROM data_versions v WHERE version = (SELECT max(version) FROM data_versions m WHERE m.name = v.name) ORDER BY name"
        ));
        c.rows(sql)
            .await?
            .iter()
            .map(|r| {
                let latest = data_version(r)?;
                Ok(DataSummary {
                    name: latest.name.clone(),
                    creation_time: r.get(14)?,
                    version_count: r.get(15)?,
                    latest,
                })
            })
            .collect()
    }

    /// One dataset's versions, newest first.
    async fn list_data_versions(&self, name: &str) -> Result<Vec<DataVersion>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt(&format!(
                "SELECT {DATA_COLUMNS} FROM data_versions WHERE name = ? ORDER BY version DESC"
            ))
            .arg(name);
        let rows = c.rows(sql).await?;
        if rows.is_empty() {
            return Err(not_found(name, None));
        }
        rows.iter().map(data_version).collect()
    }

    /// The versions whose content has `hash`.
    async fn data_versions_by_hash(&self, hash: &str) -> Result<Vec<DataVersion>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt(&format!(
                "SELECT {DATA_COLUMNS} FROM data_versions WHERE digest = ? ORDER BY name, version"
            ))
            .arg(digest_of(hash)?);
        c.rows(sql).await?.iter().map(data_version).collect()
    }

    /// The runs that logged an input with the content `hash`, newest first.
    async fn data_uses(&self, hash: &str) -> Result<Vec<DataUse>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt("SELECT i.run_uuid, r.experiment_id, d.name, (SELECT t.value FROM run_dataset_input_tags t WHERE t.run_uuid = i.run_uuid AND t.dataset_uuid = i.dataset_uuid AND t.key = 'mlflow.data.context') FROM datasets d JOIN run_dataset_inputs i ON i.dataset_uuid = d.dataset_uuid JOIN runs r ON r.run_uuid = i.run_uuid WHERE d.digest = ? ORDER BY r.start_time DESC, i.run_uuid")
            .arg(digest_of(hash)?);
        c.rows(sql)
            .await?
            .iter()
            .map(|r| {
                Ok(DataUse {
                    run_id: r.get(0)?,
                    experiment_id: r.get_id(1)?,
                    dataset_name: r.get(2)?,
                    context: r.get(3)?,
                })
            })
            .collect()
    }

    /// The datasets the runs of `experiments` logged, with each input's context tag, at most
    /// 1,000.
    async fn search_datasets(&self, experiments: &[i64]) -> Result<Vec<DatasetSummary>> {
        if experiments.is_empty() {
            return Ok(Vec::new());
        }
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut sql = c.sql();
        sql.push(
            "SELECT DISTINCT d.experiment_id, d.name, d.digest, t.value FROM datasets d \
             JOIN run_dataset_inputs i ON i.dataset_uuid = d.dataset_uuid \
             LEFT JOIN run_dataset_input_tags t ON t.run_uuid = i.run_uuid \
             AND t.dataset_uuid = i.dataset_uuid AND t.key = 'mlflow.data.context' \
             WHERE d.experiment_id IN ",
        );
        sql.bind_list(experiments.iter().map(|e| Bind::I64(*e)));
        sql.push(" ORDER BY d.experiment_id, d.name, d.digest, t.value LIMIT 1000");
        c.rows(sql)
            .await?
            .iter()
            .map(|r| {
                Ok(DatasetSummary {
                    experiment_id: r.get_id(0)?,
                    name: r.get(1)?,
                    digest: r.get(2)?,
                    context: r.get(3)?,
                })
            })
            .collect()
    }

    async fn record_validation(&self, v: DataValidation) -> Result<DataValidation> {
        self.write(On::Bare(kind::DATASET, version_id(&v.name, v.version)), move |mut c| {
                Box::pin(async move {
                    if version_row(&mut c, &v.name, Some(v.version)).await?.is_none() {
                        return Err(not_found(&v.name, Some(v.version)));
                    }
                    let v = DataValidation {
                        time: if v.time == 0 { now_millis() } else { v.time },
                        ..v
                    };
                    let sql = c
                        .stmt("INSERT INTO data_validations (name, version, time, created_by, passed, rules, failed, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
                        .arg(&v.name)
                        .arg(v.version)
                        .arg(v.time)
                        .arg(&v.created_by)
                        .arg(i64::from(v.passed))
                        .arg(v.rules)
                        .arg(v.failed)
                        .arg(v.report.to_string());
                    c.exec(sql).await?;
                    Ok(v)
                })
            })
            .await
    }

    async fn list_validations(&self, name: &str, version: i64) -> Result<Vec<DataValidation>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        if version_row(&mut c, name, Some(version)).await?.is_none() {
            return Err(not_found(name, Some(version)));
        }
        let sql = c
            .stmt("SELECT time, created_by, passed, rules, failed, report FROM data_validations WHERE name = ? AND version = ? ORDER BY id DESC")
            .arg(name)
            .arg(version);
        c.rows(sql)
            .await?
            .iter()
            .map(|r| {
                let report: String = r.get(5)?;
                Ok(DataValidation {
                    name: name.to_string(),
                    version,
                    time: r.get(0)?,
                    created_by: r.get(1)?,
                    passed: r.get::<i16>(2)? != 0,
                    rules: r.get(3)?,
                    failed: r.get(4)?,
                    report: serde_json::from_str(&report)
                        .map_err(|e| Error::internal(format!("stored report: {e}")))?,
                })
            })
            .collect()
    }
}
