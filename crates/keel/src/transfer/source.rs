//! What an import reads, and the reader of a running MLflow tracking server (through its REST
//! API): every experiment, run, metric history, logged model, registered model and version, and
//! the bytes of their artifacts. The `Src*` types follow MLflow's JSON shapes, which keel's
//! export folder uses too.

use anyhow::{Context, Result};
use keel_core::artifact::ByteStream;
use keel_core::entities::{Dataset, DatasetInput, Tag};
use keel_server::wire::{f64_lenient, i64_lenient, string_lenient};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client::Client;

/// Page size for searches and histories.
const PAGE: u32 = 1000;

/// Where an import reads from.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// For messages: the URL or folder.
    fn describe(&self) -> String;
    /// Every experiment, deleted ones included.
    async fn experiments(&self) -> Result<Vec<SrcExperiment>>;
    async fn runs(&self, experiment_id: &str) -> Result<Vec<SrcRun>>;
    /// Every value of the given metrics of a run.
    async fn histories(&self, run_id: &str, keys: &[String]) -> Result<Vec<SrcMetric>>;
    /// The logged models of some experiments.
    async fn logged_models(&self, experiment_ids: &[String]) -> Result<Vec<SrcLoggedModel>>;
    async fn registered_models(&self) -> Result<Vec<SrcRegisteredModel>>;
    async fn model_versions(&self, name: &str) -> Result<Vec<SrcModelVersion>>;
    /// Every file (not folder) under a run's artifact root, relative to it.
    async fn run_files(&self, run_id: &str) -> Result<Vec<String>>;
    /// The bytes of one run artifact, streamed.
    async fn run_file(&self, run_id: &str, path: &str) -> Result<ByteStream>;
    /// Every file under a logged model's artifact root, relative to it.
    async fn model_files(&self, model_id: &str) -> Result<Vec<String>>;
    /// The bytes of one logged-model artifact, streamed.
    async fn model_file(&self, model_id: &str, path: &str) -> Result<ByteStream>;
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcExperiment {
    pub experiment_id: String,
    pub name: String,
    #[serde(default)]
    pub lifecycle_stage: String,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub creation_time: Option<i64>,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub last_update_time: Option<i64>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcRunInfo {
    pub run_id: String,
    #[serde(default)]
    pub run_name: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub start_time: Option<i64>,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub lifecycle_stage: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcMetric {
    pub key: String,
    #[serde(default, deserialize_with = "f64_lenient")]
    pub value: Option<f64>,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub timestamp: Option<i64>,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub step: Option<i64>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub dataset_name: Option<String>,
    #[serde(default)]
    pub dataset_digest: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SrcRunData {
    #[serde(default)]
    pub metrics: Vec<SrcMetric>,
    #[serde(default)]
    pub params: Vec<Tag>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcDatasetInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub dataset: SrcDataset,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcDataset {
    pub name: String,
    pub digest: String,
    #[serde(default)]
    pub source_type: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
}

impl SrcDatasetInput {
    pub fn into_input(self) -> DatasetInput {
        DatasetInput {
            tags: self.tags,
            dataset: Dataset {
                name: self.dataset.name,
                digest: self.dataset.digest,
                source_type: self.dataset.source_type,
                source: self.dataset.source,
                schema: self.dataset.schema,
                profile: self.dataset.profile,
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcModelRef {
    pub model_id: String,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub step: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SrcRunInputs {
    #[serde(default)]
    pub dataset_inputs: Vec<SrcDatasetInput>,
    #[serde(default)]
    pub model_inputs: Vec<SrcModelRef>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SrcRunOutputs {
    #[serde(default)]
    pub model_outputs: Vec<SrcModelRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcRun {
    pub info: SrcRunInfo,
    #[serde(default)]
    pub data: SrcRunData,
    #[serde(default)]
    pub inputs: SrcRunInputs,
    #[serde(default)]
    pub outputs: SrcRunOutputs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcLoggedModelInfo {
    pub model_id: String,
    pub experiment_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub creation_timestamp_ms: Option<i64>,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub last_updated_timestamp_ms: Option<i64>,
    #[serde(default, deserialize_with = "string_lenient")]
    pub status: Option<String>,
    #[serde(default)]
    pub model_type: String,
    #[serde(default)]
    pub source_run_id: String,
    #[serde(default)]
    pub status_message: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SrcLoggedModelData {
    #[serde(default)]
    pub params: Vec<Tag>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcLoggedModel {
    pub info: SrcLoggedModelInfo,
    #[serde(default)]
    pub data: SrcLoggedModelData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcAlias {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcRegisteredModel {
    pub name: String,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub creation_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub last_updated_timestamp: Option<i64>,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub aliases: Vec<SrcAlias>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SrcModelVersion {
    pub name: String,
    pub version: String,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub creation_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub last_updated_timestamp: Option<i64>,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub current_stage: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub status_message: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub run_link: String,
    #[serde(default)]
    pub model_id: String,
}

/// One entry of an artifact listing; `path` is relative to the run's (or model's) root.
#[derive(Debug, Clone, Deserialize)]
pub struct SrcFile {
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
}

/// Reads from one MLflow server.
pub struct MlflowSource {
    client: Client,
}

/// One paged MLflow call: the request without its page token.
enum Call<'a> {
    Get(&'a str, Vec<(&'static str, String)>),
    Post(&'a str, Value),
}

impl MlflowSource {
    pub fn new(url: &str) -> Result<Self> {
        Ok(MlflowSource {
            client: Client::new(url).context("--from-mlflow")?,
        })
    }

    /// Follows `next_page_token` to the end and collects the list under `list` of every page.
    async fn pages<T: DeserializeOwned>(&self, list: &str, call: Call<'_>) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page: Value = match &call {
                Call::Get(endpoint, query) => {
                    let mut q = query.clone();
                    if let Some(t) = &token {
                        q.push(("page_token", t.clone()));
                    }
                    self.client.get(endpoint, &q).await?
                }
                Call::Post(endpoint, body) => {
                    let mut b = body.clone();
                    if let Some(t) = &token {
                        b["page_token"] = json!(t);
                    }
                    self.client.post(endpoint, &b).await?
                }
            };
            if let Some(items) = page.get(list) {
                out.extend(
                    serde_json::from_value::<Vec<T>>(items.clone()).with_context(|| {
                        format!("unexpected '{list}' from {}", self.client.base())
                    })?,
                );
            }
            match page
                .get("next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Every file below `dir` of an artifact listing endpoint; `query(dir)` builds its query.
    async fn walk(
        &self,
        endpoint: &str,
        query: impl Fn(&str) -> Vec<(&'static str, String)>,
    ) -> Result<Vec<String>> {
        let mut files = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let listing: Vec<SrcFile> = self
                .pages("files", Call::Get(endpoint, query(&dir)))
                .await?;
            for f in listing {
                // Listings give paths from the root; some servers give names in the folder.
                let path = if dir.is_empty() || f.path.starts_with(&format!("{dir}/")) {
                    f.path
                } else {
                    format!("{dir}/{}", f.path)
                };
                if f.is_dir {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        Ok(files)
    }
}

#[async_trait::async_trait]
impl Source for MlflowSource {
    fn describe(&self) -> String {
        self.client.base().to_string()
    }

    async fn experiments(&self) -> Result<Vec<SrcExperiment>> {
        let body = json!({"max_results": PAGE, "view_type": "ALL"});
        self.pages("experiments", Call::Post("experiments/search", body))
            .await
    }

    async fn runs(&self, experiment_id: &str) -> Result<Vec<SrcRun>> {
        let body = json!({
            "experiment_ids": [experiment_id],
            "run_view_type": "ALL",
            "max_results": PAGE,
        });
        self.pages("runs", Call::Post("runs/search", body)).await
    }

    async fn histories(&self, run_id: &str, keys: &[String]) -> Result<Vec<SrcMetric>> {
        let mut out = Vec::new();
        for key in keys {
            let q = vec![
                ("run_id", run_id.to_string()),
                ("metric_key", key.clone()),
                ("max_results", (PAGE * 25).to_string()),
            ];
            out.extend(
                self.pages::<SrcMetric>("metrics", Call::Get("metrics/get-history", q))
                    .await?,
            );
        }
        Ok(out)
    }

    /// Servers without logged models (before MLflow 3) answer empty.
    async fn logged_models(&self, experiment_ids: &[String]) -> Result<Vec<SrcLoggedModel>> {
        if experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({"experiment_ids": experiment_ids, "max_results": 100});
        match self
            .pages("models", Call::Post("logged-models/search", body))
            .await
        {
            // MLflow 2 has no such endpoint: no logged models to copy. Anything else is an error.
            Err(e) if format!("{e:#}").contains("HTTP 404") => Ok(Vec::new()),
            other => other,
        }
    }

    async fn registered_models(&self) -> Result<Vec<SrcRegisteredModel>> {
        let q = vec![("max_results", PAGE.to_string())];
        self.pages(
            "registered_models",
            Call::Get("registered-models/search", q),
        )
        .await
    }

    async fn model_versions(&self, name: &str) -> Result<Vec<SrcModelVersion>> {
        let q = vec![
            ("filter", format!("name = '{}'", name.replace('\'', "\\'"))),
            ("max_results", PAGE.to_string()),
        ];
        self.pages("model_versions", Call::Get("model-versions/search", q))
            .await
    }

    async fn run_files(&self, run_id: &str) -> Result<Vec<String>> {
        self.walk("artifacts/list", |dir| {
            let mut q = vec![("run_id", run_id.to_string())];
            if !dir.is_empty() {
                q.push(("path", dir.to_string()));
            }
            q
        })
        .await
    }

    async fn run_file(&self, run_id: &str, path: &str) -> Result<ByteStream> {
        let q = [("run_id", run_id), ("run_uuid", run_id), ("path", path)];
        self.client.download("/get-artifact", &q).await
    }

    async fn model_files(&self, model_id: &str) -> Result<Vec<String>> {
        let endpoint = format!("logged-models/{model_id}/artifacts/directories");
        self.walk(&endpoint, |dir| {
            if dir.is_empty() {
                vec![]
            } else {
                vec![("artifact_directory_path", dir.to_string())]
            }
        })
        .await
    }

    async fn model_file(&self, model_id: &str, path: &str) -> Result<ByteStream> {
        let url = format!("/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files");
        self.client
            .download(&url, &[("artifact_file_path", path)])
            .await
    }
}
