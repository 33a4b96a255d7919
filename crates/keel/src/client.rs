//! A small client of the MLflow REST API, for the CLI's read commands and `keel import`.

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A server's refusal: MLflow's error JSON (`error_code`, `message`) and the HTTP status.
#[derive(Debug)]
pub struct ApiError {
    /// The endpoint asked.
    pub endpoint: String,
    /// MLflow's error code (`RESOURCE_DOES_NOT_EXIST`); empty when the answer had none.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// Whether the server is the local stores served in-process: the message is then shown
    /// alone, without an endpoint or HTTP status the user never saw.
    local: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.local {
            return f.write_str(&self.message);
        }
        write!(
            f,
            "{}: {} ({}, HTTP {})",
            self.endpoint, self.message, self.code, self.status
        )
    }
}

impl std::error::Error for ApiError {}

/// A server's refusal anywhere in `e`'s chain.
pub fn refusal(e: &anyhow::Error) -> Option<&ApiError> {
    e.chain().find_map(|c| c.downcast_ref::<ApiError>())
}

/// The MLflow error code of a server's refusal anywhere in `e`'s chain.
pub fn error_code(e: &anyhow::Error) -> Option<&str> {
    refusal(e).map(|a| a.code.as_str())
}

/// Talks to a keel (or MLflow) tracking server.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// Whether the server is the local stores served in this process: its errors are then
    /// the store's own words, without an endpoint or HTTP status the user never saw.
    local: bool,
}

/// The credentials the mlflow client reads from the environment, as an `Authorization` value:
/// `MLFLOW_TRACKING_TOKEN` (Bearer), else `MLFLOW_TRACKING_USERNAME` and
/// `MLFLOW_TRACKING_PASSWORD` (Basic).
pub fn env_credentials() -> Option<String> {
    use base64::Engine as _;
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(token) = var("MLFLOW_TRACKING_TOKEN") {
        return Some(format!("Bearer {token}"));
    }
    let (user, password) = (
        var("MLFLOW_TRACKING_USERNAME")?,
        var("MLFLOW_TRACKING_PASSWORD")?,
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    ))
}

/// An HTTP client sending `authorization` with every request, when given, and trusting the
/// certificates MLflow's client is told to trust (or, for this process's own server, any).
fn http_client(authorization: Option<String>, own_server: bool) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(value) = authorization {
        let mut value = reqwest::header::HeaderValue::from_str(&value)
            .context("the tracking credentials hold characters a header cannot carry")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let builder = reqwest::Client::builder().default_headers(headers);
    let builder = match own_server {
        // The in-process server's own listening socket: its certificate may name another host.
        true => builder.tls_danger_accept_invalid_certs(true),
        false => crate::tls::client_trust(builder)?,
    };
    Ok(builder.build()?)
}

impl Client {
    pub fn new(tracking_uri: &str) -> Result<Self> {
        let base = tracking_uri.trim_end_matches('/').to_string();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("tracking URI '{tracking_uri}' must start with http:// or https://");
        }
        Ok(Client {
            base,
            http: http_client(env_credentials(), false)?,
            local: false,
        })
    }

    /// This client, sending `token` as its Bearer credential when given.
    pub fn with_token(self, token: Option<&str>) -> Result<Self> {
        let Some(token) = token else {
            return Ok(self);
        };
        Ok(Client {
            http: http_client(Some(format!("Bearer {token}")), self.local)?,
            ..self
        })
    }

    /// A client of the local stores served in-process at `base`.
    pub fn local(base: &str) -> Result<Self> {
        Ok(Client {
            local: true,
            http: http_client(None, true)?,
            ..Client::new(base)?
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET {base}{path}?query` as a byte stream; any answer but 2xx is an error.
    pub async fn download(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<keel_core::artifact::ByteStream> {
        use futures::TryStreamExt;
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(self.refusal(&format!("download {path} {query:?}"), status, &text));
        }
        Ok(Box::pin(resp.bytes_stream().map_err(std::io::Error::other)))
    }

    /// A refusal from its status and body (MLflow's error JSON, or any text).
    fn refusal(&self, what: &str, status: reqwest::StatusCode, text: &str) -> anyhow::Error {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        ApiError {
            endpoint: what.to_string(),
            message: field("message").unwrap_or_else(|| text.trim().to_string()),
            code: field("error_code").unwrap_or_default(),
            status,
            local: self.local,
        }
        .into()
    }

    async fn answer<T: DeserializeOwned>(&self, what: &str, resp: reqwest::Response) -> Result<T> {
        let status = resp.status();
        let text = resp
            .text()
            .await
            .with_context(|| format!("{what}: cannot read the answer"))?;
        if !status.is_success() {
            return Err(self.refusal(what, status, &text));
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{what}: the server answered something that is not JSON"))
    }

    /// `GET /api/2.0/mlflow/{endpoint}?query`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        query: &[(&str, String)],
    ) -> Result<T> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let resp = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        self.answer(endpoint, resp).await
    }

    /// `GET {base}{path}` on keel's own API; `None` when the answer is 404.
    pub async fn keel_get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.answer(path, resp).await.map(Some)
    }

    /// `POST {base}{path}` on keel's own API with a JSON body.
    pub async fn keel_post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.keel_send(reqwest::Method::POST, path, body).await
    }

    /// `DELETE {base}{path}` on keel's own API with a JSON body.
    pub async fn keel_delete<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T> {
        self.keel_send(reqwest::Method::DELETE, path, body).await
    }

    async fn keel_send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<T> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        self.answer(path, resp).await
    }

    /// `PUT {base}{path}` streaming `body`.
    pub async fn keel_put(&self, path: &str, body: reqwest::Body) -> Result<Value> {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        self.answer(path, resp).await
    }

    /// `POST /api/2.0/mlflow/{endpoint}` with a JSON body.
    pub async fn post<T: DeserializeOwned>(&self, endpoint: &str, body: &Value) -> Result<T> {
        self.send(reqwest::Method::POST, endpoint, body).await
    }

    /// `DELETE /api/2.0/mlflow/{endpoint}` with a JSON body.
    pub async fn delete<T: DeserializeOwned>(&self, endpoint: &str, body: &Value) -> Result<T> {
        self.send(reqwest::Method::DELETE, endpoint, body).await
    }

    /// `PATCH /api/2.0/mlflow/{endpoint}` with a JSON body.
    pub async fn patch<T: DeserializeOwned>(&self, endpoint: &str, body: &Value) -> Result<T> {
        self.send(reqwest::Method::PATCH, endpoint, body).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        body: &Value,
    ) -> Result<T> {
        let url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        let resp = self
            .http
            .request(method, &url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        self.answer(endpoint, resp).await
    }
}
