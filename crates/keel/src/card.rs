//! `keel models card` (write a version's intended use and limitations, then print or save
//! its model card) and `keel models fairness` (evaluate a version on a dataset version, by a
//! sensitive column, and keep the figures on its card).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_core::card::{CARD_FAIRNESS, Fairness, ModelCard};
use keel_core::fairness;
use keel_core::table::{Columns, Values};
use keel_onnx::{Data, Value as OnnxValue};
use keel_serve::payload::{Input, Output};
use keel_serve::predictor::Predictor;
use keel_serve::python::PythonOptions;
use serde_json::{Value, json};

use crate::args::StoreArgs;
use crate::client::Client;
use crate::commands::print_json;
use crate::stores::Stores;

/// `keel models card`.
#[derive(Args)]
pub(crate) struct CardArgs {
    /// The registered model's name.
    name: String,
    /// The version (a number).
    version: String,
    /// Write the version's intended use first: text, or @FILE to read it from a file.
    #[arg(long = "intended-use", value_name = "TEXT|@FILE")]
    intended_use: Option<String>,
    /// Write the version's limitations first: text, or @FILE to read it from a file.
    #[arg(long, value_name = "TEXT|@FILE")]
    limitations: Option<String>,
    /// markdown or html.
    #[arg(long, default_value = "markdown", value_parser = ["markdown", "html"])]
    format: String,
    /// Write the card into this file instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

/// `keel models fairness`.
#[derive(Args)]
pub(crate) struct FairnessArgs {
    /// The registered model's name.
    name: String,
    /// The version (a number).
    version: String,
    /// The dataset version to evaluate on: NAME@VERSION, or NAME for its newest version.
    #[arg(long)]
    data: String,
    /// The column whose groups are compared (e.g. sex, age_band).
    #[arg(long)]
    sensitive: String,
    /// The column holding the true outcome [default: the target the version's run trained on].
    #[arg(long)]
    target: Option<String>,
    /// The outcome counted as selected [default: 1 for 0/1 or -1/1 outcomes, true for
    /// booleans; needed otherwise].
    #[arg(long = "positive-label")]
    positive_label: Option<String>,
    /// The Python a python_function model runs in (as `keel serve --python`).
    #[arg(long)]
    python: Option<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Text given on the command line, or read from the file `@PATH` names.
fn text_arg(flag: &str, given: &str) -> Result<String> {
    match given.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--{flag} {given}: cannot read {path}")),
        None => Ok(given.to_string()),
    }
}

async fn set_tag(client: &Client, name: &str, version: &str, key: &str, value: &str) -> Result<()> {
    let _: Value = client
        .post(
            "model-versions/set-tag",
            &json!({"name": name, "version": version, "key": key, "value": value}),
        )
        .await?;
    Ok(())
}

/// The card of `name` version `version`, as the server makes it.
async fn fetch_card(client: &Client, name: &str, version: &str) -> Result<ModelCard> {
    let path = format!(
        "/api/keel/v1/model-versions/card?name={}&version={}",
        crate::serve::encode(name),
        crate::serve::encode(version)
    );
    let Some(answer) = client.keel_get::<Value>(&path).await? else {
        bail!("{name} version {version} does not exist");
    };
    serde_json::from_value(answer["card"].clone())
        .context("the server answered a card keel cannot read")
}

/// Runs `keel models card`.
pub(crate) async fn card(a: CardArgs) -> Result<()> {
    let client = crate::stores::registry(&a.store).await?;
    for (flag, given, key) in [
        (
            "intended-use",
            &a.intended_use,
            keel_core::approval::CARD_INTENDED_USE,
        ),
        (
            "limitations",
            &a.limitations,
            keel_core::approval::CARD_LIMITATIONS,
        ),
    ] {
        if let Some(given) = given {
            let text = text_arg(flag, given)?;
            if text.trim().is_empty() {
                bail!("--{flag} is empty: the card needs words a person wrote");
            }
            set_tag(&client, &a.name, &a.version, key, &text).await?;
        }
    }
    let card = fetch_card(&client, &a.name, &a.version).await?;
    if a.store.json {
        return print_json(&json!({ "card": card }));
    }
    let text = match a.format.as_str() {
        "html" => card.html(),
        _ => card.markdown(),
    };
    match &a.out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("--out: cannot write {}", path.display()))?;
            eprintln!(
                "the model card of {} version {} is in {}",
                a.name,
                a.version,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Each row's value of `values` as text (`None` for an empty cell).
fn texts(values: &Values) -> Vec<Option<String>> {
    match values {
        Values::Numbers(v) => v.iter().map(|x| x.map(keel_core::table::num)).collect(),
        Values::Text(v) => v.clone(),
    }
}

/// The model's answer for each row, as text: its label output (`label`, `output_label`,
/// `variable`, `predictions`, `prediction`, else its only or first output).
fn predicted_labels(out: &Output, rows: usize) -> Result<Vec<String>> {
    let pick = [
        "label",
        "output_label",
        "variable",
        "predictions",
        "prediction",
    ]
    .iter()
    .find_map(|n| out.names.iter().position(|x| x == n))
    .unwrap_or(0);
    let Some(OnnxValue::Tensor(t)) = out.values.get(pick) else {
        bail!("the model answers no label tensor to evaluate");
    };
    if t.shape.iter().skip(1).any(|d| *d != 1) {
        bail!(
            "the model's output '{}' has shape {:?}: fairness needs one label per row",
            out.names.get(pick).map_or("", String::as_str),
            t.shape
        );
    }
    let labels: Vec<String> = match &t.data {
        Data::Float(v) => v
            .iter()
            .map(|x| keel_core::table::num(f64::from(*x)))
            .collect(),
        Data::Double(v) => v.iter().map(|x| keel_core::table::num(*x)).collect(),
        Data::Int64(v) => v.iter().map(i64::to_string).collect(),
        Data::Int32(v) => v.iter().map(i32::to_string).collect(),
        Data::Bool(v) => v.iter().map(bool::to_string).collect(),
        Data::String(v) => v.clone(),
    };
    if labels.len() != rows {
        bail!("the model answered {} labels for {rows} rows", labels.len());
    }
    Ok(labels)
}

/// Runs the model in `dir` on `table` (without its `target` column): one label per row.
async fn predict(
    dir: &Path,
    python: Option<PathBuf>,
    table: &Columns,
    target: &str,
) -> Result<Vec<String>> {
    let options = PythonOptions {
        python,
        workers: 1,
        ..Default::default()
    };
    let timeout = std::time::Duration::from_secs(600);
    let predictor = Predictor::open(dir, &options, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the model: {e}"))?;
    let mut features = table.clone();
    if let Some(i) = features.names.iter().position(|n| n == target) {
        features.names.remove(i);
        features.values.remove(i);
    }
    let rows = features.rows();
    let feed = predictor
        .prepare(Input::Frame(features))
        .map_err(|e| anyhow::anyhow!("the dataset does not fit the model: {e}"))?;
    let out = match predictor.python() {
        Some(py) => {
            let worker = py
                .pool()
                .checkout()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            py.predict(worker, &feed).await
        }
        None => tokio::task::spawn_blocking(move || predictor.predict_owned(feed))
            .await
            .context("the prediction task failed")?,
    }
    .map_err(|e| anyhow::anyhow!("the model failed on the dataset: {e}"))?;
    predicted_labels(&out, rows)
}

/// A dataset version's rows, their true outcomes, groups and the version's predictions.
struct Evaluated {
    version: keel_core::data::DataVersion,
    label: String,
    truth: Vec<String>,
    groups: Vec<String>,
    predicted: Vec<String>,
}

/// Reads `--data`, checks its target and sensitive columns, fetches the version and predicts
/// every row, saying each step on `bar`.
async fn read_and_predict(
    stores: &Stores,
    client: &Client,
    a: &FairnessArgs,
    target: &str,
    bar: &indicatif::ProgressBar,
) -> Result<Evaluated> {
    let data = stores.data();
    let (version, label, table) = crate::train::load(data.as_ref(), &a.data).await?;
    let column = |name: &str, flag: &str| {
        table.get(name).map(texts).with_context(|| {
            format!(
                "--{flag} '{name}': {label} has no such column (it has {})",
                table.names.join(", ")
            )
        })
    };
    let truth = column(target, "target")?;
    let groups = column(&a.sensitive, "sensitive")?;
    if let Some(row) = truth.iter().position(Option::is_none) {
        bail!(
            "--target '{target}': row {row} of {label} has no value: every row needs its true outcome"
        );
    }
    let truth: Vec<String> = truth.into_iter().flatten().collect();
    let groups: Vec<String> = groups
        .into_iter()
        .map(|g| g.unwrap_or_else(|| "(empty)".to_string()))
        .collect();
    bar.set_message(format!("fetching {} version {}", a.name, a.version));
    let (_folder, dir) = crate::serve::download_version(client, &a.name, &a.version).await?;
    bar.set_message(format!("predicting {} rows of {label}", table.rows()));
    let predicted = predict(&dir, a.python.clone(), &table, target).await?;
    Ok(Evaluated {
        version,
        label,
        truth,
        groups,
        predicted,
    })
}

/// Runs `keel models fairness`.
pub(crate) async fn fairness(a: FairnessArgs) -> Result<()> {
    let stores = Stores::open(&a.store).await?;
    let client = stores.client().await?;
    let target = match &a.target {
        Some(t) => t.clone(),
        None => crate::monitor::check::lineage(&client, &a.name, &a.version)
            .await?
            .target
            .context("--target is needed: the version's run names no target column")?,
    };
    let bar = crate::data_validate::spinner(a.store.json, format!("reading {}", a.data));
    let read = read_and_predict(&stores, &client, &a, &target, &bar).await;
    bar.finish_and_clear();
    let Evaluated {
        version,
        label,
        truth,
        groups,
        predicted,
    } = read?;
    let seen: Vec<&str> = truth.iter().chain(&predicted).map(String::as_str).collect();
    let positive = fairness::positive_label(&seen, a.positive_label.as_deref())?;
    let flags = |v: &[String]| -> Vec<bool> {
        v.iter()
            .map(|x| fairness::is_positive(x, &positive))
            .collect()
    };
    let rates = fairness::assess(&flags(&truth), &flags(&predicted), &groups)?;
    let evaluation = Fairness {
        sensitive: a.sensitive.clone(),
        target: target.clone(),
        positive_label: positive,
        dataset: label.clone(),
        dataset_hash: version.hash.clone(),
        time: keel_core::now_millis(),
        rates,
    };
    // One evaluation per sensitive column: the others on the card stay.
    let kept = fetch_card(&client, &a.name, &a.version).await?.fairness;
    let value = keel_core::card::with_fairness(kept, evaluation.clone())?;
    set_tag(&client, &a.name, &a.version, CARD_FAIRNESS, &value).await?;
    if a.store.json {
        return print_json(&serde_json::to_value(&evaluation)?);
    }
    let mut t = crate::output::table(&[
        "group",
        "rows",
        "selection rate",
        "true positive rate",
        "false positive rate",
        "accuracy",
    ]);
    let r = &evaluation.rates;
    for g in r.groups.iter().chain([&r.overall]) {
        t.add_row(vec![
            g.group.clone(),
            g.count.to_string(),
            format!("{:.3}", g.selection_rate),
            format!("{:.3}", g.true_positive_rate),
            format!("{:.3}", g.false_positive_rate),
            format!("{:.3}", g.accuracy),
        ]);
    }
    println!(
        "{} version {} on {label} by '{}' (outcome '{target}', positive '{}'):",
        a.name, a.version, a.sensitive, evaluation.positive_label
    );
    println!("{t}");
    let show = |x: Option<f64>| x.map_or("undefined".to_string(), |x| format!("{x:.3}"));
    println!(
        "demographic parity difference {:.3}, ratio {}; equalized odds difference {:.3}, ratio {}",
        r.demographic_parity_difference,
        show(r.demographic_parity_ratio),
        r.equalized_odds_difference,
        show(r.equalized_odds_ratio)
    );
    Ok(())
}
