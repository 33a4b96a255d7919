//! Errors loading and running ONNX models.

use crate::tensor::ElemType;

/// What went wrong loading or running an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file is not an ONNX model.
    #[error("cannot decode the ONNX model: {0}")]
    Decode(String),
    /// The model is malformed (a missing attribute, a dangling edge, ...).
    #[error("invalid ONNX model: {0}")]
    Model(String),
    /// No runtime in keel runs these operators.
    #[error("unsupported ONNX operators: {0}")]
    Unsupported(String),
    /// An input given to the model does not fit its declaration.
    #[error("input {name:?}: {reason}")]
    Input {
        /// The input's name.
        name: String,
        /// What does not fit.
        reason: String,
    },
    /// A tensor of the wrong element type reached an operator.
    #[error("expected {0}, got a {1} tensor")]
    Type(String, ElemType),
    /// Shapes that do not fit an operator.
    #[error("{0}")]
    Shape(String),
    /// An operator failed.
    #[error("node {node:?} ({op}): {source}")]
    Node {
        /// The node's name (or its first output).
        node: String,
        /// The operator.
        op: String,
        /// The failure.
        source: Box<OnnxError>,
    },
    /// tract refused the model or failed running it.
    #[error("tract: {0}")]
    Tract(String),
    /// Reading the model file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}
