//! Where `keel train` records its run: the local stores, or a tracking server through the
//! MLflow REST API (`--tracking-uri`). Either way the run is an ordinary MLflow run: params,
//! metrics, tags, a dataset input, and artifacts under the run's artifact URI.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use keel_core::entities::{
    Dataset, DatasetInput, LoggedModelStatus, Metric, ModelOutput, Param, RunStatus, Tag,
};
use keel_core::store::{CreateLoggedModel, CreateModelVersion, CreateRun};
use keel_core::{ArtifactPath, ArtifactStore, MetadataStore};
use serde_json::{Value, json};

use crate::client::Client;

/// A run being recorded.
pub struct RunRef {
    /// Run id.
    pub run_id: String,
    /// Experiment id.
    pub experiment_id: String,
    /// Where its artifacts go, as a store path (`<experiment>/<run>/artifacts`).
    artifact_path: String,
}

/// A logged model (MLflow 3) being recorded: its files live under its own artifact location.
pub struct ModelRef {
    /// Its id (`m-...`).
    pub model_id: String,
    /// Where its files go, as a store path (`<experiment>/models/<id>/artifacts`).
    artifact_path: String,
}

/// The stores or server a run is recorded in.
pub enum Tracking<'a> {
    /// The local metadata and artifact stores.
    Local {
        meta: Arc<dyn MetadataStore>,
        artifacts: Arc<dyn ArtifactStore>,
    },
    /// A tracking server.
    Remote(&'a Client),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The store path behind an artifact URI of keel's proxied scheme
/// (`mlflow-artifacts:/1/<run>/artifacts`, or with a `//host:port` part).
fn store_path(uri: &str) -> Result<String> {
    match keel_core::artifact::proxied_path(uri) {
        Some(path) => Ok(path?.as_str().to_string()),
        None => bail!("the run's artifact location {uri} is not in keel's artifact store"),
    }
}

impl Tracking<'_> {
    /// Starts a run named `name` in the experiment `experiment` (created when missing).
    pub async fn start(&self, experiment: &str, name: &str, tags: Vec<Tag>) -> Result<RunRef> {
        let user = crate::data::user();
        match self {
            Tracking::Local { meta, .. } => {
                let experiment_id = match meta.get_experiment_by_name(experiment).await? {
                    Some(e) => e.experiment_id,
                    None => meta.create_experiment(experiment, None, Vec::new()).await?,
                };
                let mut all = tags;
                all.push(Tag {
                    key: "mlflow.user".into(),
                    value: user.clone(),
                });
                let run = meta
                    .create_run(CreateRun {
                        experiment_id: experiment_id.clone(),
                        user_id: user,
                        start_time: now_ms(),
                        run_name: Some(name.to_string()),
                        tags: all,
                    })
                    .await?;
                Ok(RunRef {
                    run_id: run.info.run_id.clone(),
                    experiment_id,
                    artifact_path: store_path(&run.info.artifact_uri)?,
                })
            }
            Tracking::Remote(client) => {
                let found: Result<Value> = client
                    .get(
                        "experiments/get-by-name",
                        &[("experiment_name", experiment.to_string())],
                    )
                    .await;
                let experiment_id = match found {
                    Ok(v) => v["experiment"]["experiment_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    Err(e) if e.to_string().contains("RESOURCE_DOES_NOT_EXIST") => {
                        let v: Value = client
                            .post("experiments/create", &json!({"name": experiment}))
                            .await?;
                        v["experiment_id"].as_str().unwrap_or_default().to_string()
                    }
                    Err(e) => return Err(e),
                };
                let mut all: Vec<Value> = tags
                    .iter()
                    .map(|t| json!({"key": t.key, "value": t.value}))
                    .collect();
                all.push(json!({"key": "mlflow.user", "value": user}));
                let v: Value = client
                    .post(
                        "runs/create",
                        &json!({"experiment_id": experiment_id, "run_name": name,
                            "start_time": now_ms(), "user_id": user, "tags": all}),
                    )
                    .await?;
                let info = &v["run"]["info"];
                Ok(RunRef {
                    run_id: info["run_id"].as_str().unwrap_or_default().to_string(),
                    experiment_id,
                    artifact_path: store_path(info["artifact_uri"].as_str().unwrap_or_default())?,
                })
            }
        }
    }

    /// Logs params and metrics (`(key, value, step)`), in batches within MLflow's limits; the
    /// metrics are linked to the logged model `model` when given.
    pub async fn log(
        &self,
        run: &RunRef,
        params: Vec<(String, String)>,
        metrics: Vec<(String, f64, i64)>,
        model: Option<&ModelRef>,
    ) -> Result<()> {
        let ts = now_ms();
        let params: Vec<Param> = params
            .into_iter()
            .map(|(key, value)| Param { key, value })
            .collect();
        let metrics: Vec<Metric> = metrics
            .into_iter()
            .map(|(key, value, step)| Metric {
                key,
                value,
                timestamp: ts,
                step,
                run_id: None,
                dataset_name: None,
                dataset_digest: None,
                model_id: model.map(|m| m.model_id.clone()),
            })
            .collect();
        // MLflow's limits per `log-batch` request.
        for p in params.chunks(keel_core::validate::MAX_PARAMS_TAGS_PER_BATCH) {
            self.batch(run, Vec::new(), p.to_vec()).await?;
        }
        for m in metrics.chunks(keel_core::validate::MAX_METRICS_PER_BATCH) {
            self.batch(run, m.to_vec(), Vec::new()).await?;
        }
        Ok(())
    }

    async fn batch(&self, run: &RunRef, metrics: Vec<Metric>, params: Vec<Param>) -> Result<()> {
        match self {
            Tracking::Local { meta, .. } => Ok(meta
                .log_batch(&run.run_id, metrics, params, Vec::new())
                .await?),
            Tracking::Remote(client) => {
                let _: Value = client
                    .post(
                        "runs/log-batch",
                        &json!({"run_id": run.run_id, "metrics": metrics, "params": params}),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Records `dataset` as the run's input in `context` (`training`).
    pub async fn log_dataset(&self, run: &RunRef, dataset: Dataset, context: &str) -> Result<()> {
        let input = DatasetInput {
            tags: vec![Tag {
                key: "mlflow.data.context".into(),
                value: context.into(),
            }],
            dataset,
        };
        match self {
            Tracking::Local { meta, .. } => Ok(meta
                .log_inputs(&run.run_id, vec![input], Vec::new())
                .await?),
            Tracking::Remote(client) => {
                let _: Value = client
                    .post(
                        "runs/log-inputs",
                        &json!({"run_id": run.run_id, "datasets": [input]}),
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// Stores `bytes` as the run's artifact `rel` (`charts/roc.svg`).
    pub async fn upload(&self, run: &RunRef, rel: &str, bytes: Vec<u8>) -> Result<()> {
        self.put(&run.artifact_path, rel, bytes).await
    }

    /// Stores `bytes` as the logged model's file `rel` (`MLmodel`).
    pub async fn upload_model(&self, model: &ModelRef, rel: &str, bytes: Vec<u8>) -> Result<()> {
        self.put(&model.artifact_path, rel, bytes).await
    }

    async fn put(&self, base: &str, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let path = format!("{base}/{rel}");
        match self {
            Tracking::Local { artifacts, .. } => {
                let p = ArtifactPath::parse(&path)?;
                let body = futures::stream::once(async move { Ok(bytes::Bytes::from(bytes)) });
                artifacts.put(&p, Box::pin(body)).await?;
                Ok(())
            }
            Tracking::Remote(client) => {
                client
                    .keel_put(
                        &format!("/api/2.0/mlflow-artifacts/artifacts/{path}"),
                        reqwest::Body::from(bytes),
                    )
                    .await
                    .with_context(|| format!("cannot upload {rel}"))?;
                Ok(())
            }
        }
    }

    /// Creates the logged model `name` of `run` (pending until [`Tracking::finish_model`]),
    /// with the run's params and `tags`.
    pub async fn create_model(
        &self,
        run: &RunRef,
        name: &str,
        model_type: &str,
        params: &[(String, String)],
        tags: Vec<Tag>,
    ) -> Result<ModelRef> {
        let params: Vec<Param> = params
            .iter()
            .map(|(key, value)| Param {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        let (model_id, location) = match self {
            Tracking::Local { meta, .. } => {
                let m = meta
                    .create_logged_model(CreateLoggedModel {
                        experiment_id: run.experiment_id.clone(),
                        name: Some(name.to_string()),
                        model_type: model_type.to_string(),
                        source_run_id: run.run_id.clone(),
                        params,
                        tags,
                    })
                    .await?;
                (m.info.model_id, m.info.artifact_uri)
            }
            Tracking::Remote(client) => {
                let v: Value = client
                    .post(
                        "logged-models",
                        &json!({"experiment_id": run.experiment_id, "name": name,
                            "model_type": model_type, "source_run_id": run.run_id,
                            "params": params, "tags": tags}),
                    )
                    .await?;
                let info = &v["model"]["info"];
                (
                    info["model_id"].as_str().unwrap_or_default().to_string(),
                    info["artifact_uri"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            }
        };
        Ok(ModelRef {
            model_id,
            artifact_path: store_path(&location)?,
        })
    }

    /// Marks the logged model ready (or failed to upload) and records it as the run's output.
    pub async fn finish_model(&self, run: &RunRef, model: &ModelRef, ok: bool) -> Result<()> {
        let status = if ok {
            LoggedModelStatus::Ready
        } else {
            LoggedModelStatus::UploadFailed
        };
        let output = ModelOutput {
            model_id: model.model_id.clone(),
            step: 0,
        };
        match self {
            Tracking::Local { meta, .. } => {
                meta.finalize_logged_model(&model.model_id, status).await?;
                meta.log_outputs(&run.run_id, vec![output]).await?;
            }
            Tracking::Remote(client) => {
                let _: Value = client
                    .patch(
                        &format!("logged-models/{}", model.model_id),
                        &json!({"model_id": model.model_id, "status": status.as_str()}),
                    )
                    .await?;
                let _: Value = client
                    .post(
                        "runs/outputs",
                        &json!({"run_id": run.run_id, "models": [output]}),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Registers the logged model `model` of `run` as a new version of the registered model
    /// `name` (created when missing), with `tags`, and lists the version in the logged model's
    /// `mlflow.modelVersions` tag (a server does that itself, as MLflow's does); returns the version.
    pub async fn register(
        &self,
        name: &str,
        run: &RunRef,
        model: &ModelRef,
        tags: Vec<Tag>,
    ) -> Result<String> {
        let source = format!("models:/{}", model.model_id);
        let version = match self {
            Tracking::Local { meta, .. } => {
                if let Err(e) = meta.get_registered_model(name).await {
                    if e.code != keel_core::ErrorCode::ResourceDoesNotExist {
                        return Err(e.into());
                    }
                    meta.create_registered_model(name, Vec::new(), "").await?;
                }
                let lineage = keel_core::version_source::resolve(
                    meta.as_ref(),
                    &source,
                    Some(&run.run_id),
                    Some(&model.model_id),
                )
                .await?;
                let created = meta
                    .create_model_version(CreateModelVersion {
                        name: name.to_string(),
                        source: lineage.source,
                        run_id: lineage.run_id,
                        run_link: String::new(),
                        description: String::new(),
                        model_id: lineage.model_id,
                        tags,
                    })
                    .await?;
                keel_core::version_source::list_version_on_model(
                    meta.as_ref(),
                    &model.model_id,
                    name,
                    &created.version,
                )
                .await?;
                created.version
            }
            Tracking::Remote(client) => {
                let created: Result<Value> = client
                    .post("registered-models/create", &json!({"name": name}))
                    .await;
                if let Err(e) = created
                    && !e.to_string().contains("RESOURCE_ALREADY_EXISTS")
                {
                    return Err(e);
                }
                let v: Value = client
                    .post(
                        "model-versions/create",
                        &json!({"name": name, "source": source, "run_id": run.run_id,
                            "model_id": model.model_id, "tags": tags}),
                    )
                    .await?;
                v["model_version"]["version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
        };
        Ok(version)
    }

    /// Ends the run as finished, or as failed.
    pub async fn finish(&self, run: &RunRef, ok: bool) -> Result<()> {
        let status = if ok {
            RunStatus::Finished
        } else {
            RunStatus::Failed
        };
        match self {
            Tracking::Local { meta, .. } => {
                meta.update_run(&run.run_id, Some(status), Some(now_ms()), None)
                    .await?;
                Ok(())
            }
            Tracking::Remote(client) => {
                let _: Value = client
                    .post(
                        "runs/update",
                        &json!({"run_id": run.run_id, "status": status, "end_time": now_ms()}),
                    )
                    .await?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_map_to_store_paths() {
        assert_eq!(
            store_path("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            "1/abc/artifacts"
        );
        assert_eq!(
            store_path("mlflow-artifacts://host:5000/1/abc/artifacts").unwrap(),
            "1/abc/artifacts"
        );
        {
            let e = store_path("s3://bucket/1/abc")
                .expect_err("an error")
                .to_string();
            assert!(e.contains("is not in keel's artifact store"), "{e}");
        }
    }
}
