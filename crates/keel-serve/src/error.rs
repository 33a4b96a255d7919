//! Errors of the inference server, each with the HTTP status it answers with.

/// What went wrong serving a request or loading a model.
#[derive(Debug, thiserror::Error)]
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
}

impl ServeError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::NotFound(_) => 404,
            Self::Unsupported(_) => 415,
            Self::Overloaded => 429,
            Self::Timeout(_) => 504,
            Self::Unavailable(_) => 503,
            Self::Model(_) | Self::Predict(_) => 500,
        }
    }

    /// MLflow's `error_code` for this error.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::Unsupported(_) => "BAD_REQUEST",
            Self::NotFound(_) => "RESOURCE_DOES_NOT_EXIST",
            Self::Overloaded => "RESOURCE_EXHAUSTED",
            Self::Timeout(_) => "DEADLINE_EXCEEDED",
            Self::Unavailable(_) => "TEMPORARILY_UNAVAILABLE",
            Self::Model(_) | Self::Predict(_) => "INTERNAL_ERROR",
        }
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
