//! Typed access to a node's attributes, with the defaults each operator documents.

use crate::error::OnnxError;
use crate::proto::{AttributeProto, NodeProto};
use crate::tensor::Tensor;

/// A node's attributes.
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeProto) -> Self {
        Self { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn missing(&self, name: &str) -> OnnxError {
        OnnxError::Model(format!(
            "{} node {:?} lacks the attribute {name:?}",
            self.node.op_type, self.node.name
        ))
    }

    /// Whether the attribute is present.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(crate) fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map_or(default, |a| a.i)
    }

    pub(crate) fn int_required(&self, name: &str) -> Result<i64, OnnxError> {
        self.get(name)
            .map(|a| a.i)
            .ok_or_else(|| self.missing(name))
    }

    pub(crate) fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map_or(default, |a| a.f)
    }

    pub(crate) fn string(&self, name: &str, default: &str) -> String {
        self.get(name).map_or(default.to_string(), |a| {
            String::from_utf8_lossy(&a.s).into_owned()
        })
    }

    pub(crate) fn floats(&self, name: &str) -> Vec<f32> {
        self.get(name).map(|a| a.floats.clone()).unwrap_or_default()
    }

    pub(crate) fn ints(&self, name: &str) -> Vec<i64> {
        self.get(name).map(|a| a.ints.clone()).unwrap_or_default()
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<Tensor>, OnnxError> {
        match self.get(name).and_then(|a| a.t.as_ref()) {
            Some(t) => Tensor::from_proto(t).map(Some),
            None => Ok(None),
        }
    }

    /// The values of a float or double tensor attribute, empty when it is absent.
    pub(crate) fn tensor_floats(&self, name: &str) -> Result<Vec<f32>, OnnxError> {
        match self.tensor(name)? {
            Some(t) => Ok(t.to_f32()?.into_owned()),
            None => Ok(Vec::new()),
        }
    }

    /// The bytes of a `uint8` tensor attribute, empty when it is absent.
    pub(crate) fn tensor_bytes(&self, name: &str) -> Result<Vec<u8>, OnnxError> {
        /// `TensorProto.DataType.UINT8`.
        const UINT8: i32 = 2;
        let Some(t) = self.get(name).and_then(|a| a.t.as_ref()) else {
            return Ok(Vec::new());
        };
        if t.data_type != UINT8 {
            return Err(OnnxError::Model(format!("{name} is not a uint8 tensor")));
        }
        if !t.raw_data.is_empty() {
            return Ok(t.raw_data.clone());
        }
        t.int32_data
            .iter()
            .map(|&v| {
                u8::try_from(v)
                    .map_err(|_| OnnxError::Model(format!("{name} holds {v}, not a uint8")))
            })
            .collect()
    }

    /// Floats given either as `name` or as the double tensor `name_as_tensor`.
    pub(crate) fn floats_or_tensor(&self, name: &str) -> Result<Vec<f32>, OnnxError> {
        if self.has(name) {
            return Ok(self.floats(name));
        }
        match self.tensor(&format!("{name}_as_tensor"))? {
            Some(t) => Ok(t.to_f32()?.into_owned()),
            None => Ok(Vec::new()),
        }
    }
}
