//! One monitoring check: the version a spec names now, a window of its log, the reference,
//! drift, its course over the window and live performance, as a [`Report`] and its HTML page.
//! `keel monitor report` prints one; `keel monitor watch` runs them on a schedule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use keel_monitor::Window;
use keel_monitor::drift;
use keel_monitor::log::{Current, Selection, current, newest_rows};
use keel_monitor::performance::performance;
use keel_monitor::report::{self, Report, read_reference};
use keel_monitor::rules::Truth;
use keel_monitor::truth::Labels;
use keel_serve::source::ModelSpec;
use keel_stats::drift::Choice;
use serde_json::Value;

use crate::client::Client;
use crate::data::{DataRef, Store};
use crate::stores::Stores;

/// Parts the window is cut into for the report's timelines.
const TIMELINE_PARTS: usize = 12;

/// Which rows of the log a check reads.
pub(crate) enum Rows {
    /// The last span (`1h`) up to now.
    Last(String),
    /// From, to (RFC 3339 or epoch ms; open ends: the beginning, now).
    Between(Option<String>, Option<String>),
    /// The newest N rows.
    Newest(usize),
}

/// What a check compares the rows with.
pub(crate) enum Reference {
    /// The dataset version the model version was trained on, or this one (`NAME@V`).
    Dataset(Option<String>),
    /// The version's rows logged from, to (`--reference-since/--reference-until`; the end
    /// defaults to the start of the current window).
    Log(String, Option<String>),
}

/// One check, as asked.
pub(crate) struct Spec {
    /// `NAME@ALIAS`, `NAME/VERSION` or `NAME`.
    pub model: String,
    /// The prediction log's folder.
    pub log_dir: PathBuf,
    /// The current rows.
    pub rows: Rows,
    /// The reference.
    pub reference: Reference,
    /// The share of drifted columns at which the dataset drifted.
    pub drift_share: f64,
    /// Tests chosen per column.
    pub choices: BTreeMap<String, Choice>,
    /// Read the log's hourly sketches instead of its rows.
    pub sketches: bool,
    /// Ground truth from a labelled dataset version, beside `/feedback`'s.
    pub truth: Option<Truth>,
}

/// `--truth` and `--truth-column`: where ground truth is read from besides `/feedback`.
#[derive(clap::Args, Default)]
pub(crate) struct TruthArgs {
    /// Also read ground truth from this labelled dataset version (NAME@VERSION, or NAME for its
    /// newest): its `request_id` and `row` (0 when absent) name the prediction; its label wins
    /// over any sent to /feedback.
    #[arg(long, value_name = "NAME@VERSION")]
    truth: Option<String>,
    /// The labelled dataset's column holding the true values [default: the target the model
    /// was trained on].
    #[arg(long, value_name = "COLUMN", requires = "truth")]
    truth_column: Option<String>,
}

impl TruthArgs {
    /// The source asked for, if any.
    pub(crate) fn source(&self) -> Option<Truth> {
        self.truth.as_ref().map(|dataset| Truth {
            dataset: dataset.clone(),
            column: self.truth_column.clone(),
        })
    }
}

/// Reads the labels `truth` names, whose true values are in its column or else in `target`
/// (the column the model was trained to predict).
pub(crate) async fn read_labels(
    store: &Store,
    truth: &Truth,
    target: Option<&str>,
) -> Result<Labels> {
    let Some(column) = truth.column.clone().or_else(|| target.map(str::to_string)) else {
        bail!(
            "keel cannot tell which column of {} holds the ground truth (the model's source run records no target): give --truth-column (or `column:` under `truth:`)",
            truth.dataset
        );
    };
    let r = DataRef::parse(&truth.dataset)?;
    let (_, labels) = read_version(store, &r, move |label, format, paths| {
        Labels::read(format, paths, &column, label)
    })
    .await?;
    Ok(labels?)
}

/// A check's outcome.
pub(crate) struct Checked {
    /// The report.
    pub report: Report,
    /// It as an HTML page.
    pub page: String,
}

/// The model's name and the version `model` names now.
pub(crate) async fn resolve(client: &Client, model: &str) -> Result<(String, String)> {
    let spec = ModelSpec::parse(model)?;
    let name = match &spec {
        ModelSpec::Path(_) | ModelSpec::Run { .. } => bail!(
            "{spec} is not a registered model: keel monitor reads a registered model's log (NAME@ALIAS, NAME/VERSION or NAME)"
        ),
        ModelSpec::Alias { name, .. }
        | ModelSpec::Version { name, .. }
        | ModelSpec::Latest { name } => name.clone(),
    };
    let version = crate::serve::registered_version(client, &spec).await?;
    Ok((name, version))
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The table and samples of one side of a check.
type Side = (keel_data::profile::Table, Vec<keel_data::profile::Sample>);

/// The selection `spec` makes of `name`'s version `version` now.
pub(crate) async fn selection(spec: &Spec, name: &str, version: &str) -> Result<Selection> {
    let now = now_ms();
    let window = match &spec.rows {
        Rows::Newest(_) if spec.sketches => bail!(
            "the newest N rows are read from the log itself: sketches cover whole hours (give a window)"
        ),
        Rows::Newest(n) => {
            let fetched = local_log(&spec.log_dir, name, &[], false).await?;
            let (dir, model, v, n) = (
                fetched.path().to_path_buf(),
                name.to_string(),
                version.to_string(),
                *n,
            );
            blocking(move || newest_rows(&dir, &model, Some(&v), n)).await?
        }
        Rows::Last(span) => Window::last(span, now)?,
        Rows::Between(since, until) => Window::between(since.as_deref(), until.as_deref(), now)?,
    };
    Ok(Selection {
        model: name.to_string(),
        version: Some(version.to_string()),
        window,
    })
}

/// Runs the check `spec` asks on the stores `client` and `stores` reach, for `sel`.
pub(crate) async fn run(
    stores: &Stores,
    client: &Client,
    spec: &Spec,
    sel: &Selection,
) -> Result<Checked> {
    let version = sel.version.clone().unwrap_or_default();
    let name = sel.model.clone();
    let reference_window = match &spec.reference {
        Reference::Log(since, until) => {
            let until = until
                .clone()
                .unwrap_or_else(|| sel.window.since_ms.to_string());
            Some(Window::between_named(
                ("--reference-since", Some(since)),
                ("--reference-until", Some(&until)),
                now_ms(),
            )?)
        }
        Reference::Dataset(_) => None,
    };
    let windows: Vec<Window> = std::iter::once(sel.window)
        .chain(reference_window)
        .collect();
    let fetched = local_log(&spec.log_dir, &name, &windows, spec.sketches).await?;
    let log_dir = fetched.path().to_path_buf();
    let read = if spec.sketches {
        keel_monitor::sketch::current
    } else {
        current
    };
    let (dir, s) = (log_dir.clone(), sel.clone());
    let cur = blocking(move || read(&dir, &s)).await?;

    // The reference.
    let lineage = lineage(client, &name, &version).await?;
    let (reference_label, reference): (String, Side) = match reference_window {
        Some(w) => {
            let r = Selection {
                window: w,
                ..sel.clone()
            };
            let label = format!("{} logged in {w}", r.label());
            let dir = log_dir.clone();
            // An earlier window is read from the log itself: sketches count whole hours, and a
            // reference window may share its last hour with the current one.
            let c = blocking(move || current(&dir, &r)).await?;
            (label, (c.table, c.samples))
        }
        None => {
            let given = match &spec.reference {
                Reference::Dataset(given) => given.as_ref(),
                Reference::Log(..) => None,
            };
            let data = stores.data();
            let dataset = match (given, &lineage.dataset) {
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
        }
    };

    // Ground truth beside /feedback's (only live performance, which needs the rows, reads it).
    let labels = match &spec.truth {
        Some(t) if !spec.sketches => {
            Some(read_labels(stores.data().as_ref(), t, lineage.target.as_deref()).await?)
        }
        _ => None,
    };

    // The check, its course over the window, and live performance.
    let drift_share = spec.drift_share;
    let choices = spec.choices.clone();
    let (dir, s) = (log_dir.clone(), sel.clone());
    let sketches = spec.sketches;
    let (checked, cur, reference) = blocking(move || {
        let r = (&reference.0, &reference.1[..]);
        let d = drift::check_with(r, (&cur.table, &cur.samples), drift_share, &choices)?;
        // From sketches the course is hour by hour, and performance (which joins rows with
        // their ground truth) needs the rows.
        let (t, p) = if sketches {
            let t = keel_monitor::sketch::timeline(&dir, &s, r, drift_share, &choices)?;
            (t, None)
        } else {
            let t = report::timeline(&dir, &s, &cur, r, drift_share, &choices, TIMELINE_PARTS)?;
            (
                t,
                performance(&dir, &s, &cur, labels.as_ref(), TIMELINE_PARTS)?,
            )
        };
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
    let mut rep = Report::new(sel, &cur, reference_label, d, timeline);
    rep.performance = perf;
    let page = report::html(
        &rep,
        (&reference.0, &reference.1),
        (&cur.table, &cur.samples),
    );
    Ok(Checked { report: rep, page })
}

/// A log folder to read: `dir` itself, or for a log on object storage a temporary copy of the
/// files `windows` need (every file of `model` without windows).
pub(crate) enum LocalLog {
    /// The folder.
    Folder(PathBuf),
    /// The copy, removed when dropped.
    Copy(tempfile::TempDir),
}

impl LocalLog {
    pub(crate) fn path(&self) -> &Path {
        match self {
            LocalLog::Folder(p) => p,
            LocalLog::Copy(t) => t.path(),
        }
    }
}

pub(crate) async fn local_log(
    dir: &Path,
    model: &str,
    windows: &[Window],
    sketches: bool,
) -> Result<LocalLog> {
    if crate::serve::is_remote_log(dir) {
        Ok(LocalLog::Copy(
            crate::logship::fetch(dir, model, windows, sketches).await?,
        ))
    } else {
        Ok(LocalLog::Folder(dir.to_path_buf()))
    }
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
pub(crate) struct Lineage {
    /// The source run.
    pub run_id: Option<String>,
    /// Its experiment's id.
    pub experiment_id: Option<String>,
    /// Its training input that is a keel dataset version (linked by its digest).
    pub dataset: Option<DataRef>,
    /// Its `target` param (`keel train --target`).
    pub target: Option<String>,
    /// Its params.
    pub params: BTreeMap<String, String>,
    /// Its held-out metrics (the latest value of each).
    pub metrics: keel_monitor::performance::Metrics,
}

/// What `model`'s `version` was trained on and how, from its source run.
pub(crate) async fn lineage(client: &Client, model: &str, version: &str) -> Result<Lineage> {
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
    let params: BTreeMap<String, String> = run["run"]["data"]["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["key"].as_str()?.to_string(),
                p["value"].as_str()?.to_string(),
            ))
        })
        .collect();
    let target = params.get("target").cloned();
    let experiment_id = run["run"]["info"]["experiment_id"]
        .as_str()
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
        experiment_id,
        dataset,
        target,
        params,
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
    let logged = cur.columns();
    let (label, side) = read_version(store, r, move |_, format, paths| {
        read_reference(format, paths, logged, target.as_deref())
    })
    .await?;
    let side = side.with_context(|| format!("cannot read the reference {label}"))?;
    Ok((label, side))
}

/// Fetches the dataset version `r` names into a temporary folder and reads its files with
/// `read` (given the version as `NAME@V`) off the async runtime; that name, and what `read`
/// gave.
async fn read_version<T: Send + 'static>(
    store: &Store,
    r: &DataRef,
    read: impl FnOnce(&str, keel_data::Format, &[&Path]) -> T + Send + 'static,
) -> Result<(String, T)> {
    let (v, _) = crate::data::version(store, r).await?;
    let label = format!("{}@{}", v.name, v.version);
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let files = crate::data::materialise(store, &v, scratch.path()).await?;
    let name = label.clone();
    let out = tokio::task::spawn_blocking(move || {
        let paths: Vec<&Path> = files.files.iter().map(|(_, p)| p.as_path()).collect();
        read(&name, files.format, &paths)
    })
    .await
    .context("the monitoring task failed")?;
    drop(scratch);
    Ok((label, out))
}
