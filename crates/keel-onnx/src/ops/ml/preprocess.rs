//! Column-wise numeric preprocessing: `Scaler`, `Normalizer`, `Imputer` and `Binarizer`.

use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{Data, Tensor, Value};

/// A per-column parameter given once (for every column) or once per column.
fn per_column(values: &[f32], cols: usize, what: &str) -> Result<(), OnnxError> {
    if values.len() == 1 || values.len() == cols {
        Ok(())
    } else {
        Err(OnnxError::Shape(format!(
            "{} {what} values for {cols} columns",
            values.len()
        )))
    }
}

fn column(values: &[f32], c: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[c]
    }
}

/// `Scaler`: `(x - offset) * scale`.
pub(crate) struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let mut offset = a.floats("offset");
        let mut scale = a.floats("scale");
        if offset.is_empty() {
            offset.push(0.0);
        }
        if scale.is_empty() {
            scale.push(1.0);
        }
        Ok(Self { offset, scale })
    }
}

impl Kernel for Scaler {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let (_, cols) = x.rows_cols();
        per_column(&self.offset, cols, "offset")?;
        per_column(&self.scale, cols, "scale")?;
        let data = x.to_f32()?;
        let out = data
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i % cols.max(1);
                (v - column(&self.offset, c)) * column(&self.scale, c)
            })
            .collect();
        Ok(vec![Tensor::float(x.shape.clone(), out)?.into()])
    }
}

#[derive(Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

/// `Normalizer`: each row divided by its maximum, L1 or L2 norm (rows of zeros stay).
pub(crate) struct Normalizer {
    norm: Norm,
}

impl Normalizer {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let norm = match Attrs::new(node).string("norm", "MAX").as_str() {
            "MAX" => Norm::Max,
            "L1" => Norm::L1,
            "L2" => Norm::L2,
            other => return Err(OnnxError::Model(format!("unknown norm {other:?}"))),
        };
        Ok(Self { norm })
    }
}

impl Kernel for Normalizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        if x.shape.len() > 2 {
            return Err(OnnxError::Shape(format!(
                "Normalizer takes rank 1 or 2, got {:?}",
                x.shape
            )));
        }
        let (_, cols) = x.rows_cols();
        let mut out = x.to_f32()?.into_owned();
        for row in out.chunks_exact_mut(cols.max(1)) {
            match self.norm {
                Norm::Max => {
                    let max = row.iter().copied().fold(f32::MIN, f32::max);
                    if max != 0.0 {
                        row.iter_mut().for_each(|v| *v /= max);
                    }
                }
                Norm::L1 => {
                    let sum: f32 = row.iter().map(|v| v.abs()).sum();
                    if sum != 0.0 {
                        row.iter_mut().for_each(|v| *v /= sum);
                    }
                }
                Norm::L2 => {
                    let sum: f32 = row.iter().map(|v| v * v).sum();
                    if sum != 0.0 {
                        row.iter_mut()
                            .for_each(|v| *v = (*v * *v / sum).sqrt().copysign(*v));
                    }
                }
            }
        }
        Ok(vec![Tensor::float(x.shape.clone(), out)?.into()])
    }
}

/// `Imputer`: replaces a marker value (NaN by default for floats) by a per-column value.
pub(crate) enum Imputer {
    Float { values: Vec<f32>, replaced: f32 },
    Int64 { values: Vec<i64>, replaced: i64 },
}

impl Imputer {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let floats = a.floats("imputed_value_floats");
        let ints = a.ints("imputed_value_int64s");
        match (floats.is_empty(), ints.is_empty()) {
            (false, true) => Ok(Self::Float {
                values: floats,
                replaced: a.float("replaced_value_float", 0.0),
            }),
            (true, false) => Ok(Self::Int64 {
                values: ints,
                replaced: a.int("replaced_value_int64", 0),
            }),
            _ => Err(OnnxError::Model(
                "Imputer needs exactly one of imputed_value_floats and imputed_value_int64s".into(),
            )),
        }
    }
}

impl Kernel for Imputer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let (_, cols) = x.rows_cols();
        let cols = cols.max(1);
        let data = match self {
            Self::Float { values, replaced } => {
                per_column(values, cols, "imputed")?;
                let hit = |v: f32| {
                    if replaced.is_nan() {
                        v.is_nan()
                    } else {
                        v == *replaced
                    }
                };
                let out = x
                    .to_f32()?
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| if hit(v) { column(values, i % cols) } else { v })
                    .collect();
                Data::Float(out)
            }
            Self::Int64 { values, replaced } => {
                if values.len() != 1 && values.len() != cols {
                    return Err(OnnxError::Shape(format!(
                        "{} imputed values for {cols} columns",
                        values.len()
                    )));
                }
                let out = x
                    .to_i64()?
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| match v == *replaced {
                        true if values.len() == 1 => values[0],
                        true => values[i % cols],
                        false => v,
                    })
                    .collect();
                Data::Int64(out)
            }
        };
        Ok(vec![Tensor::new(x.shape.clone(), data)?.into()])
    }
}

/// `Binarizer`: 1 above the threshold, 0 otherwise, in the input's type.
pub(crate) struct Binarizer {
    threshold: f32,
}

impl Binarizer {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        Ok(Self {
            threshold: Attrs::new(node).float("threshold", 0.0),
        })
    }
}

impl Kernel for Binarizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let t = self.threshold;
        let data = match &x.data {
            Data::Float(v) => Data::Float(v.iter().map(|&v| f32::from(u8::from(v > t))).collect()),
            Data::Double(v) => Data::Double(
                v.iter()
                    .map(|&v| f64::from(u8::from(v > f64::from(t))))
                    .collect(),
            ),
            Data::Int64(v) => Data::Int64(v.iter().map(|&v| i64::from((v as f32) > t)).collect()),
            Data::Int32(v) => Data::Int32(v.iter().map(|&v| i32::from((v as f32) > t)).collect()),
            other => return Err(OnnxError::Type("a number tensor".into(), other.elem_type())),
        };
        Ok(vec![Tensor::new(x.shape.clone(), data)?.into()])
    }
}
