//! A check recorded as a run of the monitoring experiment, so the mlflow client, `keel runs`
//! and the web UI show it, and `keel monitor alerts` finds the ones that fired.

use std::path::Path;

use anyhow::{Context, Result};
use keel_core::entities::Tag;
use keel_monitor::drift::DriftReport;
use keel_monitor::report::Report;
use keel_monitor::rules::Firing;

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
    let tracking = Tracking(client);
    let version = rep.version.clone().unwrap_or_default();
    let names: Vec<&str> = alerts.iter().map(|a| a.alert.as_str()).collect();
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
        Tag {
            key: "keel.monitor.firing".into(),
            value: (!alerts.is_empty()).to_string(),
        },
        Tag {
            key: "keel.monitor.alerts".into(),
            value: names.join(", "),
        },
    ];
    let run = tracking
        .start(experiment, &format!("check {}", rep.subject()), tags)
        .await
        .context("cannot record the check")?;
    let d: &DriftReport = &rep.drift;
    let params = vec![
        ("model".to_string(), rep.model.clone()),
        ("version".into(), version),
        ("window".into(), format!("{} .. {}", rep.since, rep.until)),
        ("reference".into(), rep.reference.clone()),
        ("drift_share_threshold".into(), d.drift_share.to_string()),
        ("log_dir".into(), log_dir.display().to_string()),
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
