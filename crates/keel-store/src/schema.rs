//! What both backends' migrations share: the status of a database against the migrations a
//! build knows, the refusal of a database written by a newer keel, and the sqlx migrator.

use std::borrow::Cow;

use keel_core::{Error, ErrorCode, Result};
use sqlx::migrate::{AppliedMigration, Migrate, MigrateError, Migration, MigrationType, Migrator};

use crate::db::{Conn, Dialect};

/// A backend's migrations, oldest first: (version, description, SQL).
pub type Migrations = &'static [(i64, &'static str, &'static str)];

/// Where a database stands against a build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Versions applied to the database.
    pub applied: Vec<i64>,
    /// Versions this build knows but the database lacks.
    pub pending: Vec<i64>,
    /// Versions the database has that this build does not know (it is newer than keel).
    pub unknown: Vec<i64>,
}

impl SchemaStatus {
    pub(crate) fn new(applied: Vec<i64>, known: Migrations) -> Self {
        let known: Vec<i64> = known.iter().map(|m| m.0).collect();
        SchemaStatus {
            pending: known
                .iter()
                .copied()
                .filter(|v| !applied.contains(v))
                .collect(),
            unknown: applied
                .iter()
                .copied()
                .filter(|v| !known.contains(v))
                .collect(),
            applied,
        }
    }

    /// Refuses a database migrated by a newer keel, saying what to do.
    pub(crate) fn check_known(&self) -> Result<()> {
        if self.unknown.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::InvalidState,
            format!(
                "the database schema has migrations {:?} that this keel does not know: it was written by a newer keel. Upgrade keel (or point --db at another database).",
                self.unknown
            ),
        ))
    }
}

/// A sqlx migrator over a backend's embedded migrations.
fn migrator(migrations: Migrations) -> Migrator {
    let list: Vec<Migration> = migrations
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(list),
        ..Migrator::DEFAULT
    }
}

/// Where the database behind `c` stands against `known`, without changing it.
pub(crate) async fn status(c: &mut Conn<'_>, known: Migrations) -> Result<SchemaStatus> {
    let sql = match c.dialect() {
        Dialect::Sqlite => c.stmt(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        ),
        Dialect::Postgres => c.stmt("SELECT to_regclass('_sqlx_migrations')::text"),
    };
    let has_table = c.value::<Option<String>>(sql).await?.flatten().is_some();
    let applied: Vec<i64> = if has_table {
        let list: std::result::Result<Vec<AppliedMigration>, MigrateError> = match c {
            Conn::Sqlite(conn) => conn.list_applied_migrations("_sqlx_migrations").await,
            Conn::Pg(conn) => conn.list_applied_migrations("_sqlx_migrations").await,
        };
        list.map_err(|e| Error::internal(format!("cannot read migrations: {e}")))?
            .into_iter()
            .map(|m| m.version)
            .collect()
    } else {
        Vec::new()
    };
    Ok(SchemaStatus::new(applied, known))
}

/// Applies the pending ones of `known`; refuses a database migrated by a newer keel. On
/// PostgreSQL sqlx holds an advisory lock while it migrates, so servers starting together apply
/// each migration once.
pub(crate) async fn migrate(c: &mut Conn<'_>, known: Migrations) -> Result<()> {
    status(c, known).await?.check_known()?;
    let migrator = migrator(known);
    match c {
        Conn::Sqlite(conn) => migrator.run(&mut **conn).await,
        Conn::Pg(conn) => migrator.run(&mut **conn).await,
    }
    .map_err(|e| Error::internal(format!("migration failed: {e}")))
}
