//! Writing entities that come from elsewhere (another MLflow server, another keel store) with
//! their own ids, names and timestamps. Each write is "create unless present", so an import that
//! stopped half-way can simply run again.

use keel_core::entities::*;
use keel_core::{Error, Result};
use sqlx::SqliteConnection;

use super::tracking::{experiment, parse_experiment_id};
use super::{DbResult, SqliteStore, rows};
use crate::db::Conn;
use crate::sql::registry::storage_location;

/// Experiment id to use for a new experiment: the source's id when it is free, else a new one.
async fn free_experiment_id(conn: &mut SqliteConnection, wanted: &str) -> Result<Option<i64>> {
    let Ok(id) = wanted.parse::<i64>() else {
        return Ok(None);
    };
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE experiment_id = ?")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    Ok(taken.is_none().then_some(id))
}

impl SqliteStore {
    pub(crate) async fn do_import_experiment(&self, exp: Experiment) -> Result<(String, bool)> {
        let root = self.artifact_root.clone();
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let existing: Option<i64> = sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = ?").bind(&exp.name).fetch_optional(&mut *c).await.db()?;
                    if let Some(id) = existing {
                        return Ok((id.to_string(), false));
                    }
                    let id = match free_experiment_id(c, &exp.experiment_id).await? {
                        Some(id) => {
                            sqlx::query("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (?, ?, ?, ?, ?, ?)")
                                .bind(id)
                                .bind(&exp.name)
                                .bind(format!("{root}/{id}"))
                                .bind(exp.lifecycle_stage.as_str())
                                .bind(exp.creation_time)
                                .bind(exp.last_update_time)
                                .execute(&mut *c)
                                .await
                                .db()?;
                            id
                        }
                        None => {
                            let id = sqlx::query("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (?, '', ?, ?, ?)")
                                .bind(&exp.name)
                                .bind(exp.lifecycle_stage.as_str())
                                .bind(exp.creation_time)
                                .bind(exp.last_update_time)
                                .execute(&mut *c)
                                .await
                                .db()?
                                .last_insert_rowid();
                            sqlx::query("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?").bind(format!("{root}/{id}")).bind(id).execute(&mut *c).await.db()?;
                            id
                        }
                    };
                    for t in &exp.tags {
                        sqlx::query("INSERT OR REPLACE INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)").bind(id).bind(&t.key).bind(&t.value).execute(&mut *c).await.db()?;
                    }
                    Ok((id.to_string(), true))
                })
            })
            .await
    }

    pub(crate) async fn do_import_run(
        &self,
        experiment_id: &str,
        info: RunInfo,
    ) -> Result<(RunInfo, bool)> {
        let exp_id = parse_experiment_id(experiment_id)?;
        keel_core::validate::run_id(&info.run_id)?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    if let Ok(existing) = rows::run_info_of(c, &info.run_id).await {
                        if existing.experiment_id != exp_id.to_string() {
                            return Err(Error::already_exists(format!(
                                "Run '{}' already exists in experiment {}, not in {exp_id}",
                                info.run_id, existing.experiment_id
                            )));
                        }
                        return Ok((existing, false));
                    }
                    let exp = experiment(c, exp_id).await?;
                    let artifact_uri = format!("{}/{}/artifacts", exp.artifact_location, info.run_id);
                    sqlx::query("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active')")
                        .bind(&info.run_id)
                        .bind(&info.run_name)
                        .bind(exp_id)
                        .bind(&info.user_id)
                        .bind(info.status.as_str())
                        .bind(info.start_time)
                        .bind(info.end_time)
                        .bind(&artifact_uri)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    let created = rows::run_info_of(c, &info.run_id).await?;
                    Ok((created, true))
                })
            })
            .await
    }

    pub(crate) async fn do_import_logged_model(
        &self,
        experiment_id: &str,
        info: LoggedModelInfo,
    ) -> Result<(LoggedModel, bool)> {
        let exp_id = parse_experiment_id(experiment_id)?;
        if !info.model_id.starts_with("m-") || info.model_id.len() > 64 {
            return Err(Error::invalid(format!(
                "Invalid logged model id '{}'",
                info.model_id
            )));
        }
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    if let Ok(existing) = crate::sql::logged_models::load_one(&mut Conn::Sqlite(c), &info.model_id, true).await {
                        return Ok((existing, false));
                    }
                    let exp = experiment(c, exp_id).await?;
                    let location = format!("{}/models/{}/artifacts", exp.artifact_location, info.model_id);
                    sqlx::query("INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)")
                        .bind(&info.model_id)
                        .bind(exp_id)
                        .bind(&info.name)
                        .bind(&location)
                        .bind(info.creation_timestamp_ms)
                        .bind(info.last_updated_timestamp_ms)
                        .bind(info.status.as_str())
                        .bind(&info.model_type)
                        .bind(&info.source_run_id)
                        .bind(&info.status_message)
                        .execute(&mut *c)
                        .await
                        .db()?;
                    Ok((crate::sql::logged_models::load_one(&mut Conn::Sqlite(c), &info.model_id, false).await?, true))
                })
            })
            .await
    }

    pub(crate) async fn do_import_registered_model(&self, m: RegisteredModel) -> Result<bool> {
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let inserted = sqlx::query("INSERT OR IGNORE INTO registered_models (name, creation_time, last_updated_time, description, user_id) VALUES (?, ?, ?, ?, ?)")
                        .bind(&m.name)
                        .bind(m.creation_timestamp)
                        .bind(m.last_updated_timestamp)
                        .bind(&m.description)
                        .bind(&m.user_id)
                        .execute(&mut *c)
                        .await
                        .db()?
                        .rows_affected()
                        == 1;
                    for t in &m.tags {
                        sqlx::query("INSERT OR REPLACE INTO registered_model_tags (name, key, value) VALUES (?, ?, ?)").bind(&m.name).bind(&t.key).bind(&t.value).execute(&mut *c).await.db()?;
                    }
                    Ok(inserted)
                })
            })
            .await
    }

    pub(crate) async fn do_import_model_version(&self, v: ModelVersion) -> Result<bool> {
        let number = v
            .version
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::invalid(format!("Invalid model version '{}'", v.version)))?;
        self.writer
            .write(move |c| {
                Box::pin(async move {
                    let last: Option<i64> = sqlx::query_scalar("SELECT last_version FROM registered_models WHERE name = ?").bind(&v.name).fetch_optional(&mut *c).await.db()?;
                    if last.is_none() {
                        return Err(Error::not_found(format!("Registered Model with name={} not found", v.name)));
                    }
                    let location = storage_location(&mut Conn::Sqlite(c), &v.source).await.unwrap_or_else(|_| v.source.clone());
                    let inserted = sqlx::query("INSERT OR IGNORE INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, storage_location, run_id, run_link, model_id, status, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                        .bind(&v.name)
                        .bind(number)
                        .bind(v.creation_timestamp)
                        .bind(v.last_updated_timestamp)
                        .bind(&v.description)
                        .bind(&v.user_id)
                        .bind(&v.current_stage)
                        .bind(&v.source)
                        .bind(&location)
                        .bind(&v.run_id)
                        .bind(&v.run_link)
                        .bind(&v.model_id)
                        .bind(&v.status)
                        .bind(&v.status_message)
                        .execute(&mut *c)
                        .await
                        .db()?
                        .rows_affected()
                        == 1;
                    // Numbers stay unique and increasing: the next new version comes after every
                    // imported one.
                    sqlx::query("UPDATE registered_models SET last_version = MAX(last_version, ?) WHERE name = ?").bind(number).bind(&v.name).execute(&mut *c).await.db()?;
                    for t in &v.tags {
                        sqlx::query("INSERT OR REPLACE INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?)").bind(&v.name).bind(number).bind(&t.key).bind(&t.value).execute(&mut *c).await.db()?;
                    }
                    Ok(inserted)
                })
            })
            .await
    }
}
