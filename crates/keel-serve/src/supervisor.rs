//! Loads the served models' routes and keeps those named by an alias (or as the latest
//! version) current: every poll it asks the registry which version each names; when one has
//! moved, the new version is loaded next to the old, the route switches to it, and the old
//! version answers the requests it already has before it is dropped. Requests never fail
//! because of a switch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::batch::BatchReport;
use crate::error::ServeError;
use crate::metrics::VersionMetrics;
use crate::predictor::Predictor;
use crate::predlog::PredictionLog;
use crate::route::{Deployment, Route};
use crate::server::AppState;
use crate::source::{ModelSpec, Registry, resolve};

/// One served name and its traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct ServedModel {
    /// The name requests use.
    pub name: String,
    /// The primary version.
    pub primary: ModelSpec,
    /// A canary version and its share of requests (0..1).
    pub canary: Option<(ModelSpec, f64)>,
    /// A shadow version.
    pub shadow: Option<ModelSpec>,
}

impl ServedModel {
    /// The spec of each role, as typed.
    fn specs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("primary", self.primary.to_string())];
        if let Some((c, _)) = &self.canary {
            out.push(("canary", c.to_string()));
        }
        if let Some(s) = &self.shadow {
            out.push(("shadow", s.to_string()));
        }
        out
    }
}

/// The versions a route runs, by role.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Versions {
    primary: String,
    canary: Option<String>,
    shadow: Option<String>,
}

/// Loads and follows the served models.
pub struct Supervisor {
    state: Arc<AppState>,
    registry: Option<Arc<dyn Registry>>,
    models: Vec<ServedModel>,
    current: Mutex<HashMap<String, Versions>>,
    /// Running deployments by (spec, version), shared by routes that serve the same version.
    running: Mutex<HashMap<(String, String), std::sync::Weak<Deployment>>>,
}

impl Supervisor {
    /// A supervisor for `models`.
    pub fn new(
        state: Arc<AppState>,
        registry: Option<Arc<dyn Registry>>,
        models: Vec<ServedModel>,
    ) -> Arc<Self> {
        Arc::new(Self {
            state,
            registry,
            models,
            current: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Loads every model; the server is ready once this returns.
    pub async fn load_all(&self) -> Result<(), ServeError> {
        for m in &self.models {
            self.refresh(m).await?;
        }
        self.state.set_ready(true);
        Ok(())
    }

    /// Polls the registry every `every` for moved aliases, until the process ends.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        if !self.models.iter().any(|m| {
            m.primary.moves()
                || m.canary.as_ref().is_some_and(|(c, _)| c.moves())
                || m.shadow.as_ref().is_some_and(ModelSpec::moves)
        }) {
            return;
        }
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            for m in &self.models {
                if let Err(e) = self.refresh(m).await {
                    tracing::warn!(model = %m.name, error = %e, "keeping the served version: the registry could not be read or the new version not loaded");
                }
            }
        }
    }

    async fn version_of(&self, spec: &ModelSpec) -> Result<String, ServeError> {
        match (spec, &self.registry) {
            (ModelSpec::Path(_) | ModelSpec::Run { .. }, _) => Ok("1".into()),
            (_, Some(r)) => r.version(spec).await,
            (_, None) => Err(ServeError::Model(format!(
                "'{spec}' names a registered model but no registry is configured"
            ))),
        }
    }

    /// The version a canary or shadow `spec` names now, if it should run beside the primary
    /// (`primary`, its spec and version): an alias is left out while it names no version (a
    /// challenger not trained yet, or promoted and its alias removed) or the primary's own
    /// version of the same registered model.
    async fn beside(
        &self,
        spec: &ModelSpec,
        primary: (&ModelSpec, &str),
    ) -> Result<Option<String>, ServeError> {
        let alias = matches!(spec, ModelSpec::Alias { .. });
        let same_model = !matches!(primary.0, ModelSpec::Path(_))
            && spec.default_name() == primary.0.default_name();
        match self.version_of(spec).await {
            Ok(v) if alias && same_model && v == primary.1 => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(ServeError::NotFound(_)) if alias => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reloads `m`'s route when any of its versions changed.
    async fn refresh(&self, m: &ServedModel) -> Result<(), ServeError> {
        let primary_version = self.version_of(&m.primary).await?;
        let wanted = Versions {
            canary: match &m.canary {
                Some((c, _)) => self.beside(c, (&m.primary, &primary_version)).await?,
                None => None,
            },
            shadow: match &m.shadow {
                Some(s) => self.beside(s, (&m.primary, &primary_version)).await?,
                None => None,
            },
            primary: primary_version,
        };
        let known = self
            .current
            .lock()
            .ok()
            .and_then(|c| c.get(&m.name).cloned());
        if known.as_ref() == Some(&wanted) {
            return Ok(());
        }
        let primary = self.deployment(&m.name, &m.primary).await?;
        let canary = match (&m.canary, &wanted.canary) {
            (Some((spec, share)), Some(_)) => Some((self.deployment(&m.name, spec).await?, *share)),
            _ => None,
        };
        let shadow = match (&m.shadow, &wanted.shadow) {
            (Some(spec), Some(_)) => Some(self.deployment(&m.name, spec).await?),
            _ => None,
        };
        let versions = Versions {
            primary: primary.version.clone(),
            canary: canary.as_ref().map(|(d, _)| d.version.clone()),
            shadow: shadow.as_ref().map(|d| d.version.clone()),
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        self.state.set_route(
            &m.name,
            Route::new(primary, canary, shadow, seed).with_specs(m.specs()),
        );
        if known.is_some() {
            self.state.metrics.swaps.inc();
            tracing::info!(model = %m.name, primary = %versions.primary, canary = ?versions.canary, shadow = ?versions.shadow, "switched versions");
        } else {
            // The binary prints what it serves at start; a change is what the log must say.
            tracing::debug!(model = %m.name, primary = %versions.primary, canary = ?versions.canary, shadow = ?versions.shadow, "serving");
        }
        if let Ok(mut c) = self.current.lock() {
            c.insert(m.name.clone(), versions);
        }
        Ok(())
    }

    /// A running deployment of `spec`'s current version, started if needed.
    async fn deployment(
        &self,
        name: &str,
        spec: &ModelSpec,
    ) -> Result<Arc<Deployment>, ServeError> {
        let resolved = resolve(spec, self.registry.as_deref()).await?;
        let key = (spec.to_string(), resolved.version.clone());
        if let Some(d) = self
            .running
            .lock()
            .ok()
            .and_then(|r| r.get(&key).and_then(std::sync::Weak::upgrade))
        {
            return Ok(d);
        }
        let options = &self.state.options;
        let predictor = Predictor::open(&resolved.path, &options.python, options.timeout).await?;
        let ports: Vec<String> = predictor
            .describe_inputs()
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        let metrics = Arc::new(VersionMetrics::new(
            self.state.metrics.clone(),
            name,
            &resolved.version,
        ));
        let observe = observer(metrics.clone(), self.state.log.clone(), ports);
        let d = Deployment::start(
            name,
            &resolved.version,
            predictor,
            self.state.options.batch,
            metrics,
            observe,
        );
        if let Ok(mut r) = self.running.lock() {
            r.retain(|_, w| w.strong_count() > 0);
            r.insert(key, Arc::downgrade(&d));
        }
        Ok(d)
    }
}

/// Counts each batch in the metrics and hands it to the prediction log.
pub fn observer(
    metrics: Arc<VersionMetrics>,
    log: Option<Arc<PredictionLog>>,
    ports: Vec<String>,
) -> impl Fn(&Arc<str>, &Arc<str>, BatchReport) + Send + Sync + 'static {
    let ports: Arc<[String]> = ports.into();
    move |model: &Arc<str>, version: &Arc<str>, report: BatchReport| {
        metrics.batch_rows.observe(report.rows as f64);
        metrics.model_seconds.observe(report.elapsed.as_secs_f64());
        if report.failed == 0 {
            metrics.rows.inc_by(report.rows as u64);
        }
        if let Some(log) = &log {
            log.record(model, version, &ports, report);
        }
    }
}
