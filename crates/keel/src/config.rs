//! Settings, layered: defaults < `keel.toml` < `KEEL_*` environment < command-line flags, with
//! a `[store]` table (the stores every command opens, or the server it works with), a
//! `[server]` table (where `keel server` listens; its keys may also stand at the top level, and
//! it may hold the stores' keys too, as before `[store]` existed) and a `[serve]` table
//! (`keel serve`'s address and tuning).
//!
//! clap reads flags and the environment (a flag wins over its variable); what neither gives
//! comes from the file, then from the defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The `[server]` table of `keel.toml` (top-level keys are accepted too), with the stores'
/// keys of `[store]` folded in.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub db: Option<String>,
    pub artifacts: Option<String>,
}

/// The `[serve]` table of `keel.toml`: what `keel serve` listens on and how it batches, waits
/// and logs. Durations are written as on the command line (`2ms`, `30s`), sizes too (`32MiB`).
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub max_batch: Option<usize>,
    pub max_delay: Option<String>,
    pub queue: Option<usize>,
    pub timeout: Option<String>,
    pub body_limit: Option<String>,
    pub log_dir: Option<PathBuf>,
    pub log_file_interval: Option<String>,
    pub sketch_rows: Option<usize>,
    pub poll: Option<String>,
    pub env_manager: Option<String>,
    pub python: Option<PathBuf>,
    pub workers: Option<usize>,
    pub no_convert: Option<bool>,
}

/// The `[auth]` table of `keel.toml`: whether `keel server` asks who is calling, and how.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// Turns authentication and permissions on (`--auth`, `KEEL_AUTH`).
    pub enabled: Option<bool>,
    /// What users may do where they hold no grant: READ, USE, EDIT, MANAGE or NO_PERMISSIONS.
    pub default_permission: Option<String>,
    /// A file holding the first admin's username and password (`username:password`), read
    /// when no user exists yet (a mounted Kubernetes secret, say).
    pub admin_file: Option<PathBuf>,
    /// The `Host` header values the server answers (`--allowed-hosts`).
    pub allowed_hosts: Option<Vec<String>>,
}

/// The `[store]` table of `keel.toml`: the metadata database and artifact store every command
/// opens, or the keel server it works with instead.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    pub db: Option<String>,
    pub artifacts: Option<String>,
    pub tracking_uri: Option<String>,
}

/// Everything the settings file holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Settings {
    /// Where `keel server` listens, and the stores (from `[store]` or `[server]`).
    pub server: FileSettings,
    /// The server the store commands work with instead of the local stores.
    pub tracking_uri: Option<String>,
    pub serve: ServeFile,
    pub auth: AuthFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoot {
    store: Option<StoreFile>,
    server: Option<FileSettings>,
    serve: Option<ServeFile>,
    auth: Option<AuthFile>,
    #[serde(flatten)]
    top: FileSettings,
}

/// Settings the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub db: String,
    pub artifacts: String,
}

impl ServerSettings {
    pub const DEFAULT_HOST: &'static str = "127.0.0.1";
    pub const DEFAULT_PORT: u16 = 5000;
    pub const DEFAULT_DB: &'static str = "sqlite://keel-data/keel.db";
    pub const DEFAULT_ARTIFACTS: &'static str = "keel-data/artifacts";

    /// Layers `flags` (flags or environment, from clap) over `file` over the defaults.
    pub fn layer(flags: FileSettings, file: FileSettings) -> Self {
        ServerSettings {
            host: flags
                .host
                .or(file.host)
                .unwrap_or_else(|| Self::DEFAULT_HOST.into()),
            port: flags.port.or(file.port).unwrap_or(Self::DEFAULT_PORT),
            db: flags
                .db
                .or(file.db)
                .unwrap_or_else(|| Self::DEFAULT_DB.into()),
            artifacts: flags
                .artifacts
                .or(file.artifacts)
                .unwrap_or_else(|| Self::DEFAULT_ARTIFACTS.into()),
        }
    }
}

/// Reads the settings file: the given path (which must exist), else `./keel.toml` if present.
pub fn read_file(explicit: Option<&Path>) -> Result<Settings> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from("keel.toml");
            if !p.exists() {
                return Ok(Settings::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn parse(text: &str) -> Result<Settings> {
    let root: FileRoot =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message().trim()))?;
    let top = root.top;
    let mut server = match root.server {
        Some(s) if top != FileSettings::default() => {
            if s != FileSettings::default() {
                bail!("settings are given both at the top level and in [server]; use one");
            }
            top
        }
        Some(s) => s,
        None => top,
    };
    let store = root.store.unwrap_or_default();
    for (key, from_store, from_server) in [
        ("db", store.db, &mut server.db),
        ("artifacts", store.artifacts, &mut server.artifacts),
    ] {
        if from_store.is_some() {
            if from_server.is_some() {
                bail!("{key} is given both in [store] and in [server]; keep it in [store]");
            }
            *from_server = from_store;
        }
    }
    Ok(Settings {
        server,
        tracking_uri: store.tracking_uri,
        serve: root.serve.unwrap_or_default(),
        auth: root.auth.unwrap_or_default(),
    })
}

/// A value the flags or the environment gave, else the file's (parsed as the flag would be,
/// an error naming the `[serve]` key), else the default.
pub fn pick<T>(
    given: Option<T>,
    file: Option<&str>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    default: T,
) -> Result<T> {
    if let Some(v) = given {
        return Ok(v);
    }
    match file {
        Some(text) => parse(text).map_err(|e| anyhow::anyhow!("[serve] {key}: {e}")),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_order() {
        let file = parse("[server]\nport = 6000\ndb = \"sqlite:///f.db\"\n")
            .unwrap()
            .server;
        let flags = FileSettings {
            db: Some("sqlite:///flag.db".into()),
            ..Default::default()
        };
        let s = ServerSettings::layer(flags, file);
        assert_eq!(s.port, 6000);
        assert_eq!(s.db, "sqlite:///flag.db");
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.artifacts, ServerSettings::DEFAULT_ARTIFACTS);
    }

    #[test]
    fn the_readme_example_reads() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("# keel.toml\n").expect("the example") + "# keel.toml\n".len();
        let end = start + readme[start..].find("```").expect("its end");
        let s = parse(&readme[start..end]).unwrap();
        assert_eq!(s.server.port, Some(5000));
        assert_eq!(
            s.server.db.as_deref(),
            Some("sqlite:///var/lib/keel/keel.db")
        );
        assert_eq!(s.serve.port, Some(8080));
        assert_eq!(s.serve.body_limit.as_deref(), Some("32MiB"));
        assert_eq!(s.serve.poll.as_deref(), Some("2s"));
    }

    #[test]
    fn the_store_table_names_the_stores() {
        let s = parse(
            "[store]\ndb = \"postgres://h/k\"\ntracking_uri = \"http://t:5000\"\n[server]\nport = 7\n",
        )
        .unwrap();
        assert_eq!(s.server.db.as_deref(), Some("postgres://h/k"));
        assert_eq!(s.server.port, Some(7));
        assert_eq!(s.tracking_uri.as_deref(), Some("http://t:5000"));
        assert_eq!(s.server.artifacts, None);
        let old = parse("[server]\nartifacts = \"s3://b/p\"\n").unwrap();
        assert_eq!(old.server.artifacts.as_deref(), Some("s3://b/p"));
        let e = parse("[store]\ndb = \"sqlite:///a.db\"\n[server]\ndb = \"sqlite:///b.db\"\n")
            .expect_err("an error")
            .to_string();
        assert_eq!(
            e,
            "db is given both in [store] and in [server]; keep it in [store]"
        );
        let e = parse("artifacts = \"a\"\n[store]\nartifacts = \"b\"\n")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("artifacts is given both"), "{e}");
        let e = parse("[store]\nhost = \"x\"\n")
            .expect_err("an error")
            .to_string();
        assert!(e.contains("unknown field `host`"), "{e}");
    }

    #[test]
    fn bad_files_are_refused() {
        {
            let e = parse("prot = 5\n").expect_err("an error").to_string();
            assert!(e.contains("unknown field `prot`"), "{e}");
        }
        {
            let e = parse("port = \"x\"\n").expect_err("an error").to_string();
            assert!(e.contains("expected u16"), "{e}");
        }
        assert_eq!(parse("port = 7\n").unwrap().server.port, Some(7));
        {
            let e = parse("[serve]\nmax_bach = 5\n")
                .expect_err("an error")
                .to_string();
            assert!(e.contains("unknown field `max_bach`"), "{e}");
        }
        let both =
            parse("db = \"sqlite:///a.db\"\n[serve]\nport = 9\nmax_delay = \"5ms\"\n").unwrap();
        assert_eq!(both.server.db.as_deref(), Some("sqlite:///a.db"));
        assert_eq!(
            (both.serve.port, both.serve.max_delay.as_deref()),
            (Some(9), Some("5ms"))
        );
        let e = pick(
            None,
            Some("soon"),
            "timeout",
            |s| Err(format!("'{s}' is not a duration")),
            1,
        )
        .expect_err("an error")
        .to_string();
        assert_eq!(e, "[serve] timeout: 'soon' is not a duration");
        assert_eq!(pick(Some(3), Some("x"), "queue", |_| Ok(5), 1).unwrap(), 3);
        assert_eq!(pick(None, None, "queue", |_| Ok(5), 1).unwrap(), 1);
    }
}
