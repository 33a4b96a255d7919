//! `SVMClassifier`: what skl2onnx emits for scikit-learn's `SVC` and `NuSVC`. Follows
//! onnxruntime. With `vectors_per_class` the model is libsvm's one-vs-one form: for every pair of
//! classes a decision value from both classes' support vectors, a vote for the class it favours,
//! and the label of the class with the most votes (the first on a tie). The scores are the pair
//! decision values, or, with Platt's `prob_a`/`prob_b`, class probabilities coupled from the
//! pairwise ones (Wu, Lin and Weng 2004, as libsvm). Without support vectors the coefficients are
//! one weight row per class, as liblinear's.

use super::linear::Weights;
use super::svm::SvmKernel;
use super::transform::{PostTransform, SecondClass, first_max, two_scores};
use super::tree::{Labels, Pick};
use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{Tensor, Value};

/// A pairwise probability is kept this far from 0 and 1 before the coupling.
const PROBABILITY_FLOOR: f32 = 1e-7;
/// At most this many rounds of the coupling's fixed-point iteration.
const COUPLING_ROUNDS: usize = 100;

/// `SVMClassifier`.
pub(crate) struct Classifier {
    form: Form,
    labels: Labels,
    transform: PostTransform,
    features: usize,
    /// Platt's sigmoid parameters `(a, b)`, one pair per class pair; empty without them.
    platt: Vec<(f32, f32)>,
}

/// How the decision values are computed.
enum Form {
    /// libsvm's one-vs-one classifiers.
    Pairwise(Pairwise),
    /// One weight row per class plus a shared bias.
    Linear {
        /// One target per class, each with the shared bias as its intercept.
        weights: Weights,
        all_positive: bool,
    },
}

struct Pairwise {
    kernel: SvmKernel,
    /// `[vectors, features]`, grouped by class.
    support_vectors: Vec<f32>,
    /// Where each class's support vectors start, plus the total at the end.
    starts: Vec<usize>,
    /// `[classes - 1, vectors]`: a support vector's weight against each other class.
    coefficients: Vec<f32>,
    /// One bias per class pair, in the order (0,1), (0,2), …, (1,2), …
    rho: Vec<f32>,
}

impl Pairwise {
    fn vectors(&self) -> usize {
        self.starts.last().copied().unwrap_or(0)
    }

    /// The decision value of every class pair for one row, and the class with the most votes.
    fn decide(
        &self,
        row: &[f32],
        features: usize,
        kernels: &mut Vec<f64>,
        pairs: &mut Vec<f32>,
    ) -> usize {
        let vectors = self.vectors();
        kernels.clear();
        kernels.extend(
            self.support_vectors
                .chunks_exact(features.max(1))
                .take(vectors)
                .map(|v| self.kernel.apply(row, v)),
        );
        let classes = self.starts.len() - 1;
        let mut votes = vec![0u32; classes];
        pairs.clear();
        for i in 0..classes {
            for j in i + 1..classes {
                let side = |class: usize, row_of_other: usize| -> f64 {
                    let span = self.starts[class]..self.starts[class + 1];
                    let weights = &self.coefficients[row_of_other * vectors..][span.clone()];
                    weights
                        .iter()
                        .zip(&kernels[span])
                        .map(|(&w, &k)| f64::from(w) * k)
                        .sum()
                };
                let sum = side(i, j - 1) + side(j, i) + f64::from(self.rho[pairs.len()]);
                pairs.push(sum as f32);
                votes[if sum > 0.0 { i } else { j }] += 1;
            }
        }
        first_max(&votes)
    }
}

impl Classifier {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let labels = Labels::from_attrs(&a, "classlabels_ints", "classlabels_strings")?;
        let classes = labels.len();
        let transform = PostTransform::parse(&a.string("post_transform", "NONE"))?;
        let coefficients = a.floats("coefficients");
        let rho = a.floats("rho");
        let (prob_a, prob_b) = (a.floats("prob_a"), a.floats("prob_b"));
        if prob_a.len() != prob_b.len() {
            return Err(OnnxError::Model(format!(
                "{} prob_a and {} prob_b values",
                prob_a.len(),
                prob_b.len()
            )));
        }
        if coefficients.is_empty() {
            return Err(OnnxError::Model("SVMClassifier has no coefficients".into()));
        }
        let per_class = a.ints("vectors_per_class");
        let mut starts = vec![0usize];
        for &n in &per_class {
            let n = usize::try_from(n)
                .map_err(|_| OnnxError::Model("vectors_per_class is negative".into()))?;
            starts.push(starts[starts.len() - 1].saturating_add(n));
        }
        let vectors = starts[starts.len() - 1];
        let pair_count = classes * classes.saturating_sub(1) / 2;
        let mut platt: Vec<(f32, f32)> = prob_a.into_iter().zip(prob_b).collect();
        let (form, features) = if vectors > 0 {
            let support_vectors = a.floats("support_vectors");
            if per_class.len() != classes || classes < 2 {
                return Err(OnnxError::Model(format!(
                    "vectors_per_class has {} entries for {classes} class labels",
                    per_class.len()
                )));
            }
            if support_vectors.is_empty() || !support_vectors.len().is_multiple_of(vectors) {
                return Err(OnnxError::Model(format!(
                    "{} support vector values do not fit {vectors} support vectors",
                    support_vectors.len()
                )));
            }
            if coefficients.len() < (classes - 1).saturating_mul(vectors) || rho.len() < pair_count
            {
                return Err(OnnxError::Model(format!(
                    "{} coefficients and {} rho values are too few for {classes} classes and {vectors} support vectors",
                    coefficients.len(),
                    rho.len()
                )));
            }
            if !platt.is_empty() && platt.len() < pair_count {
                return Err(OnnxError::Model(format!(
                    "{} prob_a values for {pair_count} class pairs",
                    platt.len()
                )));
            }
            platt.truncate(pair_count);
            let kernel = SvmKernel::parse(
                &a.string("kernel_type", "LINEAR"),
                &a.floats("kernel_params"),
            )?;
            let features = support_vectors.len() / vectors;
            let form = Form::Pairwise(Pairwise {
                kernel,
                support_vectors,
                starts,
                coefficients,
                rho,
            });
            (form, features)
        } else {
            let Some(&bias) = rho.first() else {
                return Err(OnnxError::Model("SVMClassifier has no rho".into()));
            };
            if classes == 0 || !coefficients.len().is_multiple_of(classes) {
                return Err(OnnxError::Model(format!(
                    "{} coefficients do not fit {classes} class labels",
                    coefficients.len()
                )));
            }
            let features = coefficients.len() / classes;
            let all_positive = coefficients.iter().all(|&c| c >= 0.0);
            let form = Form::Linear {
                weights: Weights {
                    coefficients,
                    intercepts: vec![bias; classes],
                    targets: classes,
                },
                all_positive,
            };
            (form, features)
        };
        Ok(Self {
            form,
            labels,
            transform,
            features,
            platt,
        })
    }

    /// Labels and scores `[rows, width]` for the pairwise form.
    fn pairwise(&self, p: &Pairwise, data: &[f32], rows: usize) -> (Vec<Pick>, Vec<f32>, usize) {
        let classes = self.labels.len();
        let width = match (self.platt.is_empty(), classes) {
            (false, _) => classes,
            (true, 2) => 2,
            (true, _) => classes * (classes - 1) / 2,
        };
        let mut picks = Vec::with_capacity(rows);
        let mut out = Vec::with_capacity(rows * width);
        let (mut kernels, mut pairs) = (Vec::new(), Vec::new());
        for row in data.chunks_exact(self.features.max(1)).take(rows) {
            picks.push(Pick::Class(p.decide(
                row,
                self.features,
                &mut kernels,
                &mut pairs,
            )));
            if !self.platt.is_empty() {
                let start = out.len();
                out.resize(start + classes, 0.0);
                self.couple(&pairs, &mut out[start..]);
                self.transform.apply(&mut out[start..]);
            } else if classes == 2 {
                let second = match self.transform {
                    PostTransform::None => SecondClass::Mirror,
                    _ => SecondClass::Complement,
                };
                out.extend(two_scores(pairs[0], self.transform, second));
            } else {
                let start = out.len();
                out.extend_from_slice(&pairs);
                self.transform.apply(&mut out[start..]);
            }
        }
        (picks, out, width)
    }

    /// Class probabilities from the pair decision values through Platt's sigmoids.
    fn couple(&self, pairs: &[f32], probabilities: &mut [f32]) {
        let k = probabilities.len();
        let mut r = vec![0f32; k * k];
        let mut index = 0;
        for i in 0..k {
            for j in i + 1..k {
                let (a, b) = self.platt[index];
                let p = (1.0 - super::transform::logistic(pairs[index] * a + b))
                    .clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR);
                r[i * k + j] = p;
                r[j * k + i] = 1.0 - p;
                index += 1;
            }
        }
        couple_pairwise(&r, probabilities);
    }

    /// Labels for the linear form's scores `[rows, classes]`, which it then transforms.
    fn linear(&self, scores: &mut [f32], all_positive: bool) -> Vec<Pick> {
        let classes = self.labels.len();
        scores
            .chunks_exact_mut(classes)
            .map(|row| {
                let best = first_max(row);
                let top = row[best];
                // A binary model without probabilities labels by the top score's value, as
                // onnxruntime does.
                let second = classes == 2
                    && self.platt.is_empty()
                    && ((all_positive && top >= 0.5) || (!all_positive && top > 0.0));
                self.transform.apply(row);
                Pick::Class(if second { 1 } else { best })
            })
            .collect()
    }
}

/// libsvm's pairwise coupling: the class probabilities `p` that best agree with the pairwise
/// probabilities `r[i][j]` (class `i` over `j`), by its fixed-point iteration in `f32`.
fn couple_pairwise(r: &[f32], p: &mut [f32]) {
    let k = p.len();
    let mut q = vec![0f32; k * k];
    for i in 0..k {
        for j in 0..k {
            if j != i {
                q[i * k + i] += r[j * k + i] * r[j * k + i];
                q[i * k + j] = -r[j * k + i] * r[i * k + j];
            }
        }
    }
    p.iter_mut().for_each(|v| *v = 1.0 / k as f32);
    let eps = 0.005 / k as f32;
    let mut qp = vec![0f32; k];
    for _ in 0..COUPLING_ROUNDS {
        let mut pqp = 0.0;
        for i in 0..k {
            qp[i] = (0..k).map(|j| q[i * k + j] * p[j]).sum();
            pqp += p[i] * qp[i];
        }
        let max_error = qp.iter().map(|v| (v - pqp).abs()).fold(0.0, f32::max);
        if max_error < eps {
            break;
        }
        for i in 0..k {
            let diff = (-qp[i] + pqp) / q[i * k + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * k + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..k {
                qp[j] = (qp[j] + diff * q[i * k + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

impl Kernel for Classifier {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let (rows, picks, out, width) = match &self.form {
            Form::Pairwise(p) => {
                let (rows, data) = super::svm::rows(inputs, self.features)?;
                let (picks, out, width) = self.pairwise(p, &data, rows);
                (rows, picks, out, width)
            }
            Form::Linear {
                weights,
                all_positive,
            } => {
                let (rows, mut scores) = weights.scores(input(inputs, 0)?)?;
                let picks = self.linear(&mut scores, *all_positive);
                (rows, picks, scores, self.labels.len())
            }
        };
        Ok(vec![
            self.labels.tensor(&picks)?.into(),
            Tensor::float(vec![rows, width], out)?.into(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coupling_recovers_consistent_pairwise_probabilities() {
        // Pairwise probabilities made from p = (0.5, 0.3, 0.2): r[i][j] = p_i / (p_i + p_j).
        let truth = [0.5f32, 0.3, 0.2];
        let mut r = vec![0f32; 9];
        for i in 0..3 {
            for j in 0..3 {
                if i != j {
                    r[i * 3 + j] = truth[i] / (truth[i] + truth[j]);
                }
            }
        }
        let mut p = [0f32; 3];
        couple_pairwise(&r, &mut p);
        for (got, want) in p.iter().zip(truth) {
            assert!((got - want).abs() < 5e-3, "{p:?}");
        }
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}
