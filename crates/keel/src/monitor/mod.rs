//! `keel monitor`: `report` checks a window of a served model version's prediction log against
//! a reference (the dataset version it was trained on, found through its lineage; another
//! dataset version; or an earlier window of its own log) and prints it as a table, JSON or an
//! HTML page; `watch` runs the checks a monitor file describes on a schedule, raising alerts;
//! `alerts` lists the alerts that fired; `retrain` and `promote` close the loop (a challenger
//! trained on newer data, promoted only when shown better on live traffic). Every check and
//! step is recorded as a run.

pub(crate) mod check;
mod record;
mod retrain;
pub(crate) mod watch;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use keel_monitor::drift;
use keel_monitor::report::Report;
use serde_json::json;

use crate::args::StoreArgs;
use crate::data_validate::ChecksFailed;
use crate::stores::Stores;
use check::{Reference, Rows, Spec};

#[derive(Subcommand)]
pub(crate) enum MonitorCmd {
    /// Drift of a served model version's logged inputs and outputs against a reference, per
    /// column and for the dataset, and its live performance; exits with status 1 when the
    /// dataset drifted.
    Report(Box<ReportArgs>),
    /// Run the checks of a monitor file every `every`, raising its alerts (recorded, and posted
    /// to its webhooks).
    Watch(watch::WatchArgs),
    /// List the checks whose alerts fired, newest first.
    Alerts(watch::AlertsArgs),
    /// Rerun the champion's recorded training on newer data (or with the logged rows' ground
    /// truth) and register the result as the challenger.
    Retrain(Box<retrain::RetrainArgs>),
    /// Compare the challenger with the champion on live traffic and move the champion alias
    /// when the challenger is shown better.
    Promote(Box<retrain::PromoteArgs>),
}

/// What `keel monitor report` was asked.
#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The model version: NAME@ALIAS, NAME/VERSION, or NAME (its newest version).
    model: String,
    /// The prediction log's folder, as `keel serve --log-dir` wrote it.
    #[arg(
        long,
        env = "KEEL_PREDICTION_LOG",
        default_value = "keel-data/predictions"
    )]
    log_dir: PathBuf,
    /// The rows logged in this last span (1h, 30min, 7d) [default: 24h].
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["since", "until", "last"])]
    window: Option<String>,
    /// The rows logged from this time on (2026-12-02T14:00:00Z, or ms since the epoch).
    #[arg(long, value_name = "TIME", conflicts_with = "last")]
    since: Option<String>,
    /// The rows logged before this time [default: now].
    #[arg(long, value_name = "TIME", conflicts_with = "last")]
    until: Option<String>,
    /// The newest N logged rows.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// Read the log's hourly sketches instead of its rows (`keel serve` keeps them beside the
    /// log): every hour the window touches counts whole; counts and text categories are
    /// exact, numeric columns are compared through a uniform sample; no live performance.
    #[arg(long)]
    sketches: bool,
    /// Compare with this dataset version [default: the one the version was trained on].
    #[arg(long, value_name = "NAME@VERSION", conflicts_with_all = ["reference_since", "reference_until"])]
    reference: Option<String>,
    /// Compare with the version's own rows logged from this time on (an earlier window).
    #[arg(long, value_name = "TIME")]
    reference_since: Option<String>,
    /// ... and before this time [default: the start of the current window].
    #[arg(long, value_name = "TIME", requires = "reference_since")]
    reference_until: Option<String>,
    /// Share of the compared columns whose drift makes the dataset drift.
    #[arg(long, default_value_t = drift::DEFAULT_DRIFT_SHARE)]
    drift_share: f64,
    #[command(flatten)]
    truth: check::TruthArgs,
    /// Also write the report as an HTML page with charts to this file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The experiment the check is recorded in as a run (created when missing).
    #[arg(long, default_value = "keel-monitoring")]
    experiment: String,
    /// Do not record the check as a run.
    #[arg(long)]
    no_record: bool,
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) async fn command(cmd: MonitorCmd) -> Result<()> {
    match cmd {
        MonitorCmd::Report(a) => report(*a).await,
        MonitorCmd::Watch(a) => watch::watch(a).await,
        MonitorCmd::Alerts(a) => watch::alerts(a).await,
        MonitorCmd::Retrain(a) => retrain::retrain_command(*a).await,
        MonitorCmd::Promote(a) => retrain::promote_command(*a).await,
    }
}

async fn report(a: ReportArgs) -> Result<()> {
    if !(a.drift_share > 0.0 && a.drift_share <= 1.0) {
        bail!(
            "--drift-share must be above 0 and at most 1, not {}",
            a.drift_share
        );
    }
    if a.sketches && a.truth.source().is_some() {
        bail!(
            "--truth is read for live performance, which needs the log's rows: it cannot be used with --sketches"
        );
    }
    let stores = Stores::open(&a.store).await?;
    let client = stores.client().await?;
    let spec = Spec {
        model: a.model.clone(),
        log_dir: a.log_dir.clone(),
        rows: match (a.last, &a.since, &a.until) {
            (Some(n), _, _) => Rows::Newest(n),
            (None, None, None) => Rows::Last(a.window.clone().unwrap_or_else(|| "24h".into())),
            (None, since, until) => Rows::Between(since.clone(), until.clone()),
        },
        reference: match &a.reference_since {
            Some(since) => Reference::Log(since.clone(), a.reference_until.clone()),
            None => Reference::Dataset(a.reference.clone()),
        },
        drift_share: a.drift_share,
        choices: Default::default(),
        sketches: a.sketches,
        truth: a.truth.source(),
    };
    let (name, version) = check::resolve(&client, &spec.model).await?;
    let sel = check::selection(&spec, &name, &version).await?;
    let checked = check::run(&stores, &client, &spec, &sel).await?;
    let rep = &checked.report;
    if let Some(path) = &a.html {
        std::fs::write(path, &checked.page)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let run_id = if a.no_record {
        None
    } else {
        Some(record::record(&client, &a.experiment, &a.log_dir, rep, &checked.page, &[]).await?)
    };
    if a.store.json {
        let mut v = serde_json::to_value(rep)?;
        v["run_id"] = json!(run_id);
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print(rep, run_id.as_deref())?;
    }
    if rep.drift.dataset_drifted {
        return Err(ChecksFailed(format!("{} drifted: {}", rep.subject(), rep.verdict())).into());
    }
    Ok(())
}

fn print(rep: &Report, run_id: Option<&str>) -> Result<()> {
    let d = &rep.drift;
    let source = match rep.sampled_rows {
        Some(n) => format!(
            "{} sketch files, numbers from {n} sampled rows",
            rep.log_files
        ),
        None => format!("{} log files", rep.log_files),
    };
    println!(
        "{} against {}: {} rows ({} .. {}, {source}) against {} rows",
        rep.subject(),
        rep.reference,
        d.current_rows,
        rep.rows_between.0,
        rep.rows_between.1,
        d.reference_rows
    );
    println!("{}", rep.verdict());
    println!("{}", crate::data::drift_table(&d.columns)?);
    if !d.not_logged.is_empty() {
        println!("not logged: {}", d.not_logged.join(", "));
    }
    if !d.not_in_reference.is_empty() {
        println!("not in the reference: {}", d.not_in_reference.join(", "));
    }
    if let Some(p) = &rep.performance {
        println!(
            "performance ({}): {} of {} rows labelled{}, {} requests, {} errors ({:.2}%), latency p50 {:.2} ms, p99 {:.2} ms",
            p.task,
            p.labelled,
            p.rows,
            p.labels
                .as_ref()
                .map(|l| format!(" (by /feedback and {l})"))
                .unwrap_or_default(),
            p.latency.requests,
            p.latency.errors,
            p.latency.error_rate * 100.0,
            p.latency.p50_ms,
            p.latency.p99_ms
        );
        let names: std::collections::BTreeSet<&String> =
            p.realised.keys().chain(p.estimated.keys()).collect();
        if !names.is_empty() {
            let mut t = crate::output::table(&["metric", "realised", "estimated", "training"]);
            let cell = |m: &keel_monitor::performance::Metrics, k: &str| {
                m.get(k)
                    .map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
            };
            for k in names {
                t.add_row(vec![
                    k.clone(),
                    cell(&p.realised, k),
                    cell(&p.estimated, k),
                    cell(&p.training, k),
                ]);
            }
            println!("{t}");
        }
    }
    if let Some(id) = run_id {
        println!("recorded as run {id}");
    }
    Ok(())
}
