//! The audit log in the metadata store: every write unit, once the log is enabled, appends one
//! entry inside its own transaction (so a write and its entry are kept or lost together),
//! holding the state of the subject it changed before and after.
//!
//! Appends are serialized by the head row (`audit_head`), locked at the start of each audited
//! unit: on SQLite the single writer runs units one at a time anyway; on PostgreSQL the lock
//! orders the servers' writes, which is what keeps the chain one line.

use std::sync::atomic::Ordering;

use futures::future::BoxFuture;
use keel_core::audit::{self, AuditStore, Context, Entry, Filter, GENESIS, Head, Subject};
use keel_core::{Error, Result, now_millis};
use serde_json::Value;

use super::SqlStore;
use crate::db::{Conn, Dialect, Lock, Row};

/// Subject kinds the store names.
pub(crate) mod kind {
    pub const ALIAS_REQUEST: &str = "alias_request";
    pub const AUDIT: &str = "audit";
    pub const DATASET: &str = "dataset";
    pub const EXPERIMENT: &str = "experiment";
    pub const GRANT: &str = "grant";
    pub const LOGGED_MODEL: &str = "logged_model";
    pub const MODEL_VERSION: &str = "model_version";
    pub const PROTECTION: &str = "protection";
    pub const REGISTERED_MODEL: &str = "registered_model";
    pub const ROLE: &str = "role";
    pub const ROLE_PERMISSION: &str = "role_permission";
    pub const RUN: &str = "run";
    pub const SESSION: &str = "session";
    pub const TOKEN: &str = "token";
    pub const USER: &str = "user";
}

/// What a write unit changes, for its entry.
pub(crate) enum On<T> {
    /// A subject that exists under one id before and after.
    Subject(&'static str, String),
    /// A subject whose id changes: read before under the first, after under the second.
    Renamed(&'static str, String, String),
    /// A subject the unit creates, named by the unit's result.
    Created(&'static str, fn(&T) -> String),
    /// A subject whose state the entry does not show (a run's logged data: the request says
    /// what was added).
    Bare(&'static str, String),
}

impl<T> On<T> {
    pub(crate) fn subject(kind: &'static str, id: impl Into<String>) -> Self {
        On::Subject(kind, id.into())
    }
}

/// The id of a model version as the log names it: `NAME/VERSION`.
pub(crate) fn version_id(name: &str, version: impl std::fmt::Display) -> String {
    format!("{name}/{version}")
}

/// The id of a user's grant as the log names it: `KIND:KEY:USERNAME`.
pub(crate) fn grant_id(kind: &str, key: &str, username: &str) -> String {
    format!("{kind}:{key}:{username}")
}

impl SqlStore {
    /// Runs `f` as one write unit ([`crate::db::Db::write`]); with the log enabled, the unit
    /// also appends the entry for `on` in the running task's [`audit::current`] context.
    pub(crate) async fn write<T, F>(&self, on: On<T>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Conn<'c>) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        if !self.audit.load(Ordering::Acquire) {
            return self.db.write(f).await;
        }
        let ctx = audit::current();
        self.db
            .write(move |mut c| {
                Box::pin(async move {
                    let head = lock_head(&mut c).await?;
                    let before = match &on {
                        On::Subject(k, id) | On::Renamed(k, id, _) => {
                            snapshot(&mut c, k, id).await?
                        }
                        On::Created(..) | On::Bare(..) => None,
                    };
                    let out = f(c.reborrow()).await?;
                    let (subject, after) = match &on {
                        On::Subject(k, id) | On::Renamed(k, _, id) => {
                            (Subject::new(k, id.clone()), snapshot(&mut c, k, id).await?)
                        }
                        On::Created(k, name) => {
                            let id = name(&out);
                            let after = snapshot(&mut c, k, &id).await?;
                            (Subject::new(k, id), after)
                        }
                        On::Bare(k, id) => (Subject::new(k, id.clone()), None),
                    };
                    append(&mut c, head, &ctx, subject, before, after).await?;
                    Ok(out)
                })
            })
            .await
    }
}

/// Locks the head for the rest of the unit and reads it.
pub(crate) async fn lock_head(c: &mut Conn<'_>) -> Result<Head> {
    let lock = c.lock(Lock::Update);
    let sql = c.stmt(&format!(
        "SELECT seq, hash FROM audit_head WHERE id = 1{lock}"
    ));
    Ok(match c.row(sql).await? {
        Some(r) => Head {
            seq: r.get(0)?,
            hash: r.get(1)?,
        },
        None => Head {
            seq: 0,
            hash: GENESIS.to_string(),
        },
    })
}

/// Appends the entry after `head` (the table's trigger moves the head to it).
pub(crate) async fn append(
    c: &mut Conn<'_>,
    head: Head,
    ctx: &Context,
    subject: Subject,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<Entry> {
    let mut e = Entry {
        seq: head.seq + 1,
        time: now_millis(),
        actor: ctx.actor(),
        source: ctx.source.clone(),
        action: ctx.action.clone(),
        subject,
        request: ctx.request.clone(),
        before,
        after,
        prev_hash: head.hash,
        hash: String::new(),
    };
    e.hash = e.compute_hash();
    let text = |v: &Option<Value>| v.as_ref().map(Value::to_string);
    let sql = c
        .stmt("INSERT INTO audit_log (seq, time, actor, source, action, subject_kind, subject_id, request, state_before, state_after, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .arg(e.seq)
        .arg(e.time)
        .arg(&e.actor)
        .arg(&e.source)
        .arg(&e.action)
        .arg(&e.subject.kind)
        .arg(&e.subject.id)
        .arg(text(&e.request))
        .arg(text(&e.before))
        .arg(text(&e.after))
        .arg(&e.prev_hash)
        .arg(&e.hash);
    // The trigger `audit_head_follows` moves the head to it.
    c.exec(sql).await?;
    ctx.wrote();
    Ok(e)
}

/// The state of a subject as the log shows it, or `None` where it does not exist (before a
/// creation, after a deletion) or has no state worth showing (a session, a dataset version's
/// immutable row).
async fn snapshot(c: &mut Conn<'_>, kind: &str, id: &str) -> Result<Option<Value>> {
    Ok(match kind {
        kind::EXPERIMENT => match id.parse::<i64>() {
            Ok(n) => match super::experiments::experiment(c, n).await {
                Ok(e) => state(e),
                Err(_) => None,
            },
            Err(_) => None,
        },
        kind::RUN => match super::runs::run_info_of(c, id).await {
            Ok(r) => state(r),
            Err(_) => None,
        },
        kind::LOGGED_MODEL => match super::logged_models::load_one(c, id, true).await {
            Ok(m) => state(m.info),
            Err(_) => None,
        },
        kind::REGISTERED_MODEL => match super::registry::model(c, id).await {
            Ok(m) => state(m),
            Err(_) => None,
        },
        kind::MODEL_VERSION => match id.rsplit_once('/') {
            Some((name, v)) => match v.parse::<i64>() {
                Ok(v) => match super::registry::version(c, name, v).await {
                    Ok(mv) => state(mv),
                    Err(_) => None,
                },
                Err(_) => None,
            },
            None => None,
        },
        kind::USER => {
            let sql = c
                .stmt("SELECT username, is_admin, password_hash FROM users WHERE username = ?")
                .arg(id);
            match c.row(sql).await? {
                Some(r) => Some(user_state(&r)?),
                None => None,
            }
        }
        kind::GRANT => grant_state(c, id).await?,
        kind::ROLE => match id.parse::<i64>() {
            Ok(n) => match super::auth::one_role(c, n).await {
                Ok(r) => state(r),
                Err(_) => None,
            },
            Err(_) => None,
        },
        kind::TOKEN => {
            let sql = c
                .stmt("SELECT t.name, u.username, t.scope, t.expiration_time, t.revoked_time FROM access_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?")
                .arg(id);
            match c.row(sql).await? {
                Some(r) => Some(serde_json::json!({
                    "name": r.get::<String>(0)?,
                    "user": r.get::<String>(1)?,
                    "scope": serde_json::from_str::<Value>(&r.get::<String>(2)?).unwrap_or(Value::Null),
                    "expiration_time": r.get::<Option<i64>>(3)?,
                    "revoked_time": r.get::<Option<i64>>(4)?,
                })),
                None => None,
            }
        }
        _ => None,
    })
}

/// A subject's state as JSON.
fn state<T: serde::Serialize>(v: T) -> Option<Value> {
    serde_json::to_value(v).ok()
}

/// A user's row without its password hash: a short fingerprint of it shows a change.
fn user_state(r: &Row) -> Result<Value> {
    let hash: Option<String> = r.get(2)?;
    Ok(serde_json::json!({
        "username": r.get::<String>(0)?,
        "is_admin": r.get::<bool>(1)?,
        "password": hash.map(|h| audit::fingerprint(&h)),
    }))
}

/// A grant's level (`KIND:KEY:USERNAME`), or `None` without one.
async fn grant_state(c: &mut Conn<'_>, id: &str) -> Result<Option<Value>> {
    let mut parts = id.splitn(2, ':');
    let (Some(kind), Some(rest)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let Some((key, username)) = rest.rsplit_once(':') else {
        return Ok(None);
    };
    let sql = match kind {
        kind::EXPERIMENT => match key.parse::<i64>() {
            Ok(n) => c
                .stmt("SELECT p.permission FROM experiment_permissions p JOIN users u ON u.id = p.user_id WHERE p.experiment_id = ? AND u.username = ?")
                .arg(n)
                .arg(username),
            Err(_) => return Ok(None),
        },
        kind::REGISTERED_MODEL => c
            .stmt("SELECT p.permission FROM registered_model_permissions p JOIN users u ON u.id = p.user_id WHERE p.name = ? AND u.username = ?")
            .arg(key)
            .arg(username),
        _ => return Ok(None),
    };
    Ok(c.value::<String>(sql)
        .await?
        .map(|p| serde_json::json!({ "permission": p })))
}

const ENTRY_COLUMNS: &str = "seq, time, actor, source, action, subject_kind, subject_id, request, state_before, state_after, prev_hash, hash";

fn entry(r: &Row) -> Result<Entry> {
    let json = |i: usize| -> Result<Option<Value>> {
        Ok(match r.get::<Option<String>>(i)? {
            Some(t) => Some(serde_json::from_str(&t).map_err(|e| {
                Error::internal(format!("audit entry holds JSON that does not parse: {e}"))
            })?),
            None => None,
        })
    };
    Ok(Entry {
        seq: r.get(0)?,
        time: r.get(1)?,
        actor: r.get(2)?,
        source: r.get(3)?,
        action: r.get(4)?,
        subject: Subject {
            kind: r.get(5)?,
            id: r.get(6)?,
        },
        request: json(7)?,
        before: json(8)?,
        after: json(9)?,
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

#[async_trait::async_trait]
impl AuditStore for SqlStore {
    async fn enable_audit(&self) -> Result<()> {
        let ctx = audit::current();
        self.db
            .write(move |mut c| {
                Box::pin(async move {
                    let head = lock_head(&mut c).await?;
                    let sql = c.stmt("SELECT enabled FROM audit_head WHERE id = 1");
                    match c.value::<bool>(sql).await? {
                        Some(true) => return Ok(()),
                        Some(false) => {
                            let sql = c
                                .stmt("UPDATE audit_head SET enabled = ? WHERE id = 1")
                                .arg(true);
                            c.exec(sql).await?;
                        }
                        None => {
                            let sql = c
                                .stmt("INSERT INTO audit_head (id, enabled, seq, hash) VALUES (1, ?, 0, ?)")
                                .arg(true)
                                .arg(GENESIS);
                            c.exec(sql).await?;
                        }
                    }
                    let after = serde_json::json!({ "enabled": true });
                    append(&mut c, head, &ctx, Subject::new(kind::AUDIT, "log"), None, Some(after))
                        .await
                        .map(|_| ())
                })
            })
            .await?;
        self.audit.store(true, Ordering::Release);
        Ok(())
    }

    async fn audit_enabled(&self) -> Result<bool> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt("SELECT enabled FROM audit_head WHERE id = 1");
        Ok(c.value::<bool>(sql).await?.unwrap_or(false))
    }

    async fn audit_entries(&self, f: Filter) -> Result<Vec<Entry>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut sql = c.sql();
        sql.push(&format!(
            "SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq > "
        ))
        .bind(f.after_seq.unwrap_or(0));
        if let Some(a) = &f.actor {
            sql.push(" AND actor = ").bind(a.as_str());
        }
        if let Some(k) = &f.kind {
            sql.push(" AND subject_kind = ").bind(k.as_str());
        }
        if let Some(id) = &f.id {
            sql.push(" AND subject_id = ").bind(id.as_str());
        }
        if let Some(a) = &f.action {
            let find = match c.dialect() {
                Dialect::Sqlite => " AND instr(action, ",
                Dialect::Postgres => " AND strpos(action, ",
            };
            sql.push(find).bind(a.as_str()).push(") > 0");
        }
        if let Some(t) = f.since {
            sql.push(" AND time >= ").bind(t);
        }
        if let Some(t) = f.until {
            sql.push(" AND time <= ").bind(t);
        }
        sql.push(" ORDER BY seq LIMIT ")
            .bind(i64::try_from(f.limit).unwrap_or(i64::MAX));
        c.rows(sql).await?.iter().map(entry).collect()
    }

    async fn audit_head(&self) -> Result<Option<Head>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt("SELECT seq, hash FROM audit_head WHERE id = 1");
        Ok(match c.row(sql).await? {
            Some(r) if r.get::<i64>(0)? > 0 => Some(Head {
                seq: r.get(0)?,
                hash: r.get(1)?,
            }),
            _ => None,
        })
    }

    async fn audit_record(
        &self,
        subject: Subject,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<()> {
        if !self.audit.load(Ordering::Acquire) {
            return Ok(());
        }
        let ctx = audit::current();
        self.db
            .write(move |mut c| {
                Box::pin(async move {
                    let head = lock_head(&mut c).await?;
                    append(&mut c, head, &ctx, subject, before, after)
                        .await
                        .map(|_| ())
                })
            })
            .await
    }
}

impl SqlStore {
    /// Reads whether the log is enabled, when the store opens.
    pub(crate) async fn load_audit_flag(&self) -> Result<()> {
        let on = self.audit_enabled().await?;
        self.audit.store(on, Ordering::Release);
        Ok(())
    }
}
