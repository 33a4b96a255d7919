//! [`MetadataStore`] for [`SqlStore`]: each method delegates to its entity module.

use keel_core::data::{DataSummary, DataUse, DataVersion};
use keel_core::entities::*;
use keel_core::store::*;
use keel_core::{MetadataStore, Result};

use super::SqlStore;

#[async_trait::async_trait]
impl MetadataStore for SqlStore {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<String> {
        SqlStore::create_experiment(self, name, artifact_location, tags).await
    }
    async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        SqlStore::get_experiment(self, id).await
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        SqlStore::get_experiment_by_name(self, name).await
    }
    async fn search_experiments(&self, q: SearchExperiments) -> Result<Page<Experiment>> {
        SqlStore::search_experiments(self, q).await
    }
    async fn delete_experiment(&self, id: &str) -> Result<()> {
        SqlStore::delete_experiment(self, id).await
    }
    async fn restore_experiment(&self, id: &str) -> Result<()> {
        SqlStore::restore_experiment(self, id).await
    }
    async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        SqlStore::rename_experiment(self, id, new_name).await
    }
    async fn set_experiment_tag(&self, id: &str, tag: Tag) -> Result<()> {
        SqlStore::set_experiment_tag(self, id, tag).await
    }
    async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        SqlStore::delete_experiment_tag(self, id, key).await
    }
    async fn create_run(&self, req: CreateRun) -> Result<Run> {
        SqlStore::create_run(self, req).await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        SqlStore::get_run(self, run_id).await
    }
    async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        SqlStore::update_run(self, run_id, status, end_time, run_name).await
    }
    async fn delete_run(&self, run_id: &str) -> Result<()> {
        SqlStore::delete_run(self, run_id).await
    }
    async fn restore_run(&self, run_id: &str) -> Result<()> {
        SqlStore::restore_run(self, run_id).await
    }
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        params: Vec<Param>,
        tags: Vec<Tag>,
    ) -> Result<()> {
        SqlStore::log_batch(self, run_id, metrics, params, tags).await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        SqlStore::delete_tag(self, run_id, key).await
    }
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        SqlStore::log_inputs(self, run_id, datasets, models).await
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        SqlStore::log_outputs(self, run_id, models).await
    }
    async fn search_runs(&self, q: SearchRuns) -> Result<Page<Run>> {
        SqlStore::search_runs(self, q).await
    }
    async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        max_results: usize,
    ) -> Result<Page<Metric>> {
        SqlStore::metric_history(self, run_id, key, offset, max_results).await
    }
    async fn metric_history_bulk(
        &self,
        run_ids: &[String],
        key: &str,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        SqlStore::metric_history_bulk(self, run_ids, key, max_results).await
    }
    async fn create_logged_model(&self, req: CreateLoggedModel) -> Result<LoggedModel> {
        SqlStore::create_logged_model(self, req).await
    }
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        SqlStore::get_logged_model(self, model_id, allow_deleted).await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        SqlStore::finalize_logged_model(self, model_id, status).await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        SqlStore::delete_logged_model(self, model_id).await
    }
    async fn set_logged_model_tags(&self, model_id: &str, tags: Vec<Tag>) -> Result<()> {
        SqlStore::set_logged_model_tags(self, model_id, tags).await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        SqlStore::delete_logged_model_tag(self, model_id, key).await
    }
    async fn log_logged_model_params(&self, model_id: &str, params: Vec<Param>) -> Result<()> {
        SqlStore::log_logged_model_params(self, model_id, params).await
    }
    async fn search_logged_models(&self, q: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        SqlStore::search_logged_models(self, q).await
    }
    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<Tag>,
        description: &str,
    ) -> Result<RegisteredModel> {
        SqlStore::create_registered_model(self, name, tags, description).await
    }
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        SqlStore::get_registered_model(self, name).await
    }
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        SqlStore::rename_registered_model(self, name, new_name).await
    }
    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        SqlStore::update_registered_model(self, name, description).await
    }
    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        SqlStore::delete_registered_model(self, name).await
    }
    async fn search_registered_models(&self, q: SearchRegistry) -> Result<Page<RegisteredModel>> {
        SqlStore::search_registered_models(self, q).await
    }
    async fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        SqlStore::latest_versions(self, name, stages).await
    }
    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        SqlStore::set_registered_model_tag(self, name, tag).await
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        SqlStore::delete_registered_model_tag(self, name, key).await
    }
    async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        SqlStore::set_alias(self, name, alias, version).await
    }
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        SqlStore::delete_alias(self, name, alias).await
    }
    async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        SqlStore::get_version_by_alias(self, name, alias).await
    }
    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion> {
        SqlStore::create_model_version(self, req).await
    }
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        SqlStore::get_model_version(self, name, version).await
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        SqlStore::update_model_version(self, name, version, description).await
    }
    async fn transition_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        SqlStore::transition_stage(self, name, version, stage, archive_existing).await
    }
    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        SqlStore::delete_model_version(self, name, version).await
    }
    async fn search_model_versions(&self, q: SearchRegistry) -> Result<Page<ModelVersion>> {
        SqlStore::search_model_versions(self, q).await
    }
    async fn model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        SqlStore::model_version_download_uri(self, name, version).await
    }
    async fn set_model_version_tag(&self, name: &str, version: &str, tag: Tag) -> Result<()> {
        SqlStore::set_model_version_tag(self, name, version, tag).await
    }
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        SqlStore::delete_model_version_tag(self, name, version, key).await
    }
    async fn import_experiment(&self, exp: Experiment) -> Result<(String, bool)> {
        SqlStore::import_experiment(self, exp).await
    }
    async fn import_run(&self, experiment_id: &str, info: RunInfo) -> Result<(RunInfo, bool)> {
        SqlStore::import_run(self, experiment_id, info).await
    }
    async fn import_logged_model(
        &self,
        experiment_id: &str,
        info: LoggedModelInfo,
    ) -> Result<(LoggedModel, bool)> {
        SqlStore::import_logged_model(self, experiment_id, info).await
    }
    async fn import_registered_model(&self, model: RegisteredModel) -> Result<bool> {
        SqlStore::import_registered_model(self, model).await
    }
    async fn import_model_version(&self, version: ModelVersion) -> Result<bool> {
        SqlStore::import_model_version(self, version).await
    }
    async fn create_data_version(&self, v: DataVersion) -> Result<(DataVersion, bool)> {
        SqlStore::create_data_version(self, v).await
    }
    async fn get_data_version(&self, name: &str, version: Option<i64>) -> Result<DataVersion> {
        SqlStore::get_data_version(self, name, version).await
    }
    async fn list_data(&self) -> Result<Vec<DataSummary>> {
        SqlStore::list_data(self).await
    }
    async fn list_data_versions(&self, name: &str) -> Result<Vec<DataVersion>> {
        SqlStore::list_data_versions(self, name).await
    }
    async fn data_versions_by_hash(&self, hash: &str) -> Result<Vec<DataVersion>> {
        SqlStore::data_versions_by_hash(self, hash).await
    }
    async fn data_uses(&self, hash: &str) -> Result<Vec<DataUse>> {
        SqlStore::data_uses(self, hash).await
    }
    async fn search_datasets(
        &self,
        experiment_ids: &[i64],
    ) -> Result<Vec<keel_core::entities::DatasetSummary>> {
        SqlStore::search_datasets(self, experiment_ids).await
    }
    async fn ping(&self) -> Result<()> {
        let mut r = self.db.reader().await?;
        let mut c = r.conn();
        let sql = c.stmt("SELECT 1");
        c.exec(sql).await.map(|_| ())
    }
}
