//! Experiments on PostgreSQL. Messages and rules are the SQLite store's, so clients cannot tell
//! the backends apart.

use std::collections::HashMap;

use keel_core::entities::*;
use keel_core::store::{Page, SearchExperiments};
use keel_core::{Error, Result, now_millis, validate};
use sqlx::{PgConnection, Row};

use super::{DbResult, PgStore, is_unique_violation, paging};
use crate::search::{self, Dialect, Sql};

fn parse_experiment_id(id: &str) -> Result<i64> {
    validate::experiment_id(id)
}

/// Experiments by id, with their tags, in `ids` order.
pub(crate) async fn experiments(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<Experiment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query("SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time FROM experiments WHERE experiment_id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut by_id: HashMap<i64, Experiment> = HashMap::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get(0).db()?;
        by_id.insert(
            id,
            Experiment {
                experiment_id: id.to_string(),
                name: r.try_get(1).db()?,
                artifact_location: r.try_get(2).db()?,
                lifecycle_stage: LifecycleStage::parse(r.try_get::<&str, _>(3).db()?),
                creation_time: r.try_get(4).db()?,
                last_update_time: r.try_get(5).db()?,
                tags: Vec::new(),
            },
        );
    }
    let tags = sqlx::query("SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id = ANY($1) ORDER BY key")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await
        .db()?;
    for r in tags {
        let id: i64 = r.try_get(0).db()?;
        if let Some(e) = by_id.get_mut(&id) {
            e.tags.push(Tag::new(
                r.try_get::<String, _>(1).db()?,
                r.try_get::<String, _>(2).db()?,
            ));
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

pub(crate) async fn experiment(conn: &mut PgConnection, id: i64) -> Result<Experiment> {
    experiments(conn, &[id])
        .await?
        .pop()
        .ok_or_else(|| Error::not_found(format!("No Experiment with id={id} exists")))
}

/// The experiment, locked for the rest of the transaction, if it is active.
async fn active_experiment(conn: &mut PgConnection, id: i64) -> Result<()> {
    let stage: Option<String> = sqlx::query_scalar(
        "SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    match stage.as_deref() {
        None => Err(Error::not_found(format!(
            "No Experiment with id={id} exists"
        ))),
        Some("active") => Ok(()),
        Some(other) => Err(Error::invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is {other}."
        ))),
    }
}

impl PgStore {
    pub(crate) async fn ensure_default_experiment(&self) -> Result<()> {
        let now = now_millis();
        sqlx::query("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (0, 'Default', $1, 'active', $2, $2) ON CONFLICT DO NOTHING")
            .bind(format!("{}/0", self.artifact_root))
            .bind(now)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    pub(crate) async fn do_create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<String> {
        let mut tx = self.pool.begin().await.db()?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT lifecycle_stage FROM experiments WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        if let Some(stage) = existing {
            let hint = if stage == "deleted" {
                " (it is deleted: restore it or choose another name)"
            } else {
                ""
            };
            return Err(Error::already_exists(format!(
                "Experiment '{name}' already exists{hint}."
            )));
        }
        let now = now_millis();
        let res = sqlx::query_scalar::<_, i64>("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES ($1, '', 'active', $2, $2) RETURNING experiment_id")
            .bind(name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
        let id = match res {
            Ok(id) => id,
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::already_exists(format!(
                    "Experiment '{name}' already exists."
                )));
            }
            Err(e) => return Err(Error::internal(format!("database error: {e}"))),
        };
        let location = artifact_location
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}/{id}", self.artifact_root));
        sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
            .bind(location)
            .bind(id)
            .execute(&mut *tx)
            .await
            .db()?;
        for t in &tags {
            sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value")
                .bind(id)
                .bind(&t.key)
                .bind(&t.value)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        tx.commit().await.db()?;
        Ok(id.to_string())
    }

    pub(crate) async fn do_get_experiment(&self, id: &str) -> Result<Experiment> {
        let id = parse_experiment_id(id)?;
        experiment(&mut *self.pool.acquire().await.db()?, id).await
    }

    pub(crate) async fn do_get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let mut c = self.pool.acquire().await.db()?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT experiment_id FROM experiments WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *c)
                .await
                .db()?;
        match id {
            Some(id) => Ok(Some(experiment(&mut c, id).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn do_search_experiments(
        &self,
        q: SearchExperiments,
    ) -> Result<Page<Experiment>> {
        let mut sql = Sql::new(Dialect::Postgres);
        sql.push("SELECT e.experiment_id FROM experiments e WHERE 1 = 1");
        match q.view {
            ViewType::ActiveOnly => sql.push(" AND e.lifecycle_stage = 'active'"),
            ViewType::DeletedOnly => sql.push(" AND e.lifecycle_stage = 'deleted'"),
            ViewType::All => sql.push(""),
        };
        search::experiment_where(&mut sql, &q.filter);
        sql.push(" ORDER BY ")
            .push(&search::experiment_order(&q.order_by));
        let mut c = self.pool.acquire().await.db()?;
        let (ids, more) = paging::page_ids::<i64>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            experiments(&mut c, &ids).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }

    /// Sets an experiment's lifecycle stage (and its runs' when deleting or restoring).
    async fn set_experiment_stage(&self, id: &str, stage: LifecycleStage) -> Result<()> {
        let id = parse_experiment_id(id)?;
        let mut tx = self.pool.begin().await.db()?;
        let current: Option<String> = sqlx::query_scalar(
            "SELECT lifecycle_stage FROM experiments WHERE experiment_id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some(current) = current else {
            return Err(Error::not_found(format!(
                "No Experiment with id={id} exists"
            )));
        };
        if id == 0 && stage == LifecycleStage::Deleted {
            return Err(Error::invalid(
                "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
            ));
        }
        if current == stage.as_str() && stage == LifecycleStage::Active {
            return Err(Error::invalid(format!(
                "Cannot restore an active experiment: experiment {id} is not deleted."
            )));
        }
        let now = now_millis();
        let deleted_time = (stage == LifecycleStage::Deleted).then_some(now);
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3")
            .bind(stage.as_str())
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query(
            "UPDATE runs SET lifecycle_stage = $1, deleted_time = $2 WHERE experiment_id = $3",
        )
        .bind(stage.as_str())
        .bind(deleted_time)
        .bind(id)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_delete_experiment(&self, id: &str) -> Result<()> {
        self.set_experiment_stage(id, LifecycleStage::Deleted).await
    }

    pub(crate) async fn do_restore_experiment(&self, id: &str) -> Result<()> {
        self.set_experiment_stage(id, LifecycleStage::Active).await
    }

    pub(crate) async fn do_rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        let id = parse_experiment_id(id)?;
        let mut tx = self.pool.begin().await.db()?;
        active_experiment(&mut tx, id).await?;
        let res = sqlx::query(
            "UPDATE experiments SET name = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(new_name)
        .bind(now_millis())
        .bind(id)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => tx.commit().await.db(),
            Err(e) if is_unique_violation(&e) => Err(Error::already_exists(format!(
                "Experiment '{new_name}' already exists."
            ))),
            Err(e) => Err(Error::internal(format!("database error: {e}"))),
        }
    }

    pub(crate) async fn do_set_experiment_tag(&self, id: &str, tag: Tag) -> Result<()> {
        let id = parse_experiment_id(id)?;
        let mut tx = self.pool.begin().await.db()?;
        active_experiment(&mut tx, id).await?;
        sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value")
            .bind(id)
            .bind(&tag.key)
            .bind(&tag.value)
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query("UPDATE experiments SET last_update_time = $1 WHERE experiment_id = $2")
            .bind(now_millis())
            .bind(id)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }

    pub(crate) async fn do_delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        let id = parse_experiment_id(id)?;
        let mut tx = self.pool.begin().await.db()?;
        active_experiment(&mut tx, id).await?;
        let n = sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
            .bind(id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {id}"
            )));
        }
        tx.commit().await.db()
    }
}
