//! `keel`: the command line. Thin: parses, calls the crates, prints.

mod args;
mod client;
mod commands;
mod config;
mod data;
mod data_remote;
mod data_validate;
mod output;
mod quickstart;
mod serve;
mod tracking;
mod train;
mod transfer;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::args::{DbArg, LocalStores, SettingsFile, StoreArgs};
use crate::config::{FileSettings, ServerSettings};
use crate::transfer::Source;

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "The machine-learning lifecycle in one binary: tracking, registry and more, MLflow-compatible."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server and model registry (MLflow REST API, artifact proxy).
    Server(ServerArgs),
    /// Experiments, in the local store or on a server (--tracking-uri).
    #[command(subcommand)]
    Experiments(ExperimentsCmd),
    /// Runs, in the local store or on a server (--tracking-uri).
    #[command(subcommand)]
    Runs(RunsCmd),
    /// Registered models, in the local store or on a server (--tracking-uri).
    #[command(subcommand)]
    Models(ModelsCmd),
    /// The metadata database's schema.
    #[command(subcommand)]
    Db(DbCmd),
    /// Copy everything from a running MLflow server or a keel export folder into keel's store.
    Import(ImportArgs),
    /// Write the whole store (metadata and artifacts) into a folder `keel import` reads.
    Export(ExportArgs),
    /// Train a model on a dataset version and record it as a run.
    Train(Box<train::TrainArgs>),
    /// Serve a model over HTTP (MLflow scoring protocol and Open Inference Protocol): a model
    /// folder, an .onnx file, or a registered model (NAME@ALIAS, NAME/VERSION or NAME).
    Serve(Box<serve::ServeCmd>),
    /// The whole loop on a bundled dataset in this folder: version it, train, register, set
    /// the champion alias, serve it, send sample requests.
    Quickstart(QuickstartCmd),
    /// Dataset versions: add, list, show, restore, compare, validate, and what changed since.
    #[command(subcommand)]
    Data(DataCmd),
}

#[derive(Subcommand)]
enum DataCmd {
    /// Version a file or folder: hash it, store each distinct content once, profile tabular data.
    Add {
        /// The file or folder.
        path: PathBuf,
        /// Dataset name [default: the file's stem or the folder's name].
        #[arg(long)]
        name: Option<String>,
        /// csv, parquet, jsonl or binary [default: from the extension].
        #[arg(long)]
        format: Option<String>,
        /// A note kept with the version.
        #[arg(long, default_value = "")]
        description: String,
        /// Record the version without waiting for the local store's bytes to reach the disk
        /// (faster; a crash within the next half minute may damage an object, which `get`
        /// detects by its hash and the next add of the same bytes repairs).
        #[arg(long, env = "KEEL_DATA_NO_SYNC")]
        no_sync: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List datasets, or the versions of one.
    Ls {
        /// A dataset whose versions to list [default: every dataset].
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a version (NAME or NAME@VERSION): size, rows, schema, column statistics, runs that used it.
    Show {
        /// NAME (its latest version) or NAME@VERSION.
        reference: String,
        /// Also write an HTML report with a chart per column to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Restore a version's bytes (verified by hash): a file to PATH, a folder into PATH.
    Get {
        /// NAME (its latest version) or NAME@VERSION.
        reference: String,
        /// Where to write.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Compare two tables (versions NAME@V, or files or folders): schema changes, rows, and
    /// per-column drift of B against A; exits with status 1 when the dataset drifted.
    Diff {
        /// The reference: NAME@VERSION (or NAME for its latest version), or a file or folder.
        a: String,
        /// What is compared with it: NAME@VERSION (or NAME), or a file or folder.
        b: String,
        /// Share of the shared columns whose drift makes the dataset drift (exit status 1).
        #[arg(long, default_value_t = 0.5)]
        drift_share: f64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Which added paths changed since they were added (only files whose size, time or inode
    /// changed are read again).
    Status {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Check a version (NAME@VERSION, or a local file or folder that exists) against rules;
    /// exits with status 1 when a rule fails.
    #[command(group(clap::ArgGroup::new("rule_source").required(true).args(["rules", "against"])))]
    Validate {
        /// What to check: NAME@VERSION (or NAME), or a file or folder.
        target: String,
        /// A rules file (YAML, keel.rules/v1).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Check against rules inferred from this reference version.
        #[arg(long, value_name = "NAME@VERSION")]
        against: Option<String>,
        /// Show only the rules that failed.
        #[arg(long)]
        only_failures: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Validation rules.
    #[command(subcommand)]
    Rules(RulesCmd),
}

#[derive(Args)]
struct QuickstartCmd {
    /// Port of the model server.
    #[arg(long, short, default_value_t = 8080)]
    port: u16,
    /// Stop after the sample requests instead of serving until Ctrl-C.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Write rules inferred from a reference version's profile (schema, row count, missing
    /// values, unique columns, ranges, means, quantiles, allowed values).
    Infer {
        /// The reference: NAME (its latest version) or NAME@VERSION.
        reference: String,
        /// Write the rules here instead of to standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "KEEL_HOST")]
    host: Option<String>,
    /// Port to listen on (0 picks a free one) [default: 5000].
    #[arg(long, env = "KEEL_PORT")]
    port: Option<u16>,
    #[command(flatten)]
    stores: LocalStores,
}

#[derive(Subcommand)]
enum ExperimentsCmd {
    /// List experiments.
    Ls {
        /// active, deleted or all.
        #[arg(long, default_value = "active", value_parser = ["active", "deleted", "all"])]
        view: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum RunsCmd {
    /// List runs, newest first.
    Ls {
        /// Only this experiment (by name); all active experiments otherwise.
        #[arg(long)]
        experiment: Option<String>,
        /// MLflow search filter, e.g. "metrics.acc > 0.9 and params.lr = '0.1'".
        #[arg(long)]
        filter: Option<String>,
        /// Order, e.g. "metrics.acc DESC" (repeatable).
        #[arg(long = "order-by")]
        order_by: Vec<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 100)]
        max: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one run: info, params, latest metrics, tags, inputs, outputs and artifacts.
    Show {
        /// The run's id (32 hex digits), as `keel runs ls` and `keel train` print it.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Mark a run deleted (its data stays until `keel runs restore` or a cleanup).
    Delete {
        /// The run's id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make a deleted run active again.
    Restore {
        /// The run's id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the files a run logged, with their sizes.
    Artifacts {
        /// The run's id.
        id: String,
        /// Only below this artifact path.
        path: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Download a run's artifacts (all, or those below PATH) into a folder.
    Download {
        /// The run's id.
        id: String,
        /// Only below this artifact path.
        path: Option<String>,
        /// The folder to write into (created when missing).
        #[arg(long, default_value = ".")]
        to: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every value a run logged for one metric, by step.
    History {
        /// The run's id.
        id: String,
        /// The metric's name.
        metric: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// List registered models.
    Ls {
        /// Registry search filter, e.g. "name LIKE 'fraud%'".
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a registered model and its versions.
    Show {
        /// The registered model's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Aliases of a registered model's versions.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Two versions of a registered model side by side: metrics and differing params of the
    /// runs that made them.
    Compare {
        /// The registered model's name.
        name: String,
        /// The first version (a number).
        a: String,
        /// The second version (a number).
        b: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
enum AliasCmd {
    /// List a registered model's aliases and the versions they name.
    Ls {
        /// The registered model's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an alias (the version stays).
    Delete {
        /// The registered model's name.
        name: String,
        /// The alias.
        alias: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Point ALIAS (champion, challenger...) at VERSION.
    Set {
        /// The registered model's name.
        name: String,
        /// The alias: letters, digits, `_` and `-`, not `latest` or `v<number>`.
        alias: String,
        version: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from_mlflow", "from"])))]
struct ImportArgs {
    /// The MLflow tracking server to copy from (http://host:port).
    #[arg(long = "from-mlflow", value_name = "URL")]
    from_mlflow: Option<String>,
    /// A folder written by `keel export`.
    #[arg(long, value_name = "DIR")]
    from: Option<PathBuf>,
    /// The stores to write.
    #[command(flatten)]
    stores: LocalStores,
    /// Records finished runs and models, so that an interrupted import resumes.
    #[arg(long, default_value = "keel-import.journal")]
    journal: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// The folder to write (new or empty).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// The stores to read.
    #[command(flatten)]
    stores: LocalStores,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum DbCmd {
    /// Show applied and pending migrations.
    Status(DbArgs),
    /// Apply pending migrations.
    Migrate(DbArgs),
}

/// The database, as for `keel server`.
#[derive(Args)]
struct DbArgs {
    #[command(flatten)]
    db: DbArg,
    #[command(flatten)]
    file: SettingsFile,
}

async fn run_server(a: ServerArgs) -> Result<()> {
    let settings = a.stores.file.layer(FileSettings {
        host: a.host,
        port: a.port,
        ..a.stores.location.flags()
    })?;
    let meta = keel_store::open_metadata_store(&settings.db, keel_server::ARTIFACT_SCHEME)
        .await
        .with_context(|| format!("cannot open the metadata store {}", settings.db))?;
    let artifacts = keel_store::open_artifact_store(&settings.artifacts)
        .await
        .with_context(|| format!("cannot open the artifact store {}", settings.artifacts))?;
    let listener = tokio::net::TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let addr = listener.local_addr()?;
    // The banner must not take the server down when nobody reads stdout any more.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "keel server listening on http://{addr}");
    let _ = writeln!(out, "  metadata:  {}", settings.db);
    let _ = writeln!(out, "  artifacts: {}", artifacts.root_uri());
    let _ = out.flush();
    drop(out);
    let state = keel_server::AppState::new(meta, artifacts);
    keel_server::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn db_command(cmd: DbCmd) -> Result<()> {
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

/// The metadata and artifact stores that `--db`, `--artifacts` and `--config` (layered as for
/// `keel server`) name.
async fn open_stores(stores: &LocalStores) -> Result<(ServerSettings, transfer::Target)> {
    let settings = stores.settings()?;
    let target = transfer::Target {
        meta: keel_store::open_metadata_store(&settings.db, keel_server::ARTIFACT_SCHEME)
            .await
            .with_context(|| format!("cannot open the metadata store {}", settings.db))?,
        artifacts: keel_store::open_artifact_store(&settings.artifacts)
            .await
            .with_context(|| format!("cannot open the artifact store {}", settings.artifacts))?,
    };
    Ok((settings, target))
}

/// Prints a summary as a table or as one JSON object.
fn print_summary(rows: Vec<(&'static str, u64)>, as_json: bool, footer: String) {
    if as_json {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v)| (k.replace(' ', "_").replace(['(', ')'], ""), (*v).into()))
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        let mut t = output::table(&["what", "count"]);
        for (what, n) in rows {
            t.add_row(vec![what.to_string(), n.to_string()]);
        }
        println!("{t}");
        println!("{footer}");
    }
}

async fn import_command(a: ImportArgs) -> Result<()> {
    let src: Box<dyn Source> = match (&a.from_mlflow, &a.from) {
        (Some(url), _) => Box::new(transfer::MlflowSource::new(url)?),
        (None, Some(dir)) => Box::new(transfer::FolderSource::open(dir)?),
        (None, None) => anyhow::bail!("--from-mlflow URL or --from DIR is required"),
    };
    let (settings, target) = open_stores(&a.stores).await?;
    let started = std::time::Instant::now();
    let sum = transfer::copy_all(src.as_ref(), &target, &a.journal, a.json)
        .await
        .with_context(|| {
            format!(
                "import from {} stopped (run it again to resume)",
                src.describe()
            )
        })?;
    print_summary(
        sum.rows(),
        a.json,
        format!(
            "imported from {} into {} and {} in {:.1}s",
            src.describe(),
            settings.db,
            target.artifacts.root_uri(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

async fn export_command(a: ExportArgs) -> Result<()> {
    let (settings, store) = open_stores(&a.stores).await?;
    let started = std::time::Instant::now();
    let sum = transfer::export(&store.meta, &store.artifacts, &a.to, a.json)
        .await
        .with_context(|| format!("export into {} failed", a.to.display()))?;
    print_summary(
        sum.export_rows(),
        a.json,
        format!(
            "exported {} and {} into {} in {:.1}s",
            settings.db,
            store.artifacts.root_uri(),
            a.to.display(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Server(a) => run_server(a).await,
        Command::Experiments(ExperimentsCmd::Ls { view, store }) => {
            commands::experiments_ls(
                &registry(&store).await?,
                &view
                    .to_uppercase()
                    .replace("ACTIVE", "ACTIVE_ONLY")
                    .replace("DELETED", "DELETED_ONLY"),
                store.json,
            )
            .await
        }
        Command::Runs(RunsCmd::Ls {
            experiment,
            filter,
            order_by,
            max,
            store,
        }) => {
            let c = registry(&store).await?;
            commands::runs_ls(
                &c,
                commands::RunsLs {
                    experiment: experiment.as_deref(),
                    filter: filter.as_deref(),
                    order_by,
                    max,
                    as_json: store.json,
                },
            )
            .await
        }
        Command::Runs(RunsCmd::Show { id, store }) => {
            commands::runs_show(&registry(&store).await?, &id, store.json).await
        }
        Command::Runs(RunsCmd::Delete { id, store }) => {
            commands::runs_lifecycle(&registry(&store).await?, &id, true, store.json).await
        }
        Command::Runs(RunsCmd::Restore { id, store }) => {
            commands::runs_lifecycle(&registry(&store).await?, &id, false, store.json).await
        }
        Command::Runs(RunsCmd::Artifacts { id, path, store }) => {
            commands::runs_artifacts(&registry(&store).await?, &id, path.as_deref(), store.json)
                .await
        }
        Command::Runs(RunsCmd::Download {
            id,
            path,
            to,
            store,
        }) => {
            let c = registry(&store).await?;
            commands::runs_download(&c, &id, path.as_deref(), &to, store.json).await
        }
        Command::Runs(RunsCmd::History { id, metric, store }) => {
            commands::runs_history(&registry(&store).await?, &id, &metric, store.json).await
        }
        Command::Models(ModelsCmd::Alias(AliasCmd::Ls { name, store })) => {
            commands::models_alias_ls(&registry(&store).await?, &name, store.json).await
        }
        Command::Models(ModelsCmd::Alias(AliasCmd::Delete { name, alias, store })) => {
            commands::models_alias_delete(&registry(&store).await?, &name, &alias, store.json).await
        }
        Command::Models(ModelsCmd::Ls { filter, store }) => {
            commands::models_ls(&registry(&store).await?, filter.as_deref(), store.json).await
        }
        Command::Models(ModelsCmd::Show { name, store }) => {
            commands::models_show(&registry(&store).await?, &name, store.json).await
        }
        Command::Models(ModelsCmd::Alias(AliasCmd::Set {
            name,
            alias,
            version,
            store,
        })) => {
            commands::models_alias_set(
                &registry(&store).await?,
                &name,
                &alias,
                &version,
                store.json,
            )
            .await
        }
        Command::Models(ModelsCmd::Compare { name, a, b, store }) => {
            commands::models_compare(&registry(&store).await?, &name, [&a, &b], store.json).await
        }
        Command::Db(cmd) => db_command(cmd).await,
        Command::Import(a) => import_command(a).await,
        Command::Export(a) => export_command(a).await,
        Command::Data(cmd) => data_command(cmd).await,
        Command::Train(cmd) => train_command(*cmd).await,
        Command::Serve(cmd) => serve::command(*cmd).await,
        Command::Quickstart(cmd) => {
            let store = StoreArgs::default();
            let target = data_store(&store).await?;
            let client = registry(&store).await?;
            quickstart::run(
                quickstart::QuickstartArgs {
                    port: cmd.port,
                    no_wait: cmd.no_wait,
                },
                target,
                client,
            )
            .await
        }
    }
}

async fn train_command(cmd: train::TrainArgs) -> Result<()> {
    if cmd.help_params {
        return train::help_params(cmd.algo.as_deref());
    }
    let target = data_store(&cmd.store).await?;
    let tracking = match &target {
        data::Store::Local(l) => tracking::Tracking::Local {
            meta: l.meta.clone(),
            artifacts: l.artifacts.clone(),
        },
        data::Store::Remote(r) => tracking::Tracking::Remote(&r.client),
    };
    train::run(&target, tracking, cmd).await
}

/// A client of the server `--tracking-uri` names or, without one, of the local stores: they
/// are served in-process on a loopback port, so both go through the same MLflow REST handlers.
async fn registry(store: &StoreArgs) -> Result<client::Client> {
    if let Some(uri) = &store.remote.tracking_uri {
        return client::Client::new(uri);
    }
    let (_, t) = open_stores(&store.local).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot open a loopback port for the local stores")?;
    let addr = listener.local_addr()?;
    let state = keel_server::AppState::new(t.meta, t.artifacts);
    // Ends with the process, when the command is done.
    tokio::spawn(keel_server::serve(listener, state, std::future::pending()));
    client::Client::local(&format!("http://{addr}"))
}

/// The local stores, or the server `--tracking-uri` names.
async fn data_store(store: &StoreArgs) -> Result<data::Store> {
    Ok(match &store.remote.tracking_uri {
        Some(uri) => data::Store::Remote(data_remote::RemoteBackend {
            client: client::Client::new(uri)?,
        }),
        None => {
            let (_, t) = open_stores(&store.local).await?;
            data::Store::Local(keel_data::LocalBackend {
                meta: t.meta,
                artifacts: t.artifacts,
            })
        }
    })
}

async fn data_command(cmd: DataCmd) -> Result<()> {
    let (DataCmd::Add { store, .. }
    | DataCmd::Ls { store, .. }
    | DataCmd::Show { store, .. }
    | DataCmd::Get { store, .. }
    | DataCmd::Diff { store, .. }
    | DataCmd::Validate { store, .. }
    | DataCmd::Rules(RulesCmd::Infer { store, .. })
    | DataCmd::Status { store }) = &cmd;
    let target = data_store(store).await?;
    match cmd {
        DataCmd::Add {
            path,
            name,
            format,
            description,
            no_sync,
            store,
        } => {
            data::add(
                &target,
                path,
                name,
                format,
                description,
                !no_sync,
                store.json,
            )
            .await
        }
        DataCmd::Ls { name, store } => data::ls(&target, name, store.json).await,
        DataCmd::Show {
            reference,
            html,
            store,
        } => {
            data::show(
                &target,
                &data::DataRef::parse(&reference)?,
                html,
                store.json,
            )
            .await
        }
        DataCmd::Get {
            reference,
            to,
            store,
        } => data::get(&target, &data::DataRef::parse(&reference)?, &to, store.json).await,
        DataCmd::Diff {
            a,
            b,
            drift_share,
            store,
        } => data::diff(&target, &a, &b, drift_share, store.json).await,
        DataCmd::Status { store } => data::status(&target, store.json).await.map(|_| ()),
        DataCmd::Validate {
            target: subject,
            rules,
            against,
            only_failures,
            store,
        } => {
            data_validate::validate(&target, &subject, rules, against, only_failures, store.json)
                .await
        }
        DataCmd::Rules(RulesCmd::Infer { reference, out, .. }) => {
            data_validate::rules_infer(&target, &reference, out).await
        }
    }
}

/// Caps glibc's malloc at one arena per core, at least two (its default is eight per core).
/// keel's thread pools (the async runtime, the data-frame engine) have about one thread per
/// core, so more arenas add no parallelism; they only keep freed memory, which for a
/// long-running server is several MiB of its resident set. Runs before any thread is started.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let cores = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive
        // count, and no other thread exists yet to race with it.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores);
        }
    }
}

/// Lets a closed standard output (`keel runs ls | head`) end the command quietly, as it ends
/// other command-line tools, instead of a panic on the next line printed. Rust ignores
/// SIGPIPE so that a write to a closed socket is an error, which the servers need: they keep
/// it ignored.
fn end_quietly_on_closed_stdout(command: &Command) {
    if matches!(
        command,
        Command::Server(_) | Command::Serve(_) | Command::Quickstart(_)
    ) {
        return;
    }
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() {
    limit_malloc_arenas();
    let cli = Cli::parse();
    end_quietly_on_closed_stdout(&cli.command);
    // Warnings by default; a server also says which model versions it serves as they change
    // (an alias followed to a new version, say).
    let default_filter = match cli.command {
        Command::Serve(_) | Command::Quickstart(_) => "warn,keel_serve::supervisor=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        // Failed checks are a result, not an error: status 1, errors 2.
        if let Some(failed) = e.downcast_ref::<data_validate::ChecksFailed>() {
            eprintln!("{failed}");
            std::process::exit(1);
        }
        // One line, whatever the causes say.
        let chain: Vec<String> = e
            .chain()
            .map(|c| {
                c.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every subcommand, with the path of commands leading to it.
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for arg in cmd.get_arguments() {
            out.push((path.to_string(), arg.clone()));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_of_every_command_says_what_it_is() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut args = Vec::new();
        walk(&cli, "keel", &mut args);
        assert!(args.len() > 100, "{} arguments", args.len());
        let silent: Vec<String> = args
            .iter()
            .filter(|(_, a)| !matches!(a.get_id().as_str(), "help" | "version"))
            .filter(|(_, a)| a.get_help().is_none_or(|h| h.to_string().trim().is_empty()))
            .map(|(path, a)| format!("{path} <{}>", a.get_id()))
            .collect();
        assert!(silent.is_empty(), "arguments without help: {silent:#?}");
        // A default is shown once: by clap from the attribute, or in the text, not both.
        let twice: Vec<String> = args
            .iter()
            .filter(|(_, a)| {
                !a.get_default_values().is_empty()
                    && a.get_help()
                        .is_some_and(|h| h.to_string().contains("[default"))
            })
            .map(|(path, a)| format!("{path} <{}>", a.get_id()))
            .collect();
        assert!(twice.is_empty(), "defaults shown twice: {twice:#?}");
        for sub in cli.get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "keel {} has no description",
                sub.get_name()
            );
        }
    }
}
