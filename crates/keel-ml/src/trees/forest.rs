//! Decision trees and random forests (scikit-learn's `DecisionTree*` and
//! `RandomForest*`): Gini impurity for classes, squared error for values; a forest's trees
//! each see a bootstrap sample of the rows and a random subset of the features at every
//! node, and their leaves' class shares (or values) are averaged.
//!
//! Trees are fitted in parallel, each from its own seed (the forest's seed and the tree's
//! number), so the forest is the same whatever the number of threads.

use rayon::prelude::*;

use super::bins::Binned;
use super::grow::{GrowSpec, Stats, grow};
use super::{Aggregate, Link, Tree, TreeModel, importance, pool};
use crate::error::Result;
use crate::matrix::Matrix;
use crate::rng::Rng;

/// What a tree learns.
#[derive(Debug, Clone, Copy)]
pub enum Labels<'a> {
    /// A class `0..n` per row.
    Classes {
        /// Class of each row.
        y: &'a [usize],
        /// Number of classes.
        n: usize,
    },
    /// A value per row.
    Values(&'a [f64]),
}

impl Labels<'_> {
    /// Outputs per row: one per class, or one value.
    pub fn outputs(&self) -> usize {
        match self {
            Labels::Classes { n, .. } => *n,
            Labels::Values(_) => 1,
        }
    }
}

/// A forest (or, with one tree and no bootstrap, a decision tree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForestSpec {
    /// Number of trees.
    pub n_estimators: usize,
    /// Whether each tree sees a bootstrap sample of the rows (else all of them).
    pub bootstrap: bool,
    /// How each tree grows.
    pub grow: GrowSpec,
    /// Bins per feature.
    pub max_bins: usize,
    /// Threads (0: one per core).
    pub threads: usize,
    /// Seed of the samples and feature draws.
    pub seed: u64,
}

/// A generator for tree `i` of a forest seeded with `seed`.
fn tree_rng(seed: u64, i: usize) -> Rng {
    let mut r = Rng::new(seed ^ (i as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    r.next_u64();
    r
}

/// Fits a forest on `x` and `labels`.
pub fn fit_forest(x: &Matrix, labels: Labels, spec: &ForestSpec) -> Result<TreeModel> {
    let binned = Binned::fit(x, spec.max_bins, spec.seed);
    let k = labels.outputs();
    let n = x.rows;
    let fit_one = |i: usize| {
        let mut rng = tree_rng(spec.seed, i);
        let mut weight = vec![0.0f64; n];
        if spec.bootstrap {
            for _ in 0..n {
                weight[rng.below(n as u64) as usize] += 1.0;
            }
        } else {
            weight.fill(1.0);
        }
        let mut grad = vec![0.0; n * k];
        for (r, &w) in weight.iter().enumerate() {
            match labels {
                Labels::Classes { y, .. } => grad[r * k + y[r]] = w,
                Labels::Values(v) => grad[r] = w * v[r],
            }
        }
        let rows: Vec<u32> = (0..n as u32)
            .filter(|&r| weight[r as usize] > 0.0)
            .collect();
        let stats = Stats {
            k,
            grad: &grad,
            hess: &weight,
        };
        let share = |g: &[f64], h: f64| g.iter().map(|v| v / h).collect();
        let grown = grow(&binned, stats, rows, spec.grow, &mut rng, &share);
        (
            Tree {
                output: 0,
                nodes: grown.nodes,
            },
            grown.gains,
        )
    };
    let fitted: Vec<(Tree, Vec<(usize, f64)>)> = pool(spec.threads)?.install(|| {
        (0..spec.n_estimators)
            .into_par_iter()
            .map(fit_one)
            .collect()
    });
    let gains: Vec<Vec<(usize, f64)>> = fitted.iter().map(|f| f.1.clone()).collect();
    Ok(TreeModel {
        outputs: k,
        base: vec![0.0; k],
        aggregate: Aggregate::Average,
        link: Link::Identity,
        trees: fitted.into_iter().map(|f| f.0).collect(),
        importance: importance(&gains, x.cols),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows on a grid; class 1 inside the circle of radius 0.6 around the centre.
    fn circle(n: usize, seed: u64) -> (Matrix, Vec<usize>) {
        let mut rng = Rng::new(seed);
        let mut data = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let a = rng.below(1_000_000) as f64 / 1e6 * 2.0 - 1.0;
            let b = rng.below(1_000_000) as f64 / 1e6 * 2.0 - 1.0;
            let noise = rng.below(1_000_000) as f64 / 1e6;
            data.extend([a, b, noise]);
            y.push(usize::from(a * a + b * b < 0.36));
        }
        (
            Matrix {
                rows: n,
                cols: 3,
                data,
            },
            y,
        )
    }

    fn spec(n_estimators: usize, bootstrap: bool, max_features: usize, depth: usize) -> ForestSpec {
        ForestSpec {
            n_estimators,
            bootstrap,
            grow: GrowSpec {
                max_depth: depth,
                max_leaf_nodes: 0,
                min_samples_split: 2,
                min_samples_leaf: 1,
                min_hessian: 0.0,
                l2: 0.0,
                max_features,
                parallel: true,
            },
            max_bins: 255,
            threads: 2,
            seed: 7,
        }
    }

    #[test]
    fn a_deep_tree_fits_its_training_rows_and_a_forest_generalises() {
        let (x, y) = circle(3000, 1);
        let (xt, yt) = circle(2000, 2);
        let labels = Labels::Classes { y: &y, n: 2 };
        let tree = fit_forest(&x, labels, &spec(1, false, 3, 0)).unwrap();
        let train = keel_stats::classification(&y, &tree.predict_proba(&x), 2).unwrap();
        assert_eq!(train.accuracy, 1.0);
        let forest = fit_forest(&x, labels, &spec(50, true, 1, 0)).unwrap();
        let test = keel_stats::classification(&yt, &forest.predict_proba(&xt), 2).unwrap();
        assert!(
            test.roc_auc.unwrap() > 0.99 && test.accuracy > 0.95,
            "{test:?}"
        );
        // The noise column matters least.
        assert!(
            forest.importance[2] < forest.importance[0] / 4.0,
            "{:?}",
            forest.importance
        );
        assert!((forest.importance.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Depth is bounded as asked; the forest is the same on one thread.
        let shallow = fit_forest(&x, labels, &spec(1, false, 3, 2)).unwrap();
        assert_eq!(shallow.trees[0].nodes.len(), 7);
        let mut one = spec(50, true, 1, 0);
        one.threads = 1;
        assert_eq!(fit_forest(&x, labels, &one).unwrap(), forest);
    }

    #[test]
    fn a_regression_tree_predicts_leaf_means() {
        // y = 10 for x <= 0.5, 20 above: one split, two exact leaves.
        let x = Matrix {
            rows: 8,
            cols: 1,
            data: vec![0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9],
        };
        let y = [10.0, 10.0, 10.0, 10.0, 20.0, 20.0, 20.0, 20.0];
        let m = fit_forest(&x, Labels::Values(&y), &spec(1, false, 1, 0)).unwrap();
        assert_eq!(m.trees[0].nodes.len(), 3);
        assert_eq!(m.predict_values(&x), y);
        assert!(matches!(
            m.trees[0].nodes[0],
            super::super::Node::Split { threshold, .. } if threshold == 0.5
        ));
    }
}
