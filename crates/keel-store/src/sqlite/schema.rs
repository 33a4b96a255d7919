//! Versioned migrations for the SQLite schema, embedded in the binary.

use std::borrow::Cow;

use keel_core::{Error, Result};
use sqlx::SqliteConnection;
use sqlx::migrate::{Migrate, Migration, MigrationType, Migrator};

use super::DbResult;

/// The migrations this build knows, oldest first: (version, description, SQL).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../../migrations/sqlite/0001_init.sql"),
)];

/// Where a database stands against [`MIGRATIONS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Versions applied to the database.
    pub applied: Vec<i64>,
    /// Versions this build knows but the database lacks.
    pub pending: Vec<i64>,
    /// Versions the database has that this build does not know (it is newer than keel).
    pub unknown: Vec<i64>,
}

fn migrator() -> Migrator {
    let migrations: Vec<Migration> = MIGRATIONS
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
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

pub(crate) async fn status(conn: &mut SqliteConnection) -> Result<SchemaStatus> {
    let has_table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    let applied: Vec<i64> = if has_table.is_some() {
        conn.list_applied_migrations("_sqlx_migrations")
            .await
            .map_err(|e| Error::internal(format!("cannot read migrations: {e}")))?
            .into_iter()
            .map(|m| m.version)
            .collect()
    } else {
        Vec::new()
    };
    let known: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
    Ok(SchemaStatus {
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
    })
}

/// Applies pending migrations; refuses a database migrated by a newer keel.
pub(crate) async fn migrate(conn: &mut SqliteConnection) -> Result<()> {
    let st = status(conn).await?;
    if !st.unknown.is_empty() {
        return Err(Error::new(
            keel_core::ErrorCode::InvalidState,
            format!(
                "the database schema has migrations {:?} that this keel does not know: it was written by a newer keel. Upgrade keel (or point --db at another database).",
                st.unknown
            ),
        ));
    }
    migrator()
        .run(&mut *conn)
        .await
        .map_err(|e| Error::internal(format!("migration failed: {e}")))
}
