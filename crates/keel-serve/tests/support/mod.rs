//! A keel-serve server in the test process on a loopback port, with a reqwest client.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keel_serve::metrics::ServeMetrics;
use keel_serve::predlog::{LogConfig, PredictionLog};
use keel_serve::server::{AppState, ServeOptions, serve};
use keel_serve::supervisor::{ServedModel, Supervisor};
use serde_json::Value;

/// A running server and how to reach it.
pub struct Server {
    pub base: String,
    pub state: Arc<AppState>,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(
        models: Vec<ServedModel>,
        options: ServeOptions,
        log_dir: Option<&Path>,
    ) -> Server {
        let metrics = Arc::new(ServeMetrics::default());
        let log = log_dir.map(|d| {
            let mut config = LogConfig::new(d.to_path_buf());
            config.flush_interval = Duration::from_secs(3600);
            Arc::new(
                PredictionLog::start(
                    config,
                    metrics.log_written.clone(),
                    metrics.log_dropped.clone(),
                )
                .unwrap(),
            )
        });
        let state = AppState::new(options, metrics, log);
        Supervisor::new(state.clone(), None, models)
            .load_all()
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let s = state.clone();
        let task = tokio::spawn(async move {
            serve(listener, s, None, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            state,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, v)
    }

    pub async fn json(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, _, v) = self.post(path, "application/json", body.to_string()).await;
        (s, v)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap();
    }
}
