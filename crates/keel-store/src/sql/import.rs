//! Writing entities that come from elsewhere (another MLflow server, another keel store) with
//! their own ids, names and timestamps. Each write is "create unless present", so an import that
//! stopped half-way can simply run again.

use keel_core::ImportStore;
use keel_core::entities::*;
use keel_core::{Error, Result, validate};

use super::SqlStore;
use super::audit::{On, kind, version_id};
use super::experiments::{experiment, set_tag};
use super::logged_models::load_one;
use super::registry::storage_location;
use super::runs::run_info_of;
use crate::db::Conn;

#[async_trait::async_trait]
impl ImportStore for SqlStore {
    async fn import_experiment(&self, exp: Experiment) -> Result<(String, bool)> {
        let root = self.artifact_root.clone();
        self.write(On::Created(kind::EXPERIMENT, |r: &(String, bool)| r.0.clone()), move |mut c| {
                Box::pin(async move {
                    if let Conn::Pg(_) = c {
                        // One importer at a time: two imports of one name cannot race.
                        let sql = c.stmt("SELECT pg_advisory_xact_lock(hashtext('keel.import_experiment'))");
                        c.exec(sql).await?;
                    }
                    let sql = c
                        .stmt("SELECT experiment_id FROM experiments WHERE name = ?")
                        .arg(&exp.name);
                    if let Some(id) = c.value::<i64>(sql).await? {
                        return Ok((id.to_string(), false));
                    }
                    // The source's id when it is free, else a new one.
                    let wanted = exp.experiment_id.parse::<i64>().ok().filter(|i| *i >= 0);
                    let free = match wanted {
                        Some(id) => {
                            let sql = c
                                .stmt("SELECT experiment_id FROM experiments WHERE experiment_id = ?")
                                .arg(id);
                            c.value::<i64>(sql).await?.is_none().then_some(id)
                        }
                        None => None,
                    };
                    let sql = match free {
                        Some(id) => c
                            .stmt("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (?, ?, '', ?, ?, ?) RETURNING experiment_id")
                            .arg(id),
                        None => c.stmt("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (?, '', ?, ?, ?) RETURNING experiment_id"),
                    }
                    .arg(&exp.name)
                    .arg(exp.lifecycle_stage.as_str())
                    .arg(exp.creation_time)
                    .arg(exp.last_update_time);
                    let id: i64 = c
                        .value(sql)
                        .await?
                        .ok_or_else(|| Error::internal("an insert returned no id"))?;
                    if let Conn::Pg(_) = c {
                        // Ids given explicitly do not advance the identity: move it past them.
                        let sql = c.stmt("SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'), GREATEST((SELECT MAX(experiment_id) FROM experiments), 1))");
                        c.exec(sql).await?;
                    }
                    let sql = c
                        .stmt("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?")
                        .arg(format!("{root}/{id}"))
                        .arg(id);
                    c.exec(sql).await?;
                    for t in &exp.tags {
                        let sql = set_tag(&c, id, t);
                        c.exec(sql).await?;
                    }
                    Ok((id.to_string(), true))
                })
            })
            .await
    }

    async fn import_run(&self, experiment_id: &str, info: RunInfo) -> Result<(RunInfo, bool)> {
        let exp_id = validate::experiment_id(experiment_id)?;
        validate::run_id(&info.run_id)?;
        let out = self.write(On::Created(kind::RUN, |r: &(RunInfo, bool)| r.0.run_id.clone()), move |mut c| {
                Box::pin(async move {
                    if let Ok(existing) = run_info_of(&mut c, &info.run_id).await {
                        if existing.experiment_id != exp_id.to_string() {
                            return Err(Error::already_exists(format!(
                                "Run '{}' already exists in experiment {}, not in {exp_id}",
                                info.run_id, existing.experiment_id
                            )));
                        }
                        return Ok((existing, false));
                    }
                    let exp = experiment(&mut c, exp_id).await?;
                    let artifact_uri =
                        format!("{}/{}/artifacts", exp.artifact_location, info.run_id);
                    let sql = c
                        .stmt("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active') ON CONFLICT (run_uuid) DO NOTHING")
                        .arg(&info.run_id)
                        .arg(&info.run_name)
                        .arg(exp_id)
                        .arg(&info.user_id)
                        .arg(info.status.as_str())
                        .arg(info.start_time)
                        .arg(info.end_time)
                        .arg(artifact_uri);
                    c.exec(sql).await?;
                    Ok((run_info_of(&mut c, &info.run_id).await?, true))
                })
            })
            .await?;
        if out.1 {
            self.run_created();
        }
        Ok(out)
    }

    async fn import_logged_model(
        &self,
        experiment_id: &str,
        info: LoggedModelInfo,
    ) -> Result<(LoggedModel, bool)> {
        let exp_id = validate::experiment_id(experiment_id)?;
        if !info.model_id.starts_with("m-") || info.model_id.len() > 64 {
            return Err(Error::invalid(format!(
                "Invalid logged model id '{}'",
                info.model_id
            )));
        }
        self.write(On::Created(kind::LOGGED_MODEL, |r: &(LoggedModel, bool)| r.0.info.model_id.clone()), move |mut c| {
                Box::pin(async move {
                    if let Ok(existing) = load_one(&mut c, &info.model_id, true).await {
                        return Ok((existing, false));
                    }
                    let exp = experiment(&mut c, exp_id).await?;
                    let location = format!(
                        "{}/models/{}/artifacts",
                        exp.artifact_location, info.model_id
                    );
                    let sql = c
                        .stmt("INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?) ON CONFLICT (model_id) DO NOTHING")
                        .arg(&info.model_id)
                        .arg(exp_id)
                        .arg(&info.name)
                        .arg(location)
                        .arg(info.creation_timestamp_ms)
                        .arg(info.last_updated_timestamp_ms)
                        .arg(info.status.as_str())
                        .arg(&info.model_type)
                        .arg(&info.source_run_id)
                        .arg(&info.status_message);
                    c.exec(sql).await?;
                    Ok((load_one(&mut c, &info.model_id, false).await?, true))
                })
            })
            .await
    }

    async fn import_registered_model(&self, m: RegisteredModel) -> Result<bool> {
        self.write(On::subject(kind::REGISTERED_MODEL, m.name.clone()), move |mut c| {
                Box::pin(async move {
                    let sql = c
                        .stmt("INSERT INTO registered_models (name, creation_time, last_updated_time, description, user_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING")
                        .arg(&m.name)
                        .arg(m.creation_timestamp)
                        .arg(m.last_updated_timestamp)
                        .arg(&m.description)
                        .arg(&m.user_id);
                    let inserted = c.exec(sql).await? == 1;
                    for t in &m.tags {
                        let sql = c
                            .stmt("INSERT INTO registered_model_tags (name, key, value) VALUES (?, ?, ?) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
                            .arg(&m.name)
                            .arg(&t.key)
                            .arg(&t.value);
                        c.exec(sql).await?;
                    }
                    Ok(inserted)
                })
            })
            .await
    }

    async fn import_model_version(&self, v: ModelVersion) -> Result<bool> {
        let number = v
            .version
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::invalid(format!("Invalid model version '{}'", v.version)))?;
        self.write(On::subject(kind::MODEL_VERSION, version_id(&v.name, number)), move |mut c| {
                Box::pin(async move {
                    // Numbers stay unique and increasing: the next new version comes after every
                    // imported one. The update also locks the model's row.
                    let sql = c
                        .stmt("UPDATE registered_models SET last_version = CASE WHEN last_version > ? THEN last_version ELSE ? END WHERE name = ? RETURNING last_version")
                        .arg(number)
                        .arg(number)
                        .arg(&v.name);
                    if c.value::<i64>(sql).await?.is_none() {
                        return Err(Error::not_found(format!(
                            "Registered Model with name={} not found",
                            v.name
                        )));
                    }
                    let location = storage_location(&mut c, &v.source)
                        .await
                        .unwrap_or_else(|_| v.source.clone());
                    let sql = c
                        .stmt("INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, storage_location, run_id, run_link, model_id, status, status_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING")
                        .arg(&v.name)
                        .arg(number)
                        .arg(v.creation_timestamp)
                        .arg(v.last_updated_timestamp)
                        .arg(&v.description)
                        .arg(&v.user_id)
                        .arg(&v.current_stage)
                        .arg(&v.source)
                        .arg(location)
                        .arg(&v.run_id)
                        .arg(&v.run_link)
                        .arg(&v.model_id)
                        .arg(&v.status)
                        .arg(&v.status_message);
                    let inserted = c.exec(sql).await? == 1;
                    for t in &v.tags {
                        let sql = c
                            .stmt("INSERT INTO model_version_tags (name, version, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
                            .arg(&v.name)
                            .arg(number)
                            .arg(&t.key)
                            .arg(&t.value);
                        c.exec(sql).await?;
                    }
                    Ok(inserted)
                })
            })
            .await
    }
}
