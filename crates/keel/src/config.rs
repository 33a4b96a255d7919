//! Server settings, layered: defaults < `keel.toml` < `KEEL_*` environment < command-line flags.
//!
//! clap reads flags and the environment (a flag wins over its variable); what neither gives
//! comes from the file, then from the defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The `[server]` table of `keel.toml` (top-level keys are accepted too).
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub db: Option<String>,
    pub artifacts: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoot {
    server: Option<FileSettings>,
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

/// Reads the config file: the given path (which must exist), else `./keel.toml` if present.
pub fn read_file(explicit: Option<&Path>) -> Result<FileSettings> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from("keel.toml");
            if !p.exists() {
                return Ok(FileSettings::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn parse(text: &str) -> Result<FileSettings> {
    let root: FileRoot =
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message().trim()))?;
    let top = root.top;
    match root.server {
        Some(s) if top != FileSettings::default() => {
            if s != FileSettings::default() {
                bail!("settings are given both at the top level and in [server]; use one");
            }
            Ok(top)
        }
        Some(s) => Ok(s),
        None => Ok(top),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_order() {
        let file = parse("[server]\nport = 6000\ndb = \"sqlite:///f.db\"\n").unwrap();
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
    fn bad_files_are_refused() {
        {
            let e = parse("prot = 5\n").expect_err("an error").to_string();
            assert!(e.contains("unknown field `prot`"), "{e}");
        }
        {
            let e = parse("port = \"x\"\n").expect_err("an error").to_string();
            assert!(e.contains("expected u16"), "{e}");
        }
        assert_eq!(parse("port = 7\n").unwrap().port, Some(7));
    }
}
