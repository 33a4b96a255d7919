//! `keel data ...`: the dataset commands' arguments, and running them against the local stores or
//! a server.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::args::StoreArgs;
use crate::stores::Stores;
use crate::{data, data_validate};

#[derive(Subcommand)]
pub(crate) enum DataCmd {
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

#[derive(Subcommand)]
pub(crate) enum RulesCmd {
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

pub(crate) async fn command(cmd: DataCmd) -> Result<()> {
    let (DataCmd::Add { store, .. }
    | DataCmd::Ls { store, .. }
    | DataCmd::Show { store, .. }
    | DataCmd::Get { store, .. }
    | DataCmd::Diff { store, .. }
    | DataCmd::Validate { store, .. }
    | DataCmd::Rules(RulesCmd::Infer { store, .. })
    | DataCmd::Status { store }) = &cmd;
    let target = Stores::open(store).await?.data();
    let target = target.as_ref();
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
                target,
                path,
                name,
                format,
                description,
                !no_sync,
                store.json,
            )
            .await
        }
        DataCmd::Ls { name, store } => data::ls(target, name, store.json).await,
        DataCmd::Show {
            reference,
            html,
            store,
        } => data::show(target, &data::DataRef::parse(&reference)?, html, store.json).await,
        DataCmd::Get {
            reference,
            to,
            store,
        } => data::get(target, &data::DataRef::parse(&reference)?, &to, store.json).await,
        DataCmd::Diff {
            a,
            b,
            drift_share,
            store,
        } => data::diff(target, &a, &b, drift_share, store.json).await,
        DataCmd::Status { store } => data::status(target, store.json).await.map(|_| ()),
        DataCmd::Validate {
            target: subject,
            rules,
            against,
            only_failures,
            store,
        } => {
            data_validate::validate(target, &subject, rules, against, only_failures, store.json)
                .await
        }
        DataCmd::Rules(RulesCmd::Infer { reference, out, .. }) => {
            data_validate::rules_infer(target, &reference, out).await
        }
    }
}
