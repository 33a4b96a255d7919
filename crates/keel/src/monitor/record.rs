//! A check recorded as a run of the monitoring experiment, so the mlflow client, `keel runs`
//! and the web UI show it, and `keel monitor alerts` finds the ones that fired.

use std::path::Path;

use anyhow::{Context, Result};
use keel_core::entities::Tag;
use keel_monitor::drift::DriftReport;
use keel_monitor::log::Selection;
use keel_monitor::report::Report;
use keel_monitor::rules::Firing;
use keel_monitor::window::rfc3339;

use crate::client::Client;
use crate::tracking::Tracking;

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

/// Records a check as a run of `experiment`: params say what was compared, metrics what was
/// found, the report is stored as `report.json` and `report.html`, and the alerts that fired
/// as tags (`keel.monitor.firing`, `keel.monitor.alerts`) and `alerts.json`. Returns the run's
/// id.
pub(crate) async fn record(
    client: &Client,
    experiment: &str,
    log_dir: &Path,
    rep: &Report,
    page: &str,
    alerts: &[Firing],
) -> Result<String> {
    let d: &DriftReport = &rep.drift;
    let mut params = vec![
        ("model".to_string(), rep.model.clone()),
        ("version".into(), rep.version.clone().unwrap_or_default()),
        ("window".into(), format!("{} .. {}", rep.since, rep.until)),
        ("reference".into(), rep.reference.clone()),
        ("drift_share_threshold".into(), d.drift_share.to_string()),
        ("log_dir".into(), log_dir.display().to_string()),
    ];
    if let Some(labels) = rep.performance.as_ref().and_then(|p| p.labels.clone()) {
        params.push(("truth".into(), labels));
    }
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
        metrics.push(("errors".into(), p.latency.errors as f64, 0));
        metrics.push(("error_rate".into(), p.latency.error_rate, 0));
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
    let files = vec![
        ("report.json", serde_json::to_vec_pretty(rep)?),
        ("report.html", page.as_bytes().to_vec()),
    ];
    let subject = (
        rep.model.as_str(),
        rep.version.as_deref().unwrap_or_default(),
    );
    let tags = vec![(
        "keel.monitor.dataset_drifted",
        d.dataset_drifted.to_string(),
    )];
    write(
        client,
        experiment,
        subject,
        ("drift", tags),
        params,
        metrics,
        files,
        alerts,
    )
    .await
}

/// Records a check whose window held no row: its window, a row count of 0, and the alerts
/// that fired (`min_rows`).
pub(crate) async fn record_empty(
    client: &Client,
    experiment: &str,
    log_dir: &Path,
    sel: &Selection,
    alerts: &[Firing],
) -> Result<String> {
    let version = sel.version.clone().unwrap_or_default();
    let params = vec![
        ("model".to_string(), sel.model.clone()),
        ("version".into(), version.clone()),
        (
            "window".into(),
            format!(
                "{} .. {}",
                rfc3339(sel.window.since_ms),
                rfc3339(sel.window.until_ms)
            ),
        ),
        ("log_dir".into(), log_dir.display().to_string()),
    ];
    let metrics = vec![("current_rows".to_string(), 0.0, 0)];
    write(
        client,
        experiment,
        (&sel.model, &version),
        ("drift", Vec::new()),
        params,
        metrics,
        Vec::new(),
        alerts,
    )
    .await
}

/// Records a step of the loop (`retrain`, `promotion`) about `model`'s champion `version`:
/// its decision as the tag `keel.monitor.decision`, params, metrics and its evidence as files.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_step(
    client: &Client,
    experiment: &str,
    (model, version): (&str, &str),
    step: &str,
    decision: &str,
    params: Vec<(String, String)>,
    metrics: Vec<(String, f64, i64)>,
    files: Vec<(&str, Vec<u8>)>,
) -> Result<String> {
    let tags = vec![("keel.monitor.decision", decision.to_string())];
    write(
        client,
        experiment,
        (model, version),
        (step, tags),
        params,
        metrics,
        files,
        &[],
    )
    .await
}

/// One check's (or step's) run: tags naming the model, version, the kind of check and what
/// fired, then params, metrics, the files and `alerts.json`; ended FAILED when recording fails
/// half-way.
#[allow(clippy::too_many_arguments)]
async fn write(
    client: &Client,
    experiment: &str,
    (model, version): (&str, &str),
    (check, extra): (&str, Vec<(&'static str, String)>),
    params: Vec<(String, String)>,
    metrics: Vec<(String, f64, i64)>,
    files: Vec<(&str, Vec<u8>)>,
    alerts: &[Firing],
) -> Result<String> {
    let tracking = Tracking(client);
    let names: Vec<&str> = alerts.iter().map(|a| a.alert.as_str()).collect();
    let mut tags = vec![
        ("keel.monitor.model", model.to_string()),
        ("keel.monitor.version", version.to_string()),
        ("keel.monitor.check", check.to_string()),
        ("keel.monitor.firing", (!alerts.is_empty()).to_string()),
        ("keel.monitor.alerts", names.join(", ")),
    ];
    tags.extend(extra);
    let tags = tags
        .into_iter()
        .map(|(key, value)| Tag {
            key: key.into(),
            value,
        })
        .collect();
    // A drift check is `check NAME/V`; a step of the loop is named by its kind.
    let run_name = match check {
        "drift" => format!("check {model}/{version}"),
        step => format!("{step} {model}/{version}"),
    };
    let run = tracking
        .start(experiment, &run_name, tags)
        .await
        .context("cannot record the check")?;
    let done = async {
        tracking.log(&run, params, metrics, None).await?;
        for (name, bytes) in files {
            tracking.upload(&run, name, bytes).await?;
        }
        if !alerts.is_empty() {
            tracking
                .upload(&run, "alerts.json", serde_json::to_vec_pretty(alerts)?)
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    tracking.finish(&run, done.is_ok()).await?;
    done.context("cannot record the check")?;
    Ok(run.run_id)
}
