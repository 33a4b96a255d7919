//! `LinearClassifier` and `LinearRegressor`: `X · Wᵀ + b` per row, then onnxruntime's
//! labelling and score conventions.

use super::transform::{PostTransform, SecondClass, first_max, two_scores};
use super::tree::{Labels, Pick};
use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{Tensor, Value};

/// Coefficients `[targets, features]` and intercepts `[targets]`.
pub(super) struct Weights {
    pub(super) coefficients: Vec<f32>,
    pub(super) intercepts: Vec<f32>,
    pub(super) targets: usize,
}

impl Weights {
    fn features(&self) -> usize {
        self.coefficients.len() / self.targets
    }

    /// Scores `[rows, targets]`.
    pub(super) fn scores(&self, x: &Tensor) -> Result<(usize, Vec<f32>), OnnxError> {
        let (rows, cols) = x.rows_cols();
        let f = self.features();
        if cols != f {
            return Err(OnnxError::Shape(format!(
                "the model has {f} coefficients per target, the input {cols} columns"
            )));
        }
        let data = x.to_f32()?;
        let mut out = Vec::with_capacity(rows * self.targets);
        for row in data.chunks_exact(f.max(1)).take(rows) {
            for t in 0..self.targets {
                let w = &self.coefficients[t * f..(t + 1) * f];
                let dot: f32 = row.iter().zip(w).map(|(a, b)| a * b).sum();
                out.push(dot + self.intercepts.get(t).copied().unwrap_or(0.0));
            }
        }
        if f == 0 {
            out.resize(rows * self.targets, 0.0);
        }
        Ok((rows, out))
    }
}

/// `LinearRegressor`.
pub(crate) struct Regressor {
    weights: Weights,
    transform: PostTransform,
}

impl Regressor {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let targets = usize::try_from(a.int("targets", 1))
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| OnnxError::Model("targets must be positive".into()))?;
        let coefficients = a.floats("coefficients");
        let intercepts = a.floats("intercepts");
        if !coefficients.len().is_multiple_of(targets)
            || !(intercepts.is_empty() || intercepts.len() == targets)
        {
            return Err(OnnxError::Model(format!(
                "{} coefficients and {} intercepts do not fit {targets} targets",
                coefficients.len(),
                intercepts.len()
            )));
        }
        Ok(Self {
            weights: Weights {
                coefficients,
                intercepts,
                targets,
            },
            transform: PostTransform::parse(&a.string("post_transform", "NONE"))?,
        })
    }
}

impl Kernel for Regressor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (rows, mut out) = self.weights.scores(input(inputs, 0)?)?;
        let t = self.weights.targets;
        if t > 1 {
            out.chunks_exact_mut(t)
                .for_each(|s| self.transform.apply(s));
        } else if self.transform == PostTransform::Probit {
            out.iter_mut()
                .for_each(|s| *s = super::transform::probit(*s));
        }
        Ok(vec![Tensor::float(vec![rows, t], out)?.into()])
    }
}

/// `LinearClassifier`.
pub(crate) struct Classifier {
    weights: Weights,
    labels: Labels,
    transform: PostTransform,
}

impl Classifier {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let labels = Labels::from_attrs(&a, "classlabels_ints", "classlabels_strings")?;
        let coefficients = a.floats("coefficients");
        let intercepts = a.floats("intercepts");
        let targets = intercepts.len();
        if targets == 0 || !coefficients.len().is_multiple_of(targets) {
            return Err(OnnxError::Model(format!(
                "{} coefficients do not fit {targets} intercepts",
                coefficients.len()
            )));
        }
        if targets != labels.len() && !(targets == 1 && labels.len() == 2) {
            return Err(OnnxError::Model(format!(
                "{targets} score rows for {} class labels",
                labels.len()
            )));
        }
        Ok(Self {
            weights: Weights {
                coefficients,
                intercepts,
                targets,
            },
            labels,
            transform: PostTransform::parse(&a.string("post_transform", "NONE"))?,
        })
    }
}

impl Kernel for Classifier {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (rows, scores) = self.weights.scores(input(inputs, 0)?)?;
        let t = self.weights.targets;
        let (picks, out, width): (Vec<Pick>, Vec<f32>, usize) = if t == 1 {
            // One margin for two classes: the label by its sign, the scores [1 - s, s].
            let two = self.labels.len() == 2;
            let picks = scores
                .iter()
                .map(|&s| match two {
                    true => Pick::Class(usize::from(s > 0.0)),
                    false => Pick::Literal(i64::from(s > 0.0)),
                })
                .collect();
            let out = scores
                .iter()
                .flat_map(|&s| two_scores(s, self.transform, SecondClass::Complement))
                .collect();
            (picks, out, 2)
        } else {
            let mut out = scores;
            let picks = out
                .chunks_exact(t)
                .map(|row| Pick::Class(first_max(row)))
                .collect();
            out.chunks_exact_mut(t)
                .for_each(|s| self.transform.apply(s));
            (picks, out, t)
        };
        Ok(vec![
            self.labels.tensor(&picks)?.into(),
            Tensor::float(vec![rows, width], out)?.into(),
        ])
    }
}
