//! Tree models: a decision tree, a random forest and gradient-boosted trees, all grown by one
//! histogram-based grower ([`grow`]) on binned features ([`bins`]) and kept as one
//! serialisable [`TreeModel`].
//!
//! A model's raw output per row is `base + (sum or average over trees of the leaf reached)`;
//! each tree adds its leaf's values to the outputs from `output` on. The link turns raw
//! outputs into predictions: the identity (forest class shares or values, boosted values),
//! the logistic function of one output (binary boosting) or the softmax (boosting over
//! several classes). Features are compared as `f32` (`value <= threshold` goes left), the
//! same rule as ONNX's `TreeEnsemble` operators.

pub mod bins;
pub mod boosting;
pub mod forest;
pub mod grow;

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;

/// A tree node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Rows with `feature <= threshold` go to `left`, the others to `right`.
    Split {
        /// Feature index.
        feature: usize,
        /// Threshold, compared as `f32`.
        threshold: f32,
        /// Node index of the left child.
        left: usize,
        /// Node index of the right child.
        right: usize,
    },
    /// A leaf and the values it adds.
    Leaf {
        /// Added to the outputs from the tree's `output` on.
        value: Vec<f64>,
    },
}

/// One tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The first output its leaves add to.
    pub output: usize,
    /// Nodes; the root is the first.
    pub nodes: Vec<Node>,
}

/// How trees' leaves combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Added up (boosting).
    Sum,
    /// Averaged (forests).
    Average,
}

/// How raw outputs become predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// As they are: values, or class probabilities.
    Identity,
    /// One output, the log-odds of class 1.
    Logistic,
    /// One output per class, softmax-ed into probabilities.
    Softmax,
}

/// A fitted tree ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeModel {
    /// Raw outputs per row.
    pub outputs: usize,
    /// Raw outputs before any tree.
    pub base: Vec<f64>,
    /// How leaves combine.
    pub aggregate: Aggregate,
    /// How raw outputs become predictions.
    pub link: Link,
    /// The trees.
    pub trees: Vec<Tree>,
    /// Importance of each feature: its share of all the splits' gains (impurity decrease),
    /// per tree, averaged over the trees; sums to 1 when any split was made.
    pub importance: Vec<f64>,
}

impl Tree {
    /// The leaf values `row` reaches.
    pub fn leaf(&self, row: &[f64]) -> &[f64] {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if row[*feature] as f32 <= *threshold {
                        *left
                    } else {
                        *right
                    };
                }
                Node::Leaf { value } => return value,
            }
        }
    }
}

impl TreeModel {
    /// Raw outputs for one row.
    pub fn raw(&self, row: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.outputs];
        for t in &self.trees {
            for (o, v) in out[t.output..].iter_mut().zip(t.leaf(row)) {
                *o += v;
            }
        }
        if self.aggregate == Aggregate::Average && !self.trees.is_empty() {
            let n = self.trees.len() as f64;
            out.iter_mut().for_each(|o| *o /= n);
        }
        for (o, b) in out.iter_mut().zip(&self.base) {
            *o += b;
        }
        out
    }

    /// Predicted values (regression).
    pub fn predict_values(&self, x: &Matrix) -> Vec<f64> {
        (0..x.rows).map(|i| self.raw(x.row(i))[0]).collect()
    }

    /// Class probabilities (classification).
    pub fn predict_proba(&self, x: &Matrix) -> Vec<Vec<f64>> {
        (0..x.rows)
            .map(|i| probabilities(self.link, self.raw(x.row(i))))
            .collect()
    }
}

/// Class probabilities from raw outputs under `link`.
pub fn probabilities(link: Link, raw: Vec<f64>) -> Vec<f64> {
    match link {
        Link::Identity => raw,
        Link::Logistic => {
            let p = 1.0 / (1.0 + (-raw[0]).exp());
            vec![1.0 - p, p]
        }
        Link::Softmax => softmax(&raw),
    }
}

/// The softmax of `s`.
pub fn softmax(s: &[f64]) -> Vec<f64> {
    let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Feature importance from each tree's split gains: per tree normalised to sum 1, averaged
/// over the trees, normalised again (scikit-learn's `feature_importances_`).
pub fn importance(per_tree: &[Vec<(usize, f64)>], features: usize) -> Vec<f64> {
    let mut total = vec![0.0; features];
    for gains in per_tree {
        let sum: f64 = gains.iter().map(|g| g.1).sum();
        if sum > 0.0 {
            for &(f, g) in gains {
                total[f] += g / sum;
            }
        }
    }
    let sum: f64 = total.iter().sum();
    if sum > 0.0 {
        total.iter_mut().for_each(|t| *t /= sum);
    }
    total
}

/// A pool of `threads` threads (0: one per core).
pub(crate) fn pool(threads: usize) -> crate::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| crate::MlError::Invalid(format!("n_jobs: cannot start threads: {e}")))
}
