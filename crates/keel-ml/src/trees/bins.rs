//! Features cut into at most 255 bins, the form histogram-based tree growing works on.
//!
//! Values are compared as `f32`, as scikit-learn's trees and ONNX's tree operators compare
//! them, so a threshold keel learns decides every input the same way in keel and in
//! onnxruntime. A feature with at most `max_bins` distinct training values gets one bin per
//! value; a feature with more gets bins holding about equal numbers of rows (quantiles of at
//! most 200,000 rows drawn with the seed). Bin `b` of a feature holds the values `v` with
//! `edges[b - 1] < v <= edges[b]`, and an edge lies midway between the largest value of its
//! bin and the smallest of the next, so a split "bin <= b" is the rule `v <= edges[b]`.

use rayon::prelude::*;

use crate::matrix::Matrix;
use crate::rng::Rng;

/// The most bins a feature is cut into (codes fit a byte).
pub const MAX_BINS: usize = 255;

/// Rows drawn to place the edges of a feature with many distinct values.
const EDGE_SAMPLE: usize = 200_000;

/// The binned training features.
#[derive(Debug, Clone)]
pub struct Binned {
    /// Number of rows.
    pub rows: usize,
    /// Per feature, the ascending edges between its bins (one fewer than its bins).
    pub edges: Vec<Vec<f32>>,
    /// Per feature, the bin of each row.
    pub codes: Vec<Vec<u8>>,
}

impl Binned {
    /// Bins every column of `x` into at most `max_bins` (2..=255) bins.
    pub fn fit(x: &Matrix, max_bins: usize, seed: u64) -> Binned {
        let max_bins = max_bins.clamp(2, MAX_BINS);
        let sample: Option<Vec<usize>> = (x.rows > EDGE_SAMPLE).then(|| {
            let mut rows: Vec<usize> = (0..x.rows).collect();
            Rng::new(seed).shuffle(&mut rows);
            rows.truncate(EDGE_SAMPLE);
            rows
        });
        let (edges, codes): (Vec<Vec<f32>>, Vec<Vec<u8>>) = (0..x.cols)
            .into_par_iter()
            .map(|f| {
                let column: Vec<f32> = (0..x.rows).map(|i| x.data[i * x.cols + f] as f32).collect();
                let mut values: Vec<f32> = match &sample {
                    Some(rows) => rows.iter().map(|&i| column[i]).collect(),
                    None => column.clone(),
                };
                let edges = edges_of(&mut values, max_bins);
                let codes = column.iter().map(|&v| bin_of(&edges, v)).collect();
                (edges, codes)
            })
            .unzip();
        Binned {
            rows: x.rows,
            edges,
            codes,
        }
    }

    /// Number of features.
    pub fn features(&self) -> usize {
        self.edges.len()
    }

    /// Number of bins of feature `f`.
    pub fn bins(&self, f: usize) -> usize {
        self.edges[f].len() + 1
    }
}

/// The bin of `v` among `edges`.
pub fn bin_of(edges: &[f32], v: f32) -> u8 {
    edges.partition_point(|&e| e < v) as u8
}

/// A threshold `t` with `a <= t < b` (`a < b`), as close to their midpoint as `f32` allows.
fn between(a: f32, b: f32) -> f32 {
    let mid = ((f64::from(a) + f64::from(b)) / 2.0) as f32;
    if mid >= a && mid < b { mid } else { a }
}

/// Edges cutting the (finite) `values` into at most `max_bins` bins.
fn edges_of(values: &mut [f32], max_bins: usize) -> Vec<f32> {
    values.sort_unstable_by(f32::total_cmp);
    let mut distinct: Vec<f32> = values.to_vec();
    distinct.dedup();
    distinct.retain(|v| !v.is_nan());
    if distinct.len() <= max_bins {
        return distinct.windows(2).map(|w| between(w[0], w[1])).collect();
    }
    let n = values.len();
    let mut edges: Vec<f32> = Vec::with_capacity(max_bins - 1);
    for i in 1..max_bins {
        let v = values[i * n / max_bins];
        // The next distinct value above v closes v's bin.
        let j = distinct.partition_point(|&d| d <= v);
        let Some(&next) = distinct.get(j) else { break };
        let e = between(v, next);
        if edges.last().is_none_or(|&last| e > last) {
            edges.push(e);
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each() {
        let x = Matrix {
            rows: 6,
            cols: 1,
            data: vec![3.0, 1.0, 2.0, 1.0, 3.0, 2.0],
        };
        let b = Binned::fit(&x, 255, 0);
        assert_eq!(b.edges[0], [1.5, 2.5]);
        assert_eq!(b.codes[0], [2, 0, 1, 0, 2, 1]);
        assert_eq!(bin_of(&b.edges[0], 2.5), 1);
        assert_eq!(bin_of(&b.edges[0], 2.5001), 2);
    }

    #[test]
    fn many_values_get_quantile_bins_with_edges_between_values() {
        let n = 10_000;
        let x = Matrix {
            rows: n,
            cols: 1,
            data: (0..n).map(|i| ((i * 7919) % n) as f64).collect(),
        };
        let b = Binned::fit(&x, 16, 0);
        assert_eq!(b.bins(0), 16);
        let mut counts = [0usize; 16];
        for &c in &b.codes[0] {
            counts[c as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (600..=650).contains(&c)),
            "{counts:?}"
        );
        assert!(
            b.edges[0].iter().all(|e| e.fract() == 0.5),
            "{:?}",
            b.edges[0]
        );
    }

    #[test]
    fn thresholds_between_adjacent_floats_stay_below_the_larger() {
        let a = 1.0f32;
        let b = f32::from_bits(a.to_bits() + 1);
        let t = between(a, b);
        assert!(t >= a && t < b);
    }
}
