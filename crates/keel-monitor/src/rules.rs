//! The monitor file (`keel.monitor/v1`, YAML): which model version to watch, over which window,
//! against which reference, how often; per-column tests; alert rules; webhooks. And the rules'
//! evaluation against a report.
//!
//! ```yaml
//! kind: keel.monitor/v1
//! model: churn@champion
//! window: 1h            # each check reads the last hour of the log
//! every: 10m            # keel monitor watch checks this often
//! reference: churn-train@3   # default: the dataset version the model was trained on
//! drift_share: 0.5
//! columns:
//!   age: {method: psi, threshold: 0.2}
//! alerts:
//!   - {name: inputs moved, drift_share_above: 0.3}
//!   - {name: age moved, column: age}
//!   - {name: accuracy fell, metric: estimated.accuracy, below: 0.8}
//!   - {name: slow, metric: latency_p99_ms, above: 50}
//!   - {name: quiet, min_rows: 100}
//! webhooks:
//!   - url: http://alerts.internal/keel
//! ```
//!
//! Every key is known or the file is refused with a line naming the unknown one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use keel_stats::drift::Choice;
use serde::{Deserialize, Serialize};

use crate::error::{MonitorError, Result};
use crate::report::Report;

/// The `kind` a monitor file declares.
pub const KIND: &str = "keel.monitor/v1";

/// A monitor file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorFile {
    /// Always [`KIND`].
    pub kind: String,
    /// `NAME@ALIAS`, `NAME/VERSION` or `NAME` (its newest version), resolved at each check.
    pub model: String,
    /// The prediction log's folder [default: keel serve's, `keel-data/predictions`].
    #[serde(default)]
    pub log_dir: Option<PathBuf>,
    /// The last span of the log each check reads.
    #[serde(default = "default_window")]
    pub window: String,
    /// How often `keel monitor watch` checks.
    #[serde(default = "default_every")]
    pub every: String,
    /// A dataset version (`NAME@V`) to compare with [default: the one the version was trained
    /// on].
    #[serde(default)]
    pub reference: Option<String>,
    /// The share of drifted columns at which the dataset drifted.
    #[serde(default = "default_share")]
    pub drift_share: f64,
    /// Ground truth read from a labelled dataset version beside `/feedback`'s, for live
    /// performance, promotion and retraining on the feedback (see [`crate::truth`]).
    #[serde(default)]
    pub truth: Option<Truth>,
    /// Check from the log's hourly sketches instead of its rows (whole hours; no live
    /// performance; see [`crate::sketch`]).
    #[serde(default)]
    pub sketches: bool,
    /// A test and threshold per column instead of the default choice.
    #[serde(default)]
    pub columns: BTreeMap<String, Choice>,
    /// Alert rules.
    #[serde(default)]
    pub alerts: Vec<Rule>,
    /// Where firing alerts are posted.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// The experiment checks are recorded in.
    #[serde(default = "default_experiment")]
    pub experiment: String,
    /// How a rule with `retrain: true` retrains, when it fires.
    #[serde(default)]
    pub retrain: Retrain,
    /// Whether and how each check also compares the challenger with the champion and moves
    /// the champion alias (none: no comparison).
    #[serde(default)]
    pub promote: Option<Promote>,
}

/// A labelled dataset version holding ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Truth {
    /// `NAME@V`, or `NAME` for its newest version at each check.
    pub dataset: String,
    /// The column holding the true values [default: the target the model was trained on].
    #[serde(default)]
    pub column: Option<String>,
}

/// What data a retraining uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrainData {
    /// The newest version of the dataset the champion was trained on.
    #[default]
    Newest,
    /// That version plus the rows of the log with ground truth, stored first as a new version
    /// of the same dataset.
    Feedback,
}

/// How an alert retrains the champion: its recorded training rerun on other data, the result
/// registered with an alias.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Retrain {
    /// The data.
    #[serde(default)]
    pub data: RetrainData,
    /// With `feedback`: the span of the log whose labelled rows are added.
    #[serde(default = "default_feedback_window")]
    pub window: String,
    /// The alias the new version gets.
    #[serde(default = "default_challenger")]
    pub alias: String,
    /// Record what would be trained, train nothing.
    #[serde(default)]
    pub dry_run: bool,
}

impl Default for Retrain {
    fn default() -> Self {
        Retrain {
            data: RetrainData::Newest,
            window: default_feedback_window(),
            alias: default_challenger(),
            dry_run: false,
        }
    }
}

/// Who moves the champion alias once the challenger is shown better.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// The check itself.
    #[default]
    Auto,
    /// A person, with `keel monitor promote`: the check records the finding only.
    Manual,
}

/// How the challenger is compared with the champion on live traffic and promoted.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    /// The challenger's alias.
    #[serde(default = "default_challenger")]
    pub challenger: String,
    /// The span of the log compared.
    #[serde(default = "default_promote_window")]
    pub window: String,
    /// Labelled rows each side needs (rows both answered, for a shadow).
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    /// The significance level of the one-sided test.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Who moves the alias.
    #[serde(default)]
    pub approval: Approval,
    /// Record the decision, move nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_challenger() -> String {
    "challenger".into()
}

fn default_feedback_window() -> String {
    "7d".into()
}

fn default_promote_window() -> String {
    "1h".into()
}

fn default_min_rows() -> u64 {
    200
}

fn default_alpha() -> f64 {
    0.05
}

fn default_window() -> String {
    "1h".into()
}

fn default_every() -> String {
    "10m".into()
}

fn default_share() -> f64 {
    crate::drift::DEFAULT_DRIFT_SHARE
}

fn default_experiment() -> String {
    "keel-monitoring".into()
}

/// One alert rule: a name and exactly one condition.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// What the alert is called.
    pub name: String,
    /// Fires when the share of drifted columns is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_share_above: Option<f64>,
    /// Fires when this column drifted by its test (or by `score_above`/`score_below`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// With `column`: fires when its score (a distance) is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_above: Option<f64>,
    /// With `column`: fires when its score (a p-value) is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_below: Option<f64>,
    /// A figure of the report: `realised.<m>`, `estimated.<m>`, `latency_p50_ms`,
    /// `latency_p95_ms`, `latency_p99_ms`, `requests`, `errors`, `error_rate`, `rows`,
    /// `labelled_rows`, `drift_share`, `drifted_columns`; with `below` or `above`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// With `metric`: fires when it is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// With `metric`: fires when it is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Fires when the window holds fewer rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rows: Option<u64>,
    /// When it fires, retrain as the file's `retrain` says (unless a challenger is already
    /// waiting to be compared).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retrain: bool,
}

/// A webhook that receives firing alerts as JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://` address.
    pub url: String,
    /// Extra request headers (an `Authorization`, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deliveries after the first when one fails.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_retries() -> u32 {
    5
}

/// A rule that fired, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    /// The rule's name.
    pub alert: String,
    /// What fired it, as people read it.
    pub message: String,
    /// The value held against the threshold.
    pub value: f64,
    /// The threshold (none for a column drifted by its own test).
    pub threshold: Option<f64>,
}

impl MonitorFile {
    /// Parses and checks a monitor file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let file: MonitorFile = serde_norway::from_str(text).map_err(|e| {
            MonitorError::Invalid(format!("{origin}: {}", one_line(&e.to_string())))
        })?;
        if file.kind != KIND {
            return Err(MonitorError::Invalid(format!(
                "{origin}: kind is '{}', not {KIND}",
                file.kind
            )));
        }
        for (what, span) in [("window", &file.window), ("every", &file.every)] {
            humantime::parse_duration(span).map_err(|e| {
                MonitorError::Invalid(format!("{origin}: {what} '{span}' is not a duration: {e}"))
            })?;
        }
        if !(file.drift_share > 0.0 && file.drift_share <= 1.0) {
            return Err(MonitorError::Invalid(format!(
                "{origin}: drift_share must be above 0 and at most 1, not {}",
                file.drift_share
            )));
        }
        for rule in &file.alerts {
            rule.validate().map_err(|e| {
                MonitorError::Invalid(format!("{origin}: alert '{}': {e}", rule.name))
            })?;
        }
        let champion_alias = file.model.contains('@');
        if (file.alerts.iter().any(|r| r.retrain) || file.promote.is_some()) && !champion_alias {
            return Err(MonitorError::Invalid(format!(
                "{origin}: retraining and promotion move aliases: model must be NAME@ALIAS (the champion's), not '{}'",
                file.model
            )));
        }
        humantime::parse_duration(&file.retrain.window).map_err(|e| {
            MonitorError::Invalid(format!(
                "{origin}: retrain.window '{}' is not a duration: {e}",
                file.retrain.window
            ))
        })?;
        if let Some(p) = &file.promote {
            humantime::parse_duration(&p.window).map_err(|e| {
                MonitorError::Invalid(format!(
                    "{origin}: promote.window '{}' is not a duration: {e}",
                    p.window
                ))
            })?;
            if !(p.alpha > 0.0 && p.alpha < 1.0) {
                return Err(MonitorError::Invalid(format!(
                    "{origin}: promote.alpha must be between 0 and 1, not {}",
                    p.alpha
                )));
            }
        }
        for hook in &file.webhooks {
            if !(hook.url.starts_with("http://") || hook.url.starts_with("https://")) {
                return Err(MonitorError::Invalid(format!(
                    "{origin}: webhook url '{}' is not an http:// or https:// address",
                    hook.url
                )));
            }
        }
        Ok(file)
    }
}

/// serde's message on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Rule {
    /// Exactly one condition, with the values it needs.
    fn validate(&self) -> std::result::Result<(), String> {
        let kinds = [
            self.drift_share_above.is_some(),
            self.column.is_some(),
            self.metric.is_some(),
            self.min_rows.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            1 => {}
            0 => {
                return Err(
                    "needs one condition: drift_share_above, column, metric or min_rows".into(),
                );
            }
            _ => {
                return Err(
                    "has more than one condition (drift_share_above, column, metric, min_rows)"
                        .into(),
                );
            }
        }
        if self.column.is_none() && (self.score_above.is_some() || self.score_below.is_some()) {
            return Err("score_above and score_below go with column".into());
        }
        if self.score_above.is_some() && self.score_below.is_some() {
            return Err("give score_above or score_below, not both".into());
        }
        if self.metric.is_some() && self.below.is_some() == self.above.is_some() {
            return Err("metric needs one of below or above".into());
        }
        if self.metric.is_none() && (self.below.is_some() || self.above.is_some()) {
            return Err("below and above go with metric".into());
        }
        Ok(())
    }

    /// Whether the rule fires on `report` (or, without one, on a window that held no rows).
    pub fn evaluate(&self, report: Option<&Report>) -> Result<Option<Firing>> {
        let fire = |message: String, value: f64, threshold: Option<f64>| {
            Some(Firing {
                alert: self.name.clone(),
                message,
                value,
                threshold,
            })
        };
        let rows = report.map_or(0, |r| r.drift.current_rows);
        if let Some(min) = self.min_rows {
            return Ok((rows < min)
                .then(|| {
                    fire(
                        format!("{rows} rows in the window, fewer than {min}"),
                        rows as f64,
                        Some(min as f64),
                    )
                })
                .flatten());
        }
        // Every other rule needs rows to judge.
        let Some(report) = report else {
            return Ok(None);
        };
        let d = &report.drift;
        if let Some(limit) = self.drift_share_above {
            return Ok((d.share > limit)
                .then(|| {
                    fire(
                        format!(
                            "{} of {} columns drifted (share {:.2} > {limit})",
                            d.drifted,
                            d.columns.len(),
                            d.share
                        ),
                        d.share,
                        Some(limit),
                    )
                })
                .flatten());
        }
        if let Some(name) = &self.column {
            let c = d
                .columns
                .iter()
                .find(|c| &c.column == name)
                .ok_or_else(|| {
                    MonitorError::Invalid(format!(
                        "alert '{}': column '{name}' is not compared (columns: {})",
                        self.name,
                        d.columns
                            .iter()
                            .map(|c| c.column.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            let Some(x) = &c.drift else {
                return Ok(None);
            };
            let fired = match (self.score_above, self.score_below) {
                (Some(t), _) => (x.score > t, Some(t)),
                (_, Some(t)) => (x.score < t, Some(t)),
                _ => (x.drifted, None),
            };
            return Ok(fired
                .0
                .then(|| {
                    let rule = fired.1.map_or_else(
                        || x.rule(),
                        |t| {
                            if self.score_above.is_some() {
                                format!("> {t}")
                            } else {
                                format!("< {t}")
                            }
                        },
                    );
                    fire(
                        format!(
                            "{name}: {} {:.4} ({rule})",
                            serde_json::to_value(x.test)
                                .ok()
                                .and_then(|v| v.as_str().map(String::from))
                                .unwrap_or_default(),
                            x.score
                        ),
                        x.score,
                        fired.1.or(Some(x.threshold)),
                    )
                })
                .flatten());
        }
        if let Some(metric) = &self.metric {
            let Some(value) = figure(report, metric)? else {
                return Ok(None);
            };
            let (fired, threshold, word) = match (self.below, self.above) {
                (Some(t), _) => (value < t, t, "below"),
                (_, Some(t)) => (value > t, t, "above"),
                _ => return Ok(None),
            };
            return Ok(fired
                .then(|| {
                    fire(
                        format!("{metric} {value:.4} is {word} {threshold}"),
                        value,
                        Some(threshold),
                    )
                })
                .flatten());
        }
        Ok(None)
    }
}

/// A figure of a report by name (see [`Rule::metric`]); `None` when the report has no such
/// figure this time (no labelled rows, say), an error when the name is none keel knows.
pub fn figure(report: &Report, name: &str) -> Result<Option<f64>> {
    let d = &report.drift;
    let p = report.performance.as_ref();
    Ok(match name {
        "drift_share" => Some(d.share),
        "drifted_columns" => Some(d.drifted as f64),
        "rows" => Some(d.current_rows as f64),
        "labelled_rows" => p.map(|p| p.labelled as f64),
        "requests" => p.map(|p| p.latency.requests as f64),
        "errors" => p.map(|p| p.latency.errors as f64),
        "error_rate" => p.map(|p| p.latency.error_rate),
        "latency_p50_ms" => p.map(|p| p.latency.p50_ms),
        "latency_p95_ms" => p.map(|p| p.latency.p95_ms),
        "latency_p99_ms" => p.map(|p| p.latency.p99_ms),
        other => {
            let (side, metric) = other.split_once('.').ok_or_else(|| unknown(other))?;
            let m = match side {
                "realised" => p.map(|p| &p.realised),
                "estimated" => p.map(|p| &p.estimated),
                _ => return Err(unknown(other)),
            };
            m.and_then(|m| m.get(metric).copied())
        }
    }
    .filter(|v| v.is_finite()))
}

fn unknown(name: &str) -> MonitorError {
    MonitorError::Invalid(format!(
        "'{name}' is not a figure keel reports (realised.<metric>, estimated.<metric>, latency_p50_ms, latency_p95_ms, latency_p99_ms, requests, errors, error_rate, rows, labelled_rows, drift_share, drifted_columns)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_monitor_file_parses_with_defaults_and_names_what_is_wrong() {
        let f = MonitorFile::parse(
            "kind: keel.monitor/v1\nmodel: churn@champion\ncolumns:\n  age: {method: psi, threshold: 0.2}\nalerts:\n  - {name: moved, drift_share_above: 0.3}\n  - {name: slow, metric: latency_p99_ms, above: 50}\nwebhooks:\n  - url: http://127.0.0.1:9/hook\n",
            "m.yaml",
        )
        .unwrap();
        assert_eq!(
            (f.window.as_str(), f.every.as_str(), f.drift_share),
            ("1h", "10m", 0.5)
        );
        assert_eq!(f.columns["age"].threshold, Some(0.2));
        assert_eq!(f.webhooks[0].retries, 5);
        assert_eq!(f.experiment, "keel-monitoring");
        assert_eq!(f.retrain, Retrain::default());
        assert_eq!(f.promote, None);
        let f = MonitorFile::parse(
            "kind: keel.monitor/v1\nmodel: churn@champion\nalerts: [{name: moved, drift_share_above: 0.3, retrain: true}]\nretrain: {data: feedback}\npromote: {approval: manual}\ntruth: {dataset: reviewed, column: churned}\n",
            "m.yaml",
        )
        .unwrap();
        assert_eq!(
            f.truth,
            Some(Truth {
                dataset: "reviewed".into(),
                column: Some("churned".into())
            })
        );
        assert!(f.alerts[0].retrain);
        assert_eq!(f.retrain.data, RetrainData::Feedback);
        let p = f.promote.unwrap();
        assert_eq!(
            (p.approval, p.min_rows, p.alpha, p.challenger.as_str()),
            (Approval::Manual, 200, 0.05, "challenger")
        );
        for (text, needle) in [
            (
                "kind: keel.monitor/v1\nmodel: m\nwindw: 1h\n",
                "unknown field `windw`",
            ),
            (
                "kind: keel.monitor/v2\nmodel: m\n",
                "kind is 'keel.monitor/v2'",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\nwindow: soon\n",
                "window 'soon'",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\nalerts: [{name: a}]\n",
                "alert 'a': needs one condition",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\nalerts: [{name: a, min_rows: 1, column: x}]\n",
                "more than one condition",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\nalerts: [{name: a, metric: rows}]\n",
                "one of below or above",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\ncolumns: {x: {method: magic}}\n",
                "unknown variant `magic`",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\nwebhooks: [{url: ftp://x}]\n",
                "not an http",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\nalerts: [{name: a, min_rows: 1, retrain: true}]\n",
                "model must be NAME@ALIAS",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m@champion\npromote: {alpha: 2}\n",
                "promote.alpha",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m@champion\nretrain: {data: latest}\n",
                "unknown variant `latest`",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m@champion\npromote: {min_row: 3}\n",
                "unknown field `min_row`",
            ),
            (
                "kind: keel.monitor/v1\nmodel: m\ntruth: {data: reviewed}\n",
                "unknown field `data`",
            ),
        ] {
            let e = MonitorFile::parse(text, "m.yaml").unwrap_err().to_string();
            assert!(
                e.starts_with("m.yaml: ") && e.contains(needle),
                "{text}: {e}"
            );
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn min_rows_fires_on_an_empty_window() {
        let rule = Rule {
            name: "quiet".into(),
            drift_share_above: None,
            column: None,
            score_above: None,
            score_below: None,
            metric: None,
            below: None,
            above: None,
            min_rows: Some(10),
            retrain: false,
        };
        let fired = rule.evaluate(None).unwrap().unwrap();
        assert_eq!((fired.value, fired.threshold), (0.0, Some(10.0)));
        let other = Rule {
            min_rows: None,
            drift_share_above: Some(0.1),
            ..rule
        };
        assert_eq!(other.evaluate(None).unwrap(), None);
    }
}
