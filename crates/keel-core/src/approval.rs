//! Protected aliases: moving one (or removing it, or deleting what it points to) takes a request
//! that another user who manages the model approves, after the alias's policy gates pass on the
//! version it would point to.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entities::ModelVersion;
use crate::{Error, ErrorCode, MetadataStore, Result};

/// A bound on one metric of the version's run: at least `min`, at most `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricGate {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// What a version must show before a protected alias may point to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Bounds on the metrics of the run that made the version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricGate>,
    /// Every dataset version the run trained on has a latest validation that passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validation_passed: bool,
    /// The version names its run, and the run names the data it used.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lineage: bool,
    /// The version's model card holds what a person must write: its intended use and its
    /// limits (the version tags [`CARD_INTENDED_USE`] and [`CARD_LIMITATIONS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub model_card: bool,
}

/// The version tag holding the model card's intended use.
pub const CARD_INTENDED_USE: &str = "keel.card.intended_use";
/// The version tag holding the model card's limitations.
pub const CARD_LIMITATIONS: &str = "keel.card.limitations";

impl Gates {
    /// Checks the bounds are numbers and name a metric.
    pub fn validate(&self) -> Result<()> {
        for m in &self.metrics {
            if m.key.is_empty() || (m.min.is_none() && m.max.is_none()) {
                return Err(Error::invalid(
                    "gates.metrics: each needs a 'key' and a 'min' or a 'max'",
                ));
            }
            if m.min.iter().chain(&m.max).any(|v| !v.is_finite()) {
                return Err(Error::invalid(format!(
                    "gates.metrics '{}': bounds must be finite numbers",
                    m.key
                )));
            }
        }
        Ok(())
    }
}

/// A protected alias of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protection {
    pub name: String,
    pub alias: String,
    pub gates: Gates,
    pub created_by: String,
    pub creation_time: i64,
}

/// Where a request to move a protected alias stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    /// Approved, and the alias moved.
    Applied,
    Rejected,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Applied => "applied",
            RequestState::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(RequestState::Pending),
            "applied" => Ok(RequestState::Applied),
            "rejected" => Ok(RequestState::Rejected),
            other => Err(Error::invalid(format!(
                "Invalid request state '{other}': pending, applied or rejected"
            ))),
        }
    }
}

/// A request to point a protected alias at a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AliasRequest {
    pub id: i64,
    pub name: String,
    pub alias: String,
    pub version: String,
    pub requested_by: String,
    pub reason: String,
    pub creation_time: i64,
    pub state: RequestState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_time: Option<i64>,
    /// The gates' results when it was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gates: Option<Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

/// One gate's verdict on a version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    pub gate: String,
    pub passed: bool,
    pub detail: String,
}

/// Protected aliases and the requests to move them; part of every metadata store, which
/// refuses any other way of moving, removing or orphaning a protected alias.
#[async_trait::async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Protects an alias of an existing model (or replaces its gates).
    async fn protect_alias(&self, p: Protection) -> Result<Protection>;
    /// Lifts the protection; `RESOURCE_DOES_NOT_EXIST` when there is none.
    async fn unprotect_alias(&self, name: &str, alias: &str) -> Result<()>;
    /// The protections of one model, or of every model.
    async fn protections(&self, name: Option<&str>) -> Result<Vec<Protection>>;
    /// Files a pending request to point a protected alias at an existing version.
    async fn request_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        requested_by: &str,
        reason: &str,
    ) -> Result<AliasRequest>;
    async fn alias_request(&self, id: i64) -> Result<AliasRequest>;
    /// Requests of one model (or all), newest first, in one state (or any).
    async fn alias_requests(
        &self,
        name: Option<&str>,
        state: Option<RequestState>,
    ) -> Result<Vec<AliasRequest>>;
    /// Decides a pending request: approved, the alias moves in the same write; rejected, it
    /// stays. `gates` records the gates' results.
    async fn decide_alias_request(
        &self,
        id: i64,
        decided_by: &str,
        approve: bool,
        gates: Option<Value>,
        comment: &str,
    ) -> Result<AliasRequest>;
}

/// The refusal of a write that would move, remove or orphan a protected alias.
pub fn protected(name: &str, alias: &str, what: &str) -> Error {
    Error::new(
        ErrorCode::PermissionDenied,
        format!(
            "Alias '{alias}' of registered model '{name}' is protected: {what} needs a request (POST /api/keel/v1/alias-requests) that another user who manages the model approves"
        ),
    )
}

/// Each gate's verdict on `version`, read from the store: its run's metrics and inputs, and
/// the validations of the dataset versions those inputs name.
pub async fn evaluate(
    store: &dyn MetadataStore,
    version: &ModelVersion,
    gates: &Gates,
) -> Result<Vec<GateResult>> {
    let mut out = Vec::new();
    let run = match version.run_id.is_empty() {
        true => None,
        false => store.get_run(&version.run_id).await.ok(),
    };
    let no_run = || "the version names no run".to_string();
    for m in &gates.metrics {
        let value = run
            .as_ref()
            .and_then(|r| r.data.metrics.iter().find(|x| x.key == m.key))
            .map(|x| x.value);
        let (passed, detail) = match (value, &run) {
            (Some(v), _) => {
                let ok = m.min.is_none_or(|min| v >= min) && m.max.is_none_or(|max| v <= max);
                let bounds = match (m.min, m.max) {
                    (Some(a), Some(b)) => format!("within [{a}, {b}]"),
                    (Some(a), None) => format!(">= {a}"),
                    (None, Some(b)) => format!("<= {b}"),
                    (None, None) => String::new(),
                };
                (ok, format!("{} = {v}, needs {bounds}", m.key))
            }
            (None, Some(_)) => (false, format!("the run has no metric '{}'", m.key)),
            (None, None) => (false, no_run()),
        };
        out.push(GateResult {
            gate: format!("metric {}", m.key),
            passed,
            detail,
        });
    }
    let inputs: Vec<(String, String)> = run
        .as_ref()
        .map(|r| {
            r.inputs
                .dataset_inputs
                .iter()
                .map(|d| (d.dataset.name.clone(), d.dataset.digest.clone()))
                .collect()
        })
        .unwrap_or_default();
    if gates.lineage {
        let (passed, detail) = match (&run, inputs.is_empty()) {
            (None, _) => (false, no_run()),
            (Some(_), true) => (false, "the run names no dataset it used".to_string()),
            (Some(r), false) => (
                true,
                format!("run {} used {} dataset(s)", r.info.run_id, inputs.len()),
            ),
        };
        out.push(GateResult {
            gate: "lineage".into(),
            passed,
            detail,
        });
    }
    if gates.validation_passed {
        let mut failures = Vec::new();
        let mut checked = 0;
        for (name, digest) in &inputs {
            let versions = store
                .data_versions_by_hash(digest)
                .await
                .unwrap_or_default();
            let Some(v) = versions
                .iter()
                .find(|v| &v.name == name)
                .or(versions.first())
            else {
                failures.push(format!("{name} ({digest}) is no keel dataset version"));
                continue;
            };
            let validations = store.list_validations(&v.name, v.version).await?;
            // Newest first.
            match validations.first() {
                Some(x) if x.passed => checked += 1,
                Some(x) => failures.push(format!(
                    "{}/{}: its latest validation failed {} of {} rules",
                    v.name, v.version, x.failed, x.rules
                )),
                None => failures.push(format!("{}/{} was never validated", v.name, v.version)),
            }
        }
        let passed = failures.is_empty() && checked > 0;
        out.push(GateResult {
            gate: "validation passed".into(),
            passed,
            detail: match (passed, failures.is_empty()) {
                (true, _) => format!("{checked} dataset version(s) passed their validation"),
                (false, true) => "the run names no dataset version to check".into(),
                (false, false) => failures.join("; "),
            },
        });
    }
    if gates.model_card {
        let tag = |k: &str| {
            version
                .tags
                .iter()
                .find(|t| t.key == k)
                .is_some_and(|t| !t.value.trim().is_empty())
        };
        let missing: Vec<&str> = [CARD_INTENDED_USE, CARD_LIMITATIONS]
            .into_iter()
            .filter(|k| !tag(k))
            .collect();
        out.push(GateResult {
            gate: "model card".into(),
            passed: missing.is_empty(),
            detail: match missing.is_empty() {
                true => "intended use and limitations are written".into(),
                false => format!("the version lacks {}", missing.join(" and ")),
            },
        });
    }
    Ok(out)
}
