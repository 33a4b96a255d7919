//! Which model versions to serve and where their files are: a model directory or `.onnx`
//! file on disk, or a registered model (by alias, version or latest) that a [`Registry`]
//! resolves and fetches.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ServeError;

/// A model to serve, as given on the command line or in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    /// A model directory or `.onnx` file.
    Path(PathBuf),
    /// A registered model's version by alias (`NAME@champion`).
    Alias {
        /// Registered model.
        name: String,
        /// Alias.
        alias: String,
    },
    /// A registered model's version (`NAME/3`).
    Version {
        /// Registered model.
        name: String,
        /// Version.
        version: String,
    },
    /// A registered model's latest version (`NAME`).
    Latest {
        /// Registered model.
        name: String,
    },
    /// A model a run logged (`runs:/RUN_ID/PATH`): the run's artifacts at PATH, or the
    /// logged model of that name whose source is the run.
    Run {
        /// The run.
        run_id: String,
        /// The model's artifact path (or name) in the run.
        path: String,
    },
}

impl ModelSpec {
    /// The registered model this spec follows, if it names one.
    pub fn registered_name(&self) -> Option<&str> {
        match self {
            ModelSpec::Alias { name, .. }
            | ModelSpec::Version { name, .. }
            | ModelSpec::Latest { name } => Some(name),
            _ => None,
        }
    }

    /// Parses `PATH`, `NAME@ALIAS`, `NAME/VERSION` or `NAME` (also with a `models:/` prefix);
    /// an existing file or folder, an `.onnx` file name, or a path starting with `.` or `/` is
    /// a path.
    pub fn parse(s: &str) -> Result<Self, ServeError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ServeError::BadRequest("an empty model name".into()));
        }
        if let Some(rest) = s.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let path = path.trim_matches('/');
            if run_id.is_empty()
                || path.is_empty()
                || !run_id.chars().all(|c| c.is_ascii_alphanumeric())
                || path
                    .split('/')
                    .any(|p| p.is_empty() || p == "." || p == "..")
            {
                return Err(ServeError::BadRequest(format!(
                    "'{s}': expected runs:/RUN_ID/PATH, e.g. runs:/0a1b2c/model"
                )));
            }
            return Ok(Self::Run {
                run_id: run_id.into(),
                path: path.into(),
            });
        }
        let looks_like_a_file = s.ends_with(".onnx") || s.starts_with('.') || s.starts_with('/');
        if !s.starts_with("models:/") && (Path::new(s).exists() || looks_like_a_file) {
            return Ok(Self::Path(PathBuf::from(s)));
        }
        let rest = s.strip_prefix("models:/").unwrap_or(s);
        if let Some((name, alias)) = rest.split_once('@') {
            if name.is_empty() || alias.is_empty() {
                return Err(ServeError::BadRequest(format!(
                    "'{s}': expected NAME@ALIAS"
                )));
            }
            return Ok(Self::Alias {
                name: name.into(),
                alias: alias.into(),
            });
        }
        if let Some((name, version)) = rest.rsplit_once('/') {
            if !name.is_empty()
                && !version.is_empty()
                && version.chars().all(|c| c.is_ascii_digit())
            {
                return Ok(Self::Version {
                    name: name.into(),
                    version: version.into(),
                });
            }
            return Err(ServeError::BadRequest(format!(
                "'{s}' is neither a file or folder nor NAME, NAME@ALIAS or NAME/VERSION"
            )));
        }
        Ok(Self::Latest { name: rest.into() })
    }

    /// The name a model is served under unless told otherwise: the registered name, or the
    /// file's or folder's stem.
    pub fn default_name(&self) -> String {
        match self {
            Self::Path(p) => p
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| !s.is_empty() && *s != ".")
                .unwrap_or("model")
                .to_string(),
            Self::Alias { name, .. } | Self::Version { name, .. } | Self::Latest { name } => {
                name.clone()
            }
            Self::Run { path, .. } => path.rsplit('/').next().unwrap_or("model").to_string(),
        }
    }

    /// Whether the version behind the spec can change (an alias or the latest version).
    pub fn moves(&self) -> bool {
        matches!(self, Self::Alias { .. } | Self::Latest { .. })
    }
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Alias { name, alias } => write!(f, "{name}@{alias}"),
            Self::Version { name, version } => write!(f, "{name}/{version}"),
            Self::Latest { name } => f.write_str(name),
            Self::Run { run_id, path } => write!(f, "runs:/{run_id}/{path}"),
        }
    }
}

/// A resolved version: its number and a local folder or file holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The version (`1` for a path).
    pub version: String,
    /// The model directory or file.
    pub path: PathBuf,
}

/// Resolves registered models to versions and fetches their files.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// The version a spec names now (cheap: called every poll interval for aliases).
    async fn version(&self, spec: &ModelSpec) -> Result<String, ServeError>;
    /// The local path of a registered model's version, fetching it if needed.
    async fn fetch(&self, name: &str, version: &str) -> Result<PathBuf, ServeError>;
    /// The local path of a model a run logged under `path`, fetching it if needed.
    async fn fetch_run(&self, run_id: &str, path: &str) -> Result<PathBuf, ServeError>;
}

/// Resolves a spec to a version and files.
pub async fn resolve(
    spec: &ModelSpec,
    registry: Option<&dyn Registry>,
) -> Result<Resolved, ServeError> {
    match spec {
        ModelSpec::Path(p) => Ok(Resolved {
            version: "1".into(),
            path: p.clone(),
        }),
        ModelSpec::Run { run_id, path } => {
            let registry = registry.ok_or_else(|| {
                ServeError::Model(format!(
                    "'{spec}' names a run's model but no tracking server is configured"
                ))
            })?;
            Ok(Resolved {
                version: "1".into(),
                path: registry.fetch_run(run_id, path).await?,
            })
        }
        ModelSpec::Alias { name, .. }
        | ModelSpec::Version { name, .. }
        | ModelSpec::Latest { name } => {
            let registry = registry.ok_or_else(|| {
                ServeError::Model(format!(
                    "'{spec}' names a registered model but no registry is configured"
                ))
            })?;
            let version = registry.version(spec).await?;
            let path = registry.fetch(name, &version).await?;
            Ok(Resolved { version, path })
        }
    }
}

pub use keel_core::predlog::safe_name;

/// How often aliases are checked by default.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let alias = ModelSpec::parse("models:/churn@champion").unwrap();
        assert_eq!(
            alias,
            ModelSpec::Alias {
                name: "churn".into(),
                alias: "champion".into()
            }
        );
        assert_eq!(alias.to_string(), "churn@champion");
        assert!(alias.moves());
        let v = ModelSpec::parse("churn/3").unwrap();
        assert_eq!(
            v,
            ModelSpec::Version {
                name: "churn".into(),
                version: "3".into()
            }
        );
        assert!(!v.moves());
        assert_eq!(
            ModelSpec::parse("churn").unwrap(),
            ModelSpec::Latest {
                name: "churn".into()
            }
        );
        let run = ModelSpec::parse("runs:/0a1b2c/model").unwrap();
        assert_eq!(
            run,
            ModelSpec::Run {
                run_id: "0a1b2c".into(),
                path: "model".into()
            }
        );
        assert_eq!(run.to_string(), "runs:/0a1b2c/model");
        assert_eq!(run.default_name(), "model");
        assert!(!run.moves());
        for bad in ["runs:/", "runs:/abc", "runs:/abc/../x", "runs:/a-b/model"] {
            let e = ModelSpec::parse(bad).expect_err(bad).to_string();
            assert!(e.contains("expected runs:/RUN_ID/PATH"), "{bad}: {e}");
        }
        let p = ModelSpec::parse("./models/iris.onnx").unwrap();
        assert_eq!(p.default_name(), "iris");
        {
            let e = ModelSpec::parse("churn/v3")
                .expect_err("an error")
                .to_string();
            assert!(e.contains("neither a file or folder nor NAME"), "{e}");
        }
        {
            let e = ModelSpec::parse("@x").expect_err("an error").to_string();
            assert!(e.contains("expected NAME@ALIAS"), "{e}");
        }
    }
}
