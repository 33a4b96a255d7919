//! Values flowing through a graph: dense tensors of the element types keel computes with, and
//! the sequences of maps `ZipMap` produces.

use std::borrow::Cow;
use std::fmt;

use crate::error::OnnxError;
use crate::proto::TensorProto;

/// An ONNX element type (`TensorProto.DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
    /// 64-bit integer.
    Int64,
    /// 32-bit integer.
    Int32,
    /// Boolean.
    Bool,
    /// UTF-8 string.
    String,
    /// Any other type, by its ONNX code (keel passes it to tract untouched).
    Other(i32),
}

impl ElemType {
    /// The type of an ONNX code.
    pub fn from_onnx(code: i32) -> Self {
        match code {
            1 => Self::Float,
            11 => Self::Double,
            7 => Self::Int64,
            6 => Self::Int32,
            9 => Self::Bool,
            8 => Self::String,
            other => Self::Other(other),
        }
    }

    /// The ONNX code.
    pub fn onnx_code(self) -> i32 {
        match self {
            Self::Float => 1,
            Self::Double => 11,
            Self::Int64 => 7,
            Self::Int32 => 6,
            Self::Bool => 9,
            Self::String => 8,
            Self::Other(code) => code,
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Float => "float",
            Self::Double => "double",
            Self::Int64 => "int64",
            Self::Int32 => "int32",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Other(code) => return write!(f, "onnx type {code}"),
        };
        f.write_str(name)
    }
}

/// A tensor's elements, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// 32-bit floats.
    Float(Vec<f32>),
    /// 64-bit floats.
    Double(Vec<f64>),
    /// 64-bit integers.
    Int64(Vec<i64>),
    /// 32-bit integers.
    Int32(Vec<i32>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    String(Vec<String>),
}

impl Data {
    /// The element type.
    pub fn elem_type(&self) -> ElemType {
        match self {
            Self::Float(_) => ElemType::Float,
            Self::Double(_) => ElemType::Double,
            Self::Int64(_) => ElemType::Int64,
            Self::Int32(_) => ElemType::Int32,
            Self::Bool(_) => ElemType::Bool,
            Self::String(_) => ElemType::String,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::Float(v) => v.len(),
            Self::Double(v) => v.len(),
            Self::Int64(v) => v.len(),
            Self::Int32(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::String(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements at `indices`, in that order.
    pub fn gather(&self, indices: impl Iterator<Item = usize> + Clone) -> Data {
        fn pick<T: Clone>(v: &[T], i: impl Iterator<Item = usize>) -> Vec<T> {
            i.map(|i| v[i].clone()).collect()
        }
        match self {
            Self::Float(v) => Self::Float(pick(v, indices)),
            Self::Double(v) => Self::Double(pick(v, indices)),
            Self::Int64(v) => Self::Int64(pick(v, indices)),
            Self::Int32(v) => Self::Int32(pick(v, indices)),
            Self::Bool(v) => Self::Bool(pick(v, indices)),
            Self::String(v) => Self::String(pick(v, indices)),
        }
    }

    /// An empty vector of the same type with room for `n` elements.
    pub fn empty_like(&self, n: usize) -> Data {
        match self {
            Self::Float(_) => Self::Float(Vec::with_capacity(n)),
            Self::Double(_) => Self::Double(Vec::with_capacity(n)),
            Self::Int64(_) => Self::Int64(Vec::with_capacity(n)),
            Self::Int32(_) => Self::Int32(Vec::with_capacity(n)),
            Self::Bool(_) => Self::Bool(Vec::with_capacity(n)),
            Self::String(_) => Self::String(Vec::with_capacity(n)),
        }
    }

    /// Appends `other[range]`; both must have the same type.
    pub fn extend_from(&mut self, other: &Data, range: std::ops::Range<usize>) {
        match (self, other) {
            (Self::Float(a), Self::Float(b)) => a.extend_from_slice(&b[range]),
            (Self::Double(a), Self::Double(b)) => a.extend_from_slice(&b[range]),
            (Self::Int64(a), Self::Int64(b)) => a.extend_from_slice(&b[range]),
            (Self::Int32(a), Self::Int32(b)) => a.extend_from_slice(&b[range]),
            (Self::Bool(a), Self::Bool(b)) => a.extend_from_slice(&b[range]),
            (Self::String(a), Self::String(b)) => a.extend_from_slice(&b[range]),
            _ => unreachable!("extend_from with different element types"),
        }
    }
}

/// A dense tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements, row-major; `data.len()` is the product of `shape`.
    pub data: Data,
}

impl Tensor {
    /// A tensor, checking that the element count matches the shape.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Self, OnnxError> {
        let count: usize = shape.iter().product();
        if count != data.len() {
            return Err(OnnxError::Shape(format!(
                "shape {shape:?} holds {count} elements, {} given",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }

    /// A float tensor.
    pub fn float(shape: Vec<usize>, values: Vec<f32>) -> Result<Self, OnnxError> {
        Self::new(shape, Data::Float(values))
    }

    /// The element type.
    pub fn elem_type(&self) -> ElemType {
        self.data.elem_type()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Rows and columns when read as a matrix the way the `ai.onnx.ml` operators read their
    /// input: `[F]` is one row, `[N, F]` is N rows, `[N, ...]` flattens the rest.
    pub fn rows_cols(&self) -> (usize, usize) {
        match self.shape.as_slice() {
            [] => (1, 1),
            [f] => (1, *f),
            [n, rest @ ..] => (*n, rest.iter().product()),
        }
    }

    /// The elements as `f32`, converting numbers of other types (strings are an error).
    pub fn to_f32(&self) -> Result<Cow<'_, [f32]>, OnnxError> {
        Ok(match &self.data {
            Data::Float(v) => Cow::Borrowed(v),
            Data::Double(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            Data::Int64(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            Data::Int32(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            Data::Bool(v) => Cow::Owned(v.iter().map(|&x| f32::from(u8::from(x))).collect()),
            Data::String(_) => {
                return Err(OnnxError::Type("a number tensor".into(), ElemType::String));
            }
        })
    }

    /// The elements as `i64` (integers only).
    pub fn to_i64(&self) -> Result<Cow<'_, [i64]>, OnnxError> {
        Ok(match &self.data {
            Data::Int64(v) => Cow::Borrowed(v),
            Data::Int32(v) => Cow::Owned(v.iter().map(|&x| i64::from(x)).collect()),
            other => {
                return Err(OnnxError::Type(
                    "an integer tensor".into(),
                    other.elem_type(),
                ));
            }
        })
    }

    /// Decodes an initializer or constant.
    pub fn from_proto(proto: &TensorProto) -> Result<Self, OnnxError> {
        let shape = proto
            .dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                OnnxError::Model(format!("tensor {:?} has a negative dimension", proto.name))
            })?;
        if proto.data_location == 1 {
            return Err(OnnxError::Model(format!(
                "tensor {:?} is stored outside the model file; keel loads single-file models",
                proto.name
            )));
        }
        let count: usize = shape.iter().product();
        let raw = &proto.raw_data;
        let data = match ElemType::from_onnx(proto.data_type) {
            ElemType::Float if !raw.is_empty() => Data::Float(from_le(raw, f32::from_le_bytes)),
            ElemType::Float => Data::Float(proto.float_data.clone()),
            ElemType::Double if !raw.is_empty() => Data::Double(from_le(raw, f64::from_le_bytes)),
            ElemType::Double => Data::Double(proto.double_data.clone()),
            ElemType::Int64 if !raw.is_empty() => Data::Int64(from_le(raw, i64::from_le_bytes)),
            ElemType::Int64 => Data::Int64(proto.int64_data.clone()),
            ElemType::Int32 if !raw.is_empty() => Data::Int32(from_le(raw, i32::from_le_bytes)),
            ElemType::Int32 => Data::Int32(proto.int32_data.clone()),
            ElemType::Bool if !raw.is_empty() => Data::Bool(raw.iter().map(|&b| b != 0).collect()),
            ElemType::Bool => Data::Bool(proto.int32_data.iter().map(|&b| b != 0).collect()),
            ElemType::String => Data::String(
                proto
                    .string_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            ElemType::Other(code) => {
                return Err(OnnxError::Model(format!(
                    "tensor {:?} has element type {code}, which keel's operators do not compute with",
                    proto.name
                )));
            }
        };
        if data.len() != count {
            return Err(OnnxError::Model(format!(
                "tensor {:?} has shape {shape:?} but {} values",
                proto.name,
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }
}

fn from_le<T, const N: usize>(raw: &[u8], read: fn([u8; N]) -> T) -> Vec<T> {
    raw.chunks_exact(N)
        .map(|c| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(c);
            read(bytes)
        })
        .collect()
}

/// The keys of a [`MapRows`].
#[derive(Clone, Debug, PartialEq)]
pub enum MapKeys {
    /// Integer keys (class labels).
    Int64(Vec<i64>),
    /// String keys (class labels).
    String(Vec<String>),
}

impl MapKeys {
    /// The number of keys.
    pub fn len(&self) -> usize {
        match self {
            Self::Int64(k) => k.len(),
            Self::String(k) => k.len(),
        }
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sequence of maps sharing their keys, one per row, as `ZipMap` makes from class
/// probabilities: `values` holds `keys.len()` floats per row.
#[derive(Clone, Debug, PartialEq)]
pub struct MapRows {
    /// The keys every map has.
    pub keys: MapKeys,
    /// The values, row-major.
    pub values: Vec<f32>,
}

impl MapRows {
    /// The number of maps.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.keys.len()).unwrap_or(0)
    }
}

/// A value in a graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A tensor.
    Tensor(Tensor),
    /// A sequence of maps.
    Maps(MapRows),
}

impl Value {
    /// The tensor, or an error naming what `op` expected.
    pub fn tensor(&self) -> Result<&Tensor, OnnxError> {
        match self {
            Self::Tensor(t) => Ok(t),
            Self::Maps(_) => Err(OnnxError::Shape(
                "a tensor was expected, a sequence of maps was given".into(),
            )),
        }
    }

    /// The tensor, by value.
    pub fn into_tensor(self) -> Result<Tensor, OnnxError> {
        match self {
            Self::Tensor(t) => Ok(t),
            Self::Maps(_) => Err(OnnxError::Shape(
                "a tensor was expected, a sequence of maps was given".into(),
            )),
        }
    }

    /// The number of rows (the first dimension, or the number of maps).
    pub fn rows(&self) -> usize {
        match self {
            Self::Tensor(t) => t.shape.first().copied().unwrap_or(1),
            Self::Maps(m) => m.rows(),
        }
    }
}

impl From<Tensor> for Value {
    fn from(t: Tensor) -> Self {
        Self::Tensor(t)
    }
}
