//! The score transforms the `ai.onnx.ml` classifiers and regressors apply (`post_transform`),
//! computed as onnxruntime computes them.

use crate::error::OnnxError;

/// A `post_transform` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub(crate) fn parse(s: &str) -> Result<Self, OnnxError> {
        Ok(match s {
            "NONE" => Self::None,
            "LOGISTIC" => Self::Logistic,
            "SOFTMAX" => Self::Softmax,
            "SOFTMAX_ZERO" => Self::SoftmaxZero,
            "PROBIT" => Self::Probit,
            other => {
                return Err(OnnxError::Model(format!(
                    "unknown post_transform {other:?}"
                )));
            }
        })
    }

    /// Applies the transform to one row of two or more scores.
    pub(crate) fn apply(self, scores: &mut [f32]) {
        match self {
            Self::None => {}
            Self::Logistic => scores.iter_mut().for_each(|s| *s = logistic(*s)),
            Self::Softmax => softmax(scores),
            Self::SoftmaxZero => softmax_zero(scores),
            Self::Probit => scores.iter_mut().for_each(|s| *s = probit(*s)),
        }
    }
}

/// The logistic function, stable for large |x|.
pub(crate) fn logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

pub(crate) fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(-f32::MAX, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

/// Softmax that leaves zero scores at zero (they stand for classes no tree voted for).
fn softmax_zero(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(-f32::MAX, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        if s.abs() > 1e-7 {
            *s = (*s - max).exp();
            sum += *s;
        } else {
            *s *= exp_neg_max;
        }
    }
    scores.iter_mut().for_each(|s| *s /= sum);
}

/// The probit function through the approximation of the inverse error function that
/// onnxruntime uses.
pub(crate) fn probit(x: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * x - 1.0)
}

fn erf_inv(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sign * v3.sqrt()
}

/// The index of the first largest value (the class a row of scores or votes picks).
pub(crate) fn first_max<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    for (k, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = k;
        }
    }
    best
}

/// How a binary classifier with one score per row fills in the other class's score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecondClass {
    /// The score is a probability: `[1 - s, s]`.
    Complement,
    /// The score is a margin: `[-s, s]`, or `[σ(-s), σ(s)]` under `LOGISTIC`.
    Mirror,
}

/// Writes two scores from a binary classifier's single score.
pub(crate) fn two_scores(score: f32, transform: PostTransform, second: SecondClass) -> [f32; 2] {
    match (second, transform) {
        (_, PostTransform::Probit) => [probit(score), 0.0],
        (SecondClass::Complement, _) => [1.0 - score, score],
        (SecondClass::Mirror, PostTransform::Logistic) => [logistic(-score), logistic(score)],
        (SecondClass::Mirror, _) => [-score, score],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_max_prefers_the_first_of_equals() {
        assert_eq!(first_max(&[1, 3, 3, 2]), 1);
        assert_eq!(first_max(&[0.5f32]), 0);
    }

    #[test]
    fn logistic_is_symmetric_and_bounded() {
        assert!((logistic(0.0) - 0.5).abs() < 1e-7);
        assert!((logistic(2.0) + logistic(-2.0) - 1.0).abs() < 1e-6);
        assert_eq!(logistic(-1000.0), 0.0);
        assert_eq!(logistic(1000.0), 1.0);
    }

    #[test]
    fn softmax_sums_to_one_and_softmax_zero_keeps_zeros() {
        let mut s = [1.0, 2.0, 3.0];
        softmax(&mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s[2] > s[1] && s[1] > s[0]);
        let mut z = [0.0, 2.0, 3.0];
        softmax_zero(&mut z);
        assert_eq!(z[0], 0.0);
        assert!((z[1] + z[2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn probit_inverts_the_normal_cdf_approximately() {
        assert!(probit(0.5).abs() < 1e-3);
        assert!((probit(0.975) - 1.96).abs() < 1e-2);
    }
}
