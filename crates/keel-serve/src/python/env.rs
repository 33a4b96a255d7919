//! The Python a model's workers run in, as `mlflow models serve --env-manager` chooses it:
//! `local` (a given interpreter, or `python3`), or a virtual environment built once from the
//! model's `python_env.yaml` and `requirements.txt` through the package index (`virtualenv`
//! with `venv` and pip, `uv` with uv) and cached under a hash of what it was built from.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::error::ServeError;

/// Where a model's Python comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnvManager {
    /// The interpreter given (`--python`), or `python3` on the PATH.
    #[default]
    Local,
    /// A virtual environment made with `python -m venv` and filled by pip.
    Virtualenv,
    /// A virtual environment made and filled by uv.
    Uv,
}

impl std::str::FromStr for EnvManager {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Self::Local),
            "virtualenv" => Ok(Self::Virtualenv),
            "uv" => Ok(Self::Uv),
            other => Err(format!(
                "unknown environment manager '{other}' (local, virtualenv or uv)"
            )),
        }
    }
}

impl std::fmt::Display for EnvManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Local => "local",
            Self::Virtualenv => "virtualenv",
            Self::Uv => "uv",
        })
    }
}

/// `python_env.yaml` as MLflow writes it.
#[derive(Debug, Default, Deserialize)]
struct PythonEnv {
    #[serde(default)]
    python: Option<String>,
    #[serde(default)]
    build_dependencies: Vec<String>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// What keel's worker needs beside the model's own requirements.
const WORKER_REQUIREMENTS: &[&str] = &["pyarrow"];

fn fail(model: &Path, what: impl std::fmt::Display) -> ServeError {
    ServeError::Model(format!("{}: {what}", model.display()))
}

/// The interpreter that runs `model`'s workers, building its environment first when the
/// manager makes one and no earlier build of the same requirements is cached in `cache`;
/// `extra` packages (the ONNX converters) are installed beside the model's requirements.
/// Blocking: a build runs pip or uv.
pub fn interpreter(
    model: &Path,
    manager: EnvManager,
    python: Option<&Path>,
    cache: &Path,
    extra: &[&str],
) -> Result<PathBuf, ServeError> {
    if manager == EnvManager::Local {
        return Ok(python.map_or_else(|| PathBuf::from("python3"), Path::to_path_buf));
    }
    let (env, requirements) = read_env(model)?;
    let base = base_python(model, env.python.as_deref(), python)?;
    // The environment's identity: everything that decides what gets installed.
    let mut h = blake3::Hasher::new();
    for part in [manager.to_string(), base.display().to_string()]
        .iter()
        .chain(&env.build_dependencies)
        .chain(&requirements)
        .map(String::as_str)
        .chain(WORKER_REQUIREMENTS.iter().copied())
        .chain(extra.iter().copied())
    {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    let id = h.finalize().to_hex()[..16].to_string();
    let dir = cache.join(&id);
    let interpreter = dir.join("bin").join("python");
    if dir.join(".keel-ready").is_file() {
        return Ok(interpreter);
    }
    std::fs::create_dir_all(cache).map_err(|e| fail(cache, e))?;
    let partial = cache.join(format!("{id}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    tracing::info!(model = %model.display(), env = %dir.display(), %manager, "building the model's Python environment (once; later starts reuse it)");
    let mut packages = requirements;
    packages.extend(
        WORKER_REQUIREMENTS
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    let built = build(model, manager, &base, &partial, &env, &packages);
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    std::fs::write(partial.join(".keel-ready"), b"").map_err(|e| fail(&partial, e))?;
    // Built aside and moved into place whole, unless another process built it meanwhile. The
    // workers run its `bin/python`, which finds the environment beside itself wherever it
    // lives (its scripts' shebangs keep the build path, and are not used).
    if std::fs::rename(&partial, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&partial);
        if !dir.join(".keel-ready").is_file() {
            return Err(fail(&dir, "could not move the new environment into place"));
        }
    }
    Ok(interpreter)
}

/// `python_env.yaml` (or a bare `requirements.txt`) and the requirement lines it names, with
/// `-r FILE` lines replaced by the file's lines.
fn read_env(model: &Path) -> Result<(PythonEnv, Vec<String>), ServeError> {
    let yaml = model.join("python_env.yaml");
    let env: PythonEnv = if yaml.is_file() {
        let text = std::fs::read_to_string(&yaml).map_err(|e| fail(&yaml, e))?;
        serde_norway::from_str(&text).map_err(|e| fail(&yaml, e))?
    } else if model.join("requirements.txt").is_file() {
        PythonEnv {
            dependencies: vec!["-r requirements.txt".into()],
            ..PythonEnv::default()
        }
    } else {
        return Err(fail(
            model,
            "has neither python_env.yaml nor requirements.txt to build an environment from (use --env-manager local)",
        ));
    };
    let mut lines = Vec::new();
    for dep in &env.dependencies {
        match dep.strip_prefix("-r") {
            Some(file) => {
                let path = model.join(file.trim());
                if !path.starts_with(model) || file.contains("..") {
                    return Err(fail(
                        model,
                        format!("'{dep}' names a file outside the model"),
                    ));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| fail(&path, e))?;
                lines.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from),
                );
            }
            None => lines.push(dep.clone()),
        }
    }
    Ok((env, lines))
}

/// `major.minor` of an interpreter, or `None` when it cannot be run.
fn version_of(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The interpreter a model's environment is built from: `--python` if given, else
/// `python<major>.<minor>` of the model's Python version, else `python3` when its version
/// matches.
fn base_python(
    model: &Path,
    wanted: Option<&str>,
    given: Option<&Path>,
) -> Result<PathBuf, ServeError> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let Some(wanted) = wanted else {
        return Ok(PathBuf::from("python3"));
    };
    let minor: String = wanted.split('.').take(2).collect::<Vec<_>>().join(".");
    let named = PathBuf::from(format!("python{minor}"));
    if version_of(&named).as_deref() == Some(minor.as_str()) {
        return Ok(named);
    }
    let python3 = PathBuf::from("python3");
    match version_of(&python3) {
        Some(v) if v == minor => Ok(python3),
        found => Err(fail(
            model,
            format!(
                "needs Python {wanted} (python_env.yaml) and no python{minor} is on the PATH{}; give --python",
                found.map_or_else(String::new, |v| format!(" (python3 is {v})"))
            ),
        )),
    }
}

/// Runs one build step, naming it when it fails.
fn run(model: &Path, what: &str, cmd: &mut Command) -> Result<(), ServeError> {
    let status = cmd
        .status()
        .map_err(|e| fail(model, format!("{what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(fail(model, format!("{what} failed ({status})")))
    }
}

/// uv from the base interpreter's own folder (a virtualenv's `bin`), else from the PATH.
fn uv_binary(base: &Path) -> PathBuf {
    base.parent()
        .map(|dir| dir.join("uv"))
        .filter(|uv| uv.is_file())
        .unwrap_or_else(|| PathBuf::from("uv"))
}

fn build(
    model: &Path,
    manager: EnvManager,
    base: &Path,
    dir: &Path,
    env: &PythonEnv,
    packages: &[String],
) -> Result<(), ServeError> {
    let python = dir.join("bin").join("python");
    let pip = |what: &str, args: &[String]| {
        let mut cmd = Command::new(&python);
        cmd.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(args)
        .current_dir(model);
        run(model, what, &mut cmd)
    };
    match manager {
        EnvManager::Local => Ok(()),
        EnvManager::Virtualenv => {
            run(
                model,
                "creating the virtual environment",
                Command::new(base).arg("-m").arg("venv").arg(dir),
            )?;
            if !env.build_dependencies.is_empty() {
                let mut upgrade = vec!["--upgrade".to_string()];
                upgrade.extend(env.build_dependencies.iter().cloned());
                pip("installing the build dependencies", &upgrade)?;
            }
            pip("installing the model's requirements with pip", packages)
        }
        EnvManager::Uv => {
            run(
                model,
                "creating the virtual environment with uv",
                Command::new(uv_binary(base))
                    .args(["venv", "--quiet", "--python"])
                    .arg(base)
                    .arg(dir)
                    .env("UV_PYTHON_DOWNLOADS", "never"),
            )?;
            run(
                model,
                "installing the model's requirements with uv",
                Command::new(uv_binary(base))
                    .args(["pip", "install", "--quiet", "--python"])
                    .arg(&python)
                    .args(packages)
                    .current_dir(model)
                    .env("UV_PYTHON_DOWNLOADS", "never"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_files_are_read_into_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("python_env.yaml"),
            "python: 3.11.7\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n- extra==1\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("requirements.txt"),
            "mlflow==3.1\n# a comment\n\nscikit-learn==1.5\n",
        )
        .unwrap();
        let (env, lines) = read_env(dir.path()).unwrap();
        assert_eq!(env.python.as_deref(), Some("3.11.7"));
        assert_eq!(lines, ["mlflow==3.1", "scikit-learn==1.5", "extra==1"]);
        std::fs::write(
            dir.path().join("python_env.yaml"),
            "dependencies:\n- -r ../secret.txt\n",
        )
        .unwrap();
        let e = read_env(dir.path()).unwrap_err().to_string();
        assert!(e.contains("outside the model"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = read_env(empty.path()).unwrap_err().to_string();
        assert!(
            e.contains("neither python_env.yaml nor requirements.txt"),
            "{e}"
        );
    }

    #[test]
    fn managers_parse_by_mlflow_names() {
        assert_eq!("uv".parse::<EnvManager>().unwrap(), EnvManager::Uv);
        assert!(
            "conda"
                .parse::<EnvManager>()
                .unwrap_err()
                .contains("local, virtualenv or uv")
        );
    }
}
