//! Reading a running MLflow tracking server through its REST API: every experiment, run, metric
//! history, logged model, registered model and version, and the bytes of their artifacts.

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use keel_core::artifact::ByteStream;
use keel_core::entities::{Dataset, DatasetInput, Tag};
use keel_server::wire::{f64_lenient, i64_lenient, string_lenient};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Page size for searches and histories.
const PAGE: u32 = 1000;

/// Reads from one MLflow server.
pub struct Source {
    base: String,
    http: reqwest::Client,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Default, Deserialize)]
pub struct SrcRunData {
    #[serde(default)]
    pub metrics: Vec<SrcMetric>,
    #[serde(default)]
    pub params: Vec<Tag>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
pub struct SrcDatasetInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub dataset: SrcDataset,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
pub struct SrcModelRef {
    pub model_id: String,
    #[serde(default, deserialize_with = "i64_lenient")]
    pub step: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SrcRunInputs {
    #[serde(default)]
    pub dataset_inputs: Vec<SrcDatasetInput>,
    #[serde(default)]
    pub model_inputs: Vec<SrcModelRef>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SrcRunOutputs {
    #[serde(default)]
    pub model_outputs: Vec<SrcModelRef>,
}

#[derive(Debug, Deserialize)]
pub struct SrcRun {
    pub info: SrcRunInfo,
    #[serde(default)]
    pub data: SrcRunData,
    #[serde(default)]
    pub inputs: SrcRunInputs,
    #[serde(default)]
    pub outputs: SrcRunOutputs,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Default, Deserialize)]
pub struct SrcLoggedModelData {
    #[serde(default)]
    pub params: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
pub struct SrcLoggedModel {
    pub info: SrcLoggedModelInfo,
    #[serde(default)]
    pub data: SrcLoggedModelData,
}

#[derive(Debug, Deserialize)]
pub struct SrcAlias {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
pub struct SrcFile {
    pub path: String,
    #[serde(default)]
    pub is_dir: bool,
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    files: Vec<SrcFile>,
    #[serde(default)]
    next_page_token: Option<String>,
}

impl Source {
    pub fn new(url: &str) -> Result<Self> {
        let base = url.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--from-mlflow '{url}' must start with http:// or https://");
        }
        Ok(Source {
            base,
            http: reqwest::Client::builder().build()?,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn answer<T: DeserializeOwned>(&self, what: &str, resp: reqwest::Response) -> Result<T> {
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("{what}: cannot read the answer of {}", self.base))?;
        if !status.is_success() {
            bail!("{what} on {}: HTTP {status}: {}", self.base, text.trim());
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{what} on {}: unexpected answer", self.base))
    }

    async fn get<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T> {
        let resp = self
            .http
            .get(format!("{}/api/2.0/mlflow/{endpoint}", self.base))
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        self.answer(endpoint, resp).await
    }

    async fn post<T: DeserializeOwned>(&self, endpoint: &str, body: &Value) -> Result<T> {
        let resp = self
            .http
            .post(format!("{}/api/2.0/mlflow/{endpoint}", self.base))
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        self.answer(endpoint, resp).await
    }

    /// Every experiment, deleted ones included.
    pub async fn experiments(&self) -> Result<Vec<SrcExperiment>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            experiments: Vec<SrcExperiment>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"max_results": PAGE, "view_type": "ALL"});
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let r: Resp = self.post("experiments/search", &body).await?;
            out.extend(r.experiments);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Every run of an experiment, deleted ones included.
    pub async fn runs(&self, experiment_id: &str) -> Result<Vec<SrcRun>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            runs: Vec<SrcRun>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({
                "experiment_ids": [experiment_id],
                "run_view_type": "ALL",
                "max_results": PAGE,
            });
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let r: Resp = self.post("runs/search", &body).await?;
            out.extend(r.runs);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The whole history of one metric of one run.
    pub async fn history(&self, run_id: &str, key: &str) -> Result<Vec<SrcMetric>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            metrics: Vec<SrcMetric>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut out = Vec::new();
        let mut token = String::new();
        let max = (PAGE * 25).to_string();
        loop {
            let mut q = vec![
                ("run_id", run_id),
                ("metric_key", key),
                ("max_results", max.as_str()),
            ];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let r: Resp = self.get("metrics/get-history", &q).await?;
            out.extend(r.metrics);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = t,
                None => return Ok(out),
            }
        }
    }

    /// The logged models (MLflow 3) of some experiments. Servers without them answer empty.
    pub async fn logged_models(&self, experiment_ids: &[String]) -> Result<Vec<SrcLoggedModel>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            models: Vec<SrcLoggedModel>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut out = Vec::new();
        if experiment_ids.is_empty() {
            return Ok(out);
        }
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"experiment_ids": experiment_ids, "max_results": 100});
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let r: Resp = self.post("logged-models/search", &body).await?;
            out.extend(r.models);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    pub async fn registered_models(&self) -> Result<Vec<SrcRegisteredModel>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            registered_models: Vec<SrcRegisteredModel>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut out = Vec::new();
        let mut token = String::new();
        let max = PAGE.to_string();
        loop {
            let mut q = vec![("max_results", max.as_str())];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let r: Resp = self.get("registered-models/search", &q).await?;
            out.extend(r.registered_models);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = t,
                None => return Ok(out),
            }
        }
    }

    pub async fn model_versions(&self, name: &str) -> Result<Vec<SrcModelVersion>> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            model_versions: Vec<SrcModelVersion>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let filter = format!("name = '{}'", name.replace('\'', "\\'"));
        let mut out = Vec::new();
        let mut token = String::new();
        let max = PAGE.to_string();
        loop {
            let mut q = vec![("filter", filter.as_str()), ("max_results", max.as_str())];
            if !token.is_empty() {
                q.push(("page_token", token.as_str()));
            }
            let r: Resp = self.get("model-versions/search", &q).await?;
            out.extend(r.model_versions);
            match r.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = t,
                None => return Ok(out),
            }
        }
    }

    /// Every file (not folder) under a run's artifact root, with paths relative to it.
    pub async fn run_files(&self, run_id: &str) -> Result<Vec<String>> {
        self.walk(|dir| {
            let mut q = vec![("run_id", run_id.to_string())];
            if !dir.is_empty() {
                q.push(("path", dir.to_string()));
            }
            ("artifacts/list".to_string(), q)
        })
        .await
    }

    /// Every file under a logged model's artifact root.
    pub async fn model_files(&self, model_id: &str) -> Result<Vec<String>> {
        self.walk(|dir| {
            let mut q = Vec::new();
            if !dir.is_empty() {
                q.push(("artifact_directory_path", dir.to_string()));
            }
            (format!("logged-models/{model_id}/artifacts/directories"), q)
        })
        .await
    }

    async fn walk(
        &self,
        request: impl Fn(&str) -> (String, Vec<(&'static str, String)>),
    ) -> Result<Vec<String>> {
        let mut files = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(dir) = dirs.pop() {
            let mut token = String::new();
            loop {
                let (endpoint, mut q) = request(&dir);
                if !token.is_empty() {
                    q.push(("page_token", token.clone()));
                }
                let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let listing: Listing = self.get(&endpoint, &q).await?;
                for f in listing.files {
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
                match listing.next_page_token.filter(|t| !t.is_empty()) {
                    Some(t) => token = t,
                    None => break,
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// The bytes of one run artifact, streamed.
    pub async fn run_file(&self, run_id: &str, path: &str) -> Result<ByteStream> {
        self.download(
            &format!("{}/get-artifact", self.base),
            &[("run_id", run_id), ("run_uuid", run_id), ("path", path)],
        )
        .await
    }

    /// The bytes of one logged-model artifact, streamed.
    pub async fn model_file(&self, model_id: &str, path: &str) -> Result<ByteStream> {
        self.download(
            &format!(
                "{}/ajax-api/2.0/mlflow/logged-models/{model_id}/artifacts/files",
                self.base
            ),
            &[("artifact_file_path", path)],
        )
        .await
    }

    async fn download(&self, url: &str, query: &[(&str, &str)]) -> Result<ByteStream> {
        let resp = self
            .http
            .get(url)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("download {url} {query:?}: HTTP {status}: {}", text.trim());
        }
        Ok(Box::pin(resp.bytes_stream().map_err(std::io::Error::other)))
    }
}
