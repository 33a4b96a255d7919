//! `keel monitor report`: a window of a served model version's prediction log against a
//! reference (the dataset version it was trained on, found through its lineage; another
//! dataset version; or an earlier window of its own log), as a terminal table, JSON or an HTML
//! page, recorded as a run in a monitoring experiment.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use keel_core::entities::Tag;
use keel_monitor::drift::{self, DriftReport};
use keel_monitor::log::{Current, Selection, current, newest_rows};
use keel_monitor::performance::performance;
use keel_monitor::report::{self, Report, read_reference};
use keel_monitor::{Window, window::rfc3339};
use keel_serve::source::ModelSpec;
use serde_json::{Value, json};

use crate::args::StoreArgs;
use crate::client::Client;
use crate::data::{DataRef, Store};
use crate::data_validate::ChecksFailed;
use crate::stores::Stores;
use crate::tracking::Tracking;

/// Parts the window is cut into for the report's timelines.
const TIMELINE_PARTS: usize = 12;

#[derive(Subcommand)]
pub(crate) enum MonitorCmd {
    /// Drift of a served model version's logged inputs and outputs against a reference, per
    /// column and for the dataset; exits with status 1 when the dataset drifted.
    Report(Box<ReportArgs>),
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
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The table and samples of one side of a check.
type Side = (keel_data::profile::Table, Vec<keel_data::profile::Sample>);

async fn report(a: ReportArgs) -> Result<()> {
    if !(a.drift_share > 0.0 && a.drift_share <= 1.0) {
        bail!(
            "--drift-share must be above 0 and at most 1, not {}",
            a.drift_share
        );
    }
    let spec = ModelSpec::parse(&a.model)?;
    let name = match &spec {
        ModelSpec::Path(p) => bail!(
            "{} is a path: keel monitor reads a registered model's log (NAME@ALIAS, NAME/VERSION or NAME)",
            p.display()
        ),
        ModelSpec::Alias { name, .. }
        | ModelSpec::Version { name, .. }
        | ModelSpec::Latest { name } => name.clone(),
    };
    let stores = Stores::open(&a.store).await?;
    let client = stores.client().await?;
    let version = crate::serve::registered_version(&client, &spec).await?;
    let now = now_ms();

    // The current rows.
    let window = match (&a.last, &a.since, &a.until) {
        (Some(n), _, _) => {
            let (dir, model, v, n) = (a.log_dir.clone(), name.clone(), version.clone(), *n);
            blocking(move || newest_rows(&dir, &model, Some(&v), n)).await?
        }
        (None, None, None) => Window::last(a.window.as_deref().unwrap_or("24h"), now)?,
        (None, since, until) => Window::between(since.as_deref(), until.as_deref(), now)?,
    };
    let sel = Selection {
        model: name.clone(),
        version: Some(version.clone()),
        window,
    };
    let (dir, s) = (a.log_dir.clone(), sel.clone());
    let cur = blocking(move || current(&dir, &s)).await?;

    // The reference.
    let lineage = lineage(&client, &name, &version).await?;
    let (reference_label, reference): (String, Side) = if let Some(since) = &a.reference_since {
        let until = a
            .reference_until
            .clone()
            .unwrap_or_else(|| window.since_ms.to_string());
        let w = Window::between_named(
            ("--reference-since", Some(since)),
            ("--reference-until", Some(&until)),
            now,
        )?;
        let r = Selection {
            window: w,
            ..sel.clone()
        };
        let label = format!("{} logged in {w}", r.label());
        let dir = a.log_dir.clone();
        let c = blocking(move || current(&dir, &r)).await?;
        (label, (c.table, c.samples))
    } else {
        let data = stores.data();
        let dataset = match (&a.reference, &lineage.dataset) {
            (Some(r), _) => DataRef::parse(r)?,
            (None, Some(d)) => DataRef {
                name: d.name.clone(),
                version: d.version,
            },
            (None, None) => bail!(
                "keel cannot tell which dataset version {name}/{version} was trained on ({}); give --reference NAME@VERSION or --reference-since TIME",
                match &lineage.run_id {
                    Some(run) =>
                        format!("its run {run} has no input that is a keel dataset version"),
                    None => "it has no source run".into(),
                }
            ),
        };
        dataset_side(data.as_ref(), &dataset, &cur, lineage.target.clone()).await?
    };

    // The check, and its course over the window.
    let drift_share = a.drift_share;
    let (dir, s) = (a.log_dir.clone(), sel.clone());
    let (checked, cur, reference) = blocking(move || {
        let d = drift::check(
            (&reference.0, &reference.1),
            (&cur.table, &cur.samples),
            drift_share,
        )?;
        let t = report::timeline(
            &dir,
            &s,
            &cur,
            (&reference.0, &reference.1),
            drift_share,
            TIMELINE_PARTS,
        )?;
        let p = performance(&dir, &s, &cur, TIMELINE_PARTS)?;
        Ok::<_, keel_monitor::MonitorError>(((d, t, p), cur, reference))
    })
    .await?;
    let (d, timeline, mut perf) = checked;
    if let Some(p) = &mut perf {
        p.training = lineage
            .metrics
            .iter()
            .filter(|(k, _)| p.realised.contains_key(*k) || p.estimated.contains_key(*k))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
    }
    let mut rep = Report::new(&sel, &cur, reference_label, d, timeline);
    rep.performance = perf;
    let page = report::html(
        &rep,
        (&reference.0, &reference.1),
        (&cur.table, &cur.samples),
    );
    if let Some(path) = &a.html {
        std::fs::write(path, &page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let run_id = if a.no_record {
        None
    } else {
        Some(record(&client, &a, &rep, &page).await?)
    };

    if a.store.json {
        let mut v = serde_json::to_value(&rep)?;
        v["run_id"] = json!(run_id);
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print(&rep, &cur, run_id.as_deref())?;
    }
    if rep.drift.dataset_drifted {
        return Err(ChecksFailed(format!("{} drifted: {}", rep.subject(), rep.verdict())).into());
    }
    Ok(())
}

/// Runs blocking work (reading the log) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> keel_monitor::Result<T> + Send + 'static,
) -> Result<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .context("the monitoring task failed")??)
}

/// What a version's source run says about its training: the dataset version it was trained on
/// and the column it learned to predict.
#[derive(Default)]
struct Lineage {
    /// The source run.
    run_id: Option<String>,
    /// Its training input that is a keel dataset version (linked by its digest).
    dataset: Option<DataRef>,
    /// Its `target` param (`keel train --target`).
    target: Option<String>,
    /// Its held-out metrics (the latest value of each).
    metrics: keel_monitor::performance::Metrics,
}

async fn lineage(client: &Client, model: &str, version: &str) -> Result<Lineage> {
    let mv: Value = client
        .get(
            "model-versions/get",
            &[
                ("name", model.to_string()),
                ("version", version.to_string()),
            ],
        )
        .await?;
    let Some(run_id) = mv["model_version"]["run_id"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(str::to_string)
    else {
        return Ok(Lineage::default());
    };
    let run: Value = client
        .get("runs/get", &[("run_id", run_id.clone())])
        .await
        .with_context(|| format!("the source run {run_id} of {model}/{version} cannot be read"))?;
    let target = run["run"]["data"]["params"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["key"] == "target")
        .and_then(|p| p["value"].as_str())
        .map(str::to_string);
    let metrics = run["run"]["data"]["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["key"].as_str()?.to_string(), m["value"].as_f64()?)))
        .collect();
    let inputs = run["run"]["inputs"]["dataset_inputs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let training = |i: &Value| {
        i["tags"].as_array().is_some_and(|tags| {
            tags.iter()
                .any(|t| t["key"] == "mlflow.data.context" && t["value"] == "training")
        })
    };
    // Training inputs first, then any other.
    let ordered = inputs
        .iter()
        .filter(|i| training(i))
        .chain(inputs.iter().filter(|i| !training(i)));
    let mut dataset = None;
    for input in ordered {
        let digest = input["dataset"]["digest"].as_str().unwrap_or_default();
        let versions = crate::commands::data_versions(client, digest).await;
        // The version under the input's own name, else any with the same content.
        let wanted = format!("{}@", input["dataset"]["name"].as_str().unwrap_or_default());
        let pick = versions
            .iter()
            .find(|v| v.starts_with(&wanted))
            .or(versions.first());
        if let Some(v) = pick {
            dataset = Some(DataRef::parse(v)?);
            break;
        }
    }
    Ok(Lineage {
        run_id: Some(run_id),
        dataset,
        target,
        metrics,
    })
}

/// A dataset version read as the reference of `cur`.
async fn dataset_side(
    store: &Store,
    r: &DataRef,
    cur: &Current,
    target: Option<String>,
) -> Result<(String, Side)> {
    let (v, _) = crate::data::version(store, r).await?;
    let label = format!("{}@{}", v.name, v.version);
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let files = crate::data::materialise(store, &v, scratch.path()).await?;
    let logged = cur.columns();
    let side = tokio::task::spawn_blocking(move || {
        let paths: Vec<&Path> = files.files.iter().map(|(_, p)| p.as_path()).collect();
        read_reference(files.format, &paths, logged, target.as_deref())
    })
    .await
    .context("the monitoring task failed")?
    .with_context(|| format!("cannot read the reference {label}"))?;
    drop(scratch);
    Ok((label, side))
}

/// A metric key MLflow accepts for a column (`drift.<column>`), other characters as `_`.
fn metric_key(prefix: &str, column: &str) -> String {
    let safe: String = column
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}.{safe}")
}

/// Records the check as a run: params say what was compared, metrics what was found, the
/// report is stored as `report.json` and `report.html`. Returns the run's id.
async fn record(client: &Client, a: &ReportArgs, rep: &Report, page: &str) -> Result<String> {
    let tracking = Tracking(client);
    let version = rep.version.clone().unwrap_or_default();
    let tags = vec![
        Tag {
            key: "keel.monitor.model".into(),
            value: rep.model.clone(),
        },
        Tag {
            key: "keel.monitor.version".into(),
            value: version.clone(),
        },
        Tag {
            key: "keel.monitor.check".into(),
            value: "drift".into(),
        },
        Tag {
            key: "keel.monitor.dataset_drifted".into(),
            value: rep.drift.dataset_drifted.to_string(),
        },
    ];
    let run = tracking
        .start(&a.experiment, &format!("drift {}", rep.subject()), tags)
        .await
        .context("cannot record the check")?;
    let d: &DriftReport = &rep.drift;
    let params = vec![
        ("model".to_string(), rep.model.clone()),
        ("version".into(), version),
        ("window".into(), format!("{} .. {}", rep.since, rep.until)),
        ("reference".into(), rep.reference.clone()),
        ("drift_share_threshold".into(), d.drift_share.to_string()),
        ("log_dir".into(), a.log_dir.display().to_string()),
    ];
    let mut metrics = vec![
        ("current_rows".to_string(), d.current_rows as f64, 0),
        ("reference_rows".into(), d.reference_rows as f64, 0),
        ("drift_share".into(), d.share, 0),
        ("drifted_columns".into(), d.drifted as f64, 0),
        (
            "dataset_drifted".into(),
            f64::from(u8::from(d.dataset_drifted)),
            0,
        ),
    ];
    for c in &d.columns {
        if let Some(x) = &c.drift {
            metrics.push((metric_key("drift", &c.column), x.score, 0));
            metrics.push((metric_key("psi", &c.column), x.psi, 0));
        }
    }
    if let Some(p) = &rep.performance {
        metrics.push(("predicted_rows".into(), p.rows as f64, 0));
        metrics.push(("labelled_rows".into(), p.labelled as f64, 0));
        metrics.push(("requests".into(), p.latency.requests as f64, 0));
        for (k, v) in [
            ("latency_p50_ms", p.latency.p50_ms),
            ("latency_p95_ms", p.latency.p95_ms),
            ("latency_p99_ms", p.latency.p99_ms),
        ] {
            if v.is_finite() {
                metrics.push((k.into(), v, 0));
            }
        }
        for (prefix, m) in [("realised", &p.realised), ("estimated", &p.estimated)] {
            for (k, v) in m {
                if v.is_finite() {
                    metrics.push((metric_key(prefix, k), *v, 0));
                }
            }
        }
    }
    let done = async {
        tracking.log(&run, params, metrics, None).await?;
        tracking
            .upload(&run, "report.json", serde_json::to_vec_pretty(rep)?)
            .await?;
        tracking
            .upload(&run, "report.html", page.as_bytes().to_vec())
            .await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    tracking.finish(&run, done.is_ok()).await?;
    done.context("cannot record the check")?;
    Ok(run.run_id)
}

fn print(rep: &Report, cur: &Current, run_id: Option<&str>) -> Result<()> {
    let d = &rep.drift;
    println!(
        "{} against {}: {} rows ({} .. {}, {} log files) against {} rows",
        rep.subject(),
        rep.reference,
        d.current_rows,
        rfc3339(cur.first_ms),
        rfc3339(cur.last_ms),
        cur.files,
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
            "performance ({}): {} of {} rows labelled, {} requests, latency p50 {:.2} ms, p99 {:.2} ms",
            p.task, p.labelled, p.rows, p.latency.requests, p.latency.p50_ms, p.latency.p99_ms
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
