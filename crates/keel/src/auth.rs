//! Authentication for `keel server --auth`: when it may be off, the first admin, and the
//! operator's commands on the metadata database (`keel users`, `keel tokens`), which work
//! without a running server, as a database administrator would.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use keel_core::MetadataStore;
use keel_core::auth::{NewToken, Permission, TokenScope};
use keel_server::auth::{Auth, AuthConfig, credentials};

use crate::args::{DbArg, SettingsFile};
use crate::config::FileSettings;

/// Whether `host` only accepts connections from this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where the first admin's name and password come from: a file (`username:password`), else the
/// username and password settings (`KEEL_ADMIN_USERNAME`, `KEEL_ADMIN_PASSWORD`).
pub(crate) struct FirstAdmin<'a> {
    pub(crate) file: Option<&'a Path>,
    pub(crate) username: Option<&'a str>,
    pub(crate) password: Option<&'a str>,
}

impl FirstAdmin<'_> {
    fn read(&self) -> Result<Option<(String, String)>> {
        if let Some(path) = self.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the admin file {}", path.display()))?;
            let line = text.trim_end_matches(['\n', '\r']);
            let Some((user, password)) = line
                .split_once(':')
                .filter(|(u, p)| !u.is_empty() && !p.is_empty())
            else {
                bail!(
                    "the admin file {} must hold `username:password` on one line",
                    path.display()
                );
            };
            return Ok(Some((user.to_string(), password.to_string())));
        }
        let given = |v: Option<&str>| v.filter(|v| !v.is_empty()).map(str::to_string);
        match (given(self.username), given(self.password)) {
            (Some(u), Some(p)) => Ok(Some((u, p))),
            (None, None) => Ok(None),
            _ => bail!("set both KEEL_ADMIN_USERNAME and KEEL_ADMIN_PASSWORD, or neither"),
        }
    }
}

/// The auth state of a server over `meta`: the default permission, and the first admin
/// created when no user exists yet (there is no default password: without one, the server
/// does not start).
pub(crate) async fn server_auth(
    meta: &Arc<dyn MetadataStore>,
    default_permission: Option<&str>,
    first_admin: FirstAdmin<'_>,
) -> Result<Auth> {
    let default_permission = match default_permission {
        Some(p) => Permission::parse(&p.to_ascii_uppercase())
            .map_err(|e| anyhow::anyhow!("--default-permission: {}", e.message))?,
        None => Permission::Read,
    };
    if meta.count_users().await? == 0 {
        let Some((user, password)) = first_admin.read()? else {
            bail!(
                "auth is on and no user exists yet: give the first admin with KEEL_ADMIN_USERNAME and KEEL_ADMIN_PASSWORD (or --admin-file), or create one with `keel users create NAME --admin`"
            );
        };
        let hash = credentials::hash(&password).await?;
        match meta.create_user(&user, Some(&hash), true).await {
            Ok(_) => eprintln!("keel server: created the admin user '{user}'"),
            // Another server sharing the database created it first.
            Err(e) if e.code == keel_core::ErrorCode::ResourceAlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Auth::new(AuthConfig { default_permission })?)
}

/// The metadata database, as for `keel server`.
#[derive(Args)]
pub(crate) struct DbArgs {
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    file: SettingsFile,
}

impl DbArgs {
    pub(crate) async fn open(&self) -> Result<Arc<dyn MetadataStore>> {
        let db = self
            .file
            .layer(FileSettings {
                db: self.db.db.clone(),
                ..FileSettings::default()
            })?
            .db;
        keel_store::open_metadata_store(&db, keel_server::ARTIFACT_SCHEME)
            .await
            .with_context(|| format!("cannot open the metadata store {db}"))
    }
}

#[derive(Subcommand)]
pub(crate) enum UsersCmd {
    /// Create a user: the password is read from standard input (one line), or asked for.
    Create {
        /// The username.
        name: String,
        /// An admin: may do everything, including managing users.
        #[arg(long)]
        admin: bool,
        /// A service account (for `keel serve`, pipelines, CI): no password; it acts through
        /// the tokens `keel tokens create --user NAME` makes.
        #[arg(long)]
        service_account: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the users.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Set a user's password (read from standard input, or asked for).
    SetPassword {
        /// The username.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete a user with their grants and tokens.
    Delete {
        /// The username.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokensCmd {
    /// Create an access token for a user (printed once; send it as MLFLOW_TRACKING_TOKEN).
    Create {
        /// Whose token it is.
        #[arg(long)]
        user: String,
        /// What it is for ("ci", "serve-churn").
        #[arg(long)]
        name: String,
        /// Refused after this many days [default: never].
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<i64>,
        /// Reads only.
        #[arg(long)]
        read_only: bool,
        /// Only this experiment (by id; repeatable).
        #[arg(long = "experiment", value_name = "ID")]
        experiments: Vec<String>,
        /// Only this registered model (repeatable).
        #[arg(long = "model", value_name = "NAME")]
        models: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List a user's tokens.
    List {
        /// Whose tokens.
        #[arg(long)]
        user: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token by its id (the part after `keel_`, as listed).
    Revoke {
        /// The token's id.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// A password from standard input (one line) or, on a terminal, asked for.
fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (shown as typed): ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

pub(crate) async fn users(cmd: UsersCmd) -> Result<()> {
    match cmd {
        UsersCmd::Create {
            name,
            admin,
            service_account,
            db,
        } => {
            let meta = db.open().await?;
            let hash = match service_account {
                true => None,
                false => Some(credentials::hash(&read_password()?).await?),
            };
            let u = meta.create_user(&name, hash.as_deref(), admin).await?;
            println!(
                "created {}{} '{}' (id {})",
                if u.is_admin { "admin " } else { "" },
                if u.is_service {
                    "service account"
                } else {
                    "user"
                },
                u.username,
                u.id
            );
        }
        UsersCmd::List { db } => {
            for u in db.open().await?.list_users().await? {
                let kind = match (u.is_admin, u.is_service) {
                    (true, true) => "admin, service account",
                    (true, false) => "admin",
                    (false, true) => "service account",
                    (false, false) => "user",
                };
                println!("{}\t{}\t{kind}", u.id, u.username);
            }
        }
        UsersCmd::SetPassword { name, db } => {
            let meta = db.open().await?;
            let hash = credentials::hash(&read_password()?).await?;
            meta.update_user_password(&name, &hash).await?;
            println!("password of '{name}' set");
        }
        UsersCmd::Delete { name, db } => {
            db.open().await?.delete_user(&name).await?;
            println!("deleted '{name}'");
        }
    }
    Ok(())
}

pub(crate) async fn tokens(cmd: TokensCmd) -> Result<()> {
    match cmd {
        TokensCmd::Create {
            user,
            name,
            expires_in_days,
            read_only,
            experiments,
            models,
            db,
        } => {
            let meta = db.open().await?;
            let owner = meta.get_user(&user).await?;
            let expiration_time = match expires_in_days {
                Some(d) if (1..=3650).contains(&d) => {
                    Some(keel_core::now_millis() + d * 86_400_000)
                }
                Some(d) => bail!("--expires-in-days {d}: give 1 to 3650 days"),
                None => None,
            };
            let (token, id) = credentials::new_token()?;
            let scope = TokenScope {
                read_only,
                experiments: (!experiments.is_empty()).then_some(experiments),
                models: (!models.is_empty()).then_some(models),
            };
            meta.create_token(NewToken {
                id: id.clone(),
                user_id: owner.id,
                name,
                scope,
                expiration_time,
                hash: credentials::hash(&token).await?,
            })
            .await?;
            eprintln!("token {id} for '{user}' (shown once; send it as MLFLOW_TRACKING_TOKEN):");
            println!("{token}");
        }
        TokensCmd::List { user, db } => {
            let meta = db.open().await?;
            let owner = meta.get_user(&user).await?;
            let now = keel_core::now_millis();
            for t in meta.list_tokens(owner.id).await? {
                let state = match (t.revoked_time, t.is_live(now)) {
                    (Some(_), _) => "revoked",
                    (None, false) => "expired",
                    (None, true) => "live",
                };
                println!(
                    "{}\t{}\t{state}\t{}",
                    t.id,
                    t.name,
                    serde_json::to_string(&t.scope)?
                );
            }
        }
        TokensCmd::Revoke { id, db } => {
            db.open().await?.revoke_token(&id, None).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
