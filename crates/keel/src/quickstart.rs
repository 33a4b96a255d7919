//! `keel quickstart`: the whole loop on a bundled real dataset, in the current folder's
//! embedded store: version the Palmer penguins data (344 penguins of three species measured on
//! three islands, Gorman, Williams and Fraser 2014, CC0), train a random forest to tell the
//! species apart, register it, point the `champion` alias at it, serve it, send sample
//! requests and record ground truth for one of them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use crate::args::StoreArgs;
use crate::client::Client;
use crate::{commands, data, serve, tracking, train};

/// The dataset, with missing values as empty fields.
const PENGUINS: &str = include_str!("../data/penguins.csv");
const MODEL: &str = "penguins";

/// What `keel quickstart` was asked.
pub struct QuickstartArgs {
    pub port: u16,
    /// Stop after the sample requests instead of serving until Ctrl-C.
    pub no_wait: bool,
}

fn step(n: usize, what: &str) {
    eprintln!("\n[{n}/5] {what}");
}

/// Runs the loop; the local stores come from `store`.
pub async fn run(a: QuickstartArgs, store: &data::Store, registry: Client) -> Result<()> {
    let csv = PathBuf::from("penguins.csv");
    if !csv.exists() {
        std::fs::write(&csv, PENGUINS).context("cannot write penguins.csv")?;
    }
    step(1, "version the dataset");
    data::add(
        store,
        csv,
        Some(MODEL.into()),
        None,
        "Palmer penguins (bundled with keel)".into(),
        true,
        false,
    )
    .await?;
    step(
        2,
        "train a random forest on it, recorded as a run, registered as a model version",
    );
    let tracking = tracking::Tracking(&registry);
    train::run(
        store,
        tracking,
        train::TrainArgs {
            data: Some(MODEL.into()),
            target: Some("species".into()),
            task: None,
            algo: Some("random_forest".into()),
            params: vec!["n_estimators=50".into()],
            split: None,
            cv: None,
            test_data: None,
            seed: 42,
            experiment: "quickstart".into(),
            run_name: None,
            features: None,
            drop: vec!["year".into()],
            register: Some(MODEL.into()),
            search: None,
            space: None,
            trials: None,
            metric: None,
            help_params: false,
            store: StoreArgs::default(),
        },
    )
    .await?;
    step(3, "point the champion alias at the new version");
    let model: Value = registry
        .get("registered-models/get", &[("name", MODEL.to_string())])
        .await?;
    let version = model["registered_model"]["latest_versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["version"].as_str())
        .max_by_key(|v| v.parse::<u64>().unwrap_or(0))
        .context("the model has no registered version")?
        .to_string();
    commands::models_alias_set(&registry, MODEL, "champion", &version, false).await?;
    step(4, "serve penguins@champion");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let no_wait = a.no_wait;
    let shutdown = async move {
        if no_wait {
            let _ = stop_rx.await;
        } else {
            tokio::select! {
                _ = crate::shutdown::signal() => {}
                _ = stop_rx => {}
            }
        }
    };
    let args = serve::ServeArgs {
        model: Some(format!("{MODEL}@champion")),
        name: None,
        host: "127.0.0.1".into(),
        port: a.port,
        canary: None,
        shadow: None,
        config: None,
        batch: keel_serve::batch::BatchConfig::default(),
        timeout: std::time::Duration::from_secs(30),
        body_limit: 32 << 20,
        log_dir: Some(PathBuf::from("keel-data/predictions")),
        log_spool: PathBuf::from("keel-data/log-spool"),
        log_file_interval: keel_serve::predlog::FILE_INTERVAL,
        sketch_rows: keel_core::sketch::SAMPLE_ROWS,
        poll: keel_serve::source::DEFAULT_POLL,
        python: keel_serve::python::PythonOptions::default(),
        access: None,
        tls: Default::default(),
    };
    let running = serve::start(args, async move { Ok(registry) }, shutdown).await?;
    let base = format!("http://{}", running.addr);
    step(5, "send sample requests");
    if let Err(e) = sample_requests(&base).await {
        let _ = stop_tx.send(());
        running.wait().await?;
        return Err(e);
    }
    eprintln!(
        "\nkeel is serving the penguins model at {base}. Try:\n\
         \n  curl -s {base}/invocations -H 'Content-Type: application/json' -H 'x-request-id: my-penguin' \\\n    \
         -d '{{\"dataframe_records\": [{{\"island\": \"Biscoe\", \"bill_length_mm\": 47.5, \"bill_depth_mm\": 15.0, \"flipper_length_mm\": 218, \"body_mass_g\": 4950, \"sex\": \"male\"}}]}}'\n\
         \n  curl -s {base}/feedback -H 'Content-Type: application/json' \\\n    \
         -d '{{\"request_id\": \"my-penguin\", \"ground_truth\": \"Gentoo\"}}'   # what that penguin really was\n\
         \n  curl -s {base}/v2/models/{MODEL}          # Open Inference Protocol metadata\
         \n  curl -s {base}/metrics                     # Prometheus metrics\n\
         \nThe run, its metrics and charts and the registered model are in keel-data/: see them with\
         \n  keel server            # then open http://127.0.0.1:5000\
         \n  keel models show {MODEL}\
         \nPredictions are logged to keel-data/predictions/ (Parquet, by model and hour)."
    );
    if a.no_wait {
        let _ = stop_tx.send(());
    } else {
        eprintln!("\nPress Ctrl-C to stop serving.");
    }
    running.wait().await
}

/// One penguin of each species in one request; prints each answer. Returns the request id.
async fn sample_requests(base: &str) -> Result<String> {
    let body = json!({"dataframe_split": {
    "columns": ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"],
    "data": [
        ["Torgersen", 39.1, 18.7, 181, 3750, "male"],
        ["Dream", 46.5, 17.9, 192, 3500, "female"],
        ["Biscoe", 47.5, 15.0, 218, 4950, "male"],
    ]}});
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/invocations"))
        .json(&body)
        .send()
        .await
        .context("the sample request failed")?;
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let status = resp.status();
    let answer: Value = resp.json().await.context("the answer is not JSON")?;
    anyhow::ensure!(
        status.is_success(),
        "the sample request was answered {status}: {answer}"
    );
    let truth = ["Adelie", "Chinstrap", "Gentoo"];
    for (row, p) in answer["predictions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let label = p["label"].as_str().unwrap_or("?");
        let confidence = p[format!("probability_{label}")]
            .as_f64()
            .unwrap_or(f64::NAN);
        eprintln!(
            "  penguin {}: predicted {label} ({:.0}% sure), really {}",
            row + 1,
            confidence * 100.0,
            truth[row.min(2)]
        );
    }
    let feedback = json!({"request_id": id, "ground_truth": truth});
    let recorded = http
        .post(format!("{base}/feedback"))
        .json(&feedback)
        .send()
        .await?;
    anyhow::ensure!(
        recorded.status().is_success(),
        "recording the ground truth failed"
    );
    eprintln!("  ground truth recorded for request {id}");
    Ok(id)
}

#[derive(Args)]
pub(crate) struct QuickstartCmd {
    /// Port of the model server.
    #[arg(long, short, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Stop after the sample requests instead of serving until Ctrl-C.
    #[arg(long)]
    pub(crate) no_wait: bool,
}

/// Runs `keel quickstart`.
pub(crate) async fn command(cmd: QuickstartCmd) -> Result<()> {
    let stores = crate::stores::Stores::open(&StoreArgs::default()).await?;
    let client = stores.client().await?;
    run(
        QuickstartArgs {
            port: cmd.port,
            no_wait: cmd.no_wait,
        },
        stores.data().as_ref(),
        client,
    )
    .await
}
