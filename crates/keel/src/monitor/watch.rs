//! `keel monitor watch`: the checks a monitor file describes, every `every`; each recorded as a
//! run with the alerts that fired, each firing alert posted to the file's webhooks (retried
//! with backoff on a task of its own, so a slow receiver never delays a check).
//! `keel monitor alerts`: the recorded checks whose alerts fired.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use keel_monitor::MonitorError;
use keel_monitor::gauges::MonitorGauges;
use keel_monitor::report::Report;
use keel_monitor::rules::{Approval, Firing, MonitorFile, RetrainData, Webhook};
use keel_monitor::window::rfc3339;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::check::{self, Reference, Rows, Spec};
use super::{record, retrain};
use crate::args::StoreArgs;
use crate::client::Client;
use crate::data_validate::ChecksFailed;
use crate::output;
use crate::stores::Stores;

/// The first wait before a failed delivery is tried again; each retry doubles it, up to a
/// minute.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// What `keel monitor watch` was asked.
#[derive(Args)]
pub(crate) struct WatchArgs {
    /// The monitor file (YAML, kind keel.monitor/v1).
    file: PathBuf,
    /// Check once, deliver the alerts and exit (status 1 when one fired), for cron jobs and CI.
    #[arg(long)]
    once: bool,
    /// Serve the latest check's figures as Prometheus gauges at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// What `keel monitor alerts` was asked.
#[derive(Args)]
pub(crate) struct AlertsArgs {
    /// Only this registered model's.
    #[arg(long)]
    model: Option<String>,
    /// The experiment the checks are recorded in.
    #[arg(long, default_value = "keel-monitoring")]
    experiment: String,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    max: usize,
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) async fn watch(a: WatchArgs) -> Result<()> {
    let (file, origin) = read(&a.file)?;
    let stores = Stores::open(&a.store).await?;
    let client = stores.client().await?;
    let gauges = match &a.metrics_addr {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };
    run(file, origin, stores, client, gauges, a.once).await
}

/// A monitor file, checked, and its name for messages.
pub(crate) fn read(path: &Path) -> Result<(MonitorFile, String)> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {origin}"))?;
    Ok((MonitorFile::parse(&text, &origin)?, origin))
}

/// Serves the monitoring gauges at `http://ADDR/metrics` until the process ends.
async fn serve_metrics(addr: &str) -> Result<Arc<MonitorGauges>> {
    let gauges = Arc::new(MonitorGauges::default());
    let mut registry = Registry::with_prefix("keel");
    gauges.register(&mut registry);
    let registry = Arc::new(registry);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    eprintln!(
        "monitoring metrics on http://{}/metrics",
        listener.local_addr()?
    );
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                let mut out = String::new();
                // Encoding into a String cannot fail.
                let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    out,
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(gauges)
}

/// Checks `file`'s model every `every` (once with `once`), recording each check, delivering
/// its alerts and setting `gauges`; until interrupted.
pub(crate) async fn run(
    file: MonitorFile,
    origin: String,
    stores: Stores,
    client: Client,
    gauges: Option<Arc<MonitorGauges>>,
    once: bool,
) -> Result<()> {
    let every = humantime::parse_duration(&file.every)?;
    let spec = Spec {
        model: file.model.clone(),
        log_dir: file
            .log_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("keel-data/predictions")),
        rows: Rows::Last(file.window.clone()),
        reference: Reference::Dataset(file.reference.clone()),
        drift_share: file.drift_share,
        choices: file.columns.clone(),
        sketches: file.sketches,
        truth: file.truth.clone(),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot start the webhook client")?;
    let mut deliveries = JoinSet::new();
    loop {
        let outcome = check_once(&stores, &client, &spec, &file, &origin).await;
        match &outcome {
            Ok(checked) => {
                if let Some(g) = &gauges {
                    g.update(
                        &file,
                        checked.report.as_ref(),
                        &checked.fired,
                        check::now_ms(),
                    );
                }
                eprintln!(
                    "{} {}: {}",
                    rfc3339(check::now_ms()),
                    file.model,
                    if checked.fired.is_empty() {
                        "no alert".to_string()
                    } else {
                        format!(
                            "alerts fired: {}",
                            checked
                                .fired
                                .iter()
                                .map(|f| f.alert.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                );
                for payload in &checked.payloads {
                    for hook in &file.webhooks {
                        deliveries.spawn(deliver(http.clone(), hook.clone(), payload.clone()));
                    }
                }
                if let Err(e) = close_the_loop(&stores, &client, &file, &spec, &checked.fired).await
                {
                    if once {
                        while deliveries.join_next().await.is_some() {}
                        return Err(e);
                    }
                    eprintln!("{} {}: {e:#}", rfc3339(check::now_ms()), file.model);
                }
            }
            Err(e) if once => return Err(anyhow::anyhow!("{e:#}")),
            Err(e) => {
                if let Some(g) = &gauges {
                    g.failed(&file.model);
                }
                eprintln!(
                    "{} {}: the check failed: {e:#}",
                    rfc3339(check::now_ms()),
                    file.model
                )
            }
        }
        if once {
            while deliveries.join_next().await.is_some() {}
            let fired = outcome.map(|c| c.fired).unwrap_or_default();
            if !fired.is_empty() {
                return Err(ChecksFailed(format!(
                    "{}: alerts fired: {}",
                    file.model,
                    fired
                        .iter()
                        .map(|f| f.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
                .into());
            }
            return Ok(());
        }
        // Finished deliveries are reaped; the rest go on while the next check waits.
        while deliveries.try_join_next().is_some() {}
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Stopping: deliveries under way get their retries' worth of time.
    while deliveries.join_next().await.is_some() {}
    Ok(())
}

/// The loop's steps after a check: the challenger compared with the champion (and promoted
/// when shown better, unless a person approves), then, when an alert that retrains fired and
/// no challenger is waiting, a retraining.
async fn close_the_loop(
    stores: &Stores,
    client: &Client,
    file: &MonitorFile,
    spec: &Spec,
    fired: &[Firing],
) -> Result<()> {
    let stamp = || rfc3339(check::now_ms());
    let name = file.model.split('@').next().unwrap_or_default().to_string();
    let mut promoted = false;
    if let Some(p) = &file.promote
        && retrain::alias_version(client, &name, &p.challenger)
            .await?
            .is_some()
    {
        let done = retrain::promote(
            stores,
            client,
            &retrain::PromoteRequest {
                model: file.model.clone(),
                challenger: p.challenger.clone(),
                log_dir: spec.log_dir.clone(),
                window: p.window.clone(),
                min_rows: p.min_rows,
                alpha: p.alpha,
                approved: p.approval == Approval::Auto,
                dry_run: p.dry_run,
                experiment: file.experiment.clone(),
                truth: file.truth.clone(),
            },
        )
        .await
        .context("comparing the challenger failed")?;
        eprintln!(
            "{} {}: {} ({})",
            stamp(),
            file.model,
            done.decision,
            done.promotion.reason
        );
        promoted = done.decision == "promoted";
    }
    let retraining: Vec<&str> = fired
        .iter()
        .filter(|f| file.alerts.iter().any(|r| r.name == f.alert && r.retrain))
        .map(|f| f.alert.as_str())
        .collect();
    if retraining.is_empty() {
        return Ok(());
    }
    if promoted {
        // The new champion answers from now on; the next checks judge it.
        eprintln!(
            "{} {}: not retraining ({}): a challenger was just promoted",
            stamp(),
            file.model,
            retraining.join(", ")
        );
        return Ok(());
    }
    let r = &file.retrain;
    if let Some(v) = retrain::alias_version(client, &name, &r.alias).await? {
        eprintln!(
            "{} {}: not retraining ({}): {name}@{} (version {v}) is still to be compared",
            stamp(),
            file.model,
            retraining.join(", "),
            r.alias
        );
        return Ok(());
    }
    let done = match retrain::retrain(
        stores,
        client,
        &retrain::RetrainRequest {
            model: file.model.clone(),
            data: match r.data {
                RetrainData::Newest => retrain::TrainingData::Newest,
                RetrainData::Feedback => retrain::TrainingData::Feedback(r.window.clone()),
            },
            log_dir: spec.log_dir.clone(),
            alias: r.alias.clone(),
            dry_run: r.dry_run,
            experiment: file.experiment.clone(),
            truth: file.truth.clone(),
        },
    )
    .await
    {
        Ok(done) => done,
        Err(e) => match e.downcast_ref::<retrain::NothingNewer>() {
            Some(why) => {
                eprintln!(
                    "{} {}: not retraining ({}): {why}",
                    stamp(),
                    file.model,
                    retraining.join(", ")
                );
                return Ok(());
            }
            None => {
                return Err(e.context(format!("retraining after {} failed", retraining.join(", "))));
            }
        },
    };
    eprintln!(
        "{} {}: {} ({}): {}",
        stamp(),
        file.model,
        match &done.challenger {
            Some(v) => format!(
                "retrained on {}: version {v} is {name}@{}",
                done.data, r.alias
            ),
            None => format!("dry run: would retrain on {}", done.data),
        },
        retraining.join(", "),
        done.run_id
    );
    Ok(())
}

/// What one check of a monitor file found.
struct Outcome {
    /// The report (none for a window without rows).
    report: Option<Report>,
    /// The alerts that fired.
    fired: Vec<Firing>,
    /// What is posted to the webhooks, one per alert.
    payloads: Vec<Value>,
}

/// One check of `file`: its alerts evaluated, recorded as a run; the alerts that fired and
/// the payloads to post.
async fn check_once(
    stores: &Stores,
    client: &Client,
    spec: &Spec,
    file: &MonitorFile,
    origin: &str,
) -> Result<Outcome> {
    let (name, version) = check::resolve(client, &spec.model).await?;
    let sel = check::selection(spec, &name, &version).await?;
    let (report, run_id, fired) = match check::run(stores, client, spec, &sel).await {
        Ok(checked) => {
            let fired = evaluate(file, Some(&checked.report))?;
            let run_id = record::record(
                client,
                &file.experiment,
                &spec.log_dir,
                &checked.report,
                &checked.page,
                &fired,
            )
            .await?;
            (Some(checked.report), Some(run_id), fired)
        }
        // An empty window is a finding too (min_rows); every other rule needs rows.
        Err(e)
            if matches!(
                e.downcast_ref::<MonitorError>(),
                Some(MonitorError::NoRows { .. })
            ) =>
        {
            let fired = evaluate(file, None)?;
            let run_id =
                record::record_empty(client, &file.experiment, &spec.log_dir, &sel, &fired).await?;
            (None, Some(run_id), fired)
        }
        Err(e) => return Err(e),
    };
    let payloads = fired
        .iter()
        .map(|f| {
            json!({
                "alert": f.alert,
                "message": f.message,
                "value": f.value,
                "threshold": f.threshold,
                "model": name,
                "version": version,
                "window": {"since": rfc3339(sel.window.since_ms), "until": rfc3339(sel.window.until_ms)},
                "run_id": run_id,
                "dataset_drifted": report.as_ref().map(|r| r.drift.dataset_drifted),
                "monitor": origin,
                "fired_at": rfc3339(check::now_ms()),
            })
        })
        .collect();
    Ok(Outcome {
        report,
        fired,
        payloads,
    })
}

fn evaluate(file: &MonitorFile, report: Option<&Report>) -> Result<Vec<Firing>> {
    let mut fired = Vec::new();
    for rule in &file.alerts {
        if let Some(f) = rule.evaluate(report)? {
            fired.push(f);
        }
    }
    Ok(fired)
}

/// Posts `payload` to `hook`, trying again after 0.5 s, 1 s, 2 s, ... (at most a minute apart)
/// up to `retries` times while it fails (an error or a status other than 2xx).
async fn deliver(http: reqwest::Client, hook: Webhook, payload: Value) {
    let mut wait = FIRST_BACKOFF;
    for attempt in 0..=hook.retries {
        let mut req = http.post(&hook.url).json(&payload);
        for (k, v) in &hook.headers {
            req = req.header(k, v);
        }
        let failure = match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => format!("status {}", r.status()),
            Err(e) => e.to_string(),
        };
        if attempt == hook.retries {
            eprintln!(
                "webhook {}: alert '{}' not delivered after {} tries: {failure}",
                hook.url,
                payload["alert"].as_str().unwrap_or_default(),
                attempt + 1
            );
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

pub(crate) async fn alerts(a: AlertsArgs) -> Result<()> {
    let client = crate::stores::registry(&a.store).await?;
    let found: Result<Value> = client
        .get(
            "experiments/get-by-name",
            &[("experiment_name", a.experiment.clone())],
        )
        .await;
    let runs = match found {
        Ok(v) => {
            let id = v["experiment"]["experiment_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut filter = "tags.`keel.monitor.firing` = 'true'".to_string();
            if let Some(m) = &a.model {
                filter.push_str(&format!(
                    " and tags.`keel.monitor.model` = '{}'",
                    m.replace('\'', "\\'")
                ));
            }
            let v: Value = client
                .post(
                    "runs/search",
                    &json!({"experiment_ids": [id], "filter": filter,
                        "order_by": ["attributes.start_time DESC"], "max_results": a.max}),
                )
                .await?;
            v["runs"].as_array().cloned().unwrap_or_default()
        }
        Err(e) if crate::client::error_code(&e) == Some("RESOURCE_DOES_NOT_EXIST") => Vec::new(),
        Err(e) => return Err(e),
    };
    let tag = |run: &Value, key: &str| -> String {
        run["data"]["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["key"] == key)
            .and_then(|t| t["value"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let rows: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "run_id": r["info"]["run_id"],
                "time": r["info"]["start_time"].as_i64().map(rfc3339),
                "model": tag(r, "keel.monitor.model"),
                "version": tag(r, "keel.monitor.version"),
                "alerts": tag(r, "keel.monitor.alerts"),
                "dataset_drifted": tag(r, "keel.monitor.dataset_drifted") == "true",
            })
        })
        .collect();
    if a.store.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no alert fired");
        return Ok(());
    }
    let mut t = output::table(&["time", "model", "alerts", "run"]);
    for r in &rows {
        t.add_row(vec![
            r["time"].as_str().unwrap_or_default().to_string(),
            format!(
                "{}/{}",
                r["model"].as_str().unwrap_or_default(),
                r["version"].as_str().unwrap_or_default()
            ),
            r["alerts"].as_str().unwrap_or_default().to_string(),
            r["run_id"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    println!("{t}");
    Ok(())
}
