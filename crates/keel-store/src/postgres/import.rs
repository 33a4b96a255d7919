//! Writing entities that come from elsewhere with their own ids, names and timestamps, on
//! PostgreSQL. Each write is "create unless present", so an interrupted import can run again.

use keel_core::entities::*;
use keel_core::{Error, Result, validate};

use super::experiment;
use super::runs::run_info_of;
use super::{DbResult, PgStore};
use crate::db::Conn;
use crate::sql::registry::storage_location;

impl PgStore {
    pub(crate) async fn do_import_experiment(&self, exp: Experiment) -> Result<(String, bool)> {
        let mut tx = self.pool.begin().await.db()?;
        // One importer at a time per name: the advisory lock keeps two imports from racing.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('keel.import_experiment'))")
            .execute(&mut *tx)
            .await
            .db()?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
                .bind(&exp.name)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        if let Some(id) = existing {
            return Ok((id.to_string(), false));
        }
        let wanted = exp.experiment_id.parse::<i64>().ok().filter(|i| *i >= 0);
        let free = match wanted {
            Some(id) => sqlx::query_scalar::<_, i64>(
                "SELECT experiment_id FROM experiments WHERE experiment_id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .db()?
            .is_none()
            .then_some(id),
            None => None,
        };
        let id: i64 = match free {
            Some(id) => sqlx::query_scalar("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES ($1, $2, '', $3, $4, $5) RETURNING experiment_id")
                .bind(id),
            None => sqlx::query_scalar("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES ($1, '', $2, $3, $4) RETURNING experiment_id"),
        }
        .bind(&exp.name)
        .bind(exp.lifecycle_stage.as_str())
        .bind(exp.creation_time)
        .bind(exp.last_update_time)
        .fetch_one(&mut *tx)
        .await
        .db()?;
        // Ids given explicitly do not advance the identity: move it past them.
        sqlx::query("SELECT setval(pg_get_serial_sequence('experiments', 'experiment_id'), GREATEST((SELECT MAX(experiment_id) FROM experiments), 1))")
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
            .bind(format!("{}/{id}", self.artifact_root))
            .bind(id)
            .execute(&mut *tx)
            .await
            .db()?;
        for t in &exp.tags {
            sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value")
                .bind(id)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()?;
        Ok((id.to_string(), true))
    }

    pub(crate) async fn do_import_run(
        &self,
        experiment_id: &str,
        info: RunInfo,
    ) -> Result<(RunInfo, bool)> {
        let exp_id = validate::experiment_id(experiment_id)?;
        validate::run_id(&info.run_id)?;
        let mut tx = self.pool.begin().await.db()?;
        if let Ok(existing) = run_info_of(&mut tx, &info.run_id).await {
            if existing.experiment_id != exp_id.to_string() {
                return Err(Error::already_exists(format!(
                    "Run '{}' already exists in experiment {}, not in {exp_id}",
                    info.run_id, existing.experiment_id
                )));
            }
            return Ok((existing, false));
        }
        let exp = experiment(&mut tx, exp_id).await?;
        let artifact_uri = format!("{}/{}/artifacts", exp.artifact_location, info.run_id);
        sqlx::query("INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, artifact_uri, lifecycle_stage) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active') ON CONFLICT (run_uuid) DO NOTHING")
            .bind(&info.run_id)
            .bind(&info.run_name)
            .bind(exp_id)
            .bind(&info.user_id)
            .bind(info.status.as_str())
            .bind(info.start_time)
            .bind(info.end_time)
            .bind(&artifact_uri)
            .execute(&mut *tx)
            .await
            .db()?;
        let created = run_info_of(&mut tx, &info.run_id).await?;
        tx.commit().await.db()?;
        self.run_created();
        Ok((created, true))
    }

    pub(crate) async fn do_import_logged_model(
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
        let mut tx = self.pool.begin().await.db()?;
        if let Ok(existing) =
            crate::sql::logged_models::load_one(&mut Conn::Pg(&mut *tx), &info.model_id, true).await
        {
            return Ok((existing, false));
        }
        let exp = experiment(&mut tx, exp_id).await?;
        let location = format!(
            "{}/models/{}/artifacts",
            exp.artifact_location, info.model_id
        );
        sqlx::query("INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10) ON CONFLICT (model_id) DO NOTHING")
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
            .execute(&mut *tx)
            .await
            .db()?;
        let model =
            crate::sql::logged_models::load_one(&mut Conn::Pg(&mut *tx), &info.model_id, false)
                .await?;
        tx.commit().await.db()?;
        Ok((model, true))
    }

    pub(crate) async fn do_import_registered_model(&self, m: RegisteredModel) -> Result<bool> {
        let mut tx = self.pool.begin().await.db()?;
        let inserted = sqlx::query("INSERT INTO registered_models (name, creation_time, last_updated_time, description, user_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING")
            .bind(&m.name)
            .bind(m.creation_timestamp)
            .bind(m.last_updated_timestamp)
            .bind(&m.description)
            .bind(&m.user_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected()
            == 1;
        for t in &m.tags {
            sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
                .bind(&m.name)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()?;
        Ok(inserted)
    }

    pub(crate) async fn do_import_model_version(&self, v: ModelVersion) -> Result<bool> {
        let number = v
            .version
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::invalid(format!("Invalid model version '{}'", v.version)))?;
        let mut tx = self.pool.begin().await.db()?;
        // Numbers stay unique and increasing: the next new version comes after every imported one.
        let found: Option<i64> = sqlx::query_scalar("UPDATE registered_models SET last_version = GREATEST(last_version, $1) WHERE name = $2 RETURNING last_version")
            .bind(number)
            .bind(&v.name)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        if found.is_none() {
            return Err(Error::not_found(format!(
                "Registered Model with name={} not found",
                v.name
            )));
        }
        let location = storage_location(&mut Conn::Pg(&mut *tx), &v.source)
            .await
            .unwrap_or_else(|_| v.source.clone());
        let inserted = sqlx::query("INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, storage_location, run_id, run_link, model_id, status, status_message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (name, version) DO NOTHING")
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
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected()
            == 1;
        for t in &v.tags {
            sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
                .bind(&v.name)
                .bind(number)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()?;
        Ok(inserted)
    }
}
