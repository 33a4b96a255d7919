//! Monitoring errors: one line each, naming what is wrong.

/// Why a check cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The window holds no logged row of the model (version).
    #[error("no logged predictions of {model} in {window}")]
    NoRows {
        /// `NAME` or `NAME/VERSION`.
        model: String,
        /// The window, as people read it.
        window: String,
    },
    /// A column the check needs is not in the log.
    #[error("column '{column}' is not in the prediction log ({file})")]
    MissingColumn {
        /// The column, as the model names it.
        column: String,
        /// The log file holding the model's rows without it.
        file: String,
    },
    /// A value given to a check (a window, a time, a share) is wrong.
    #[error("{0}")]
    Invalid(String),
    /// Reading the log or the reference failed.
    #[error(transparent)]
    Data(#[from] keel_data::DataError),
    /// The log's folder could not be listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Monitoring's result type.
pub type Result<T> = std::result::Result<T, MonitorError>;
