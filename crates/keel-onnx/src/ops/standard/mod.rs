//! The standard (`ai.onnx`) operators keel runs itself: those around scikit-learn and keel
//! models (casts, reshapes, concatenation, matrix products, reductions, activations). Graphs
//! made only of standard operators that are not all here run in tract.

mod elementwise;
mod linalg;
mod reduce;
pub(crate) mod shape;

use super::Kernel;
use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::proto::NodeProto;
use crate::tensor::ElemType;
use elementwise::{Arith, Binary, Clip, Compare, Not, Unary, Where};
use reduce::{ArgExtreme, Reduce, Reduction, Softmax};
use shape::{
    Cast, Concat, Constant, Flatten, Gather, Identity, Reshape, ShapeOf, Slice, Squeeze, Transpose,
    Unsqueeze,
};

/// A kernel for an `ai.onnx` node, or `None` when keel has no such operator.
pub(crate) fn build(node: &NodeProto, opset: i64) -> Result<Option<Box<dyn Kernel>>, OnnxError> {
    let a = Attrs::new(node);
    let opt_ints = |name: &str| a.has(name).then(|| a.ints(name));
    let reduce = |what: Reduction| -> Box<dyn Kernel> {
        Box::new(Reduce {
            what,
            axes: opt_ints("axes"),
            keep_dims: a.int("keepdims", 1) != 0,
            noop_with_empty_axes: a.int("noop_with_empty_axes", 0) != 0,
        })
    };
    let arg = |max: bool| -> Box<dyn Kernel> {
        Box::new(ArgExtreme {
            max,
            axis: a.int("axis", 0),
            keep_dims: a.int("keepdims", 1) != 0,
            last: a.int("select_last_index", 0) != 0,
        })
    };
    let softmax = |log: bool| -> Box<dyn Kernel> {
        Box::new(Softmax {
            axis: a.int("axis", if opset < 13 { 1 } else { -1 }),
            flatten: opset < 13,
            log,
        })
    };
    Ok(Some(match node.op_type.as_str() {
        "Identity" | "Dropout" => Box::new(Identity),
        "Constant" => Box::new(Constant::build(node)?),
        "Cast" => Box::new(Cast(ElemType::from_onnx(a.int_required("to")? as i32))),
        "Reshape" => Box::new(Reshape {
            allow_zero: a.int("allowzero", 0) != 0,
        }),
        "Flatten" => Box::new(Flatten(a.int("axis", 1))),
        "Unsqueeze" => Box::new(Unsqueeze(opt_ints("axes"))),
        "Squeeze" => Box::new(Squeeze(opt_ints("axes"))),
        "Concat" => Box::new(Concat(a.int_required("axis")?)),
        "Shape" => Box::new(ShapeOf {
            start: a.int("start", 0),
            end: a.has("end").then(|| a.int("end", 0)),
        }),
        "Gather" => Box::new(Gather(a.int("axis", 0))),
        "Slice" => Box::new(Slice {
            starts: opt_ints("starts"),
            ends: opt_ints("ends"),
            axes: opt_ints("axes"),
        }),
        "Transpose" => Box::new(Transpose(opt_ints("perm"))),
        "Add" => Box::new(Binary(Arith::Add)),
        "Sub" => Box::new(Binary(Arith::Sub)),
        "Mul" => Box::new(Binary(Arith::Mul)),
        "Div" => Box::new(Binary(Arith::Div)),
        "Pow" => Box::new(Binary(Arith::Pow)),
        "Max" => Box::new(Binary(Arith::Max)),
        "Min" => Box::new(Binary(Arith::Min)),
        "Sum" => Box::new(Binary(Arith::Add)),
        "Equal" => Box::new(Compare::Equal),
        "Less" => Box::new(Compare::Less),
        "LessOrEqual" => Box::new(Compare::LessOrEqual),
        "Greater" => Box::new(Compare::Greater),
        "GreaterOrEqual" => Box::new(Compare::GreaterOrEqual),
        "And" => Box::new(Compare::And),
        "Or" => Box::new(Compare::Or),
        "Xor" => Box::new(Compare::Xor),
        "Not" => Box::new(Not),
        "Where" => Box::new(Where),
        "Abs" => Box::new(Unary::Abs),
        "Neg" => Box::new(Unary::Neg),
        "Exp" => Box::new(Unary::Exp),
        "Log" => Box::new(Unary::Log),
        "Sqrt" => Box::new(Unary::Sqrt),
        "Sigmoid" => Box::new(Unary::Sigmoid),
        "Tanh" => Box::new(Unary::Tanh),
        "Relu" => Box::new(Unary::Relu),
        "Reciprocal" => Box::new(Unary::Reciprocal),
        "Floor" => Box::new(Unary::Floor),
        "Ceil" => Box::new(Unary::Ceil),
        "Round" => Box::new(Unary::Round),
        "Erf" => Box::new(Unary::Erf),
        "Sign" => Box::new(Unary::Sign),
        "Clip" => Box::new(Clip {
            min: a.has("min").then(|| a.float("min", f32::MIN)),
            max: a.has("max").then(|| a.float("max", f32::MAX)),
        }),
        "MatMul" => Box::new(linalg::MatMul),
        "Gemm" => Box::new(linalg::Gemm {
            alpha: a.float("alpha", 1.0),
            beta: a.float("beta", 1.0),
            trans_a: a.int("transA", 0) != 0,
            trans_b: a.int("transB", 0) != 0,
        }),
        "ReduceSum" => reduce(Reduction::Sum),
        "ReduceSumSquare" => reduce(Reduction::SumSquare),
        "ReduceMean" => reduce(Reduction::Mean),
        "ReduceMax" => reduce(Reduction::Max),
        "ReduceMin" => reduce(Reduction::Min),
        "ReduceProd" => reduce(Reduction::Prod),
        "ReduceL1" => reduce(Reduction::L1),
        "ReduceL2" => reduce(Reduction::L2),
        "ReduceLogSumExp" => reduce(Reduction::LogSumExp),
        "ArgMax" => arg(true),
        "ArgMin" => arg(false),
        "Softmax" => softmax(false),
        "LogSoftmax" => softmax(true),
        _ => return Ok(None),
    }))
}
