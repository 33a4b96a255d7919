//! One error type for every layer, with MLflow's error codes and their HTTP statuses.

/// Declares [`ErrorCode`] with its wire name and HTTP status in one table.
macro_rules! error_codes {
    ($($variant:ident => ($name:literal, $status:literal)),+ $(,)?) => {
        /// MLflow's `error_code` values (`databricks.proto`) that keel sends.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            /// The name sent as `error_code` in the JSON body.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name),+ }
            }
            /// The HTTP status MLflow answers with for this code.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status),+ }
            }
        }
    };
}

error_codes! {
    InternalError => ("INTERNAL_ERROR", 500),
    TemporarilyUnavailable => ("TEMPORARILY_UNAVAILABLE", 503),
    BadRequest => ("BAD_REQUEST", 400),
    InvalidParameterValue => ("INVALID_PARAMETER_VALUE", 400),
    EndpointNotFound => ("ENDPOINT_NOT_FOUND", 404),
    MalformedRequest => ("MALFORMED_REQUEST", 400),
    InvalidState => ("INVALID_STATE", 500),
    PermissionDenied => ("PERMISSION_DENIED", 403),
    Unauthenticated => ("UNAUTHENTICATED", 401),
    RequestLimitExceeded => ("REQUEST_LIMIT_EXCEEDED", 429),
    ResourceAlreadyExists => ("RESOURCE_ALREADY_EXISTS", 400),
    ResourceDoesNotExist => ("RESOURCE_DOES_NOT_EXIST", 404),
    NotImplemented => ("NOT_IMPLEMENTED", 501),
    ResourceExhausted => ("RESOURCE_EXHAUSTED", 507),
    BodyTooLarge => ("REQUEST_LIMIT_EXCEEDED", 413),
    // Serving: a model's queue is full (with Retry-After), a prediction ran out of time, a body
    // in a content type the endpoint does not read.
    QueueFull => ("RESOURCE_EXHAUSTED", 429),
    DeadlineExceeded => ("DEADLINE_EXCEEDED", 504),
    UnsupportedMediaType => ("BAD_REQUEST", 415),
}

/// An error with an MLflow error code and a message for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

/// Result with keel's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
    /// `INVALID_PARAMETER_VALUE` (400): the request names or carries something wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }
    /// `RESOURCE_DOES_NOT_EXIST` (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceDoesNotExist, message)
    }
    /// `RESOURCE_ALREADY_EXISTS` (400).
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceAlreadyExists, message)
    }
    /// `INTERNAL_ERROR` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
    /// `BAD_REQUEST` (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    /// `NOT_IMPLEMENTED` (501).
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotImplemented, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_mlflow_statuses() {
        assert_eq!(ErrorCode::ResourceDoesNotExist.http_status(), 404);
        assert_eq!(ErrorCode::ResourceAlreadyExists.http_status(), 400);
        assert_eq!(
            ErrorCode::InvalidParameterValue.as_str(),
            "INVALID_PARAMETER_VALUE"
        );
        assert_eq!(ErrorCode::NotImplemented.http_status(), 501);
    }
}
