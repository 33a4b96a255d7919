//! `keel db status|migrate`: the metadata database's schema.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::{DbArg, SettingsFile};
use crate::config::FileSettings;

#[derive(Subcommand)]
pub(crate) enum DbCmd {
    /// Show applied and pending migrations.
    Status(DbArgs),
    /// Apply pending migrations.
    Migrate(DbArgs),
}

/// The database, as for `keel server`.
#[derive(Args)]
pub(crate) struct DbArgs {
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    file: SettingsFile,
}

pub(crate) async fn command(cmd: DbCmd) -> Result<()> {
    let (DbCmd::Status(a) | DbCmd::Migrate(a)) = &cmd;
    let migrate = matches!(cmd, DbCmd::Migrate(_));
    let db = a
        .file
        .layer(FileSettings {
            db: a.db.db.clone(),
            ..FileSettings::default()
        })?
        .db;
    let (shown, st) = match keel_store::DbUrl::parse(&db)? {
        keel_store::DbUrl::Sqlite(path) => {
            if migrate {
                keel_store::sqlite::SqliteStore::open(&path, keel_server::ARTIFACT_SCHEME).await?;
            } else if !path.exists() {
                println!(
                    "{}: no database yet; `keel db migrate` or `keel server` creates it",
                    path.display()
                );
                return Ok(());
            }
            let st = keel_store::sqlite::SqliteStore::schema_status(&path).await?;
            (path.display().to_string(), st)
        }
        keel_store::DbUrl::Postgres(url) => {
            use keel_store::postgres::PgStore;
            if migrate {
                PgStore::migrate(&url).await?;
            }
            (redact(&url), PgStore::schema_status(&url).await?)
        }
    };
    println!("database: {shown}");
    println!("applied:  {:?}", st.applied);
    println!("pending:  {:?}", st.pending);
    if !st.unknown.is_empty() {
        println!(
            "unknown:  {:?} (written by a newer keel: upgrade keel)",
            st.unknown
        );
    }
    Ok(())
}

/// A database URL with its password hidden.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
