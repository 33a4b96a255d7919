//! Served models and their traffic: each name routes to a primary version, optionally a canary
//! that takes a share of requests and a shadow that sees a copy of every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

use crate::batch::{BatchConfig, BatchReport, Batcher, Observer};
use crate::metrics::VersionMetrics;
use crate::payload::ColumnNames;
use crate::predictor::Predictor;

/// One model version loaded and running behind its batcher.
pub struct Deployment {
    /// The served name.
    pub name: String,
    /// The version (registry version, or `1` for a path).
    pub version: String,
    /// The model.
    pub predictor: Arc<Predictor>,
    /// Its request queue.
    pub batcher: Batcher,
    /// Its metric handles.
    pub metrics: Arc<VersionMetrics>,
    /// The column names of the last frame request, shared by requests with the same columns.
    pub names: ColumnNames,
    /// `x-model-name` and `x-model-version` as header values, made once (`None` when a name
    /// cannot be a header value).
    pub headers: [Option<HeaderValue>; 2],
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("runtime", &self.predictor.runtime())
            .finish()
    }
}

impl Deployment {
    /// Serves `predictor` behind a batcher; `observe` sees every finished model call.
    pub fn start(
        name: &str,
        version: &str,
        predictor: Predictor,
        config: BatchConfig,
        metrics: Arc<VersionMetrics>,
        observe: impl Fn(&Arc<str>, &Arc<str>, BatchReport) + Send + Sync + 'static,
    ) -> Arc<Self> {
        let predictor = Arc::new(predictor);
        let (n, v): (Arc<str>, Arc<str>) = (name.into(), version.into());
        let observer: Observer = Arc::new(move |report| observe(&n, &v, report));
        let batcher = Batcher::new(predictor.clone(), config, observer);
        Arc::new(Self {
            name: name.to_string(),
            version: version.to_string(),
            predictor,
            batcher,
            metrics,
            names: ColumnNames::default(),
            headers: [name, version].map(|v| HeaderValue::from_str(v).ok()),
        })
    }
}

/// Where a served name's requests go.
#[derive(Debug)]
pub struct Route {
    /// The primary version.
    pub primary: Arc<Deployment>,
    /// A canary version and the share of requests it takes (0..1).
    pub canary: Option<(Arc<Deployment>, f64)>,
    /// A version that sees a copy of every request; its answers are only logged.
    pub shadow: Option<Arc<Deployment>>,
    /// What each role was asked to serve (`churn@champion`, `churn/3`, a folder), by role.
    pub specs: Vec<(&'static str, String)>,
    draws: AtomicU64,
}

impl Route {
    /// A route; the canary draw sequence starts from `seed`.
    pub fn new(
        primary: Arc<Deployment>,
        canary: Option<(Arc<Deployment>, f64)>,
        shadow: Option<Arc<Deployment>>,
        seed: u64,
    ) -> Self {
        Self {
            primary,
            canary,
            shadow,
            specs: Vec::new(),
            draws: AtomicU64::new(seed),
        }
    }

    /// This route with the specs its roles were asked to serve (shown by `/status`).
    pub fn with_specs(mut self, specs: Vec<(&'static str, String)>) -> Self {
        self.specs = specs;
        self
    }

    /// The version a request goes to, and its role.
    pub fn pick(&self) -> (&Arc<Deployment>, &'static str) {
        if let Some((canary, share)) = &self.canary {
            let draw = splitmix64(
                self.draws
                    .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
            );
            // The top 53 bits as a uniform number in [0, 1).
            let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
            if u < *share {
                return (canary, "canary");
            }
        }
        (&self.primary, "primary")
    }

    /// Every version this route runs.
    pub fn deployments(&self) -> Vec<&Arc<Deployment>> {
        let mut all = vec![&self.primary];
        if let Some((c, _)) = &self.canary {
            all.push(c);
        }
        if let Some(s) = &self.shadow {
            all.push(s);
        }
        all
    }

    /// The deployment of a version, if this route runs it.
    pub fn version(&self, version: &str) -> Option<&Arc<Deployment>> {
        self.deployments()
            .into_iter()
            .find(|d| d.version == version)
    }
}

/// SplitMix64's output function: a well-mixed 64-bit value of a counter.
fn splitmix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
