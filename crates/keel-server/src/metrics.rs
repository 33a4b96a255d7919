//! Prometheus metrics for the HTTP server: requests, errors and latency per route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::error::ErrorMarker;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    route: String,
}

/// The server's metric families and the registry that exposes them.
pub struct HttpMetrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    errors: Family<RouteLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keel");
        let requests = Family::<RouteLabels, Counter>::default();
        let errors = Family::<RouteLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            // 50 us .. ~26 s, doubling.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.00005, 2.0, 20,
            ))
        });
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_errors",
            "HTTP requests answered with an error status",
            errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            latency.clone(),
        );
        HttpMetrics {
            registry,
            requests,
            errors,
            latency,
        }
    }
}

impl HttpMetrics {
    /// The server's metrics and whatever `extra` registers beside them (the monitoring gauges
    /// of `keel server --monitor`).
    pub fn with(extra: impl FnOnce(&mut Registry)) -> Self {
        let mut m = HttpMetrics::default();
        extra(&mut m.registry);
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn observe(&self, method: &str, route: &str, status: u16, is_error: bool, seconds: f64) {
        let labels = RouteLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        if is_error || status >= 400 {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency
            .get_or_create(&LatencyLabels {
                method: labels.method,
                route: labels.route,
            })
            .observe(seconds);
    }
}

/// Middleware: records every request under its matched route (unmatched ones as `unmatched`).
pub async fn track(State(metrics): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let is_error = resp.extensions().get::<ErrorMarker>().is_some();
    metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        is_error,
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`.
pub async fn expose(State(metrics): State<Arc<HttpMetrics>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

/// `GET /metrics` from the application state.
pub async fn expose_state(State(s): State<crate::AppState>) -> impl IntoResponse {
    expose(State(s.metrics)).await
}
