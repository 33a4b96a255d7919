//! Errors on the wire: MLflow's `{"error_code": ..., "message": ...}` with the code's status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A [`keel_core::Error`] as an HTTP response.
#[derive(Debug)]
pub struct ApiError(pub keel_core::Error);

impl From<keel_core::Error> for ApiError {
    fn from(e: keel_core::Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = self.0.code.as_str(), "{}", self.0.message);
        }
        let body =
            serde_json::json!({ "error_code": self.0.code.as_str(), "message": self.0.message });
        let mut resp = (status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(ErrorMarker);
        resp
    }
}

/// Marks responses that carry an API error, for the request metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorMarker;

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
