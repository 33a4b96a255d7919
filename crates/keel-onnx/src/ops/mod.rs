//! Operator kernels: each node of a graph becomes one, built once when the model loads.

mod ml;
pub(crate) mod standard;

use crate::error::OnnxError;
use crate::proto::NodeProto;
use crate::tensor::{Tensor, Value};

/// A node's computation: inputs (absent optional inputs are `None`) to outputs.
pub(crate) trait Kernel: Send + Sync {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError>;
}

/// The `i`-th input as a tensor.
pub(crate) fn input<'a>(inputs: &[Option<&'a Value>], i: usize) -> Result<&'a Tensor, OnnxError> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| OnnxError::Shape(format!("input {i} is missing")))?
        .tensor()
}

/// The operator sets a model imports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opsets {
    pub(crate) onnx: i64,
    pub(crate) ml: i64,
}

/// Domains keel's kernels cover.
pub(crate) fn is_ml(domain: &str) -> bool {
    domain == "ai.onnx.ml"
}

pub(crate) fn is_standard(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// A kernel for `node`, or `None` when keel has none for its operator.
pub(crate) fn build(
    node: &NodeProto,
    opsets: Opsets,
) -> Result<Option<Box<dyn Kernel>>, OnnxError> {
    if is_ml(&node.domain) {
        ml::build(node, opsets.ml)
    } else if is_standard(&node.domain) {
        standard::build(node, opsets.onnx)
    } else {
        Ok(None)
    }
}
