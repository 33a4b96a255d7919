//! Protected aliases and the requests to move them. The registry's own writes (`registry.rs`)
//! ask [`check_alias`] and [`check_version`] before they move or remove an alias, so only an
//! approved request ([`ApprovalStore::decide_alias_request`]) moves a protected one.

use keel_core::approval::{
    AliasRequest, ApprovalStore, Gates, Protection, RequestState, protected,
};
use keel_core::{Error, Result, now_millis};
use serde_json::Value;

use super::SqlStore;
use super::audit::{On, kind};
use crate::db::{Conn, Lock, Row};

/// Refuses a write that would move or remove `alias` of `name` when it is protected.
pub(crate) async fn check_alias(
    c: &mut Conn<'_>,
    name: &str,
    alias: &str,
    what: &str,
) -> Result<()> {
    let sql = c
        .stmt("SELECT alias FROM protected_aliases WHERE name = ? AND alias = ?")
        .arg(name)
        .arg(alias);
    match c.value::<String>(sql).await? {
        Some(_) => Err(protected(name, alias, what)),
        None => Ok(()),
    }
}

/// Refuses deleting version `v` of `name` while a protected alias points to it.
pub(crate) async fn check_version(c: &mut Conn<'_>, name: &str, v: i64) -> Result<()> {
    let sql = c
        .stmt("SELECT a.alias FROM registered_model_aliases a JOIN protected_aliases p ON p.name = a.name AND p.alias = a.alias WHERE a.name = ? AND a.version = ? ORDER BY a.alias")
        .arg(name)
        .arg(v);
    match c.column::<String>(sql).await?.first() {
        Some(alias) => Err(protected(name, alias, "deleting the version it points to")),
        None => Ok(()),
    }
}

/// Refuses deleting a model that has protected aliases.
pub(crate) async fn check_model(c: &mut Conn<'_>, name: &str) -> Result<()> {
    let sql = c
        .stmt("SELECT alias FROM protected_aliases WHERE name = ? ORDER BY alias")
        .arg(name);
    match c.column::<String>(sql).await?.first() {
        Some(alias) => Err(protected(
            name,
            alias,
            "deleting the model (lift the protection first)",
        )),
        None => Ok(()),
    }
}

fn protection(r: &Row) -> Result<Protection> {
    let gates: String = r.get(2)?;
    Ok(Protection {
        name: r.get(0)?,
        alias: r.get(1)?,
        gates: serde_json::from_str::<Gates>(&gates)
            .map_err(|e| Error::internal(format!("stored gates do not parse: {e}")))?,
        created_by: r.get(3)?,
        creation_time: r.get(4)?,
    })
}

const REQUEST_COLUMNS: &str = "id, name, alias, version, requested_by, reason, creation_time, state, decided_by, decision_time, gates, comment";

fn request(r: &Row) -> Result<AliasRequest> {
    Ok(AliasRequest {
        id: r.get(0)?,
        name: r.get(1)?,
        alias: r.get(2)?,
        version: r.get::<i64>(3)?.to_string(),
        requested_by: r.get(4)?,
        reason: r.get(5)?,
        creation_time: r.get(6)?,
        state: RequestState::parse(&r.get::<String>(7)?)?,
        decided_by: r.get(8)?,
        decision_time: r.get(9)?,
        gates: r
            .get::<Option<String>>(10)?
            .and_then(|g| serde_json::from_str(&g).ok()),
        comment: r.get(11)?,
    })
}

async fn one_request(c: &mut Conn<'_>, id: i64, lock: bool) -> Result<AliasRequest> {
    let suffix = if lock { c.lock(Lock::Update) } else { "" };
    let sql = c
        .stmt(&format!(
            "SELECT {REQUEST_COLUMNS} FROM alias_requests WHERE id = ?{suffix}"
        ))
        .arg(id);
    match c.row(sql).await? {
        Some(r) => request(&r),
        None => Err(Error::not_found(format!("Alias request {id} not found"))),
    }
}

#[async_trait::async_trait]
impl ApprovalStore for SqlStore {
    async fn protect_alias(&self, p: Protection) -> Result<Protection> {
        p.gates.validate()?;
        keel_core::validate::alias(&p.alias)?;
        let gates = serde_json::to_string(&p.gates).map_err(|e| Error::internal(e.to_string()))?;
        let id = format!("{}@{}", p.name, p.alias);
        self.write(On::Bare(kind::PROTECTION, id), move |mut c| {
            Box::pin(async move {
                super::registry::model(&mut c, &p.name).await?;
                let sql = c
                    .stmt("INSERT INTO protected_aliases (name, alias, gates, created_by, creation_time) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name, alias) DO UPDATE SET gates = excluded.gates")
                    .arg(&p.name)
                    .arg(&p.alias)
                    .arg(&gates)
                    .arg(&p.created_by)
                    .arg(p.creation_time);
                c.exec(sql).await?;
                let sql = c
                    .stmt("SELECT name, alias, gates, created_by, creation_time FROM protected_aliases WHERE name = ? AND alias = ?")
                    .arg(&p.name)
                    .arg(&p.alias);
                match c.row(sql).await? {
                    Some(r) => protection(&r),
                    None => Err(Error::internal("the protection was not stored")),
                }
            })
        })
        .await
    }

    async fn unprotect_alias(&self, name: &str, alias: &str) -> Result<()> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.write(
            On::Bare(kind::PROTECTION, format!("{name}@{alias}")),
            move |mut c| {
                Box::pin(async move {
                    let sql = c
                        .stmt("DELETE FROM protected_aliases WHERE name = ? AND alias = ?")
                        .arg(&name)
                        .arg(&alias);
                    match c.exec(sql).await? {
                        0 => Err(Error::not_found(format!(
                            "Alias '{alias}' of registered model '{name}' is not protected"
                        ))),
                        _ => Ok(()),
                    }
                })
            },
        )
        .await
    }

    async fn protections(&self, name: Option<&str>) -> Result<Vec<Protection>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut sql = c.sql();
        sql.push("SELECT name, alias, gates, created_by, creation_time FROM protected_aliases");
        if let Some(n) = name {
            sql.push(" WHERE name = ").bind(n);
        }
        sql.push(" ORDER BY name, alias");
        c.rows(sql).await?.iter().map(protection).collect()
    }

    async fn request_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        requested_by: &str,
        reason: &str,
    ) -> Result<AliasRequest> {
        let v = version
            .parse::<i64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| Error::invalid(format!("Invalid model version '{version}'")))?;
        let (name, alias) = (name.to_string(), alias.to_string());
        let (by, reason) = (requested_by.to_string(), reason.to_string());
        self.write(
            On::Created(kind::ALIAS_REQUEST, |r: &AliasRequest| r.id.to_string()),
            move |mut c| {
                Box::pin(async move {
                    super::registry::version(&mut c, &name, v).await?;
                    let sql = c
                        .stmt("SELECT alias FROM protected_aliases WHERE name = ? AND alias = ?")
                        .arg(&name)
                        .arg(&alias);
                    if c.value::<String>(sql).await?.is_none() {
                        return Err(Error::invalid(format!(
                            "Alias '{alias}' of registered model '{name}' is not protected: set it directly"
                        )));
                    }
                    let sql = c
                        .stmt("INSERT INTO alias_requests (name, alias, version, requested_by, reason, creation_time, state) VALUES (?, ?, ?, ?, ?, ?, 'pending') RETURNING id")
                        .arg(&name)
                        .arg(&alias)
                        .arg(v)
                        .arg(&by)
                        .arg(&reason)
                        .arg(now_millis());
                    let id: i64 = c
                        .value(sql)
                        .await?
                        .ok_or_else(|| Error::internal("no id for the new request"))?;
                    one_request(&mut c, id, false).await
                })
            },
        )
        .await
    }

    async fn alias_request(&self, id: i64) -> Result<AliasRequest> {
        let mut r = self.db.reader().await?;
        one_request(&mut r.conn(), id, false).await
    }

    async fn alias_requests(
        &self,
        name: Option<&str>,
        state: Option<RequestState>,
    ) -> Result<Vec<AliasRequest>> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let mut sql = c.sql();
        sql.push(&format!(
            "SELECT {REQUEST_COLUMNS} FROM alias_requests WHERE 1 = 1"
        ));
        if let Some(n) = name {
            sql.push(" AND name = ").bind(n);
        }
        if let Some(s) = state {
            sql.push(" AND state = ").bind(s.as_str());
        }
        sql.push(" ORDER BY id DESC LIMIT 1000");
        c.rows(sql).await?.iter().map(request).collect()
    }

    async fn decide_alias_request(
        &self,
        id: i64,
        decided_by: &str,
        approve: bool,
        gates: Option<Value>,
        comment: &str,
    ) -> Result<AliasRequest> {
        let (by, comment) = (decided_by.to_string(), comment.to_string());
        // The entry shows the model before and after: the alias's move, when approved.
        let name = self.alias_request(id).await?.name;
        self.write(On::subject(kind::REGISTERED_MODEL, name), move |mut c| {
            Box::pin(async move {
                let req = one_request(&mut c, id, true).await?;
                if req.state != RequestState::Pending {
                    return Err(Error::invalid(format!(
                        "Alias request {id} is {} already",
                        req.state.as_str()
                    )));
                }
                if approve {
                    let v = req.version.parse::<i64>().unwrap_or(0);
                    super::registry::move_alias(&mut c, &req.name, &req.alias, v).await?;
                }
                let state = match approve {
                    true => RequestState::Applied,
                    false => RequestState::Rejected,
                };
                let gates = gates.map(|g| g.to_string());
                let sql = c
                    .stmt("UPDATE alias_requests SET state = ?, decided_by = ?, decision_time = ?, gates = ?, comment = ? WHERE id = ?")
                    .arg(state.as_str())
                    .arg(&by)
                    .arg(now_millis())
                    .arg(gates)
                    .arg(&comment)
                    .arg(id);
                c.exec(sql).await?;
                one_request(&mut c, id, false).await
            })
        })
        .await
    }
}
