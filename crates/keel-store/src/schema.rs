//! What both backends' migrations share: the status of a database against the migrations a
//! build knows, the refusal of a database written by a newer keel, and the sqlx migrator.

use std::borrow::Cow;

use keel_core::{Error, ErrorCode, Result};
use sqlx::migrate::{Migration, MigrationType, Migrator};

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
pub(crate) fn migrator(migrations: Migrations) -> Migrator {
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
