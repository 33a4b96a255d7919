//! Prometheus metrics of the inference server: requests, errors and latency per model and
//! version, batch sizes, queue depth and dropped prediction-log rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a model version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// The served model's name.
    pub model: String,
    /// Its version.
    pub version: String,
}

/// Labels of an answered request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The served model's name.
    pub model: String,
    /// Its version.
    pub version: String,
    /// `primary`, `canary` or `shadow`.
    pub role: String,
    /// The protocol: `mlflow` or `v2`.
    pub protocol: String,
    /// The HTTP status.
    pub status: u16,
}

/// Every metric family of the server.
pub struct ServeMetrics {
    registry: Mutex<Registry>,
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Requests answered with an error status.
    pub errors: Family<RequestLabels, Counter>,
    /// Time from a request's arrival to its answer.
    pub latency: Family<ModelLabels, Histogram>,
    /// Rows per model call.
    pub batch_rows: Family<ModelLabels, Histogram>,
    /// Time in the model per call.
    pub model_seconds: Family<ModelLabels, Histogram>,
    /// Requests waiting for the model.
    pub queue_depth: Family<ModelLabels, Gauge>,
    /// Rows predicted.
    pub rows: Family<ModelLabels, Counter>,
    /// Prediction-log rows dropped because the log could not keep up.
    pub log_dropped: Counter,
    /// Prediction-log rows written.
    pub log_written: Counter,
    /// Ground-truth records received.
    pub feedback: Counter,
    /// Times a served alias moved to another version.
    pub swaps: Counter,
    /// Shadow requests dropped because the shadow model's queue was full.
    pub shadow_dropped: Counter,
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keel_serve");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RequestLabels, Counter>::default();
        let latency = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            // 25 us .. ~13 s, doubling.
            Histogram::new(exponential_buckets(0.000_025, 2.0, 20))
        });
        let batch_rows = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1.0, 2.0, 12))
        });
        let model_seconds = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_005, 2.0, 22))
        });
        let queue_depth = Family::<ModelLabels, Gauge>::default();
        let rows = Family::<ModelLabels, Counter>::default();
        let log_dropped = Counter::default();
        let log_written = Counter::default();
        let feedback = Counter::default();
        let swaps = Counter::default();
        let shadow_dropped = Counter::default();
        registry.register("requests", "Prediction requests answered", requests.clone());
        registry.register(
            "errors",
            "Prediction requests answered with an error status",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a prediction request's arrival to its answer",
            latency.clone(),
        );
        registry.register("batch_rows", "Rows per model call", batch_rows.clone());
        registry.register(
            "model_duration_seconds",
            "Time in the model per call",
            model_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for the model",
            queue_depth.clone(),
        );
        registry.register("predicted_rows", "Rows predicted", rows.clone());
        registry.register(
            "prediction_log_dropped_rows",
            "Prediction-log rows dropped because the log could not keep up",
            log_dropped.clone(),
        );
        registry.register(
            "prediction_log_rows",
            "Prediction-log rows written to disk (in row groups a process crash does not lose)",
            log_written.clone(),
        );
        registry.register(
            "feedback_records",
            "Ground-truth records received",
            feedback.clone(),
        );
        registry.register(
            "alias_swaps",
            "Times a served alias moved to another version",
            swaps.clone(),
        );
        registry.register(
            "shadow_dropped_requests",
            "Shadow requests dropped because the shadow model's queue was full",
            shadow_dropped.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            errors,
            latency,
            batch_rows,
            model_seconds,
            queue_depth,
            rows,
            log_dropped,
            log_written,
            feedback,
            swaps,
            shadow_dropped,
        }
    }
}

impl ServeMetrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Encoding into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

/// Roles a prediction request is answered in (shadow copies are not requests).
const ROLES: [&str; 3] = ["primary", "canary", "pinned"];
/// Protocols a prediction request comes by.
const PROTOCOLS: [&str; 2] = ["mlflow", "v2"];

/// One model version's metric handles, looked up once: requests and batches then count
/// without building label sets.
pub struct VersionMetrics {
    metrics: Arc<ServeMetrics>,
    labels: ModelLabels,
    /// Time from a request's arrival to its answer.
    pub latency: Histogram,
    /// Rows per model call.
    pub batch_rows: Histogram,
    /// Time in the model per call.
    pub model_seconds: Histogram,
    /// Rows predicted.
    pub rows: Counter,
    /// Successful requests by protocol and role, created on first use.
    answered: [[OnceLock<Counter>; ROLES.len()]; PROTOCOLS.len()],
    /// Requests answered 200 and otherwise, all roles and protocols (for `/status`).
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

impl VersionMetrics {
    /// The handles of `model` at `version`.
    pub fn new(metrics: Arc<ServeMetrics>, model: &str, version: &str) -> Self {
        let labels = ModelLabels {
            model: model.to_string(),
            version: version.to_string(),
        };
        let latency = metrics.latency.get_or_create(&labels).clone();
        let batch_rows = metrics.batch_rows.get_or_create(&labels).clone();
        let model_seconds = metrics.model_seconds.get_or_create(&labels).clone();
        let rows = metrics.rows.get_or_create(&labels).clone();
        Self {
            latency,
            batch_rows,
            model_seconds,
            rows,
            answered: Default::default(),
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            metrics,
            labels,
        }
    }

    /// Counts an answered request (and an error, when `status` is not 200).
    pub fn answered(&self, role: &str, protocol: &str, status: u16) {
        if status == 200 {
            &self.ok
        } else {
            &self.failed
        }
        .fetch_add(1, Ordering::Relaxed);
        let slot = (status == 200)
            .then(|| {
                let p = PROTOCOLS.iter().position(|p| *p == protocol)?;
                let r = ROLES.iter().position(|r| *r == role)?;
                Some(&self.answered[p][r])
            })
            .flatten();
        match slot {
            Some(slot) => {
                slot.get_or_init(|| {
                    self.request_counter(&self.metrics.requests, role, protocol, status)
                })
                .inc();
            }
            None => {
                self.request_counter(&self.metrics.requests, role, protocol, status)
                    .inc();
                if status != 200 {
                    self.request_counter(&self.metrics.errors, role, protocol, status)
                        .inc();
                }
            }
        }
    }

    /// Requests waiting for this version's model now.
    pub fn queue_depth(&self) -> i64 {
        self.metrics.queue_depth.get_or_create(&self.labels).get()
    }

    fn request_counter(
        &self,
        family: &Family<RequestLabels, Counter>,
        role: &str,
        protocol: &str,
        status: u16,
    ) -> Counter {
        family
            .get_or_create(&RequestLabels {
                model: self.labels.model.clone(),
                version: self.labels.version.clone(),
                role: role.to_string(),
                protocol: protocol.to_string(),
                status,
            })
            .clone()
    }
}
