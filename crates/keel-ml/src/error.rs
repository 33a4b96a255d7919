//! What can go wrong in training, each naming what it is about.

/// An error from preparing data or training.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// A bad argument or a dataset that cannot be used as asked (unknown column, empty split,
    /// out-of-range parameter...).
    #[error("{0}")]
    Invalid(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, MlError>;

/// Shorthand for an [`MlError::Invalid`].
pub(crate) fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(MlError::Invalid(message.into()))
}
