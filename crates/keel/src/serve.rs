//! `keel serve`: a model directory, an `.onnx` file or a registered model over HTTP, with the
//! registry (local stores or a tracking server) answering which version an alias names and
//! its files fetched through the artifact proxy.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::TryStreamExt;
use keel_serve::batch::BatchConfig;
use keel_serve::error::ServeError;
use keel_serve::metrics::ServeMetrics;
use keel_serve::predlog::{LogConfig, PredictionLog};
use keel_serve::python::PythonOptions;
use keel_serve::server::{AppState, ServeOptions};
use keel_serve::source::{ModelSpec, Registry, safe_name};
use keel_serve::supervisor::{ServedModel, Supervisor};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::args::{LocalStores, Remote, SettingsFile, StoreArgs, StoreLocation};
use crate::client::Client;

/// `keel serve`'s command line.
#[derive(Args)]
pub struct ServeCmd {
    /// What to serve: a model folder (keel's, or MLflow's: onnx natively, any other
    /// python_function model in Python workers), an .onnx file, a run's model
    /// (runs:/RUN_ID/PATH), or a registered model: NAME@ALIAS or models:/NAME@ALIAS (follows
    /// the alias as it moves), NAME/VERSION, or NAME (its latest version).
    #[arg(required_unless_present = "config")]
    model: Option<String>,
    /// The name requests use [default: the registered name, or the file's or folder's stem].
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "KEEL_SERVE_HOST")]
    host: Option<String>,
    /// Port to listen on (0 picks a free one) [default: 8080].
    #[arg(long, short, env = "KEEL_SERVE_PORT")]
    port: Option<u16>,
    /// Send a share of requests to another version: MODEL:PERCENT (e.g. churn@challenger:10).
    #[arg(long)]
    canary: Option<String>,
    /// Mirror every request to another version; its answers are only logged.
    #[arg(long)]
    shadow: Option<String>,
    /// A YAML file listing several models: `models: [{name, model, canary, shadow}]`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Rows per model call at most [default: 64].
    #[arg(long, env = "KEEL_SERVE_MAX_BATCH")]
    max_batch: Option<usize>,
    /// How long a request may wait for others already in flight to share its model call
    /// [default: 2ms].
    #[arg(long, env = "KEEL_SERVE_MAX_DELAY", value_parser = humantime::parse_duration)]
    max_delay: Option<std::time::Duration>,
    /// Requests waiting per model version at most; more are answered 429 [default: 1024].
    #[arg(long, env = "KEEL_SERVE_QUEUE")]
    queue: Option<usize>,
    /// Answer 504 when a prediction takes longer [default: 30s].
    #[arg(long, env = "KEEL_SERVE_TIMEOUT", value_parser = humantime::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// Largest request body (413 above) [default: 32MiB].
    #[arg(long, env = "KEEL_SERVE_BODY_LIMIT", value_parser = parse_size)]
    body_limit: Option<usize>,
    /// Folder of the prediction log (Parquet by model and hour) [default: keel-data/predictions].
    #[arg(long, env = "KEEL_PREDICTION_LOG")]
    log_dir: Option<PathBuf>,
    /// Do not log predictions.
    #[arg(long, conflicts_with = "log_dir")]
    no_log: bool,
    /// With --log-dir on object storage (s3://...): the local folder the log is written to
    /// before each finished file is copied there [default: keel-data/log-spool]. Replicas on
    /// one machine each need their own.
    #[arg(long, env = "KEEL_SERVE_LOG_SPOOL")]
    log_spool: Option<PathBuf>,
    /// How long a prediction-log file collects rows before it is finished and readable (its
    /// rows are on disk, in row groups, within a second either way); longer makes fewer,
    /// larger files [default: 10s].
    #[arg(long, env = "KEEL_SERVE_LOG_FILE_INTERVAL", value_parser = humantime::parse_duration)]
    log_file_interval: Option<std::time::Duration>,
    /// Rows per model version and hour the log's sketches keep as a sample beside their exact
    /// counts (`keel monitor report --sketches` reads them instead of the log); 0 keeps no
    /// sketches [default: 1024].
    #[arg(long, env = "KEEL_SERVE_SKETCH_ROWS")]
    sketch_rows: Option<usize>,
    /// How often to check whether a served alias moved [default: 2s].
    #[arg(long, env = "KEEL_SERVE_POLL", value_parser = humantime::parse_duration)]
    poll: Option<std::time::Duration>,
    /// Where a python_function model's workers get their Python, as in `mlflow models
    /// serve`: local (--python, or python3 on the PATH), virtualenv or uv (an environment
    /// built once from the model's python_env.yaml and requirements.txt, then reused)
    /// [default: local].
    #[arg(long, env = "KEEL_SERVE_ENV_MANAGER")]
    env_manager: Option<String>,
    /// The Python interpreter for --env-manager local, or the one virtualenv and uv build
    /// environments from [default: python3, or python<X.Y> of the model's python_env.yaml].
    #[arg(long, env = "KEEL_SERVE_PYTHON")]
    python: Option<PathBuf>,
    /// Python worker processes per python_function model version [default: the number of
    /// cores].
    #[arg(long, short, env = "KEEL_SERVE_WORKERS")]
    workers: Option<usize>,
    /// Serve scikit-learn, XGBoost and LightGBM models through their Python workers even when
    /// their ONNX conversion checks out.
    #[arg(long)]
    no_convert: bool,
    /// Ask who is calling: every request but the probes needs a credential (an access token)
    /// that the keel server of --tracking-uri accepts, whose user has USE on the registered
    /// model it calls.
    #[arg(long, env = "KEEL_SERVE_AUTH")]
    auth: bool,
    /// With --auth: requests per second each credential may send (429 past it).
    #[arg(long, env = "KEEL_SERVE_RATE_LIMIT", requires = "auth")]
    rate_limit: Option<f64>,
    #[command(flatten)]
    tls: crate::tls::TlsArgs,
    /// The keel server whose registry names the models instead of the local stores.
    #[command(flatten)]
    remote: Remote,
    /// The local stores (their settings file is KEEL_CONFIG or ./keel.toml: --config names
    /// the models file here).
    #[command(flatten)]
    stores: StoreLocation,
}

/// `keel serve`: the flags layered over `KEEL_SERVE_*`, `keel.toml`'s `[serve]` and the
/// defaults, then [`run`] with the registry of `--tracking-uri` or the local stores.
pub async fn command(cmd: ServeCmd) -> Result<()> {
    use crate::config::pick;
    // The settings file comes from KEEL_CONFIG or ./keel.toml here: --config names the
    // models file.
    let settings_file = SettingsFile {
        config: std::env::var_os("KEEL_CONFIG").map(PathBuf::from),
    };
    let file = crate::config::read_file(settings_file.config.as_deref())?.serve;
    let duration = |s: &str| humantime::parse_duration(s).map_err(|e| format!("'{s}': {e}"));
    let ms = std::time::Duration::from_millis;
    let args = ServeArgs {
        model: cmd.model,
        name: cmd.name,
        host: cmd.host.or(file.host).unwrap_or_else(|| "127.0.0.1".into()),
        port: cmd.port.or(file.port).unwrap_or(8080),
        canary: cmd.canary,
        shadow: cmd.shadow,
        config: cmd.config,
        batch: keel_serve::batch::BatchConfig {
            max_batch: cmd.max_batch.or(file.max_batch).unwrap_or(64).max(1),
            max_delay: pick(
                cmd.max_delay,
                file.max_delay.as_deref(),
                "max_delay",
                duration,
                ms(2),
            )?,
            queue: cmd.queue.or(file.queue).unwrap_or(1024).max(1),
        },
        timeout: pick(
            cmd.timeout,
            file.timeout.as_deref(),
            "timeout",
            duration,
            ms(30_000),
        )?,
        body_limit: pick(
            cmd.body_limit,
            file.body_limit.as_deref(),
            "body_limit",
            parse_size,
            32 << 20,
        )?,
        log_dir: if cmd.no_log {
            None
        } else {
            Some(
                cmd.log_dir
                    .or(file.log_dir)
                    .unwrap_or_else(|| PathBuf::from("keel-data/predictions")),
            )
        },
        log_spool: cmd
            .log_spool
            .unwrap_or_else(|| PathBuf::from("keel-data/log-spool")),
        log_file_interval: pick(
            cmd.log_file_interval,
            file.log_file_interval.as_deref(),
            "log_file_interval",
            duration,
            keel_serve::predlog::FILE_INTERVAL,
        )?,
        sketch_rows: cmd
            .sketch_rows
            .or(file.sketch_rows)
            .unwrap_or(keel_core::sketch::SAMPLE_ROWS),
        poll: pick(
            cmd.poll,
            file.poll.as_deref(),
            "poll",
            duration,
            keel_serve::source::DEFAULT_POLL,
        )?,
        python: {
            let defaults = PythonOptions::default();
            PythonOptions {
                env_manager: match cmd.env_manager.or(file.env_manager) {
                    Some(m) => m
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--env-manager: {e}"))?,
                    None => defaults.env_manager,
                },
                python: cmd.python.or(file.python),
                workers: cmd
                    .workers
                    .or(file.workers)
                    .unwrap_or(defaults.workers)
                    .max(1),
                convert: !cmd.no_convert && !file.no_convert.unwrap_or(false),
                ..defaults
            }
        },
        access: None,
        tls: cmd.tls,
    };
    let tracking_uri = cmd
        .remote
        .tracking_uri
        .clone()
        .or(crate::config::read_file(settings_file.config.as_deref())?.tracking_uri);
    let access = match (cmd.auth, tracking_uri) {
        (false, _) => None,
        (true, Some(uri)) => Some((uri, cmd.rate_limit)),
        (true, None) => bail!(
            "keel serve --auth checks callers against a keel server: give its address with --tracking-uri"
        ),
    };
    let args = ServeArgs { access, ..args };
    let store = StoreArgs {
        remote: cmd.remote,
        local: LocalStores {
            location: cmd.stores,
            file: settings_file,
        },
        json: false,
    };
    run(args, registry(store)).await
}

/// The registry of `--tracking-uri` (or the settings file's `[store] tracking_uri`) or, without
/// one, of the local stores.
#[cfg(feature = "full")]
async fn registry(store: StoreArgs) -> Result<Client> {
    crate::stores::registry(&store).await
}

/// The registry of `--tracking-uri` (or the settings file's `[store] tracking_uri`): the
/// serving-only build opens no local store.
#[cfg(not(feature = "full"))]
async fn registry(store: StoreArgs) -> Result<Client> {
    let file = store.local.file.read()?;
    match store.remote.tracking_uri.or(file.tracking_uri) {
        Some(uri) => Client::new(&uri),
        None => bail!(
            "a registered model needs --tracking-uri in the serving-only build of keel, which \
             opens no local store (serve a model folder or an .onnx file, or use the full build)"
        ),
    }
}

/// What `keel serve` was asked for.
pub struct ServeArgs {
    pub model: Option<String>,
    pub name: Option<String>,
    pub host: String,
    pub port: u16,
    pub canary: Option<String>,
    pub shadow: Option<String>,
    pub config: Option<PathBuf>,
    pub batch: BatchConfig,
    pub timeout: Duration,
    pub body_limit: usize,
    pub log_dir: Option<PathBuf>,
    /// Where a log on object storage is written before it is shipped.
    pub log_spool: PathBuf,
    /// How long a prediction-log file collects rows before it is finished.
    pub log_file_interval: Duration,
    /// Rows each version's hourly sketch keeps (0: none).
    pub sketch_rows: usize,
    pub poll: Duration,
    /// How python_function models are run.
    pub python: PythonOptions,
    /// With `--auth`: the keel server that checks callers, and each credential's rate.
    pub access: Option<(String, Option<f64>)>,
    /// The certificate and key to answer HTTPS with.
    pub tls: crate::tls::TlsArgs,
}

/// `serve.yaml`: several models, each with optional canary and shadow versions.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    models: Vec<ConfigModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigModel {
    /// The name requests use [default: the registered name or the file's stem].
    #[serde(default)]
    name: Option<String>,
    /// What to serve (as on the command line).
    model: String,
    /// `SPEC:PERCENT`.
    #[serde(default)]
    canary: Option<String>,
    /// `SPEC`.
    #[serde(default)]
    shadow: Option<String>,
}

fn spec(s: &str) -> Result<ModelSpec> {
    ModelSpec::parse(s).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `SPEC:PERCENT` (percent in (0, 100]).
fn canary(s: &str) -> Result<(ModelSpec, f64)> {
    let Some((model, pct)) = s.rsplit_once(':') else {
        bail!("--canary '{s}': expected MODEL:PERCENT, e.g. churn@challenger:10");
    };
    let pct: f64 = pct
        .trim_end_matches('%')
        .parse()
        .with_context(|| format!("--canary '{s}': '{pct}' is not a percentage"))?;
    if !(pct > 0.0 && pct <= 100.0) {
        bail!("--canary '{s}': the share must be above 0 and at most 100 percent");
    }
    Ok((spec(model)?, pct / 100.0))
}

fn served(
    name: Option<String>,
    model: &str,
    c: Option<&str>,
    s: Option<&str>,
) -> Result<ServedModel> {
    let primary = spec(model)?;
    Ok(ServedModel {
        name: name.unwrap_or_else(|| primary.default_name()),
        primary,
        canary: c.map(canary).transpose()?,
        shadow: s.map(spec).transpose()?,
    })
}

/// The models to serve, from the arguments or the config file.
fn models(a: &ServeArgs) -> Result<Vec<ServedModel>> {
    if let Some(path) = &a.config {
        if a.model.is_some() || a.canary.is_some() || a.shadow.is_some() {
            bail!("--config lists the models; give no MODEL, --canary or --shadow with it");
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file: ConfigFile =
            serde_norway::from_str(&text).with_context(|| format!("{}", path.display()))?;
        if file.models.is_empty() {
            bail!("{}: no models listed", path.display());
        }
        let mut out: Vec<ServedModel> = Vec::new();
        for m in file.models {
            let s = served(m.name, &m.model, m.canary.as_deref(), m.shadow.as_deref())
                .with_context(|| format!("{}", path.display()))?;
            if out.iter().any(|o| o.name == s.name) {
                bail!("{}: two models named '{}'", path.display(), s.name);
            }
            out.push(s);
        }
        return Ok(out);
    }
    let Some(model) = &a.model else {
        bail!("give a model to serve (a folder, an .onnx file or NAME@ALIAS) or --config");
    };
    Ok(vec![served(
        a.name.clone(),
        model,
        a.canary.as_deref(),
        a.shadow.as_deref(),
    )?])
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn run(
    a: ServeArgs,
    registry: impl std::future::Future<Output = Result<Client>>,
) -> Result<()> {
    start(a, registry, crate::shutdown::signal())
        .await?
        .wait()
        .await
}

/// Whether a log folder setting names object storage (`s3://...`) rather than a folder.
pub(crate) fn is_remote_log(dir: &Path) -> bool {
    dir.to_string_lossy().contains("://")
}

/// A server started by [`start`].
pub struct Running {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Copies a log on object storage there.
    #[cfg(feature = "full")]
    shipper: Option<crate::logship::Shipper>,
}

impl Running {
    /// Waits until the server has shut down (its shutdown signal fired), then ships what the
    /// log finished at shutdown.
    pub async fn wait(self) -> Result<()> {
        self.task.await.context("the server task failed")??;
        #[cfg(feature = "full")]
        if let Some(shipper) = self.shipper {
            shipper.finish().await?;
        }
        eprintln!("stopped");
        Ok(())
    }
}

/// Loads the models and starts serving them until `shutdown` resolves.
pub async fn start(
    a: ServeArgs,
    registry: impl std::future::Future<Output = Result<Client>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running> {
    let started = std::time::Instant::now();
    let models = models(&a)?;
    let needs_registry = models.iter().any(|m| {
        !matches!(m.primary, ModelSpec::Path(_))
            || m.canary
                .as_ref()
                .is_some_and(|(c, _)| !matches!(c, ModelSpec::Path(_)))
            || m.shadow
                .as_ref()
                .is_some_and(|s| !matches!(s, ModelSpec::Path(_)))
    });
    let registry: Option<Arc<dyn Registry>> = if needs_registry {
        Some(Arc::new(HttpRegistry {
            client: registry.await?,
            cache: model_cache()?,
        }))
    } else {
        None
    };
    let metrics = Arc::new(ServeMetrics::default());
    // A log on object storage is written to the spool and shipped from there.
    #[cfg(feature = "full")]
    let mut shipper = None;
    let log_dir = match &a.log_dir {
        Some(dir) if is_remote_log(dir) => {
            #[cfg(feature = "full")]
            {
                let store = crate::logship::open(dir).await?;
                shipper = Some(crate::logship::Shipper::start(
                    a.log_spool.clone(),
                    store,
                    a.log_file_interval.max(Duration::from_secs(1)),
                ));
                Some(a.log_spool.clone())
            }
            #[cfg(not(feature = "full"))]
            bail!(
                "--log-dir {}: the serving-only build writes its prediction log to a folder (object storage needs the full build)",
                dir.display()
            );
        }
        other => other.clone(),
    };
    let log = match &log_dir {
        Some(dir) => Some(Arc::new(
            PredictionLog::start(
                LogConfig {
                    flush_interval: a.log_file_interval,
                    sketch_rows: a.sketch_rows,
                    ..LogConfig::new(dir.clone())
                },
                metrics.log_written.clone(),
                metrics.log_dropped.clone(),
            )
            .with_context(|| format!("cannot start the prediction log in {}", dir.display()))?,
        )),
        None => None,
    };
    let access = match &a.access {
        Some((uri, rate)) => {
            let registered = models
                .iter()
                .filter_map(|m| {
                    m.primary
                        .registered_name()
                        .map(|r| (m.name.clone(), r.to_string()))
                })
                .collect();
            let authority = crate::serve_auth::KeelAuthority::new(uri, registered)?;
            Some(Arc::new(keel_serve::access::Access::new(
                Arc::new(authority),
                *rate,
            )))
        }
        None => None,
    };
    let options = ServeOptions {
        batch: a.batch,
        timeout: a.timeout,
        body_limit: a.body_limit,
        python: a.python.clone(),
        access,
    };
    let state = AppState::new(options, metrics, log);
    let supervisor = Supervisor::new(state.clone(), registry, models.clone());
    supervisor
        .load_all()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tls = a.tls.config().await?;
    let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", a.host, a.port))?;
    let addr = listener.local_addr()?;
    for m in &models {
        if let Some(route) = state.route(&m.name) {
            let d = &route.primary;
            if let Some(note) = &d.predictor.note {
                eprintln!("'{}' version {}: {note}", m.name, d.version);
            }
            let runtime = match d.predictor.python() {
                Some(p) => {
                    let info = p.pool().info();
                    format!(
                        "{} Python workers: {}, Python {}, mlflow {}{}",
                        p.pool().size(),
                        p.python.display(),
                        info.python,
                        info.mlflow,
                        info.loader
                            .as_deref()
                            .map_or_else(String::new, |l| format!(", loader {l}"))
                    )
                }
                None => format!("{} runtime", d.predictor.runtime()),
            };
            eprintln!(
                "serving '{}' version {} ({}, {runtime}) from {}",
                m.name,
                d.version,
                m.primary,
                d.predictor.source.display()
            );
        }
    }
    let invocations = if models.len() == 1 {
        "/invocations".to_string()
    } else {
        "/models/NAME/invocations".to_string()
    };
    eprintln!(
        "listening on {}://{addr} (ready in {:.2} s): POST {invocations}, /v2/models/{}/infer; GET /metrics",
        crate::tls::scheme(&tls),
        started.elapsed().as_secs_f64(),
        if models.len() == 1 {
            models[0].name.as_str()
        } else {
            "NAME"
        }
    );
    if let Some(dir) = &a.log_dir {
        eprintln!("prediction log: {}", dir.display());
    }
    tokio::spawn(supervisor.watch(a.poll));
    let task = tokio::spawn(keel_serve::server::serve(listener, state, tls, shutdown));
    Ok(Running {
        addr,
        task,
        #[cfg(feature = "full")]
        shipper,
    })
}

/// The prefix of the folders `keel serve` copies registered models into.
const CACHE_PREFIX: &str = "keel-serve-";

/// A new folder for this process's copies of registered models, named with its process id;
/// the folders of processes that are gone (killed before they could remove them) are
/// removed first.
fn model_cache() -> Result<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    // Whether a process is alive is read from /proc, so only where there is one.
    let entries = std::fs::read_dir(&tmp)
        .ok()
        .filter(|_| cfg!(target_os = "linux"));
    if let Some(entries) = entries {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(CACHE_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(tempfile::Builder::new()
        .prefix(&format!("{CACHE_PREFIX}{}-", std::process::id()))
        .tempdir()?)
}

/// Downloads version `version` of registered model `name` from the registry `client` talks
/// to: the temporary folder holding it (removed when dropped) and the model's path in it.
#[cfg(feature = "full")]
pub(crate) async fn download_version(
    client: &Client,
    name: &str,
    version: &str,
) -> Result<(tempfile::TempDir, PathBuf)> {
    let registry = HttpRegistry {
        client: client.clone(),
        cache: model_cache()?,
    };
    let path = registry
        .fetch(name, version)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((registry.cache, path))
}

/// The registry of a tracking server (or of the local stores served on loopback).
struct HttpRegistry {
    client: Client,
    cache: tempfile::TempDir,
}

fn registry_error(e: anyhow::Error) -> ServeError {
    let not_found = crate::client::refusal(&e).is_some_and(|a| {
        a.code == "RESOURCE_DOES_NOT_EXIST" || a.status == reqwest::StatusCode::NOT_FOUND
    });
    let text = format!("{e:#}");
    if not_found {
        ServeError::NotFound(text)
    } else {
        ServeError::Model(text)
    }
}

/// The version of a registered model `spec` names now, on the server `client` talks to.
pub(crate) async fn registered_version(
    client: &Client,
    spec: &ModelSpec,
) -> Result<String, ServeError> {
    match spec {
        ModelSpec::Alias { name, alias } => {
            let v: Value = client
                .get(
                    "registered-models/alias",
                    &[("name", name.clone()), ("alias", alias.clone())],
                )
                .await
                .map_err(registry_error)?;
            v["model_version"]["version"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| ServeError::NotFound(format!("'{spec}' names no version")))
        }
        ModelSpec::Version { version, .. } => Ok(version.clone()),
        ModelSpec::Latest { name } => {
            let v: Value = client
                .get("registered-models/get", &[("name", name.clone())])
                .await
                .map_err(registry_error)?;
            v["registered_model"]["latest_versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|mv| mv["version"].as_str())
                .max_by_key(|s| s.parse::<u64>().unwrap_or(0))
                .map(String::from)
                .ok_or_else(|| {
                    ServeError::NotFound(format!("registered model '{name}' has no versions"))
                })
        }
        ModelSpec::Path(_) | ModelSpec::Run { .. } => Err(ServeError::Model(format!(
            "{spec} is not a registered model"
        ))),
    }
}

#[async_trait::async_trait]
impl Registry for HttpRegistry {
    async fn version(&self, spec: &ModelSpec) -> Result<String, ServeError> {
        registered_version(&self.client, spec).await
    }

    async fn fetch(&self, name: &str, version: &str) -> Result<PathBuf, ServeError> {
        let dir = self
            .cache
            .path()
            .join(safe_name(name))
            .join(safe_name(version));
        if dir.join("MLmodel").exists() || dir.join("model.onnx").exists() {
            return Ok(dir);
        }
        let v: Value = self
            .client
            .get(
                "model-versions/get-download-uri",
                &[("name", name.to_string()), ("version", version.to_string())],
            )
            .await
            .map_err(registry_error)?;
        let uri = v["artifact_uri"].as_str().unwrap_or_default().to_string();
        self.fetch_uri(&uri, "", &dir, &format!("version {version} of '{name}'"))
            .await
    }

    async fn fetch_run(&self, run_id: &str, path: &str) -> Result<PathBuf, ServeError> {
        let dir = self
            .cache
            .path()
            .join(".runs")
            .join(safe_name(run_id))
            .join(safe_name(path));
        if dir.join("MLmodel").exists() {
            return Ok(dir);
        }
        let what = format!("runs:/{run_id}/{path}");
        let run: Value = self
            .client
            .get("runs/get", &[("run_id", run_id.to_string())])
            .await
            .map_err(registry_error)?;
        // A model in the run's own artifacts (as MLflow 2 logged them).
        let artifacts = run["run"]["info"]["artifact_uri"]
            .as_str()
            .unwrap_or_default();
        if let Some(Ok(root)) = keel_core::artifact::proxied_path(artifacts) {
            let listing: Option<Value> = self
                .client
                .keel_get(&format!(
                    "/api/2.0/mlflow-artifacts/artifacts?path={}",
                    encode(&format!("{}/{path}", root.as_str()))
                ))
                .await
                .ok()
                .flatten();
            let has_mlmodel = listing
                .as_ref()
                .and_then(|l| l["files"].as_array())
                .is_some_and(|files| files.iter().any(|f| f["path"] == "MLmodel"));
            if has_mlmodel {
                return self.fetch_uri(artifacts, path, &dir, &what).await;
            }
        }
        // Else the logged model of that name the run produced (MLflow 3).
        for output in run["run"]["outputs"]["model_outputs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(id) = output["model_id"].as_str() else {
                continue;
            };
            let model: Value = self
                .client
                .get(&format!("logged-models/{}", encode(id)), &[])
                .await
                .map_err(registry_error)?;
            if model["model"]["info"]["name"].as_str() == Some(path) {
                let uri = model["model"]["info"]["artifact_uri"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return self.fetch_uri(&uri, "", &dir, &what).await;
            }
        }
        Err(ServeError::NotFound(format!(
            "{what}: the run has no model at '{path}' (neither in its artifacts nor among the models it logged)"
        )))
    }
}

impl HttpRegistry {
    /// Copies the files under `uri` (a proxied artifact URI) and `sub` below it into `dir`,
    /// through a staging folder; `what` names the model in errors.
    async fn fetch_uri(
        &self,
        uri: &str,
        sub: &str,
        dir: &Path,
        what: &str,
    ) -> Result<PathBuf, ServeError> {
        // Files come through the artifact proxy only, whose paths cannot leave the store: a
        // model never makes this process read a folder of its own machine.
        let root = match keel_core::artifact::proxied_path(uri) {
            Some(Ok(path)) => path,
            Some(Err(e)) => return Err(ServeError::Model(format!("{what} lives at {uri}: {e}"))),
            None => {
                return Err(ServeError::Model(format!(
                    "{what} lives at {uri}, which keel cannot fetch"
                )));
            }
        };
        let root = if sub.is_empty() {
            root.as_str().to_string()
        } else {
            format!("{}/{sub}", root.as_str())
        };
        let staging = dir.with_extension("staging");
        let _ = tokio::fs::remove_dir_all(&staging).await;
        self.download_tree(&root, &staging)
            .await
            .map_err(|e| ServeError::Model(format!("fetching {what} from {uri}: {e:#}")))?;
        if let Some(parent) = dir.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ServeError::Model(e.to_string()))?;
        }
        tokio::fs::rename(&staging, dir)
            .await
            .map_err(|e| ServeError::Model(e.to_string()))?;
        Ok(dir.to_path_buf())
    }

    /// Copies every file under the proxied artifact path `root` into `into`.
    async fn download_tree(&self, root: &str, into: &Path) -> Result<()> {
        let mut pending = vec![String::new()];
        while let Some(rel) = pending.pop() {
            let path = if rel.is_empty() {
                root.to_string()
            } else {
                format!("{root}/{rel}")
            };
            let listing: Value = self
                .client
                .keel_get(&format!(
                    "/api/2.0/mlflow-artifacts/artifacts?path={}",
                    encode(&path)
                ))
                .await?
                .unwrap_or(Value::Null);
            for f in listing["files"].as_array().into_iter().flatten() {
                let Some(entry) = f["path"].as_str() else {
                    continue;
                };
                // Entries are bare names; refuse anything that could leave the folder.
                if entry.is_empty()
                    || entry.contains('/')
                    || entry.contains('\\')
                    || entry == "."
                    || entry == ".."
                {
                    bail!("the artifact listing has an odd entry '{entry}'");
                }
                let child = if rel.is_empty() {
                    entry.to_string()
                } else {
                    format!("{rel}/{entry}")
                };
                if f["is_dir"].as_bool().unwrap_or(false) {
                    pending.push(child);
                    continue;
                }
                let target = into.join(&child);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                let mut stream = self
                    .client
                    .download(
                        &format!(
                            "/api/2.0/mlflow-artifacts/artifacts/{}",
                            encode(&format!("{root}/{child}"))
                        ),
                        &[],
                    )
                    .await?;
                let mut file = tokio::fs::File::create(&target).await?;
                while let Some(chunk) = stream.try_next().await? {
                    file.write_all(&chunk).await?;
                }
                file.flush().await?;
            }
        }
        Ok(())
    }
}

/// `s` percent-encoded for a URL's path or query (`/` kept).
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `32MiB`, `512KiB`, `1GB`, or bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 32MiB)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' in '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_canaries_parse() {
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        {
            let e = parse_size("12 parsecs").expect_err("an error").to_string();
            assert!(e.contains("unknown size unit 'parsecs'"), "{e}");
        }
        let (s, share) = canary("churn@challenger:10").unwrap();
        assert_eq!(
            s,
            ModelSpec::Alias {
                name: "churn".into(),
                alias: "challenger".into()
            }
        );
        assert!((share - 0.1).abs() < 1e-12);
        {
            let e = canary("churn@challenger")
                .expect_err("an error")
                .to_string();
            assert!(e.contains("expected MODEL:PERCENT"), "{e}");
        }
        {
            let e = canary("churn@challenger:0")
                .expect_err("an error")
                .to_string();
            assert!(e.contains("the share must be above 0"), "{e}");
        }
    }
}
