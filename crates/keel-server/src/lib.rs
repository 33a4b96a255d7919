//! keel-server: keel's HTTP server.
//!
//! It speaks the MLflow REST API 2.0 (tracking, logged models, model registry) under
//! `/api/2.0/mlflow/` and `/ajax-api/2.0/mlflow/`, proxies artifacts under
//! `/api/2.0/mlflow-artifacts/`, answers `/health`, `/version` and `/metrics`, and serves the
//! web UI at `/`; with [`auth`] on, it asks who is calling, and [`hosts`] refuses requests
//! for other hosts and cross-site writes. Handlers validate input against MLflow's rules, call the [`MetadataStore`]
//! and [`ArtifactStore`] traits, and answer in MLflow's JSON shapes; they hold no state of
//! their own.

pub mod api;
pub mod audit;
pub mod auth;
pub mod error;
pub mod hosts;
pub mod metrics;
mod ui;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum_server::tls_rustls::RustlsConfig;
use keel_core::{ArtifactStore, MetadataStore};
use tokio::net::TcpListener;

pub use keel_core::artifact::ARTIFACT_SCHEME;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub meta: Arc<dyn MetadataStore>,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub metrics: Arc<metrics::HttpMetrics>,
    /// Authentication and permissions, when the server was started with them.
    pub auth: Option<Arc<auth::Auth>>,
    /// The `Host` values answered (MLflow's default: localhost and private networks).
    pub allowed_hosts: Arc<hosts::AllowedHosts>,
    /// Whether writes are audited: each state-changing request then runs in an audit context.
    pub audit: bool,
}

impl AppState {
    pub fn new(meta: Arc<dyn MetadataStore>, artifacts: Arc<dyn ArtifactStore>) -> Self {
        AppState::with_metrics(meta, artifacts, metrics::HttpMetrics::default())
    }

    /// A state whose `/metrics` exposes `metrics` (see [`metrics::HttpMetrics::with`]).
    pub fn with_metrics(
        meta: Arc<dyn MetadataStore>,
        artifacts: Arc<dyn ArtifactStore>,
        metrics: metrics::HttpMetrics,
    ) -> Self {
        AppState {
            meta,
            artifacts,
            metrics: Arc::new(metrics),
            auth: None,
            allowed_hosts: Arc::new(hosts::AllowedHosts::default()),
            audit: false,
        }
    }

    /// This state answering only requests whose `Host` matches `hosts`.
    pub fn with_allowed_hosts(self, hosts: hosts::AllowedHosts) -> Self {
        AppState {
            allowed_hosts: Arc::new(hosts),
            ..self
        }
    }

    /// This state naming who makes each write, for a store whose audit log is on.
    pub fn with_audit(self) -> Self {
        AppState {
            audit: true,
            ..self
        }
    }

    /// This state with authentication and permissions on.
    pub fn with_auth(self, auth: auth::Auth) -> Self {
        AppState {
            auth: Some(Arc::new(auth)),
            ..self
        }
    }
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    api::router()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::record,
        ))
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(wire::MAX_JSON_BODY))
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(state, hosts::check))
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains in-flight requests;
/// over TLS (HTTP/1.1 and HTTP/2 by ALPN) when `tls` holds a certificate.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    tls: Option<RustlsConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            let handle = axum_server::Handle::new();
            let stop = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                // A client that keeps an HTTP/2 connection open without answering the
                // server's closing handshake is cut off after this.
                stop.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, tls)?
                .handle(handle)
                .serve(app)
                .await
        }
    }
}
