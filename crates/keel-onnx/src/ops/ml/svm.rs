//! The support-vector kernels (shared with `SVMClassifier` in `svc.rs`) and `SVMRegressor`:
//! a support-vector machine's decision value per row, what skl2onnx emits for
//! scikit-learn's `SVR`, `NuSVR` and `OneClassSVM`. Follows onnxruntime: the kernel between the
//! row and every support vector (`LINEAR`, `POLY`, `RBF`, `SIGMOID`, parameters
//! `[gamma, coef0, degree]`), weighted by the coefficients, plus `rho`; with no support vectors
//! (`n_supports` 0) the coefficients are one linear weight per feature. A one-class model
//! answers the sign (1 or -1). onnxruntime does not apply `post_transform` here, and neither
//! does keel.

use std::borrow::Cow;

use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{Tensor, Value};

/// The kernel function between a row and a support vector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum SvmKernel {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl SvmKernel {
    pub(super) fn parse(name: &str, params: &[f32]) -> Result<Self, OnnxError> {
        let p = |i: usize| params.get(i).copied().unwrap_or(0.0);
        let (gamma, coef0, degree) = (p(0), p(1), p(2));
        Ok(match name {
            "LINEAR" => Self::Linear,
            "POLY" => Self::Poly {
                gamma,
                coef0,
                degree,
            },
            "RBF" => Self::Rbf { gamma },
            "SIGMOID" => Self::Sigmoid { gamma, coef0 },
            other => return Err(OnnxError::Model(format!("unknown kernel_type {other:?}"))),
        })
    }

    /// `K(x, v)`, accumulated in `f64`.
    pub(super) fn apply(self, x: &[f32], v: &[f32]) -> f64 {
        let dot = || -> f64 {
            x.iter()
                .zip(v)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum()
        };
        match self {
            Self::Linear => dot(),
            Self::Poly {
                gamma,
                coef0,
                degree,
            } => (f64::from(gamma) * dot() + f64::from(coef0)).powf(f64::from(degree)),
            Self::Rbf { gamma } => {
                let d2: f64 = x
                    .iter()
                    .zip(v)
                    .map(|(&a, &b)| {
                        let d = f64::from(a) - f64::from(b);
                        d * d
                    })
                    .sum();
                (-f64::from(gamma) * d2).exp()
            }
            Self::Sigmoid { gamma, coef0 } => (f64::from(gamma) * dot() + f64::from(coef0)).tanh(),
        }
    }
}

/// `SVMRegressor`.
pub(crate) struct Regressor {
    kernel: SvmKernel,
    /// `[n_supports, features]`, empty for the linear form.
    support_vectors: Vec<f32>,
    /// One per support vector, or one per feature for the linear form.
    coefficients: Vec<f32>,
    rho: f32,
    features: usize,
    one_class: bool,
}

impl Regressor {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let coefficients = a.floats("coefficients");
        let support_vectors = a.floats("support_vectors");
        let supports = usize::try_from(a.int("n_supports", 0))
            .map_err(|_| OnnxError::Model("n_supports is negative".into()))?;
        let rho = a.floats("rho");
        let Some(&rho) = rho.first() else {
            return Err(OnnxError::Model("SVMRegressor has no rho".into()));
        };
        if coefficients.is_empty() {
            return Err(OnnxError::Model("SVMRegressor has no coefficients".into()));
        }
        let (kernel, features) = if supports > 0 {
            if coefficients.len() != supports
                || support_vectors.is_empty()
                || !support_vectors.len().is_multiple_of(supports)
            {
                return Err(OnnxError::Model(format!(
                    "{} support vector values and {} coefficients do not fit {supports} support vectors",
                    support_vectors.len(),
                    coefficients.len()
                )));
            }
            let kernel = SvmKernel::parse(
                &a.string("kernel_type", "LINEAR"),
                &a.floats("kernel_params"),
            )?;
            (kernel, support_vectors.len() / supports)
        } else {
            (SvmKernel::Linear, coefficients.len())
        };
        Ok(Self {
            kernel,
            support_vectors: if supports > 0 {
                support_vectors
            } else {
                Vec::new()
            },
            coefficients,
            rho,
            features,
            one_class: a.int("one_class", 0) != 0,
        })
    }

    fn score(&self, row: &[f32]) -> f32 {
        let value = if self.support_vectors.is_empty() {
            self.kernel.apply(row, &self.coefficients)
        } else {
            self.support_vectors
                .chunks_exact(self.features)
                .zip(&self.coefficients)
                .map(|(v, &c)| f64::from(c) * self.kernel.apply(row, v))
                .sum()
        };
        let value = (value + f64::from(self.rho)) as f32;
        match self.one_class {
            true if value > 0.0 => 1.0,
            true => -1.0,
            false => value,
        }
    }
}

/// A support-vector model's input: its row count and row-major floats of `features` columns.
pub(super) fn rows<'v>(
    inputs: &[Option<&'v Value>],
    features: usize,
) -> Result<(usize, Cow<'v, [f32]>), OnnxError> {
    let x = input(inputs, 0)?;
    let (rows, cols) = x.rows_cols();
    if cols != features {
        return Err(OnnxError::Shape(format!(
            "the support vector machine reads {features} features, the input has {cols}"
        )));
    }
    Ok((rows, x.to_f32()?))
}

impl Kernel for Regressor {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (rows, data) = rows(inputs, self.features)?;
        let out = data
            .chunks_exact(self.features.max(1))
            .take(rows)
            .map(|row| self.score(row))
            .collect();
        Ok(vec![Tensor::float(vec![rows, 1], out)?.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_follow_their_definitions() {
        let (x, v) = ([1.0, 2.0], [3.0, -1.0]);
        assert_eq!(SvmKernel::Linear.apply(&x, &v), 1.0);
        let poly = SvmKernel::parse("POLY", &[0.5, 1.0, 3.0]).unwrap();
        assert_eq!(poly.apply(&x, &v), 1.5f64.powi(3));
        let rbf = SvmKernel::parse("RBF", &[0.5]).unwrap();
        assert!((rbf.apply(&x, &v) - (-0.5f64 * 13.0).exp()).abs() < 1e-12);
        let sigmoid = SvmKernel::parse("SIGMOID", &[2.0, -1.0]).unwrap();
        assert!((sigmoid.apply(&x, &v) - 1.0f64.tanh()).abs() < 1e-12);
        {
            let e = SvmKernel::parse("CUBIC", &[])
                .expect_err("an error")
                .to_string();
            assert!(e.contains("unknown kernel_type"), "{e}");
        }
    }
}
