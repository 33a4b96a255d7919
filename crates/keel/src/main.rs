//! `keel`: the command line. Thin: parses, calls the crates, prints.
//!
//! Built without the `full` feature it is the serving-only build, `keel serve` alone; the
//! shared modules (settings, arguments, the REST client) then hold parts only the other
//! commands use.
#![cfg_attr(not(feature = "full"), allow(dead_code))]

#[cfg(feature = "full")]
mod approvals;
mod args;
#[cfg(feature = "full")]
mod audit;
#[cfg(feature = "full")]
mod auth;
#[cfg(feature = "full")]
mod card;
mod client;
#[cfg(feature = "full")]
mod commands;
mod config;
#[cfg(feature = "full")]
mod data;
#[cfg(feature = "full")]
mod data_command;
#[cfg(feature = "full")]
mod data_remote;
#[cfg(feature = "full")]
mod data_validate;
#[cfg(feature = "full")]
mod db;
#[cfg(feature = "full")]
mod logship;
#[cfg(feature = "full")]
mod monitor;
#[cfg(feature = "full")]
mod output;
#[cfg(feature = "full")]
mod quickstart;
mod serve;
mod serve_auth;
#[cfg(feature = "full")]
mod server;
mod shutdown;
#[cfg(feature = "full")]
mod stores;
mod tls;
#[cfg(feature = "full")]
mod tracking;
#[cfg(feature = "full")]
mod train;
#[cfg(feature = "full")]
mod transfer;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Memory comes from mimalloc: its per-thread heaps take frees from other threads without a
/// lock, and serving frees on the prediction log's thread what request threads allocated
/// (glibc's allocator serialises those frees on the allocating thread's arena); it also
/// answers the many small allocations of request parsing faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    #[cfg(feature = "full")]
    /// Run the tracking server and model registry (MLflow REST API, artifact proxy).
    Server(server::ServerArgs),
    #[cfg(feature = "full")]
    /// Experiments, in the local store or on a server (--tracking-uri).
    #[command(subcommand)]
    Experiments(commands::ExperimentsCmd),
    #[cfg(feature = "full")]
    /// Runs, in the local store or on a server (--tracking-uri).
    #[command(subcommand)]
    Runs(commands::RunsCmd),
    #[cfg(feature = "full")]
    /// Registered models, in the local store or on a server (--tracking-uri).
    #[command(subcommand)]
    Models(commands::ModelsCmd),
    #[cfg(feature = "full")]
    /// Users of `keel server --auth`, in the metadata database.
    #[command(subcommand)]
    Users(auth::UsersCmd),
    #[cfg(feature = "full")]
    /// Access tokens of `keel server --auth` users, in the metadata database.
    #[command(subcommand)]
    Tokens(auth::TokensCmd),
    #[cfg(feature = "full")]
    /// The audit log of every write: list, export, verify its hash chain, replay an alias.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    #[cfg(feature = "full")]
    /// The metadata database's schema.
    #[command(subcommand)]
    Db(db::DbCmd),
    #[cfg(feature = "full")]
    /// Copy everything from a running MLflow server or a keel export folder into keel's store.
    Import(transfer::cli::ImportArgs),
    #[cfg(feature = "full")]
    /// Write the whole store (metadata and artifacts) into a folder `keel import` reads.
    Export(transfer::cli::ExportArgs),
    #[cfg(feature = "full")]
    /// Train a model on a dataset version and record it as a run.
    Train(Box<train::TrainArgs>),
    /// Serve a model over HTTP (MLflow scoring protocol and Open Inference Protocol): a model
    /// folder, an .onnx file, or a registered model (NAME@ALIAS, NAME/VERSION or NAME).
    Serve(Box<serve::ServeCmd>),
    #[cfg(feature = "full")]
    /// The whole loop on a bundled dataset in this folder: version it, train, register, set
    /// the champion alias, serve it, send sample requests.
    Quickstart(quickstart::QuickstartCmd),
    #[cfg(feature = "full")]
    /// Dataset versions: add, list, show, restore, compare, validate, and what changed since.
    #[command(subcommand)]
    Data(data_command::DataCmd),
    #[cfg(feature = "full")]
    /// Watch served models: drift of their logged inputs and outputs against a reference.
    #[command(subcommand)]
    Monitor(monitor::MonitorCmd),
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        #[cfg(feature = "full")]
        Command::Server(a) => server::run(a).await,
        #[cfg(feature = "full")]
        Command::Experiments(cmd) => commands::experiments(cmd).await,
        #[cfg(feature = "full")]
        Command::Runs(cmd) => commands::runs(cmd).await,
        #[cfg(feature = "full")]
        Command::Models(cmd) => commands::models(cmd).await,
        #[cfg(feature = "full")]
        Command::Db(cmd) => db::command(cmd).await,
        #[cfg(feature = "full")]
        Command::Users(cmd) => auth::users(cmd).await,
        #[cfg(feature = "full")]
        Command::Tokens(cmd) => auth::tokens(cmd).await,
        #[cfg(feature = "full")]
        Command::Audit(cmd) => audit::command(cmd).await,
        #[cfg(feature = "full")]
        Command::Import(a) => transfer::cli::import(a).await,
        #[cfg(feature = "full")]
        Command::Export(a) => transfer::cli::export(a).await,
        #[cfg(feature = "full")]
        Command::Data(cmd) => data_command::command(cmd).await,
        #[cfg(feature = "full")]
        Command::Monitor(cmd) => monitor::command(cmd).await,
        #[cfg(feature = "full")]
        Command::Train(cmd) => train::command(*cmd).await,
        Command::Serve(cmd) => serve::command(*cmd).await,
        #[cfg(feature = "full")]
        Command::Quickstart(cmd) => quickstart::command(cmd).await,
    }
}

/// Caps glibc's malloc, which the C libraries keel links (SQLite, zstd) still allocate from,
/// at one arena per core, at least two (its default is eight per core). keel's thread pools
/// (the async runtime, the data-frame engine) have about one thread per core, so more arenas
/// add no parallelism; they only keep freed memory, which for a long-running server is several
/// MiB of its resident set. Runs before any thread is started.
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
    #[cfg(feature = "full")]
    if matches!(command, Command::Server(_) | Command::Quickstart(_)) {
        return;
    }
    if matches!(command, Command::Serve(_)) {
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
        Command::Serve(_) => "warn,keel_serve::supervisor=info",
        #[cfg(feature = "full")]
        Command::Quickstart(_) => "warn,keel_serve::supervisor=info",
        #[cfg(feature = "full")]
        _ => "warn",
    };
    // The TLS verifier logs the refusal the request's error then reports: once is enough.
    let default_filter = format!("{default_filter},rustls_platform_verifier=off");
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
    // Writes this command makes to an audited database name its user, host and command line.
    #[cfg(feature = "full")]
    keel_core::audit::set_process_context(audit::process_context());
    if let Err(e) = rt.block_on(run(cli)) {
        // Failed checks are a result, not an error: status 1, errors 2.
        #[cfg(feature = "full")]
        if let Some(failed) = e.downcast_ref::<data_validate::ChecksFailed>() {
            eprintln!("{failed}");
            std::process::exit(1);
        }
        #[cfg(feature = "full")]
        if e.downcast_ref::<audit::ChainBroken>().is_some() {
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
        let least = if cfg!(feature = "full") { 100 } else { 15 };
        assert!(args.len() > least, "{} arguments", args.len());
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
