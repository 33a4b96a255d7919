//! [`MetadataStore`] for [`SqliteStore`]: each method delegates to its implementation module.

use keel_core::data::{DataSummary, DataUse, DataVersion};
use keel_core::entities::*;
use keel_core::store::*;
use keel_core::{MetadataStore, Result};

use super::{DbResult, SqliteStore};

#[async_trait::async_trait]
impl MetadataStore for SqliteStore {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<String> {
        self.core
            .create_experiment(name, artifact_location, tags)
            .await
    }
    async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        self.core.get_experiment(id).await
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        self.core.get_experiment_by_name(name).await
    }
    async fn search_experiments(&self, q: SearchExperiments) -> Result<Page<Experiment>> {
        self.core.search_experiments(q).await
    }
    async fn delete_experiment(&self, id: &str) -> Result<()> {
        self.core.delete_experiment(id).await
    }
    async fn restore_experiment(&self, id: &str) -> Result<()> {
        self.core.restore_experiment(id).await
    }
    async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        self.core.rename_experiment(id, new_name).await
    }
    async fn set_experiment_tag(&self, id: &str, tag: Tag) -> Result<()> {
        self.core.set_experiment_tag(id, tag).await
    }
    async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        self.core.delete_experiment_tag(id, key).await
    }
    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        self.do_create_run(req).await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.do_get_run(run_id).await
    }
    async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        self.do_update_run(run_id, status, end_time, run_name).await
    }
    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.do_delete_run(run_id).await
    }
    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.do_restore_run(run_id).await
    }
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        self.do_log_batch(run_id, metrics, params, tags).await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.do_delete_tag(run_id, key).await
    }
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        self.do_log_inputs(run_id, datasets, models).await
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        self.do_log_outputs(run_id, models).await
    }
    async fn search_runs(&self, q: SearchRuns) -> Result<Page<Run>> {
        self.do_search_runs(q).await
    }
    async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        max_results: usize,
    ) -> Result<Page<Metric>> {
        self.do_metric_history(run_id, key, offset, max_results)
            .await
    }
    async fn metric_history_bulk(
        &self,
        run_ids: &[String],
        key: &str,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        self.do_metric_history_bulk(run_ids, key, max_results).await
    }
    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        self.core.create_logged_model(req).await
    }
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        self.core.get_logged_model(model_id, allow_deleted).await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.core.finalize_logged_model(model_id, status).await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.core.delete_logged_model(model_id).await
    }
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        self.core.set_logged_model_tags(model_id, tags).await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.core.delete_logged_model_tag(model_id, key).await
    }
    async fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()> {
        self.core.log_logged_model_params(model_id, params).await
    }
    async fn search_logged_models(&self, q: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        self.core.search_logged_models(q).await
    }
    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<Tag>,
        description: &str,
    ) -> Result<RegisteredModel> {
        self.core
            .create_registered_model(name, tags, description)
            .await
    }
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.core.get_registered_model(name).await
    }
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        self.core.rename_registered_model(name, new_name).await
    }
    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        self.core.update_registered_model(name, description).await
    }
    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.core.delete_registered_model(name).await
    }
    async fn search_registered_models(&self, q: SearchRegistry) -> Result<Page<RegisteredModel>> {
        self.core.search_registered_models(q).await
    }
    async fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        self.core.latest_versions(name, stages).await
    }
    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        self.core.set_registered_model_tag(name, tag).await
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.core.delete_registered_model_tag(name, key).await
    }
    async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        self.core.set_alias(name, alias, version).await
    }
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.core.delete_alias(name, alias).await
    }
    async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.core.get_version_by_alias(name, alias).await
    }
    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion> {
        self.core.create_model_version(req).await
    }
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        self.core.get_model_version(name, version).await
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        self.core
            .update_model_version(name, version, description)
            .await
    }
    async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        self.core
            .transition_stage(name, version, stage, archive_existing)
            .await
    }
    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        self.core.delete_model_version(name, version).await
    }
    async fn search_model_versions(&self, q: SearchRegistry) -> Result<Page<ModelVersion>> {
        self.core.search_model_versions(q).await
    }
    async fn model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        self.core.model_version_download_uri(name, version).await
    }
    async fn set_model_version_tag(&self, name: &str, version: &str, tag: Tag) -> Result<()> {
        self.core.set_model_version_tag(name, version, tag).await
    }
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        self.core.delete_model_version_tag(name, version, key).await
    }
    async fn import_experiment(&self, exp: Experiment) -> Result<(String, bool)> {
        self.do_import_experiment(exp).await
    }
    async fn import_run(&self, experiment_id: &str, info: RunInfo) -> Result<(RunInfo, bool)> {
        self.do_import_run(experiment_id, info).await
    }
    async fn import_logged_model(
        &self,
        experiment_id: &str,
        info: LoggedModelInfo,
    ) -> Result<(LoggedModel, bool)> {
        self.do_import_logged_model(experiment_id, info).await
    }
    async fn import_registered_model(&self, model: RegisteredModel) -> Result<bool> {
        self.do_import_registered_model(model).await
    }
    async fn import_model_version(&self, version: ModelVersion) -> Result<bool> {
        self.do_import_model_version(version).await
    }
    async fn create_data_version(&self, v: DataVersion) -> Result<(DataVersion, bool)> {
        self.core.create_data_version(v).await
    }
    async fn get_data_version(&self, name: &str, version: Option<i64>) -> Result<DataVersion> {
        self.core.get_data_version(name, version).await
    }
    async fn list_data(&self) -> Result<Vec<DataSummary>> {
        self.core.list_data().await
    }
    async fn list_data_versions(&self, name: &str) -> Result<Vec<DataVersion>> {
        self.core.list_data_versions(name).await
    }
    async fn data_versions_by_hash(&self, hash: &str) -> Result<Vec<DataVersion>> {
        self.core.data_versions_by_hash(hash).await
    }
    async fn data_uses(&self, hash: &str) -> Result<Vec<DataUse>> {
        self.core.data_uses(hash).await
    }
    async fn search_datasets(
        &self,
        experiment_ids: &[i64],
    ) -> Result<Vec<keel_core::entities::DatasetSummary>> {
        self.core.search_datasets(experiment_ids).await
    }
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.read_conn().await?)
            .await
            .db()
            .map(|_| ())
    }
}
