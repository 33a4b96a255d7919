//! The latest check of every watched model as Prometheus gauges, for Grafana and Alertmanager:
//!
//! - `keel_monitor_drift_share{model,version}`, `keel_monitor_dataset_drifted{model,version}`
//! - `keel_monitor_column_drift_score{model,version,column,test}`,
//!   `keel_monitor_column_drifted{model,version,column}`
//! - `keel_monitor_metric{model,version,kind,metric}` (kind `realised`, `estimated` or
//!   `training`)
//! - `keel_monitor_rows{model,version}`, `keel_monitor_labelled_rows{model,version}`,
//!   `keel_monitor_error_rate{model,version}`, `keel_monitor_latency_ms{model,version,quantile}`
//! - `keel_monitor_alert_firing{model,alert}`
//! - `keel_monitor_last_check_timestamp_seconds{model}`, `keel_monitor_check_failures{model}`
//!
//! A model's series are replaced at each check, so a version no longer served or a column no
//! longer logged stops being reported.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::report::Report;
use crate::rules::{Firing, MonitorFile};

type F64Gauge = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    model: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ColumnScore {
    model: String,
    version: String,
    column: String,
    test: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Column {
    model: String,
    version: String,
    column: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MetricLabels {
    model: String,
    version: String,
    kind: String,
    metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Quantile {
    model: String,
    version: String,
    quantile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Alert {
    model: String,
    alert: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Model {
    model: String,
}

/// The gauges, registered in a registry of the caller's (`keel server`'s, or `keel monitor
/// watch`'s own).
#[derive(Default)]
pub struct MonitorGauges {
    drift_share: Family<Version, F64Gauge>,
    dataset_drifted: Family<Version, F64Gauge>,
    column_score: Family<ColumnScore, F64Gauge>,
    column_drifted: Family<Column, F64Gauge>,
    metric: Family<MetricLabels, F64Gauge>,
    rows: Family<Version, F64Gauge>,
    labelled: Family<Version, F64Gauge>,
    error_rate: Family<Version, F64Gauge>,
    latency: Family<Quantile, F64Gauge>,
    firing: Family<Alert, F64Gauge>,
    last_check: Family<Model, F64Gauge>,
    failures: Family<Model, Counter>,
    /// The label sets set for each model at its last check, cleared before the next.
    set: std::sync::Mutex<std::collections::HashMap<String, Vec<Series>>>,
}

/// One series set at a check, to be removed at the next.
enum Series {
    Version(Version),
    Score(ColumnScore),
    Column(Column),
    Metric(MetricLabels),
    Quantile(Quantile),
}

impl MonitorGauges {
    /// Registers the gauges in `registry` (under its prefix: `keel_monitor_...` in a registry
    /// prefixed `keel`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("monitor");
        r.register(
            "drift_share",
            "Share of compared columns that drifted at the latest check",
            self.drift_share.clone(),
        );
        r.register(
            "dataset_drifted",
            "1 when the dataset drifted at the latest check",
            self.dataset_drifted.clone(),
        );
        r.register(
            "column_drift_score",
            "A column's drift score at the latest check (a p-value or a distance, per its test)",
            self.column_score.clone(),
        );
        r.register(
            "column_drifted",
            "1 when the column drifted at the latest check",
            self.column_drifted.clone(),
        );
        r.register(
            "metric",
            "Live performance at the latest check: realised, estimated, or the training run's",
            self.metric.clone(),
        );
        r.register(
            "rows",
            "Logged rows in the latest check's window",
            self.rows.clone(),
        );
        r.register(
            "labelled_rows",
            "Of them, rows with ground truth",
            self.labelled.clone(),
        );
        r.register(
            "error_rate",
            "Share of requests answered with an error in the latest check's window",
            self.error_rate.clone(),
        );
        r.register(
            "latency_ms",
            "Request latency percentiles in the latest check's window",
            self.latency.clone(),
        );
        r.register(
            "alert_firing",
            "1 while the alert fires (as of the latest check)",
            self.firing.clone(),
        );
        r.register(
            "last_check_timestamp_seconds",
            "When the model was last checked",
            self.last_check.clone(),
        );
        r.register(
            "check_failures",
            "Checks that could not be made",
            self.failures.clone(),
        );
    }

    /// Sets the gauges of `file`'s model from a check (`report`, none for an empty window) at
    /// `now_ms` and the alerts that fired.
    pub fn update(
        &self,
        file: &MonitorFile,
        report: Option<&Report>,
        fired: &[Firing],
        now_ms: i64,
    ) {
        let model = file.model.clone();
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        for old in set.remove(&model).unwrap_or_default() {
            match old {
                Series::Version(l) => {
                    self.drift_share.remove(&l);
                    self.dataset_drifted.remove(&l);
                    self.rows.remove(&l);
                    self.labelled.remove(&l);
                    self.error_rate.remove(&l);
                }
                Series::Score(l) => {
                    self.column_score.remove(&l);
                }
                Series::Column(l) => {
                    self.column_drifted.remove(&l);
                }
                Series::Metric(l) => {
                    self.metric.remove(&l);
                }
                Series::Quantile(l) => {
                    self.latency.remove(&l);
                }
            }
        }
        let mut now = Vec::new();
        if let Some(r) = report {
            let v = Version {
                model: model.clone(),
                version: r.version.clone().unwrap_or_default(),
            };
            let d = &r.drift;
            self.drift_share.get_or_create(&v).set(d.share);
            self.dataset_drifted
                .get_or_create(&v)
                .set(f64::from(u8::from(d.dataset_drifted)));
            self.rows.get_or_create(&v).set(d.current_rows as f64);
            for c in &d.columns {
                let Some(x) = &c.drift else { continue };
                let test = serde_json::to_value(x.test)
                    .ok()
                    .and_then(|t| t.as_str().map(String::from))
                    .unwrap_or_default();
                let s = ColumnScore {
                    model: model.clone(),
                    version: v.version.clone(),
                    column: c.column.clone(),
                    test,
                };
                self.column_score.get_or_create(&s).set(x.score);
                let cl = Column {
                    model: model.clone(),
                    version: v.version.clone(),
                    column: c.column.clone(),
                };
                self.column_drifted
                    .get_or_create(&cl)
                    .set(f64::from(u8::from(x.drifted)));
                now.push(Series::Score(s));
                now.push(Series::Column(cl));
            }
            if let Some(p) = &r.performance {
                self.labelled.get_or_create(&v).set(p.labelled as f64);
                self.error_rate.get_or_create(&v).set(p.latency.error_rate);
                for (kind, metrics) in [
                    ("realised", &p.realised),
                    ("estimated", &p.estimated),
                    ("training", &p.training),
                ] {
                    for (k, value) in metrics {
                        let l = MetricLabels {
                            model: model.clone(),
                            version: v.version.clone(),
                            kind: kind.into(),
                            metric: k.clone(),
                        };
                        self.metric.get_or_create(&l).set(*value);
                        now.push(Series::Metric(l));
                    }
                }
                for (q, value) in [
                    ("0.5", p.latency.p50_ms),
                    ("0.95", p.latency.p95_ms),
                    ("0.99", p.latency.p99_ms),
                ] {
                    if value.is_finite() {
                        let l = Quantile {
                            model: model.clone(),
                            version: v.version.clone(),
                            quantile: q.into(),
                        };
                        self.latency.get_or_create(&l).set(value);
                        now.push(Series::Quantile(l));
                    }
                }
            }
            now.push(Series::Version(v));
        }
        for rule in &file.alerts {
            let on = fired.iter().any(|f| f.alert == rule.name);
            self.firing
                .get_or_create(&Alert {
                    model: model.clone(),
                    alert: rule.name.clone(),
                })
                .set(f64::from(u8::from(on)));
        }
        self.last_check
            .get_or_create(&Model {
                model: model.clone(),
            })
            .set(now_ms as f64 / 1000.0);
        set.insert(model, now);
    }

    /// Counts a check of `model` that could not be made.
    pub fn failed(&self, model: &str) {
        self.failures
            .get_or_create(&Model {
                model: model.to_string(),
            })
            .inc();
    }
}
