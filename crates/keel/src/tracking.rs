//! How `keel train` records its run: through the MLflow REST API, on the server
//! `--tracking-uri` names or on the local stores served in-process. The run is an ordinary
//! MLflow run: params, metrics, tags, a dataset input, and artifacts under the run's artifact
//! URI.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use keel_core::entities::{
    Dataset, DatasetInput, LoggedModelStatus, Metric, ModelOutput, Param, RunStatus, Tag,
};
use serde_json::{Value, json};

use crate::client::{Client, error_code};

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

/// The tracking server a run is recorded on: a keel server, or the local stores served on a
/// loopback port (see [`crate::stores::Stores::client`]), so both take the same REST path.
pub struct Tracking<'a>(pub &'a Client);

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

/// A string field of an answer, or an error naming it.
fn field(v: &Value, what: &str) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .with_context(|| format!("the server's answer has no {what}"))
}

impl Tracking<'_> {
    /// Starts a run named `name` in the experiment `experiment` (created when missing).
    pub async fn start(&self, experiment: &str, name: &str, tags: Vec<Tag>) -> Result<RunRef> {
        let client = self.0;
        let user = crate::data::user();
        let found: Result<Value> = client
            .get(
                "experiments/get-by-name",
                &[("experiment_name", experiment.to_string())],
            )
            .await;
        let experiment_id = match found {
            Ok(v) => field(&v["experiment"]["experiment_id"], "experiment id")?,
            Err(e) if error_code(&e) == Some("RESOURCE_DOES_NOT_EXIST") => {
                let v: Value = client
                    .post("experiments/create", &json!({"name": experiment}))
                    .await?;
                field(&v["experiment_id"], "experiment id")?
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
            run_id: field(&info["run_id"], "run id")?,
            experiment_id,
            artifact_path: store_path(&field(&info["artifact_uri"], "artifact URI")?)?,
        })
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
            self.batch(run, &[], p).await?;
        }
        for m in metrics.chunks(keel_core::validate::MAX_METRICS_PER_BATCH) {
            self.batch(run, m, &[]).await?;
        }
        Ok(())
    }

    async fn batch(&self, run: &RunRef, metrics: &[Metric], params: &[Param]) -> Result<()> {
        let _: Value = self
            .0
            .post(
                "runs/log-batch",
                &json!({"run_id": run.run_id, "metrics": metrics, "params": params}),
            )
            .await?;
        Ok(())
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
        let _: Value = self
            .0
            .post(
                "runs/log-inputs",
                &json!({"run_id": run.run_id, "datasets": [input]}),
            )
            .await?;
        Ok(())
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
        self.0
            .keel_put(
                &format!("/api/2.0/mlflow-artifacts/artifacts/{base}/{rel}"),
                reqwest::Body::from(bytes),
            )
            .await
            .with_context(|| format!("cannot upload {rel}"))?;
        Ok(())
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
        let v: Value = self
            .0
            .post(
                "logged-models",
                &json!({"experiment_id": run.experiment_id, "name": name,
                    "model_type": model_type, "source_run_id": run.run_id,
                    "params": params, "tags": tags}),
            )
            .await?;
        let info = &v["model"]["info"];
        Ok(ModelRef {
            model_id: field(&info["model_id"], "model id")?,
            artifact_path: store_path(&field(&info["artifact_uri"], "artifact URI")?)?,
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
        let _: Value = self
            .0
            .patch(
                &format!("logged-models/{}", model.model_id),
                &json!({"model_id": model.model_id, "status": status.as_str()}),
            )
            .await?;
        let _: Value = self
            .0
            .post(
                "runs/outputs",
                &json!({"run_id": run.run_id, "models": [output]}),
            )
            .await?;
        Ok(())
    }

    /// Registers the logged model `model` of `run` as a new version of the registered model
    /// `name` (created when missing), with `tags`; the server lists the version in the logged
    /// model's `mlflow.modelVersions` tag, as MLflow's does. Returns the version.
    pub async fn register(
        &self,
        name: &str,
        run: &RunRef,
        model: &ModelRef,
        tags: Vec<Tag>,
    ) -> Result<String> {
        let created: Result<Value> = self
            .0
            .post("registered-models/create", &json!({"name": name}))
            .await;
        if let Err(e) = created
            && error_code(&e) != Some("RESOURCE_ALREADY_EXISTS")
        {
            return Err(e);
        }
        let v: Value = self
            .0
            .post(
                "model-versions/create",
                &json!({"name": name, "source": format!("models:/{}", model.model_id),
                    "run_id": run.run_id, "model_id": model.model_id, "tags": tags}),
            )
            .await?;
        field(&v["model_version"]["version"], "model version")
    }

    /// Ends the run as finished, or as failed.
    pub async fn finish(&self, run: &RunRef, ok: bool) -> Result<()> {
        let status = if ok {
            RunStatus::Finished
        } else {
            RunStatus::Failed
        };
        let _: Value = self
            .0
            .post(
                "runs/update",
                &json!({"run_id": run.run_id, "status": status, "end_time": now_ms()}),
            )
            .await?;
        Ok(())
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
