//! Graphs of standard operators that keel's own kernels do not all cover run in tract, whole:
//! tract optimises the graph once at load time, with the batch dimension left symbolic.

use std::sync::Arc;

use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceModelExt, IntoRunnable, TValue, Tensor as TractTensor,
    TypedRunnableModel, tract_ndarray,
};

use crate::error::OnnxError;
use crate::tensor::{Data, Tensor, Value};

/// A model optimised and planned by tract.
pub(crate) struct TractGraph {
    plan: Arc<TypedRunnableModel>,
}

fn tract_error(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::Tract(format!("{e:#}"))
}

impl TractGraph {
    pub(crate) fn load(bytes: &[u8]) -> Result<Self, OnnxError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(tract_error)?;
        let plan = model
            .into_optimized()
            .map_err(tract_error)?
            .into_runnable()
            .map_err(tract_error)?;
        Ok(Self { plan })
    }

    pub(crate) fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, OnnxError> {
        let inputs = inputs
            .into_iter()
            .map(|v| to_tract(v.into_tensor()?).map(TValue::from))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = self
            .plan
            .run(inputs.into_iter().collect())
            .map_err(tract_error)?;
        outputs
            .into_iter()
            .map(|t| from_tract(&t).map(Value::Tensor))
            .collect()
    }
}

fn array<T: Datum>(shape: &[usize], v: Vec<T>) -> Result<TractTensor, OnnxError> {
    let a = tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), v)
        .map_err(tract_error)?;
    Ok(a.into())
}

fn to_tract(t: Tensor) -> Result<TractTensor, OnnxError> {
    let shape = t.shape;
    match t.data {
        Data::Float(v) => array(&shape, v),
        Data::Double(v) => array(&shape, v),
        Data::Int64(v) => array(&shape, v),
        Data::Int32(v) => array(&shape, v),
        Data::Bool(v) => array(&shape, v),
        Data::String(v) => array(&shape, v),
    }
}

fn values<T: Datum + Clone>(t: &TractTensor) -> Result<Vec<T>, OnnxError> {
    Ok(t.to_plain_array_view::<T>()
        .map_err(tract_error)?
        .iter()
        .cloned()
        .collect())
}

fn from_tract(t: &TractTensor) -> Result<Tensor, OnnxError> {
    let shape = t.shape().to_vec();
    let data = match t.datum_type() {
        DatumType::F32 => Data::Float(values(t)?),
        DatumType::F64 => Data::Double(values(t)?),
        DatumType::I64 => Data::Int64(values(t)?),
        DatumType::I32 => Data::Int32(values(t)?),
        DatumType::Bool => Data::Bool(values(t)?),
        DatumType::String => Data::String(values(t)?),
        other => {
            let f = t
                .cast_to::<f32>()
                .map_err(|e| OnnxError::Tract(format!("output of type {other:?}: {e:#}")))?;
            Data::Float(values(&f)?)
        }
    };
    Tensor::new(shape, data)
}
