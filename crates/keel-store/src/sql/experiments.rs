//! Experiments: named groups of runs with their own artifact location and tags.

use std::collections::HashMap;

use keel_core::ExperimentStore;
use keel_core::entities::*;
use keel_core::store::{Page, SearchExperiments};
use keel_core::{Error, Result, now_millis, validate};

use super::audit::{On, kind};
use super::{SqlStore, paging};
use crate::db::{Bind, Conn, Lock, Sql};
use crate::search;

fn not_found(id: i64) -> Error {
    Error::not_found(format!("No Experiment with id={id} exists"))
}

fn name_taken(name: &str) -> Error {
    Error::already_exists(format!("Experiment '{name}' already exists."))
}

/// Inserts or replaces an experiment's tag.
pub(crate) fn set_tag(c: &Conn<'_>, id: i64, tag: &Tag) -> Sql {
    c.stmt("INSERT INTO experiment_tags (experiment_id, key, value) VALUES (?, ?, ?) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value")
        .arg(id)
        .arg(&tag.key)
        .arg(&tag.value)
}

/// Experiments by id, with their tags, in `ids` order.
pub(crate) async fn experiments(c: &mut Conn<'_>, ids: &[i64]) -> Result<Vec<Experiment>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = c.sql();
    sql.push("SELECT experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time FROM experiments WHERE experiment_id IN ");
    sql.bind_list(ids.iter().map(|i| Bind::I64(*i)));
    let rows = c.rows(sql).await?;
    let mut by_id: HashMap<i64, Experiment> = HashMap::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.get(0)?;
        by_id.insert(
            id,
            Experiment {
                experiment_id: id.to_string(),
                name: r.get(1)?,
                artifact_location: r.get(2)?,
                lifecycle_stage: LifecycleStage::parse(&r.get::<String>(3)?),
                creation_time: r.get(4)?,
                last_update_time: r.get(5)?,
                tags: Vec::new(),
            },
        );
    }
    let mut sql = c.sql();
    sql.push("SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ");
    sql.bind_list(ids.iter().map(|i| Bind::I64(*i)));
    sql.push(" ORDER BY key");
    for r in c.rows(sql).await? {
        if let Some(e) = by_id.get_mut(&r.get::<i64>(0)?) {
            e.tags
                .push(Tag::new(r.get::<String>(1)?, r.get::<String>(2)?));
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

/// One experiment with its tags.
pub(crate) async fn experiment(c: &mut Conn<'_>, id: i64) -> Result<Experiment> {
    experiments(c, &[id])
        .await?
        .pop()
        .ok_or_else(|| not_found(id))
}

/// The experiment's lifecycle stage, row-locked with `lock` for the rest of the write unit.
async fn stage_of(c: &mut Conn<'_>, id: i64, lock: Lock) -> Result<String> {
    let lock = c.lock(lock);
    let sql = c
        .stmt(&format!(
            "SELECT lifecycle_stage FROM experiments WHERE experiment_id = ?{lock}"
        ))
        .arg(id);
    c.value(sql).await?.ok_or_else(|| not_found(id))
}

/// Locks the experiment for the rest of the write unit if it is active; an error otherwise.
pub(crate) async fn lock_active(c: &mut Conn<'_>, id: i64, lock: Lock) -> Result<()> {
    match stage_of(c, id, lock).await?.as_str() {
        "active" => Ok(()),
        other => Err(Error::invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is {other}."
        ))),
    }
}

#[async_trait::async_trait]
impl ExperimentStore for SqlStore {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<String> {
        let name = name.to_string();
        let location = artifact_location
            .filter(|l| !l.is_empty())
            .map(str::to_string);
        let root = self.artifact_root.clone();
        self.write(On::Created(kind::EXPERIMENT, |id: &String| id.clone()), move |mut c| {
                Box::pin(async move {
                    let sql = c
                        .stmt("SELECT lifecycle_stage FROM experiments WHERE name = ?")
                        .arg(&name);
                    if let Some(stage) = c.value::<String>(sql).await? {
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
                    let sql = c
                        .stmt("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (?, '', 'active', ?, ?) RETURNING experiment_id")
                        .arg(&name)
                        .arg(now)
                        .arg(now);
                    let id: i64 = c
                        .value_unique(sql, || name_taken(&name))
                        .await?
                        .ok_or_else(|| Error::internal("an insert returned no id"))?;
                    let location = location.unwrap_or_else(|| format!("{root}/{id}"));
                    let sql = c
                        .stmt("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?")
                        .arg(location)
                        .arg(id);
                    c.exec(sql).await?;
                    for t in &tags {
                        let sql = set_tag(&c, id, t);
                        c.exec(sql).await?;
                    }
                    Ok(id.to_string())
                })
            })
            .await
    }

    async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        let id = validate::experiment_id(id)?;
        experiment(&mut self.db.reader().await?.conn(), id).await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c
            .stmt("SELECT experiment_id FROM experiments WHERE name = ?")
            .arg(name);
        match c.value::<i64>(sql).await? {
            Some(id) => Ok(Some(experiment(&mut c, id).await?)),
            None => Ok(None),
        }
    }

    async fn search_experiments(&self, q: SearchExperiments) -> Result<Page<Experiment>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut sql = c.sql();
        sql.push("SELECT e.experiment_id FROM experiments e WHERE 1 = 1");
        match q.view {
            ViewType::ActiveOnly => sql.push(" AND e.lifecycle_stage = 'active'"),
            ViewType::DeletedOnly => sql.push(" AND e.lifecycle_stage = 'deleted'"),
            ViewType::All => sql.push(""),
        };
        search::experiment_where(&mut sql, &q.filter);
        if let Some(reader) = &q.reader {
            super::auth::push_readable(&mut sql, "experiment", "e.experiment_id", reader);
        }
        sql.push(" ORDER BY ")
            .push(&search::experiment_order(&q.order_by));
        let (ids, more) = paging::page_ids::<i64>(&mut c, sql, q.max_results, q.offset).await?;
        Ok(Page::new(
            experiments(&mut c, &ids).await?,
            q.offset,
            q.max_results,
            more,
        ))
    }

    async fn delete_experiment(&self, id: &str) -> Result<()> {
        self.set_experiment_stage(id, LifecycleStage::Deleted).await
    }

    async fn restore_experiment(&self, id: &str) -> Result<()> {
        self.set_experiment_stage(id, LifecycleStage::Active).await
    }

    async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        let id = validate::experiment_id(id)?;
        let new_name = new_name.to_string();
        self.write(On::subject(kind::EXPERIMENT, id.to_string()), move |mut c| {
                Box::pin(async move {
                    lock_active(&mut c, id, Lock::Update).await?;
                    let sql = c
                        .stmt("UPDATE experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?")
                        .arg(&new_name)
                        .arg(now_millis())
                        .arg(id);
                    c.exec_unique(sql, || name_taken(&new_name)).await?;
                    Ok(())
                })
            })
            .await
    }

    async fn set_experiment_tag(&self, id: &str, tag: Tag) -> Result<()> {
        let id = validate::experiment_id(id)?;
        self.write(
            On::subject(kind::EXPERIMENT, id.to_string()),
            move |mut c| {
                Box::pin(async move {
                    lock_active(&mut c, id, Lock::Update).await?;
                    let sql = set_tag(&c, id, &tag);
                    c.exec(sql).await?;
                    let sql = c
                        .stmt("UPDATE experiments SET last_update_time = ? WHERE experiment_id = ?")
                        .arg(now_millis())
                        .arg(id);
                    c.exec(sql).await?;
                    Ok(())
                })
            },
        )
        .await
    }

    async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        let id = validate::experiment_id(id)?;
        let key = key.to_string();
        self.write(
            On::subject(kind::EXPERIMENT, id.to_string()),
            move |mut c| {
                Box::pin(async move {
                    lock_active(&mut c, id, Lock::Update).await?;
                    let sql = c
                        .stmt("DELETE FROM experiment_tags WHERE experiment_id = ? AND key = ?")
                        .arg(id)
                        .arg(&key);
                    if c.exec(sql).await? == 0 {
                        return Err(Error::not_found(format!(
                            "No tag with name: {key} in experiment with id {id}"
                        )));
                    }
                    Ok(())
                })
            },
        )
        .await
    }
}

impl SqlStore {
    /// Creates the `Default` experiment (id 0) unless it exists.
    pub(crate) async fn ensure_default_experiment(&self) -> Result<()> {
        let location = format!("{}/0", self.artifact_root);
        self.db
            .write(move |mut c| {
                Box::pin(async move {
                    let now = now_millis();
                    let sql = c
                        .stmt("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (0, 'Default', ?, 'active', ?, ?) ON CONFLICT DO NOTHING")
                        .arg(location)
                        .arg(now)
                        .arg(now);
                    c.exec(sql).await?;
                    Ok(())
                })
            })
            .await
    }

    /// Sets an experiment's lifecycle stage and its runs'.
    async fn set_experiment_stage(&self, id: &str, stage: LifecycleStage) -> Result<()> {
        let id = validate::experiment_id(id)?;
        self.write(On::subject(kind::EXPERIMENT, id.to_string()), move |mut c| {
                Box::pin(async move {
                    let current = stage_of(&mut c, id, Lock::Update).await?;
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
                    let sql = c
                        .stmt("UPDATE experiments SET lifecycle_stage = ?, last_update_time = ? WHERE experiment_id = ?")
                        .arg(stage.as_str())
                        .arg(now)
                        .arg(id);
                    c.exec(sql).await?;
                    let sql = c
                        .stmt("UPDATE runs SET lifecycle_stage = ?, deleted_time = ? WHERE experiment_id = ?")
                        .arg(stage.as_str())
                        .arg(deleted_time)
                        .arg(id);
                    c.exec(sql).await?;
                    Ok(())
                })
            })
            .await
    }
}
