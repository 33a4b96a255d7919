//! The service layer: MLflow's rules and limits, applied once to every write of every caller.
//!
//! [`Service`] wraps a backend's [`MetadataStore`] and is itself one, so the HTTP handlers,
//! `keel train`, `keel data`, `keel models` and imports all reach the store through it and
//! none can skip a rule. It checks what can be checked from a request alone (names, keys,
//! lengths, batch limits; over-long param and tag values are cut as MLflow cuts them), with the
//! messages of [`crate::validate`]; the store checks what needs the stored state (existence,
//! lifecycle, write-once params, unique names and version numbers). Reads pass through.
//!
//! Fields are named in messages as MLflow's batch endpoints name them (`tags[2].key`,
//! `metrics[0].timestamp`); the single-item writes ([`RunStore::log_metric`],
//! [`RunStore::log_param`], [`RunStore::set_tag`]) name them at the root (`key`), as MLflow's
//! single-item endpoints do.

use std::sync::Arc;

use crate::data::{DataSummary, DataUse, DataValidation, DataVersion};
use crate::entities::*;
use crate::error::{Error, Result};
use crate::store::*;
use crate::validate;

/// [`MetadataStore`] with MLflow's request rules in front of a backend's.
pub struct Service {
    store: Arc<dyn MetadataStore>,
}

impl Service {
    /// The service layer over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Service { store }
    }
}

/// Applies `check` to each item with its path (`field[i]`).
fn each<T>(items: &mut [T], field: &str, check: impl Fn(&str, &mut T) -> Result<()>) -> Result<()> {
    for (i, item) in items.iter_mut().enumerate() {
        check(&format!("{field}[{i}]"), item)?;
    }
    Ok(())
}

/// A dataset input's fields within MLflow's limits (`datasets[i].dataset.name`, ...).
fn dataset_input(i: usize, d: &DatasetInput) -> Result<()> {
    let at = |f: &str| format!("datasets[{i}].dataset.{f}");
    let ds = &d.dataset;
    for (field, value, limit) in [
        ("name", &ds.name, validate::MAX_DATASET_NAME_SIZE),
        ("digest", &ds.digest, validate::MAX_DATASET_DIGEST_SIZE),
        ("source", &ds.source, validate::MAX_DATASET_SOURCE_SIZE),
    ] {
        if value.is_empty() && field != "source" {
            return Err(Error::invalid(format!(
                "Missing value for required parameter '{}'.",
                at(field)
            )));
        }
        validate::length(&at(field), value, limit)?;
    }
    validate::length(
        &at("schema"),
        ds.schema.as_deref().unwrap_or(""),
        validate::MAX_DATASET_SCHEMA_SIZE,
    )?;
    validate::length(
        &at("profile"),
        ds.profile.as_deref().unwrap_or(""),
        validate::MAX_DATASET_PROFILE_SIZE,
    )?;
    for t in &d.tags {
        validate::length(
            &format!("datasets[{i}].tags.key"),
            &t.key,
            validate::MAX_INPUT_TAG_KEY_SIZE,
        )?;
        validate::length(
            &format!("datasets[{i}].tags.value"),
            &t.value,
            validate::MAX_INPUT_TAG_VALUE_SIZE,
        )?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl ExperimentStore for Service {
    async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<String> {
        validate::experiment_name(name)?;
        for t in &tags {
            validate::experiment_tag(t)?;
        }
        self.store
            .create_experiment(name, artifact_location, tags)
            .await
    }
    async fn get_experiment(&self, id: &str) -> Result<Experiment> {
        self.store.get_experiment(id).await
    }
    async fn get_experiment_by_name(&self, name: &str) -> Result<Option<Experiment>> {
        self.store.get_experiment_by_name(name).await
    }
    async fn search_experiments(&self, q: SearchExperiments) -> Result<Page<Experiment>> {
        self.store.search_experiments(q).await
    }
    async fn delete_experiment(&self, id: &str) -> Result<()> {
        self.store.delete_experiment(id).await
    }
    async fn restore_experiment(&self, id: &str) -> Result<()> {
        self.store.restore_experiment(id).await
    }
    async fn rename_experiment(&self, id: &str, new_name: &str) -> Result<()> {
        validate::experiment_name(new_name)?;
        self.store.rename_experiment(id, new_name).await
    }
    async fn set_experiment_tag(&self, id: &str, tag: Tag) -> Result<()> {
        validate::experiment_tag(&tag)?;
        self.store.set_experiment_tag(id, tag).await
    }
    async fn delete_experiment_tag(&self, id: &str, key: &str) -> Result<()> {
        self.store.delete_experiment_tag(id, key).await
    }
}

#[async_trait::async_trait]
impl RunStore for Service {
    async fn create_run(&self, mut req: CreateRun) -> Result<Run> {
        each(&mut req.tags, "tags", validate::tag)?;
        if let Some(name) = &req.run_name {
            validate::run_name(name)?;
        }
        self.store.create_run(req).await
    }
    async fn get_run(&self, run_id: &str) -> Result<Run> {
        self.store.get_run(run_id).await
    }
    async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        if let Some(name) = &run_name {
            validate::run_name(name)?;
        }
        self.store
            .update_run(run_id, status, end_time, run_name)
            .await
    }
    async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.store.delete_run(run_id).await
    }
    async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.store.restore_run(run_id).await
    }
    async fn log_batch(
        &self,
        run_id: &str,
        metrics: Vec<Metric>,
        mut params: Vec<Param>,
        mut tags: Vec<Tag>,
    ) -> Result<()> {
        validate::batch_limits(metrics.len(), params.len(), tags.len())?;
        for (i, m) in metrics.iter().enumerate() {
            validate::metric(&format!("metrics[{i}]"), m)?;
        }
        each(&mut params, "params", validate::param)?;
        validate::unique_param_keys(&params)?;
        each(&mut tags, "tags", validate::tag)?;
        self.store.log_batch(run_id, metrics, params, tags).await
    }
    async fn log_metric(&self, run_id: &str, metric: Metric) -> Result<()> {
        validate::metric("", &metric)?;
        self.store
            .log_batch(run_id, vec![metric], Vec::new(), Vec::new())
            .await
    }
    async fn log_param(&self, run_id: &str, mut param: Param) -> Result<()> {
        validate::param("", &mut param)?;
        self.store
            .log_batch(run_id, Vec::new(), vec![param], Vec::new())
            .await
    }
    async fn set_tag(&self, run_id: &str, mut tag: Tag) -> Result<()> {
        validate::tag("", &mut tag)?;
        self.store
            .log_batch(run_id, Vec::new(), Vec::new(), vec![tag])
            .await
    }
    async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        self.store.delete_tag(run_id, key).await
    }
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: Vec<DatasetInput>,
        models: Vec<ModelInput>,
    ) -> Result<()> {
        if datasets.len() > validate::MAX_DATASETS_PER_BATCH {
            return Err(Error::invalid(format!(
                "A batch logging request can contain at most {} datasets.",
                validate::MAX_DATASETS_PER_BATCH
            )));
        }
        for (i, d) in datasets.iter().enumerate() {
            dataset_input(i, d)?;
        }
        self.store.log_inputs(run_id, datasets, models).await
    }
    async fn log_outputs(&self, run_id: &str, models: Vec<ModelOutput>) -> Result<()> {
        self.store.log_outputs(run_id, models).await
    }
    async fn search_runs(&self, q: SearchRuns) -> Result<Page<Run>> {
        self.store.search_runs(q).await
    }
    async fn metric_history(
        &self,
        run_id: &str,
        key: &str,
        offset: u64,
        max_results: usize,
    ) -> Result<Page<Metric>> {
        self.store
            .metric_history(run_id, key, offset, max_results)
            .await
    }
    async fn metric_buckets(
        &self,
        run_id: &str,
        key: &str,
        range: (Option<i64>, Option<i64>),
        buckets: usize,
    ) -> Result<crate::buckets::Series> {
        if buckets == 0 || buckets > crate::buckets::MAX_BUCKETS {
            return Err(Error::invalid(format!(
                "buckets must be between 1 and {}, got {buckets}",
                crate::buckets::MAX_BUCKETS
            )));
        }
        self.store.metric_buckets(run_id, key, range, buckets).await
    }
    async fn metric_history_bulk(
        &self,
        run_ids: &[String],
        key: &str,
        max_results: usize,
    ) -> Result<Vec<Metric>> {
        self.store
            .metric_history_bulk(run_ids, key, max_results)
            .await
    }
}

#[async_trait::async_trait]
impl LoggedModelStore for Service {
    async fn create_logged_model(&self, mut req: CreateLoggedModel) -> Result<LoggedModel> {
        each(&mut req.params, "params", validate::param)?;
        each(&mut req.tags, "tags", validate::tag)?;
        if let Some(name) = &req.name {
            validate::logged_model_name(name)?;
        }
        self.store.create_logged_model(req).await
    }
    async fn get_logged_model(&self, model_id: &str, allow_deleted: bool) -> Result<LoggedModel> {
        self.store.get_logged_model(model_id, allow_deleted).await
    }
    async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        self.store.finalize_logged_model(model_id, status).await
    }
    async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.store.delete_logged_model(model_id).await
    }
    async fn set_logged_model_tags(&self, model_id: &str, mut tags: Vec<Tag>) -> Result<()> {
        each(&mut tags, "tags", validate::tag)?;
        self.store.set_logged_model_tags(model_id, tags).await
    }
    async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.store.delete_logged_model_tag(model_id, key).await
    }
    async fn log_logged_model_params(&self, model_id: &str, mut params: Vec<Param>) -> Result<()> {
        each(&mut params, "params", validate::param)?;
        self.store.log_logged_model_params(model_id, params).await
    }
    async fn search_logged_models(&self, q: SearchLoggedModels) -> Result<Page<LoggedModel>> {
        self.store.search_logged_models(q).await
    }
}

#[async_trait::async_trait]
impl RegistryStore for Service {
    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<Tag>,
        description: &str,
    ) -> Result<RegisteredModel> {
        validate::model_name(name)?;
        for t in &tags {
            validate::registry_tag(t)?;
        }
        self.store
            .create_registered_model(name, tags, description)
            .await
    }
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        self.store.get_registered_model(name).await
    }
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel> {
        validate::model_name(new_name)?;
        self.store.rename_registered_model(name, new_name).await
    }
    async fn update_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        self.store.update_registered_model(name, description).await
    }
    async fn delete_registered_model(&self, name: &str) -> Result<()> {
        self.store.delete_registered_model(name).await
    }
    async fn search_registered_models(&self, q: SearchRegistry) -> Result<Page<RegisteredModel>> {
        self.store.search_registered_models(q).await
    }
    async fn latest_versions(&self, name: &str, stages: &[String]) -> Result<Vec<ModelVersion>> {
        self.store.latest_versions(name, stages).await
    }
    async fn set_registered_model_tag(&self, name: &str, tag: Tag) -> Result<()> {
        validate::registry_tag(&tag)?;
        self.store.set_registered_model_tag(name, tag).await
    }
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        self.store.delete_registered_model_tag(name, key).await
    }
    async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<()> {
        validate::alias(alias)?;
        self.store.set_alias(name, alias, version).await
    }
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.store.delete_alias(name, alias).await
    }
    async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        self.store.get_version_by_alias(name, alias).await
    }
    async fn alias_history(&self, name: &str) -> Result<Vec<AliasChange>> {
        self.store.alias_history(name).await
    }
    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion> {
        for t in &req.tags {
            validate::registry_tag(t)?;
        }
        self.store.create_model_version(req).await
    }
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        self.store.get_model_version(name, version).await
    }
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: &str,
    ) -> Result<ModelVersion> {
        self.store
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
        self.store
            .transition_stage(name, version, stage, archive_existing)
            .await
    }
    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        self.store.delete_model_version(name, version).await
    }
    async fn search_model_versions(&self, q: SearchRegistry) -> Result<Page<ModelVersion>> {
        self.store.search_model_versions(q).await
    }
    async fn model_version_download_uri(&self, name: &str, version: &str) -> Result<String> {
        self.store.model_version_download_uri(name, version).await
    }
    async fn set_model_version_tag(&self, name: &str, version: &str, tag: Tag) -> Result<()> {
        validate::registry_tag(&tag)?;
        self.store.set_model_version_tag(name, version, tag).await
    }
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()> {
        self.store
            .delete_model_version_tag(name, version, key)
            .await
    }
}

/// Imported entities were accepted under these rules by the server or store they come from;
/// the store checks their ids and what must be unique.
#[async_trait::async_trait]
impl ImportStore for Service {
    async fn import_experiment(&self, exp: Experiment) -> Result<(String, bool)> {
        self.store.import_experiment(exp).await
    }
    async fn import_run(&self, experiment_id: &str, info: RunInfo) -> Result<(RunInfo, bool)> {
        self.store.import_run(experiment_id, info).await
    }
    async fn import_logged_model(
        &self,
        experiment_id: &str,
        info: LoggedModelInfo,
    ) -> Result<(LoggedModel, bool)> {
        self.store.import_logged_model(experiment_id, info).await
    }
    async fn import_registered_model(&self, model: RegisteredModel) -> Result<bool> {
        self.store.import_registered_model(model).await
    }
    async fn import_model_version(&self, version: ModelVersion) -> Result<bool> {
        self.store.import_model_version(version).await
    }
}

#[async_trait::async_trait]
impl DataStore for Service {
    async fn create_data_version(&self, v: DataVersion) -> Result<(DataVersion, bool)> {
        crate::data::validate_version(&v)?;
        self.store.create_data_version(v).await
    }
    async fn get_data_version(&self, name: &str, version: Option<i64>) -> Result<DataVersion> {
        crate::data::validate_name(name)?;
        self.store.get_data_version(name, version).await
    }
    async fn list_data(&self) -> Result<Vec<DataSummary>> {
        self.store.list_data().await
    }
    async fn list_data_versions(&self, name: &str) -> Result<Vec<DataVersion>> {
        crate::data::validate_name(name)?;
        self.store.list_data_versions(name).await
    }
    async fn data_versions_by_hash(&self, hash: &str) -> Result<Vec<DataVersion>> {
        self.store.data_versions_by_hash(hash).await
    }
    async fn data_uses(&self, hash: &str) -> Result<Vec<DataUse>> {
        self.store.data_uses(hash).await
    }
    async fn search_datasets(&self, experiment_ids: &[i64]) -> Result<Vec<DatasetSummary>> {
        self.store.search_datasets(experiment_ids).await
    }
    async fn record_validation(&self, v: DataValidation) -> Result<DataValidation> {
        crate::data::validate_validation(&v)?;
        self.store.record_validation(v).await
    }
    async fn list_validations(&self, name: &str, version: i64) -> Result<Vec<DataValidation>> {
        crate::data::validate_name(name)?;
        self.store.list_validations(name, version).await
    }
}

/// A username keel accepts: 1 to 256 characters, none of them a control character, a colon
/// (HTTP Basic credentials split at the first one) or whitespace at either end.
fn username(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("Username and password cannot be empty."));
    }
    validate::length("username", name, 256)?;
    if name.chars().any(|c| c.is_control() || c == ':') || name.trim() != name {
        return Err(Error::invalid(format!(
            "Invalid value '{name}' for parameter 'username': a username may not hold ':', control characters or surrounding spaces"
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl crate::auth::AuthStore for Service {
    async fn create_user(
        &self,
        name: &str,
        password_hash: Option<&str>,
        is_admin: bool,
    ) -> Result<crate::auth::User> {
        username(name)?;
        self.store.create_user(name, password_hash, is_admin).await
    }
    async fn user_credentials(
        &self,
        name: &str,
    ) -> Result<Option<(crate::auth::User, Option<String>)>> {
        self.store.user_credentials(name).await
    }
    async fn get_user(&self, name: &str) -> Result<crate::auth::User> {
        self.store.get_user(name).await
    }
    async fn list_users(&self) -> Result<Vec<crate::auth::User>> {
        self.store.list_users().await
    }
    async fn update_user_password(&self, name: &str, password_hash: &str) -> Result<()> {
        self.store.update_user_password(name, password_hash).await
    }
    async fn update_user_admin(&self, name: &str, is_admin: bool) -> Result<()> {
        self.store.update_user_admin(name, is_admin).await
    }
    async fn delete_user(&self, name: &str) -> Result<()> {
        self.store.delete_user(name).await
    }
    async fn count_users(&self) -> Result<u64> {
        self.store.count_users().await
    }
    async fn put_grant(
        &self,
        resource: &crate::auth::Resource,
        name: &str,
        permission: crate::auth::Permission,
        mode: crate::auth::GrantWrite,
    ) -> Result<crate::auth::Grant> {
        if let crate::auth::Resource::Experiment(id) = resource {
            validate::experiment_id(id)?;
        }
        self.store.put_grant(resource, name, permission, mode).await
    }
    async fn get_grant(
        &self,
        resource: &crate::auth::Resource,
        name: &str,
    ) -> Result<crate::auth::Grant> {
        self.store.get_grant(resource, name).await
    }
    async fn delete_grant(&self, resource: &crate::auth::Resource, name: &str) -> Result<()> {
        self.store.delete_grant(resource, name).await
    }
    async fn resolve(
        &self,
        user_id: i64,
        subject: &crate::auth::Subject,
    ) -> Result<Option<(crate::auth::Resource, Option<crate::auth::Permission>)>> {
        self.store.resolve(user_id, subject).await
    }
    async fn list_grants(&self, name: &str) -> Result<Vec<crate::auth::Grant>> {
        self.store.list_grants(name).await
    }
    async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<crate::auth::Role> {
        if name.trim().is_empty() {
            return Err(Error::invalid(
                "Missing value for required parameter 'name'.",
            ));
        }
        validate::length("name", name, 256)?;
        self.store.create_role(name, description).await
    }
    async fn get_role(&self, id: i64) -> Result<crate::auth::Role> {
        self.store.get_role(id).await
    }
    async fn list_roles(&self) -> Result<Vec<crate::auth::Role>> {
        self.store.list_roles().await
    }
    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<crate::auth::Role> {
        if let Some(name) = name {
            validate::length("name", name, 256)?;
        }
        self.store.update_role(id, name, description).await
    }
    async fn delete_role(&self, id: i64) -> Result<()> {
        self.store.delete_role(id).await
    }
    async fn add_role_permission(
        &self,
        role_id: i64,
        resource_type: &str,
        pattern: &str,
        permission: crate::auth::Permission,
    ) -> Result<crate::auth::RolePermission> {
        crate::auth::RolePermission::validate(resource_type, pattern)?;
        self.store
            .add_role_permission(role_id, resource_type, pattern, permission)
            .await
    }
    async fn update_role_permission(
        &self,
        id: i64,
        permission: crate::auth::Permission,
    ) -> Result<crate::auth::RolePermission> {
        self.store.update_role_permission(id, permission).await
    }
    async fn remove_role_permission(&self, id: i64) -> Result<()> {
        self.store.remove_role_permission(id).await
    }
    async fn assign_role(&self, name: &str, role_id: i64) -> Result<crate::auth::RoleAssignment> {
        self.store.assign_role(name, role_id).await
    }
    async fn unassign_role(&self, name: &str, role_id: i64) -> Result<()> {
        self.store.unassign_role(name, role_id).await
    }
    async fn user_roles(&self, name: &str) -> Result<Vec<crate::auth::Role>> {
        self.store.user_roles(name).await
    }
    async fn role_users(&self, role_id: i64) -> Result<Vec<crate::auth::RoleAssignment>> {
        self.store.role_users(role_id).await
    }
    async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf: &str,
        expiration_time: i64,
    ) -> Result<()> {
        self.store
            .create_session(id_hash, user_id, csrf, expiration_time)
            .await
    }
    async fn session(&self, id_hash: &str) -> Result<Option<crate::auth::Session>> {
        self.store.session(id_hash).await
    }
    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        self.store.delete_session(id_hash).await
    }
    async fn create_token(&self, token: crate::auth::NewToken) -> Result<crate::auth::AccessToken> {
        validate::length("name", &token.name, 256)?;
        self.store.create_token(token).await
    }
    async fn token(&self, id: &str) -> Result<Option<(crate::auth::AccessToken, String)>> {
        self.store.token(id).await
    }
    async fn list_tokens(&self, user_id: i64) -> Result<Vec<crate::auth::AccessToken>> {
        self.store.list_tokens(user_id).await
    }
    async fn revoke_token(&self, id: &str, user_id: Option<i64>) -> Result<()> {
        self.store.revoke_token(id, user_id).await
    }
}

#[async_trait::async_trait]
impl crate::audit::AuditStore for Service {
    async fn enable_audit(&self) -> Result<()> {
        self.store.enable_audit().await
    }
    async fn audit_enabled(&self) -> Result<bool> {
        self.store.audit_enabled().await
    }
    async fn audit_entries(&self, f: crate::audit::Filter) -> Result<Vec<crate::audit::Entry>> {
        self.store.audit_entries(f).await
    }
    async fn audit_head(&self) -> Result<Option<crate::audit::Head>> {
        self.store.audit_head().await
    }
    async fn audit_record(
        &self,
        subject: crate::audit::Subject,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<()> {
        self.store.audit_record(subject, before, after).await
    }
}

#[async_trait::async_trait]
impl crate::approval::ApprovalStore for Service {
    async fn protect_alias(
        &self,
        p: crate::approval::Protection,
    ) -> Result<crate::approval::Protection> {
        self.store.protect_alias(p).await
    }
    async fn unprotect_alias(&self, name: &str, alias: &str) -> Result<()> {
        self.store.unprotect_alias(name, alias).await
    }
    async fn protections(&self, name: Option<&str>) -> Result<Vec<crate::approval::Protection>> {
        self.store.protections(name).await
    }
    async fn request_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        requested_by: &str,
        reason: &str,
    ) -> Result<crate::approval::AliasRequest> {
        crate::validate::alias(alias)?;
        self.store
            .request_alias(name, alias, version, requested_by, reason)
            .await
    }
    async fn alias_request(&self, id: i64) -> Result<crate::approval::AliasRequest> {
        self.store.alias_request(id).await
    }
    async fn alias_requests(
        &self,
        name: Option<&str>,
        state: Option<crate::approval::RequestState>,
    ) -> Result<Vec<crate::approval::AliasRequest>> {
        self.store.alias_requests(name, state).await
    }
    async fn decide_alias_request(
        &self,
        id: i64,
        decided_by: &str,
        approve: bool,
        gates: Option<serde_json::Value>,
        comment: &str,
    ) -> Result<crate::approval::AliasRequest> {
        self.store
            .decide_alias_request(id, decided_by, approve, gates, comment)
            .await
    }
}

#[async_trait::async_trait]
impl MetadataStore for Service {
    async fn ping(&self) -> Result<()> {
        self.store.ping().await
    }
}
