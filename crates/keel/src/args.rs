//! The stores' command-line arguments, each declared once and flattened into every command
//! that takes it: flags or `KEEL_*` variables, over the settings file, over the defaults.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::config::{self, FileSettings, ServerSettings, Settings};

/// The metadata database.
#[derive(Args, Clone, Default)]
pub(crate) struct DbArg {
    /// Metadata database URL: sqlite:///path/keel.db or postgres://... [default:
    /// sqlite://keel-data/keel.db].
    #[arg(long, env = "KEEL_DB")]
    pub(crate) db: Option<String>,
}

/// The artifact store.
#[derive(Args, Clone, Default)]
pub(crate) struct ArtifactsArg {
    /// Artifact store: a folder, file:///path or s3://bucket/prefix [default: keel-data/artifacts].
    #[arg(long, env = "KEEL_ARTIFACTS")]
    pub(crate) artifacts: Option<String>,
}

/// The settings file.
#[derive(Args, Clone, Default)]
pub(crate) struct SettingsFile {
    /// Settings file (TOML) [default: ./keel.toml when present].
    #[arg(long, env = "KEEL_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

impl SettingsFile {
    /// The file's settings (none when there is no file).
    pub(crate) fn read(&self) -> Result<Settings> {
        config::read_file(self.config.as_deref())
    }

    /// `flags` (flags or environment, from clap) over this file over the defaults.
    pub(crate) fn layer(&self, flags: FileSettings) -> Result<ServerSettings> {
        Ok(ServerSettings::layer(flags, self.read()?.server))
    }
}

/// Where the local stores are.
#[derive(Args, Clone, Default)]
pub(crate) struct StoreLocation {
    #[command(flatten)]
    pub(crate) db: DbArg,
    #[command(flatten)]
    pub(crate) artifacts: ArtifactsArg,
}

impl StoreLocation {
    /// The flags as file-shaped settings (no host or port), to layer over the file.
    pub(crate) fn flags(&self) -> FileSettings {
        FileSettings {
            host: None,
            port: None,
            db: self.db.db.clone(),
            artifacts: self.artifacts.artifacts.clone(),
        }
    }
}

/// The local stores and the settings file that layers under them.
#[derive(Args, Clone, Default)]
pub(crate) struct LocalStores {
    #[command(flatten)]
    pub(crate) location: StoreLocation,
    #[command(flatten)]
    pub(crate) file: SettingsFile,
}

impl LocalStores {
    /// The stores' settings, layered.
    pub(crate) fn settings(&self) -> Result<ServerSettings> {
        self.file.layer(self.location.flags())
    }
}

/// A keel server to work with instead of the local stores.
#[derive(Args, Clone, Default)]
pub(crate) struct Remote {
    /// A keel server to work with (http://host:port) instead of the local stores [default:
    /// `tracking_uri` in the settings file's [store]].
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    pub(crate) tracking_uri: Option<String>,
}

/// The store a command works on: a keel server, or the local stores (as for `keel server`).
#[derive(Args, Default)]
pub(crate) struct StoreArgs {
    #[command(flatten)]
    pub(crate) remote: Remote,
    #[command(flatten)]
    pub(crate) local: LocalStores,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}
