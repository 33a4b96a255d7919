//! Errors of the inference server, each with the MLflow error code and HTTP status it answers
//! with (keel-core's table).

use keel_core::error::ErrorCode;

/// What went wrong serving a request or loading a model.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ServeError {
    /// The request does not fit the protocol or the model's signature (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body's content type is not one the endpoint reads (415).
    #[error("{0}")]
    Unsupported(String),
    /// No such model or version (404).
    #[error("{0}")]
    NotFound(String),
    /// The queue is full (429, with Retry-After).
    #[error("the model's queue is full; retry shortly")]
    Overloaded,
    /// The request waited or ran longer than the timeout (504).
    #[error("the request timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The server is shutting down or the model is being replaced (503).
    #[error("{0}")]
    Unavailable(String),
    /// A model cannot be loaded.
    #[error("{0}")]
    Model(String),
    /// The model failed on valid input (500).
    #[error("prediction failed: {0}")]
    Predict(String),
    /// The request carries no credential the tracking server knows (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not use this model (403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller sent more requests than its rate allows (429, with Retry-After).
    #[error("more than {0} requests per second with this credential; retry shortly")]
    RateLimited(f64),
}

impl ServeError {
    /// The MLflow error code (and with it the HTTP status) this error answers with, from the
    /// one table both servers share.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Unsupported(_) => ErrorCode::UnsupportedMediaType,
            Self::NotFound(_) => ErrorCode::ResourceDoesNotExist,
            Self::Overloaded => ErrorCode::QueueFull,
            Self::Timeout(_) => ErrorCode::DeadlineExceeded,
            Self::Unavailable(_) => ErrorCode::TemporarilyUnavailable,
            Self::Model(_) | Self::Predict(_) => ErrorCode::InternalError,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::PermissionDenied,
            Self::RateLimited(_) => ErrorCode::RequestLimitExceeded,
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        self.code().http_status()
    }

    /// MLflow's `error_code` for this error.
    pub fn error_code(&self) -> &'static str {
        self.code().as_str()
    }
}

impl From<keel_onnx::OnnxError> for ServeError {
    fn from(e: keel_onnx::OnnxError) -> Self {
        match e {
            keel_onnx::OnnxError::Input { .. } => Self::BadRequest(e.to_string()),
            other => Self::Predict(other.to_string()),
        }
    }
}
