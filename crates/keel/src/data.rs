//! `keel data`: add, list, show, restore and check dataset versions, in the local store or on
//! a keel server (`--tracking-uri`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keel_core::data::{DataKind, DataUse, DataVersion};
use keel_data::profile::{ColumnStats, Profile, Schema};
use keel_data::validate::Files;
use keel_data::workspace::{Workspace, folder_changes};
use keel_data::{AddRequest, DataBackend, Format};

use crate::data_validate::{ChecksFailed, table_files};
use crate::output;

/// Where `keel data` reads and writes: the local stores or a keel server.
pub type Store = dyn DataBackend;

/// The version `r` names and the runs that used its content; an error naming it when it does
/// not exist.
pub(crate) async fn version(store: &Store, r: &DataRef) -> Result<(DataVersion, Vec<DataUse>)> {
    store
        .version_with_uses(&r.name, r.version)
        .await?
        .with_context(|| match r.version {
            Some(v) => format!("Dataset '{}' has no version {v}", r.name),
            None => format!("Dataset '{}' not found", r.name),
        })
}

/// A `NAME[@VERSION]` reference; no version means the newest.
pub struct DataRef {
    pub name: String,
    pub version: Option<i64>,
}

impl DataRef {
    /// Parses `NAME`, `NAME@3` or `NAME@latest`.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, version) = match s.split_once('@') {
            None => (s, None),
            Some((n, "latest")) => (n, None),
            Some((n, v)) => (
                n,
                Some(v.parse::<i64>().ok().filter(|v| *v > 0).with_context(|| {
                    format!("'{s}': the version after '@' must be a number from 1 or 'latest'")
                })?),
            ),
        };
        keel_core::data::validate_name(name)?;
        Ok(DataRef {
            name: name.to_string(),
            version,
        })
    }
}

/// Progress bars on stderr, hidden for `--json` and when stderr is not a terminal.
struct Bars {
    bar: ProgressBar,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden())
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Bars { bar }
    }
}

impl keel_data::Progress for Bars {
    fn step(&self, label: &str, total: u64) {
        self.bar.set_message(label.to_string());
        self.bar.set_length(total);
        self.bar.set_position(0);
    }
    fn advance(&self, n: u64) {
        self.bar.inc(n);
    }
}

/// Human sizes: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn size(bytes: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Who records are written by: `KEEL_USER`, else the login name as Python's
/// `getpass.getuser()` finds it (which the mlflow client uses): `LOGNAME`, `USER`, `LNAME`,
/// `USERNAME`, then the password database's entry for the process's user.
pub(crate) fn user() -> String {
    ["KEEL_USER", "LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .or_else(login_name)
        .unwrap_or_else(|| "unknown".into())
}

/// The password database's name for the process's user.
fn login_name() -> Option<String> {
    #[cfg(unix)]
    {
        let mut buf = vec![0 as libc::c_char; 4096];
        // SAFETY: an all-zero passwd is valid (null pointers, zero ids) for getpwuid_r to fill.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to live storage of the stated size; on success
        // `found` points at `pwd`, whose `pw_name` points into `buf`.
        let rc = unsafe {
            libc::getpwuid_r(
                libc::getuid(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r wrote a NUL-terminated name into `buf`, which is still alive.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        name.to_str().ok().map(str::to_string)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `keel data add`.
pub async fn add(
    store: &Store,
    path: PathBuf,
    name: Option<String>,
    format: Option<String>,
    description: String,
    sync: bool,
    as_json: bool,
) -> Result<()> {
    let format = format.map(|f| Format::parse(&f)).transpose()?;
    let mut ws = Workspace::open(Path::new("."))?;
    let bars = Bars::new(as_json);
    let added = keel_data::add(
        AddRequest {
            path: path.clone(),
            name,
            format,
            description,
            created_by: user(),
            sync,
        },
        store,
        &mut ws,
        &bars,
    )
    .await;
    bars.bar.finish_and_clear();
    let added = added.with_context(|| format!("cannot add {}", path.display()))?;
    let v = &added.version;
    if as_json {
        println!(
            "{}",
            serde_json::json!({
                "name": v.name, "version": v.version, "hash": v.hash, "created": added.created,
                "kind": v.kind, "format": v.format, "size_bytes": v.size_bytes,
                "file_count": v.file_count, "row_count": v.row_count,
                "objects_stored": added.stored.objects, "bytes_stored": added.stored.bytes,
                "files_deduplicated": added.stored.deduplicated,
            })
        );
    } else if added.created {
        let rows = v
            .row_count
            .map(|r| format!(", {r} rows"))
            .unwrap_or_default();
        println!(
            "added {}@{}: {} {}, {}{rows}, {} file(s); stored {} new object(s) ({}), {} already stored",
            v.name,
            v.version,
            v.format,
            v.kind.as_str(),
            size(v.size_bytes),
            v.file_count,
            added.stored.objects,
            size(added.stored.bytes as i64),
            added.stored.deduplicated
        );
        println!("hash {}", v.hash);
    } else {
        println!(
            "{}@{} is unchanged (hash {})",
            v.name,
            v.version,
            &v.hash[..16]
        );
    }
    Ok(())
}

/// `keel data ls [NAME]`: every dataset, or one dataset's versions.
pub async fn ls(store: &Store, name: Option<String>, as_json: bool) -> Result<()> {
    match name {
        None => {
            let all = store.list().await?;
            if as_json {
                println!("{}", serde_json::to_string(&all)?);
                return Ok(());
            }
            let mut t = output::table(&[
                "name", "latest", "versions", "kind", "format", "rows", "size", "added",
            ]);
            for d in &all {
                let v = &d.latest;
                t.add_row(vec![
                    d.name.clone(),
                    v.version.to_string(),
                    d.version_count.to_string(),
                    v.kind.as_str().into(),
                    v.format.clone(),
                    v.row_count.map_or("-".into(), |r| r.to_string()),
                    size(v.size_bytes),
                    output::time(Some(v.creation_time)),
                ]);
            }
            println!("{t}");
        }
        Some(name) => {
            let versions = store.versions(&name).await?;
            if as_json {
                println!("{}", serde_json::to_string(&versions)?);
                return Ok(());
            }
            let mut t =
                output::table(&["version", "hash", "format", "rows", "size", "added", "by"]);
            for v in &versions {
                t.add_row(vec![
                    v.version.to_string(),
                    v.hash[..16].to_string(),
                    v.format.clone(),
                    v.row_count.map_or("-".into(), |r| r.to_string()),
                    size(v.size_bytes),
                    output::time(Some(v.creation_time)),
                    v.created_by.clone(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

/// `keel data show NAME[@VERSION]`.
pub async fn show(store: &Store, r: &DataRef, html: Option<PathBuf>, as_json: bool) -> Result<()> {
    let (v, uses) = version(store, r).await?;
    if let Some(path) = html {
        write_html(&v, &path)?;
    }
    if as_json {
        let mut out = serde_json::to_value(&v)?;
        out["digest"] = keel_core::data::digest_of(&v.hash)?.into();
        out["used_by"] = serde_json::to_value(&uses)?;
        println!("{out}");
        return Ok(());
    }
    let mut t = output::table(&["field", "value"]);
    for (k, val) in [
        ("dataset", format!("{}@{}", v.name, v.version)),
        ("hash", v.hash.clone()),
        (
            "MLflow digest",
            keel_core::data::digest_of(&v.hash)?.to_string(),
        ),
        ("kind", v.kind.as_str().into()),
        ("format", v.format.clone()),
        ("size", size(v.size_bytes)),
        ("files", v.file_count.to_string()),
        ("rows", v.row_count.map_or("-".into(), |r| r.to_string())),
        ("source", v.source.clone()),
        ("added", output::time(Some(v.creation_time))),
        ("by", v.created_by.clone()),
    ] {
        t.add_row(vec![k.to_string(), val]);
    }
    if !v.description.is_empty() {
        t.add_row(vec!["description".to_string(), v.description.clone()]);
    }
    println!("{t}");
    if let Some(table) = columns_table(&v)? {
        println!("{table}");
    }
    if !uses.is_empty() {
        let mut t = output::table(&["used by run", "experiment", "as", "context"]);
        for u in &uses {
            t.add_row(vec![
                u.run_id.clone(),
                u.experiment_id.clone(),
                u.dataset_name.clone(),
                u.context.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        println!("{t}");
    }
    Ok(())
}

/// Writes the HTML report of a tabular version.
fn write_html(v: &DataVersion, path: &Path) -> Result<()> {
    let (Some(schema), Some(profile)) = (&v.schema, &v.profile) else {
        bail!(
            "{}@{} is {} data: HTML reports show tables (csv, parquet, jsonl)",
            v.name,
            v.version,
            v.format
        );
    };
    let schema: Schema = serde_json::from_value(schema.clone()).context("stored schema")?;
    let profile: Profile = serde_json::from_value(profile.clone()).context("stored profile")?;
    let title = format!("{}@{}", v.name, v.version);
    let facts = [
        ("hash", v.hash.clone()),
        ("format", format!("{} {}", v.format, v.kind.as_str())),
        ("size", size(v.size_bytes)),
        ("files", v.file_count.to_string()),
        (
            "added",
            format!(
                "{} by {}",
                output::time(Some(v.creation_time)),
                v.created_by
            ),
        ),
        ("source", v.source.clone()),
    ];
    let page = keel_data::report::html(&title, &facts, &schema, &profile);
    std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// One row per column: type, nulls and the statistics of its kind.
fn columns_table(v: &DataVersion) -> Result<Option<comfy_table::Table>> {
    let (Some(schema), Some(profile)) = (&v.schema, &v.profile) else {
        return Ok(None);
    };
    let schema: Schema = serde_json::from_value(schema.clone()).context("stored schema")?;
    let profile: Profile = serde_json::from_value(profile.clone()).context("stored profile")?;
    let mut t = output::table(&["column", "type", "nulls", "kind", "summary"]);
    for (c, p) in schema.columns.iter().zip(&profile.columns) {
        let (kind, summary) = match &p.stats {
            ColumnStats::Numeric(n) => (
                "numeric",
                format!(
                    "mean {:.4}  std {:.4}  min {}  p50 {}  max {}",
                    n.mean,
                    n.std,
                    short(n.min),
                    short(n.quantiles.get(49).copied().unwrap_or(f64::NAN)),
                    short(n.max)
                ),
            ),
            ColumnStats::Categorical(s) => (
                "categorical",
                format!(
                    "{} values; top: {}",
                    s.cardinality,
                    s.top
                        .iter()
                        .take(3)
                        .map(|(k, n)| format!("{k} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ColumnStats::Text(s) => (
                "text",
                format!(
                    "{}{} distinct; length {}..{} (mean {:.1})",
                    s.cardinality,
                    if s.capped { "+" } else { "" },
                    s.min_length,
                    s.max_length,
                    s.mean_length
                ),
            ),
            ColumnStats::Time(s) => (
                "time",
                format!(
                    "{} .. {}",
                    output::time(Some(s.min_ms)),
                    output::time(Some(s.max_ms))
                ),
            ),
            ColumnStats::Empty => ("empty", "-".into()),
        };
        t.add_row(vec![
            c.name.clone(),
            c.dtype.clone(),
            p.nulls.to_string(),
            kind.into(),
            summary,
        ]);
    }
    Ok(Some(t))
}

fn short(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

/// `keel data get NAME[@VERSION] --to PATH`.
pub async fn get(store: &Store, r: &DataRef, to: &Path, as_json: bool) -> Result<()> {
    let (v, _) = version(store, r).await?;
    if v.kind == DataKind::File && to.is_dir() {
        bail!(
            "{} is a folder; give the file path to write {}@{} to",
            to.display(),
            v.name,
            v.version
        );
    }
    let bars = Bars::new(as_json);
    keel_data::Progress::step(&bars, "restoring", v.size_bytes as u64);
    let done = |n: u64| keel_data::Progress::advance(&bars, n);
    let result = keel_data::objects::restore(store, &v, to, &done).await;
    bars.bar.finish_and_clear();
    let (files, bytes) =
        result.with_context(|| format!("cannot restore {}@{}", v.name, v.version))?;
    if as_json {
        println!(
            "{}",
            serde_json::json!({"name": v.name, "version": v.version, "hash": v.hash,
                "to": to.display().to_string(), "files": files, "bytes": bytes})
        );
    } else {
        println!(
            "restored {}@{} to {}: {files} file(s), {}, verified by hash",
            v.name,
            v.version,
            to.display(),
            size(bytes as i64)
        );
    }
    Ok(())
}

/// `keel data status`: which added paths changed since they were added.
pub async fn status(store: &Store, as_json: bool) -> Result<bool> {
    let mut ws = Workspace::open(Path::new("."))?;
    let mut found = ws.status()?;
    ws.save()?;
    for s in found.iter_mut() {
        if let Some(current) = &s.current
            && let Ok(old) = keel_data::objects::read_manifest(store, &s.tracked.hash).await
        {
            s.changes = folder_changes(&old, current);
        }
    }
    let changed = found.iter().any(|s| s.state != "unchanged");
    if as_json {
        println!("{}", serde_json::to_string(&found)?);
    } else if found.is_empty() {
        println!("nothing added from here yet (keel data add PATH)");
    } else {
        for s in &found {
            println!(
                "{:<10} {} ({}@{})",
                s.state, s.path, s.tracked.name, s.tracked.version
            );
            for c in s.changes.iter().take(20) {
                println!("             {c}");
            }
            if s.changes.len() > 20 {
                println!("             ... and {} more", s.changes.len() - 20);
            }
        }
    }
    Ok(changed)
}

/// Restores a tabular version into `dir` (verified by hash) and returns its files.
pub async fn materialise(store: &Store, v: &DataVersion, dir: &Path) -> Result<Files> {
    let format = Format::parse(&v.format)?;
    if !format.is_tabular() {
        bail!(
            "{}@{} is {} data: keel reads tables (csv, parquet, jsonl)",
            v.name,
            v.version,
            v.format
        );
    }
    let target = match v.kind {
        DataKind::File => dir.join(format!("data.{}", v.format)),
        DataKind::Folder => dir.to_path_buf(),
    };
    keel_data::objects::restore(store, v, &target, &|_| {}).await?;
    let files = match v.kind {
        DataKind::File => {
            let name = Path::new(&v.source)
                .file_name()
                .map_or_else(|| v.name.clone(), |n| n.to_string_lossy().into_owned());
            vec![(name, target)]
        }
        DataKind::Folder => keel_data::hash::list_folder(dir)?,
    };
    Ok(Files { format, files })
}

/// `keel data diff A B`: schema changes, rows and per-column drift of B against A, each side
/// a version (`NAME[@VERSION]`) or a file or folder. Fails with [`ChecksFailed`] (status 1)
/// when the dataset drifted: at least `drift_share` of the shared columns moved (Evidently's
/// dataset rule).
pub async fn diff(store: &Store, a: &str, b: &str, drift_share: f64, as_json: bool) -> Result<()> {
    if !(drift_share > 0.0 && drift_share <= 1.0) {
        bail!("--drift-share must be above 0 and at most 1, not {drift_share}");
    }
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (la, fa) = table_files(store, a, &tmp.path().join("a")).await?;
    let (lb, fb) = table_files(store, b, &tmp.path().join("b")).await?;
    let d = tokio::task::spawn_blocking(move || {
        let ra: Vec<&Path> = fa.files.iter().map(|(_, p)| p.as_path()).collect();
        let rb: Vec<&Path> = fb.files.iter().map(|(_, p)| p.as_path()).collect();
        keel_data::diff::diff((fa.format, &ra), (fb.format, &rb))
    })
    .await
    .context("diff task failed")??;
    let shared = d.columns.len();
    let (share, drifted) = d.dataset_drift(drift_share);
    let verdict = format!(
        "{} of {shared} shared columns drifted (share {share:.2}; the dataset drifts at {drift_share})",
        d.drifted,
    );
    if as_json {
        let mut v = serde_json::to_value(&d)?;
        v["share"] = share.into();
        v["dataset_drifted"] = drifted.into();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print_diff(&la, &lb, &d, &verdict)?;
    }
    if drifted {
        return Err(ChecksFailed(format!("{lb} drifted from {la}: {verdict}")).into());
    }
    Ok(())
}

fn print_diff(la: &str, lb: &str, d: &keel_data::diff::Diff, verdict: &str) -> Result<()> {
    println!("{la} -> {lb}: rows {} -> {}, {verdict}", d.rows.0, d.rows.1);
    if !d.schema.is_empty() {
        let mut t = output::table(&["column", "change", "before", "after"]);
        for c in &d.schema {
            t.add_row(vec![
                c.column.clone(),
                c.change.to_string(),
                c.before.clone().unwrap_or_else(|| "-".into()),
                c.after.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        println!("{t}");
    }
    println!("{}", drift_table(&d.columns)?);
    Ok(())
}

/// Per column: the drift test, its score against its threshold, the decision, PSI and missing
/// values on each side (or why the column was not compared).
pub(crate) fn drift_table(columns: &[keel_data::diff::ColumnChange]) -> Result<comfy_table::Table> {
    let mut t = output::table(&[
        "column",
        "test",
        "statistic",
        "value",
        "drifts when",
        "drifted",
        "psi",
        "nulls",
    ]);
    for c in columns {
        let nulls = format!("{} -> {}", c.nulls.0, c.nulls.1);
        match &c.drift {
            Some(x) => t.add_row(vec![
                c.column.clone(),
                serde_json::to_value(x.test)?
                    .as_str()
                    .unwrap_or("-")
                    .to_string(),
                if x.test.is_pvalue() {
                    "p-value"
                } else {
                    "distance"
                }
                .into(),
                format!("{:.4}", x.score),
                x.rule(),
                if x.drifted { "yes" } else { "no" }.into(),
                format!("{:.4}", x.psi),
                nulls,
            ]),
            // Why there is no test, in the test's column.
            None => t.add_row(vec![
                c.column.clone(),
                c.note.clone().unwrap_or_else(|| "-".into()),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                nulls,
            ]),
        };
    }
    Ok(t)
}
