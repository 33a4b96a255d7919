//! Gradient-boosted trees, following scikit-learn's `HistGradientBoosting*`: each iteration
//! fits one tree per output to the loss gradients and hessians (squared error for values,
//! log loss for two classes, the multinomial log loss with one tree per class for more),
//! leaves worth `-learning_rate * G / (H + l2_regularization)`, starting from the best
//! constant (mean, log-odds, log class shares).
//!
//! With early stopping, `validation_fraction` of the rows (stratified for classes) is held
//! back and training stops when the validation loss has not improved by more than `tol` on
//! the loss `n_iter_no_change` iterations earlier. The loss per iteration (training and, when
//! held back, validation) is returned for logging.

use rayon::prelude::*;

use super::bins::Binned;
use super::forest::Labels;
use super::grow::{GrowSpec, Stats, grow};
use super::{Aggregate, Link, Tree, TreeModel, importance, pool, softmax};
use crate::error::Result;
use crate::matrix::Matrix;
use crate::rng::Rng;
use crate::split::train_test;

/// Rows per parallel chunk of loss and gradient work.
const CHUNK: usize = 8192;

/// What to boost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoostSpec {
    /// Shrinkage of every leaf.
    pub learning_rate: f64,
    /// Most iterations.
    pub max_iter: usize,
    /// How each tree grows.
    pub grow: GrowSpec,
    /// Bins per feature.
    pub max_bins: usize,
    /// Whether to hold rows back and stop when their loss stops improving.
    pub early_stopping: bool,
    /// Share of rows held back for early stopping.
    pub validation_fraction: f64,
    /// Iterations without improvement before stopping.
    pub n_iter_no_change: usize,
    /// Smallest improvement that counts.
    pub tol: f64,
    /// Threads (0: one per core).
    pub threads: usize,
    /// Seed of the validation split.
    pub seed: u64,
}

/// Loss per iteration, the first entry before any tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Mean loss on the rows trees are fitted on.
    pub train_loss: Vec<f64>,
    /// Mean loss on the held-back rows (empty without early stopping).
    pub validation_loss: Vec<f64>,
}

/// The loss being boosted.
#[derive(Clone, Copy)]
enum Loss<'a> {
    Squared(&'a [f64]),
    Binary(&'a [usize]),
    Multinomial(&'a [usize], usize),
}

impl Loss<'_> {
    fn outputs(&self) -> usize {
        match self {
            Loss::Multinomial(_, k) => *k,
            _ => 1,
        }
    }

    /// The best constant raw output over `rows`.
    fn base(&self, rows: &[usize]) -> Vec<f64> {
        let n = rows.len().max(1) as f64;
        match *self {
            Loss::Squared(y) => vec![rows.iter().map(|&r| y[r]).sum::<f64>() / n],
            Loss::Binary(y) => {
                let p = (rows.iter().filter(|&&r| y[r] == 1).count() as f64 / n)
                    .clamp(1e-15, 1.0 - 1e-15);
                vec![(p / (1.0 - p)).ln()]
            }
            Loss::Multinomial(y, k) => {
                let mut counts = vec![0.0; k];
                for &r in rows {
                    counts[y[r]] += 1.0;
                }
                counts
                    .iter()
                    .map(|c| (c / n).clamp(1e-15, 1.0).ln())
                    .collect()
            }
        }
    }

    /// Mean loss of raw outputs `raw` (`outputs()` per row) on `rows`.
    fn mean(&self, rows: &[usize], raw: &[f64]) -> f64 {
        let k = self.outputs();
        // Summed in fixed chunks (in parallel), then in order: the same total on any number
        // of threads.
        let chunks: Vec<f64> = rows
            .par_chunks(CHUNK)
            .zip(raw.par_chunks(CHUNK * k))
            .map(|(rows, raw)| self.total(rows, raw))
            .collect();
        chunks.iter().sum::<f64>() / rows.len().max(1) as f64
    }

    /// Summed loss of `raw` on `rows`.
    fn total(&self, rows: &[usize], raw: &[f64]) -> f64 {
        let k = self.outputs();
        rows.iter()
            .enumerate()
            .map(|(i, &r)| {
                let s = &raw[i * k..(i + 1) * k];
                match *self {
                    Loss::Squared(y) => 0.5 * (y[r] - s[0]).powi(2),
                    // log(1 + e^s) - y s, computed stably.
                    Loss::Binary(y) => {
                        s[0].max(0.0) + (-s[0].abs()).exp().ln_1p() - y[r] as f64 * s[0]
                    }
                    Loss::Multinomial(y, _) => {
                        let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let lse = top + s.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
                        lse - s[y[r]]
                    }
                }
            })
            .sum()
    }

    /// Gradients and hessians of output `c` on `rows`.
    fn gradients(&self, rows: &[usize], raw: &[f64], c: usize, grad: &mut [f64], hess: &mut [f64]) {
        let k = self.outputs();
        rows.par_chunks(CHUNK)
            .zip(raw.par_chunks(CHUNK * k))
            .zip(grad.par_chunks_mut(CHUNK).zip(hess.par_chunks_mut(CHUNK)))
            .for_each(|((rows, raw), (grad, hess))| self.gradients_of(rows, raw, c, grad, hess));
    }

    /// [`Loss::gradients`] of one chunk.
    fn gradients_of(
        &self,
        rows: &[usize],
        raw: &[f64],
        c: usize,
        grad: &mut [f64],
        hess: &mut [f64],
    ) {
        let k = self.outputs();
        for (i, &r) in rows.iter().enumerate() {
            let s = &raw[i * k..(i + 1) * k];
            let (g, h) = match *self {
                Loss::Squared(y) => (s[0] - y[r], 1.0),
                Loss::Binary(y) => {
                    let p = 1.0 / (1.0 + (-s[0]).exp());
                    (p - y[r] as f64, p * (1.0 - p))
                }
                Loss::Multinomial(y, _) => {
                    let p = softmax(s)[c];
                    (p - f64::from(u8::from(y[r] == c)), p * (1.0 - p))
                }
            };
            grad[i] = g;
            hess[i] = h;
        }
    }
}

/// scikit-learn's early-stopping rule on scores (higher is better): stop when none of the last
/// `n` scores beats the one before them by more than `tol`.
fn should_stop(scores: &[f64], n: usize, tol: f64) -> bool {
    if scores.len() < n + 1 {
        return false;
    }
    let reference = scores[scores.len() - n - 1] + tol;
    !scores[scores.len() - n..].iter().any(|&s| s > reference)
}

/// Boosts trees on `x` and `labels`.
pub fn fit_boosting(x: &Matrix, labels: Labels, spec: &BoostSpec) -> Result<(TreeModel, History)> {
    let loss = match labels {
        Labels::Values(v) => Loss::Squared(v),
        Labels::Classes { y, n: 2 } => Loss::Binary(y),
        Labels::Classes { y, n } => Loss::Multinomial(y, n),
    };
    let k = loss.outputs();
    let all: Vec<usize> = (0..x.rows).collect();
    let (fit_rows, val_rows) = if spec.early_stopping {
        let strata = match labels {
            Labels::Classes { y, .. } => Some(y),
            Labels::Values(_) => None,
        };
        let s = train_test(x.rows, spec.validation_fraction, spec.seed, strata)?;
        (s.train, s.test)
    } else {
        (all, Vec::new())
    };
    let x_fit = x.select(&fit_rows);
    let x_val = x.select(&val_rows);
    let binned = Binned::fit(&x_fit, spec.max_bins, spec.seed);
    let base = loss.base(&fit_rows);
    let n = fit_rows.len();
    let mut raw: Vec<f64> = base.iter().copied().cycle().take(n * k).collect();
    let mut raw_val: Vec<f64> = base
        .iter()
        .copied()
        .cycle()
        .take(val_rows.len() * k)
        .collect();
    let mut history = History::default();
    let mut scores = Vec::new();
    let record = |h: &mut History, scores: &mut Vec<f64>, raw: &[f64], raw_val: &[f64]| {
        h.train_loss.push(loss.mean(&fit_rows, raw));
        if !val_rows.is_empty() {
            let v = loss.mean(&val_rows, raw_val);
            h.validation_loss.push(v);
            scores.push(-v);
        }
    };
    record(&mut history, &mut scores, &raw, &raw_val);
    let mut trees = Vec::new();
    let mut gains = Vec::new();
    let (mut grad, mut hess) = (vec![0.0; n], vec![0.0; n]);
    let lr = spec.learning_rate;
    let l2 = spec.grow.l2;
    let leaf = |g: &[f64], h: f64| vec![-lr * g[0] / (h + l2)];
    let mut rng = Rng::new(spec.seed);
    let threads = pool(spec.threads)?;
    threads.install(|| {
        for _ in 0..spec.max_iter {
            let before = raw.clone();
            for c in 0..k {
                loss.gradients(&fit_rows, &before, c, &mut grad, &mut hess);
                let stats = Stats {
                    k: 1,
                    grad: &grad,
                    hess: &hess,
                };
                let rows: Vec<u32> = (0..n as u32).collect();
                let grown = grow(&binned, stats, rows, spec.grow, &mut rng, &leaf);
                for (node, rows) in &grown.leaves {
                    if let super::Node::Leaf { value } = &grown.nodes[*node] {
                        for &r in rows {
                            raw[r as usize * k + c] += value[0];
                        }
                    }
                }
                let tree = Tree {
                    output: c,
                    nodes: grown.nodes,
                };
                raw_val
                    .par_chunks_mut(CHUNK * k)
                    .enumerate()
                    .for_each(|(chunk, out)| {
                        for (j, o) in out.chunks_exact_mut(k).enumerate() {
                            o[c] += tree.leaf(x_val.row(chunk * CHUNK + j))[0];
                        }
                    });
                trees.push(tree);
                gains.push(grown.gains);
            }
            record(&mut history, &mut scores, &raw, &raw_val);
            if spec.early_stopping && should_stop(&scores, spec.n_iter_no_change, spec.tol) {
                break;
            }
        }
    });
    let model = TreeModel {
        outputs: k,
        base,
        aggregate: Aggregate::Sum,
        link: match loss {
            Loss::Squared(_) => Link::Identity,
            Loss::Binary(_) => Link::Logistic,
            Loss::Multinomial(..) => Link::Softmax,
        },
        trees,
        importance: importance(&gains, x.cols),
    };
    Ok((model, history))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(early_stopping: bool) -> BoostSpec {
        BoostSpec {
            learning_rate: 0.1,
            max_iter: 100,
            grow: GrowSpec {
                max_depth: 0,
                max_leaf_nodes: 31,
                min_samples_split: 2,
                min_samples_leaf: 20,
                min_hessian: 1e-3,
                l2: 0.0,
                max_features: usize::MAX,
                parallel: true,
            },
            max_bins: 255,
            early_stopping,
            validation_fraction: 0.1,
            n_iter_no_change: 10,
            tol: 1e-7,
            threads: 2,
            seed: 3,
        }
    }

    fn data(n: usize, seed: u64) -> Matrix {
        let mut rng = Rng::new(seed);
        Matrix {
            rows: n,
            cols: 3,
            data: (0..n * 3)
                .map(|_| rng.below(1_000_000) as f64 / 1e6 * 2.0 - 1.0)
                .collect(),
        }
    }

    #[test]
    fn boosting_fits_values_and_classes_and_its_loss_falls() {
        let x = data(4000, 1);
        let xt = data(2000, 2);
        let f = |r: &[f64]| (3.0 * r[0]).sin() + r[1] * r[1];
        let y: Vec<f64> = (0..x.rows).map(|i| f(x.row(i))).collect();
        let yt: Vec<f64> = (0..xt.rows).map(|i| f(xt.row(i))).collect();
        let (m, h) = fit_boosting(&x, Labels::Values(&y), &spec(false)).unwrap();
        assert_eq!((m.trees.len(), h.train_loss.len()), (100, 101));
        assert!(h.train_loss.windows(2).all(|w| w[1] <= w[0]), "{h:?}");
        let r = keel_stats::regression(&yt, &m.predict_values(&xt)).unwrap();
        assert!(r.r2 > 0.97, "{r:?}");

        // Three classes by angle; two classes by sign, with early stopping.
        let class = |r: &[f64]| ((r[1].atan2(r[0]) + std::f64::consts::PI) / 2.1) as usize;
        let y3: Vec<usize> = (0..x.rows).map(|i| class(x.row(i)).min(2)).collect();
        let yt3: Vec<usize> = (0..xt.rows).map(|i| class(xt.row(i)).min(2)).collect();
        let (m3, _) = fit_boosting(&x, Labels::Classes { y: &y3, n: 3 }, &spec(false)).unwrap();
        assert_eq!(m3.trees.len(), 300);
        let c = keel_stats::classification(&yt3, &m3.predict_proba(&xt), 3).unwrap();
        assert!(c.accuracy > 0.95, "{c:?}");
        let y2: Vec<usize> = (0..x.rows)
            .map(|i| usize::from(x.row(i)[0] + x.row(i)[2] > 0.0))
            .collect();
        let yt2: Vec<usize> = (0..xt.rows)
            .map(|i| usize::from(xt.row(i)[0] + xt.row(i)[2] > 0.0))
            .collect();
        let mut es = spec(true);
        es.max_iter = 1000;
        let (m2, h2) = fit_boosting(&x, Labels::Classes { y: &y2, n: 2 }, &es).unwrap();
        assert!(m2.trees.len() < 1000, "early stopping never stopped");
        assert_eq!(h2.validation_loss.len(), m2.trees.len() + 1);
        let c = keel_stats::classification(&yt2, &m2.predict_proba(&xt), 2).unwrap();
        assert!(c.roc_auc.unwrap() > 0.99, "{c:?}");
        assert!(m2.importance[1] < 0.1, "{:?}", m2.importance);
    }

    #[test]
    fn thread_count_never_changes_the_model() {
        // Enough rows for histograms and split searches to run on several threads.
        let x = data(20_000, 5);
        let y: Vec<usize> = (0..x.rows)
            .map(|i| usize::from(x.row(i)[0] * x.row(i)[1] + 0.3 * x.row(i)[2] > 0.0))
            .collect();
        let mut one = spec(true);
        one.max_iter = 20;
        one.threads = 1;
        let many = BoostSpec { threads: 3, ..one };
        let (a, _) = fit_boosting(&x, Labels::Classes { y: &y, n: 2 }, &one).unwrap();
        let (b, _) = fit_boosting(&x, Labels::Classes { y: &y, n: 2 }, &many).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn stopping_rule_matches_scikit_learn() {
        assert!(!should_stop(&[1.0, 2.0], 2, 0.0));
        assert!(should_stop(&[1.0, 1.0, 1.0], 2, 0.0));
        assert!(!should_stop(&[1.0, 1.0, 1.5], 2, 0.0));
        assert!(should_stop(&[1.0, 1.0, 1.5], 2, 0.6));
    }
}
