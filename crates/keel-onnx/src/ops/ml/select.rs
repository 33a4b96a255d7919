//! Column selection and assembly: `ArrayFeatureExtractor`, `FeatureVectorizer` and `ZipMap`.

use super::tree::Labels;
use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{MapKeys, MapRows, Tensor, Value};

/// `ArrayFeatureExtractor`: the last axis' elements at the given indices.
pub(crate) struct ArrayFeatureExtractor;

impl Kernel for ArrayFeatureExtractor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let indices = input(inputs, 1)?.to_i64()?;
        let last = x.shape.last().copied().unwrap_or(1);
        let picks = indices
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .filter(|&i| i < last)
                    .ok_or_else(|| {
                        OnnxError::Shape(format!("index {i} out of range for {last} columns"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outer = x.len() / last.max(1);
        let gathered = x
            .data
            .gather((0..outer).flat_map(|o| picks.iter().map(move |&p| o * last + p)));
        let shape = if x.shape.len() <= 1 {
            vec![1, picks.len()]
        } else {
            let mut s = x.shape.clone();
            if let Some(l) = s.last_mut() {
                *l = picks.len();
            }
            s
        };
        Ok(vec![Tensor::new(shape, gathered)?.into()])
    }
}

/// `FeatureVectorizer`: inputs side by side, each cut or padded with zeros to its declared
/// width.
pub(crate) struct FeatureVectorizer {
    widths: Vec<usize>,
}

impl FeatureVectorizer {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let widths = Attrs::new(node)
            .ints("inputdimensions")
            .into_iter()
            .map(usize::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| OnnxError::Model("negative inputdimensions".into()))?;
        Ok(Self { widths })
    }
}

impl Kernel for FeatureVectorizer {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let total: usize = self.widths.iter().sum();
        let mut rows = None;
        let mut parts = Vec::with_capacity(self.widths.len());
        for (i, &w) in self.widths.iter().enumerate() {
            let x = input(inputs, i)?;
            let (r, c) = x.rows_cols();
            if rows.is_some_and(|n| n != r) {
                return Err(OnnxError::Shape("inputs with different row counts".into()));
            }
            rows = Some(r);
            parts.push((x.to_f32()?, c, w));
        }
        let rows = rows.unwrap_or(0);
        let mut out = vec![0.0f32; rows * total];
        let mut offset = 0;
        for (data, cols, width) in &parts {
            for r in 0..rows {
                let n = (*cols).min(*width);
                out[r * total + offset..r * total + offset + n]
                    .copy_from_slice(&data[r * cols..r * cols + n]);
            }
            offset += width;
        }
        Ok(vec![Tensor::float(vec![rows, total], out)?.into()])
    }
}

/// `ZipMap`: each row of class scores as a map from class label to score.
pub(crate) struct ZipMap {
    keys: MapKeys,
}

impl ZipMap {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let keys = match Labels::from_attrs(&a, "classlabels_int64s", "classlabels_strings")? {
            Labels::Int64(k) => MapKeys::Int64(k),
            Labels::String(k) => MapKeys::String(k),
        };
        Ok(Self { keys })
    }
}

impl Kernel for ZipMap {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let (_, cols) = x.rows_cols();
        if cols != self.keys.len() {
            return Err(OnnxError::Shape(format!(
                "{cols} scores per row for {} labels",
                self.keys.len()
            )));
        }
        Ok(vec![Value::Maps(MapRows {
            keys: self.keys.clone(),
            values: x.to_f32()?.into_owned(),
        })])
    }
}
