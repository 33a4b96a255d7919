//! `keel data validate` and `keel data rules infer`: checking a dataset version (or a local
//! file or folder) against rules, and writing rules from a reference.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use keel_core::data::DataVersion;
use keel_data::Format;
use keel_data::profile::{Profile, Schema, Table};
use keel_data::rules::{RuleSet, infer, unique_candidates};
use keel_data::validate::{Files, Report, unique_columns, validate as check};

use crate::data::{DataRef, Store, materialise, user};
use crate::output;

/// Validation found failing rules (the process exits with status 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChecksFailed(pub String);

/// What is checked: a recorded version, or a local file or folder.
enum Subject {
    Version(Box<DataVersion>),
    Local(Files),
}

/// A table ready to check: its label, schema and profile, and where its rows are.
struct Loaded {
    label: String,
    table: Table,
    subject: Subject,
}

impl Loaded {
    /// `NAME[@VERSION]`, or a path that exists on disk.
    async fn open(store: &Store, target: &str) -> Result<Loaded> {
        let path = Path::new(target);
        if path.exists() {
            return Self::local(path).await;
        }
        let (v, _) = crate::data::version(store, &DataRef::parse(target)?).await?;
        let label = format!("{}@{}", v.name, v.version);
        let (Some(schema), Some(profile)) = (&v.schema, &v.profile) else {
            bail!(
                "{label} is {} data: keel validates tables (csv, parquet, jsonl)",
                v.format
            );
        };
        let schema: Schema = serde_json::from_value(schema.clone())
            .with_context(|| format!("{label}: the stored schema cannot be read"))?;
        let profile: Profile = serde_json::from_value(profile.clone())
            .with_context(|| format!("{label}: the stored profile cannot be read"))?;
        Ok(Loaded {
            label,
            table: Table {
                row_count: profile.row_count,
                schema,
                profile,
            },
            subject: Subject::Version(Box::new(v)),
        })
    }

    async fn local(path: &Path) -> Result<Loaded> {
        let files = local_files(path, "validates")?;
        let read = files.clone();
        let table = tokio::task::spawn_blocking(move || {
            let paths: Vec<&Path> = read.files.iter().map(|(_, p)| p.as_path()).collect();
            keel_data::profile::profile_files(read.format, &paths)
        })
        .await
        .context("profile task failed")??;
        Ok(Loaded {
            label: path.display().to_string(),
            table,
            subject: Subject::Local(files),
        })
    }

    /// The rows, restored into `scratch` for a recorded version.
    async fn files(&self, store: &Store, scratch: &Path) -> Result<Files> {
        match &self.subject {
            Subject::Local(f) => Ok(f.clone()),
            Subject::Version(v) => materialise(store, v, scratch).await,
        }
    }
}

/// The table files of a local file or folder; refused, saying what keel `does` with tables,
/// when they are not tabular.
fn local_files(path: &Path, does: &str) -> Result<Files> {
    let files = if path.is_dir() {
        keel_data::hash::list_folder(path)?
    } else {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        vec![(name, path.to_path_buf())]
    };
    let format = Format::of_files(files.iter().map(|(_, p)| p.as_path()));
    if !format.is_tabular() {
        bail!(
            "{}: keel {does} tables (.csv, .parquet, .jsonl files)",
            path.display()
        );
    }
    Ok(Files { format, files })
}

/// The rows of `target`: `NAME[@VERSION]` (restored, verified, into `scratch`) or a file or
/// folder that exists; with its label.
pub(crate) async fn table_files(
    store: &Store,
    target: &str,
    scratch: &Path,
) -> Result<(String, Files)> {
    let path = Path::new(target);
    if path.exists() {
        return Ok((path.display().to_string(), local_files(path, "compares")?));
    }
    let (v, _) = crate::data::version(store, &DataRef::parse(target)?).await?;
    let files = materialise(store, &v, scratch).await?;
    Ok((format!("{}@{}", v.name, v.version), files))
}

/// Rules inferred from `reference` (reading its rows to find columns without repeats).
async fn inferred(store: &Store, reference: &str, quiet: bool) -> Result<(RuleSet, Loaded)> {
    let r = Loaded::open(store, reference).await?;
    let candidates = unique_candidates(&r.table);
    let unique = if candidates.is_empty() {
        Vec::new()
    } else {
        let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
        let files = r.files(store, scratch.path()).await?;
        let spinner = spinner(
            quiet,
            format!(
                "looking for repeated values in {} columns of {}",
                candidates.len(),
                r.label
            ),
        );
        let found = tokio::task::spawn_blocking(move || unique_columns(&files, &candidates))
            .await
            .context("rules task failed");
        spinner.finish_and_clear();
        found??
    };
    Ok((infer(&r.table, &unique), r))
}

/// `keel data rules infer REF [--out FILE]`.
pub async fn rules_infer(store: &Store, reference: &str, out: Option<PathBuf>) -> Result<()> {
    let (rules, r) = inferred(store, reference, false).await?;
    let text = format!(
        "# Rules keel inferred from {} ({} rows). Edit freely, then check data with\n# keel data validate NAME@VERSION --rules FILE\n{}",
        r.label,
        r.table.row_count,
        rules.to_yaml()?
    );
    match out {
        Some(path) => {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "wrote {} rules inferred from {} to {}",
                rules.rules.len(),
                r.label,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// `keel data validate TARGET (--rules FILE | --against REF)`: prints the report, records it
/// with the version when TARGET is a stored one, and fails with [`ChecksFailed`] when a rule
/// fails.
pub async fn validate(
    store: &Store,
    target: &str,
    rules: Option<PathBuf>,
    against: Option<String>,
    only_failures: bool,
    as_json: bool,
) -> Result<()> {
    let rules = match (rules, against) {
        (Some(path), None) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            RuleSet::from_yaml(&text).with_context(|| path.display().to_string())?
        }
        (None, Some(reference)) => inferred(store, &reference, as_json).await?.0,
        _ => bail!("give either --rules FILE or --against NAME@VERSION"),
    };
    let subject = Loaded::open(store, target).await?;
    let scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
    let files = if rules.reads_rows() {
        Some(subject.files(store, scratch.path()).await?)
    } else {
        None
    };
    let label = subject.label.clone();
    let recorded_as = match &subject.subject {
        Subject::Version(v) => Some((v.name.clone(), v.version)),
        Subject::Local(_) => None,
    };
    let table = subject.table;
    let spinner = spinner(
        as_json || files.is_none(),
        format!(
            "checking {} rules on {} rows",
            rules.rules.len(),
            table.row_count
        ),
    );
    let report = tokio::task::spawn_blocking(move || {
        check(&label, &rules, &table, files.as_ref(), SystemTime::now())
    })
    .await
    .context("validation task failed");
    spinner.finish_and_clear();
    let report = report??;
    // A stored version keeps the report, passed or not (the UI lists them by version).
    if let Some((name, version)) = recorded_as {
        store
            .record_validation(&name, version, &user(), serde_json::to_value(&report)?)
            .await
            .with_context(|| format!("{}: the report could not be recorded", report.target))?;
    }
    if as_json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report, only_failures);
    }
    if report.passed {
        Ok(())
    } else {
        Err(ChecksFailed(format!(
            "{}: {} of {} rules failed",
            report.target,
            report.failed,
            report.results.len()
        ))
        .into())
    }
}

/// A spinner on stderr while rows are read (hidden for `--json` or when nothing is read).
pub(crate) fn spinner(hidden: bool, message: String) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// The report as a table: failed rules first (numbered as in the rules file), long cells
/// folded; with `only_failures`, passing rules are left out.
fn print_report(report: &Report, only_failures: bool) {
    println!(
        "{}: {} rows, {} rules, {} failed",
        report.target,
        report.row_count,
        report.results.len(),
        report.failed
    );
    let mut order: Vec<usize> = (0..report.results.len())
        .filter(|&i| !(only_failures && report.results[i].passed))
        .collect();
    order.sort_by_key(|&i| report.results[i].passed);
    if !order.is_empty() {
        let mut t = output::table(&["#", "rule", "column", "expected", "observed", "result"]);
        for &i in &order {
            let r = &report.results[i];
            t.add_row(vec![
                (i + 1).to_string(),
                r.rule.kind().to_string(),
                r.rule.column().unwrap_or("-").to_string(),
                output::fold(&r.expectation, 50, 4),
                output::fold(&r.observed, 50, 4),
                if r.passed { "pass" } else { "FAIL" }.to_string(),
            ]);
        }
        println!("{t}");
    }
    for (i, r) in report.results.iter().enumerate() {
        if r.passed || r.samples.is_empty() {
            continue;
        }
        println!(
            "rule {} ({} {}): first failing rows",
            i + 1,
            r.rule.kind(),
            r.rule.column().unwrap_or_default()
        );
        for s in &r.samples {
            let value = s.value.as_deref().unwrap_or("(missing)");
            println!(
                "  {} row {}: {}",
                s.file,
                s.row,
                output::fold(value, 100, 1)
            );
        }
    }
}
