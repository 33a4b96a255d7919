//! The [`MetadataStore`] trait: everything the tracking server, the registry and datasets
//! persist, in one part per entity ([`ExperimentStore`], [`RunStore`], [`LoggedModelStore`],
//! [`RegistryStore`], [`ImportStore`], [`DataStore`]).
//!
//! keel-store's `SqlStore` implements it on SQLite and PostgreSQL; the HTTP layer only talks to
//! this trait. Inputs have
//! been validated against MLflow's limits by the caller; the store enforces what needs the stored
//! state (existence, lifecycle, write-once params, unique names and version numbers).

use crate::data::{DataSummary, DataUse, DataValidation, DataVersion};
use crate::entities::*;
use crate::error::Result;
use crate::filter::{Clause, Order, experiments, logged_models, registry, runs};

/// One page of results and the token for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl<T> Page<T> {
    /// The page at `offset` holding `items`, with a token when `more` rows follow.
    pub fn new(items: Vec<T>, offset: u64, max_results: usize, more: bool) -> Self {
        let next_page_token = crate::page::next(offset, items.len(), max_results, more);
        Page {
            items,
            next_page_token,
        }
    }

    /// No results.
    pub fn empty() -> Self {
        Page {
            items: Vec::new(),
            next_page_token: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SearchExperiments {
    /// Only the experiments this user may read, when set.
    pub reader: Option<crate::auth::Reader>,
    pub view: ViewType,
    pub filter: Vec<Clause<experiments::Key>>,
    pub order_by: Vec<Order<experiments::Key>>,
    pub max_results: usize,
    pub offset: u64,
}

#[derive(Debug, Clone, Default)]
pub struct SearchRuns {
    pub experiment_ids: Vec<String>,
    pub filter: Vec<Clause<runs::Key>>,
    pub view: ViewType,
    pub max_results: usize,
    pub order_by: Vec<Order<runs::Key>>,
    pub offset: u64,
}

#[derive(Debug, Clone, Default)]
pub struct SearchRegistry {
    /// Only the registered models (and their versions) this user may read, when set.
    pub reader: Option<crate::auth::Reader>,
    pub filter: Vec<Clause<registry::Key>>,
    pub order_by: Vec<Order<registry::Key>>,
    pub max_results: usize,
    pub offset: u64,
}

#[derive(Debug, Clone, Default)]
pub struct SearchLoggedModels {
    pub experiment_ids: Vec<String>,
    pub filter: Vec<Clause<logged_models::Key>>,
    /// Only models with metrics on one of these datasets (and metric filters only on them).
    pub datasets: Vec<DatasetFilter>,
    pub order_by: Vec<Order<logged_models::Key>>,
    pub max_results: usize,
    pub offset: u64,
}

/// A dataset a logged model's metrics were measured on: by name, and digest when given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetFilter {
    pub name: String,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateRun {
    pub experiment_id: String,
    pub user_id: String,
    pub start_time: i64,
    pub run_name: Option<String>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateLoggedModel {
    pub experiment_id: String,
    pub name: Option<String>,
    pub model_type: String,
    pub source_run_id: String,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default)]
pub struct CreateModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: String,
    pub run_link: String,
    pub description: String,
    pub model_id: String,
    pub tags: Vec<Tag>,
}

/// Experiments: named groups of runs.
#[async_trait::async_trait]
pub trait ExperimentStore: Send + Sync {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<String>;
    async fn get_experiment(&self, id: &str) -> Result<Experiment>;
    /// The active experiment of that name, else a deleted one, else `None`.
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>>;
    async fn search_experiments(&self, q: SearchExperiments) -> Result<Page<Experiment>>;
    /// Soft-deletes the experiment and its runs.
    async fn delete_experiment(&self, id: &str) -> Result<()>;
    async fn restore_experiment(&self, id: &str) -> Result<()>;
    async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()>;
    async fn set_experiment_tag(&self, id: &str, tag: Tag) -> Result<()>;
    async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()>;
}

/// Runs with their metrics, params, tags, inputs and outputs.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync {
    async fn create_run(&self, req: CreateRun) -> Result<Run>;
    async fn get_run(&self, run_id: &str) -> Result<Run>;
    async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo>;
    async fn delete_run(&self, run_id: &str) -> Result<()>;
    async fn restore_run(&self, run_id: &str) -> Result<()>;
    /// Logs metrics (appended), params (write-once) and tags (overwritten) in one transaction.
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()>;
    /// Logs one metric (MLflow's `log-metric`).
    async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        self.log_batch(run_id, vec![metric], Vec::new(), Vec::new())
            .await
    }
    /// Logs one param (MLflow's `log-parameter`).
    async fn log_param(&self, run_id: &str, param: Param) -> Result<()> {
        self.log_batch(run_id, Vec::new(), vec![param], Vec::new())
            .await
    }
    /// Sets one tag (MLflow's `set-tag`).
    async fn set_tag(&self, run_id: &str, tag: Tag) -> Result<()> {
        self.log_batch(run_id, Vec::new(), Vec::new(), vec![tag])
            .await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()>;
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()>;
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()>;
    async fn search_runs(&self, q: SearchRuns) -> Result<Page<Run>>;
    /// Every value of one metric of one run, by step then timestamp.
    async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        max_results: usize,
    ) -> Result<Page<Metric>>;
    /// One metric of one run over `min_step..=max_step` (the whole history where a bound is
    /// absent), reduced to at most `buckets` buckets that keep every extreme
    /// ([`crate::buckets`]). An unknown metric gives an empty series.
    async fn metric_buckets(
        &self,
        run_id: &str,
        key: &str,
        range: (Option<i64>, Option<i64>),
        buckets: usize,
    ) -> Result<crate::buckets::Series>;
    /// The histories of one metric over several runs (each metric carries its `run_id`).
    async fn metric_history_bulk(
        &self,
        run_ids: &[String],
        key: &str,
        max_results: usize,
    ) -> Result<Vec<Metric>>;
}

/// MLflow 3 logged models.
#[async_trait::async_trait]
pub trait LoggedModelStore: Send + Sync {
    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel>;
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel>;
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel>;
    async fn delete_logged_model(&self, model_id: &str) -> Result<()>;
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()>;
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()>;
    async fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()>;
    async fn search_logged_models(&self, q: SearchLoggedModels) -> Result<Page<LoggedModel>>;
}

/// The model registry: registered models, their versions, tags, aliases and stages.
#[async_trait::async_trait]
pub trait RegistryStore: Send + Sync {
    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<Tag>,
        description: &str,
    ) -> Result<RegisteredModel>;
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel>;
    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel>;
    async fn delete_registered_model(&self, name: &str) -> Result<()>;
    async fn search_registered_models(&self, q: SearchRegistry) -> Result<Page<RegisteredModel>>;
    /// The newest version per stage (all stages when `stages` is empty).
    async fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>>;
    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()>;
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;
    async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()>;
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()>;
    async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;
    /// Every change of the model's aliases, oldest first (since keel kept them).
    async fn alias_history(&self, name: &str) -> Result<Vec<AliasChange>>;
    /// Creates the next version: numbers are unique and gapless per model.
    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion>;
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion>;
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion>;
    async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion>;
    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()>;
    async fn search_model_versions(&self, q: SearchRegistry) -> Result<Page<ModelVersion>>;
    /// Where the version's files are (`storage_location`, resolved from its source at creation).
    async fn model_version_download_uri(&self, name: &str, version: &str) -> Result<String>;
    async fn set_model_version_tag(&self, name: &str, version: &str, tag: Tag) -> Result<()>;
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()>;
}

/// Entities from another server or store, with their own ids and timestamps. Each write is
/// "create unless present", so an interrupted import can run again.
#[async_trait::async_trait]
pub trait ImportStore: Send + Sync {
    /// Finds the experiment with `exp.name`, or creates it with its stage, times and tags (and
    /// its id when that id is free here). Returns the local id and whether it was created.
    async fn import_experiment(&self, exp: Experiment) -> Result<(String, bool)>;
    /// Creates run `info.run_id` in experiment `experiment_id` with its name, user, status and
    /// times, unless it exists. It is created active, so its data can be logged; the artifact
    /// URI is this store's own. Returns the stored info and whether it was created.
    async fn import_run(&self, experiment_id: &str, info: RunInfo) -> Result<(RunInfo, bool)>;
    /// Creates logged model `info.model_id` in `experiment_id` (active, with this store's
    /// artifact location) unless it exists; tags and params are set separately.
    async fn import_logged_model(
        &self,
        experiment_id: &str,
        info: LoggedModelInfo,
    ) -> Result<(LoggedModel, bool)>;
    /// Creates a registered model with its times, description and tags unless it exists (tags
    /// are set either way). Returns whether it was created.
    async fn import_registered_model(&self, model: RegisteredModel) -> Result<bool>;
    /// Creates a model version with its own number, stage, status, source and tags unless it
    /// exists; later new versions are numbered after it. Returns whether it was created.
    async fn import_model_version(&self, version: ModelVersion) -> Result<bool>;
}

/// Dataset versions (`keel data`) and the datasets runs logged.
#[async_trait::async_trait]
pub trait DataStore: Send + Sync {
    /// Records `v` as the next version of `v.name` (creating the name; `v.version` and
    /// `v.creation_time` are assigned here). When the newest version already holds the same
    /// hash, nothing is recorded and that version comes back with `false`.
    async fn create_data_version(&self, v: DataVersion) -> Result<(DataVersion, bool)>;
    /// A version of a dataset, the newest when `version` is `None`.
    async fn get_data_version(&self, name: &str, version: Option<i64>) -> Result<DataVersion>;
    /// Every dataset with its newest version, by name.
    async fn list_data(&self) -> Result<Vec<DataSummary>>;
    /// The versions of one dataset, newest first.
    async fn list_data_versions(&self, name: &str) -> Result<Vec<DataVersion>>;
    /// The versions (of any dataset) with this content hash or digest
    /// ([`crate::data::digest_of`]).
    async fn data_versions_by_hash(&self, hash: &str) -> Result<Vec<DataVersion>>;
    /// The runs that logged an input dataset whose digest names this content hash.
    async fn data_uses(&self, hash: &str) -> Result<Vec<DataUse>>;
    /// The datasets the runs of `experiment_ids` logged as inputs, each with its context, at
    /// most 1,000 (MLflow's limit).
    async fn search_datasets(&self, experiment_ids: &[i64]) -> Result<Vec<DatasetSummary>>;
    /// Records a validation report against its dataset version (which must exist); the time
    /// is the store's when 0.
    async fn record_validation(&self, v: DataValidation) -> Result<DataValidation>;
    /// The reports recorded against a version, newest first.
    async fn list_validations(&self, name: &str, version: i64) -> Result<Vec<DataValidation>>;
}

/// Metadata persistence for tracking, the model registry and datasets: every part, and a
/// liveness check. Callers hold an `Arc<dyn MetadataStore>`; a backend implements each part in
/// the module of its entity.
#[async_trait::async_trait]
pub trait MetadataStore:
    ExperimentStore
    + RunStore
    + LoggedModelStore
    + RegistryStore
    + ImportStore
    + DataStore
    + crate::auth::AuthStore
    + crate::audit::AuditStore
    + crate::approval::ApprovalStore
    + 'static
{
    /// Cheap liveness check of the backing database.
    async fn ping(&self) -> Result<()>;
}
