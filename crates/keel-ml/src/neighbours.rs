//! k-nearest neighbours, scikit-learn's `KNeighborsClassifier` and `KNeighborsRegressor`.
//!
//! The model keeps the training rows (after the pipeline, so standardised) with their targets.
//! A query's `k` nearest rows come from linfa-nn's k-d tree, built once per prediction call;
//! they vote (class probabilities are the weighted share of each class) or average, either
//! uniformly or weighted by inverse distance, where rows at distance zero take all the weight
//! (scikit-learn's rule).

use linfa_nn::distance::{L1Dist, L2Dist};
use linfa_nn::{CommonNearestNeighbour, NearestNeighbour};
use ndarray::{Array2, ArrayView1};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::matrix::Matrix;
use crate::trees::forest::Labels;

/// How the neighbours' answers are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// Each counts the same.
    Uniform,
    /// Each counts `1 / distance`.
    Distance,
}

/// The training rows' targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Targets {
    /// Class index per row, and the number of classes.
    Classes {
        /// Class per row.
        y: Vec<usize>,
        /// Number of classes.
        n: usize,
    },
    /// Value per row.
    Values(Vec<f64>),
}

/// A fitted k-nearest-neighbours model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighboursModel {
    /// Neighbours per query.
    pub k: usize,
    /// How they are weighted.
    pub weights: Weights,
    /// Minkowski power: 1 (Manhattan) or 2 (Euclidean).
    pub p: u8,
    /// The training rows, one per entry, `cols` values each.
    pub points: Vec<Vec<f64>>,
    /// Their targets.
    pub targets: Targets,
}

/// Fits (keeps) `x` and its labels.
pub fn fit_neighbours(
    x: &Matrix,
    labels: Labels,
    k: usize,
    weights: Weights,
    p: u8,
) -> Result<NeighboursModel> {
    if k > x.rows {
        return Err(MlError::Invalid(format!(
            "n_neighbors={k} is more than the {} training rows",
            x.rows
        )));
    }
    let targets = match labels {
        Labels::Classes { y, n } => Targets::Classes { y: y.to_vec(), n },
        Labels::Values(v) => Targets::Values(v.to_vec()),
    };
    Ok(NeighboursModel {
        k,
        weights,
        p,
        points: (0..x.rows).map(|i| x.row(i).to_vec()).collect(),
        targets,
    })
}

impl NeighboursModel {
    /// For each row of `x`: its neighbours as (training row, weight), weights summing to 1.
    fn neighbours(&self, x: &Matrix) -> Result<Vec<Vec<(usize, f64)>>> {
        let cols = self.points.first().map_or(x.cols, Vec::len);
        let flat: Vec<f64> = self.points.iter().flatten().copied().collect();
        let points = Array2::from_shape_vec((self.points.len(), cols), flat)
            .map_err(|e| MlError::Invalid(format!("k-nearest neighbours: {e}")))?;
        let fail =
            |e: &dyn std::fmt::Display| MlError::Invalid(format!("k-nearest neighbours: {e}"));
        let index = match self.p {
            1 => CommonNearestNeighbour::KdTree.from_batch(&points, L1Dist),
            _ => CommonNearestNeighbour::KdTree.from_batch(&points, L2Dist),
        }
        .map_err(|e| fail(&e))?;
        (0..x.rows)
            .into_par_iter()
            .map(|i| {
                let query = ArrayView1::from(x.row(i));
                let found = index.k_nearest(query, self.k).map_err(|e| fail(&e))?;
                let mut near: Vec<(usize, f64)> = found
                    .into_iter()
                    .map(|(point, row)| (row, self.distance(point, query)))
                    .collect();
                near.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                Ok(self.weighted(near))
            })
            .collect()
    }

    fn distance(&self, a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
        let pairs = a.iter().zip(b.iter());
        if self.p == 1 {
            pairs.map(|(x, y)| (x - y).abs()).sum()
        } else {
            pairs.map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt()
        }
    }

    /// Neighbours with distances -> neighbours with normalised weights.
    fn weighted(&self, near: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
        let raw: Vec<f64> = match self.weights {
            Weights::Uniform => vec![1.0; near.len()],
            Weights::Distance if near.iter().any(|(_, d)| *d == 0.0) => near
                .iter()
                .map(|(_, d)| if *d == 0.0 { 1.0 } else { 0.0 })
                .collect(),
            Weights::Distance => near.iter().map(|(_, d)| 1.0 / d).collect(),
        };
        let total: f64 = raw.iter().sum();
        near.into_iter()
            .zip(raw)
            .map(|((row, _), w)| (row, w / total))
            .collect()
    }

    /// Predicted values (regression): the weighted mean of the neighbours' values.
    pub fn predict_values(&self, x: &Matrix) -> Result<Vec<f64>> {
        let Targets::Values(v) = &self.targets else {
            return Err(MlError::Invalid(
                "this k-nearest-neighbours model predicts classes".into(),
            ));
        };
        Ok(self
            .neighbours(x)?
            .into_iter()
            .map(|near| near.iter().map(|(row, w)| w * v[*row]).sum())
            .collect())
    }

    /// Class probabilities (classification): the weighted share of each class among the
    /// neighbours.
    pub fn predict_proba(&self, x: &Matrix) -> Result<Vec<Vec<f64>>> {
        let Targets::Classes { y, n } = &self.targets else {
            return Err(MlError::Invalid(
                "this k-nearest-neighbours model predicts values".into(),
            ));
        };
        Ok(self
            .neighbours(x)?
            .into_iter()
            .map(|near| {
                let mut p = vec![0.0; *n];
                for (row, w) in near {
                    p[y[row]] += w;
                }
                p
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Matrix {
        // Points 0..10 on a line.
        Matrix {
            rows: 10,
            cols: 1,
            data: (0..10).map(f64::from).collect(),
        }
    }

    #[test]
    fn uniform_and_distance_weights_follow_scikit_learn() {
        let x = grid();
        let values: Vec<f64> = (0..10).map(|i| f64::from(i) * 10.0).collect();
        let m = fit_neighbours(&x, Labels::Values(&values), 3, Weights::Uniform, 2).unwrap();
        let q = Matrix {
            rows: 2,
            cols: 1,
            data: vec![4.2, -3.0],
        };
        // 4.2: neighbours 4, 5, 3 -> (40 + 50 + 30) / 3; -3: neighbours 0, 1, 2.
        let got = m.predict_values(&q).unwrap();
        assert!(
            (got[0] - 40.0).abs() < 1e-12 && (got[1] - 10.0).abs() < 1e-12,
            "{got:?}"
        );
        let d = fit_neighbours(&x, Labels::Values(&values), 2, Weights::Distance, 2).unwrap();
        // 4.2: 4 at 0.2 and 5 at 0.8: weights 5 and 1.25 -> (5*40 + 1.25*50) / 6.25 = 42.
        let got = d.predict_values(&q).unwrap();
        assert!((got[0] - 42.0).abs() < 1e-9, "{got:?}");
        // A query on a training row takes that row's value alone.
        let on = Matrix {
            rows: 1,
            cols: 1,
            data: vec![7.0],
        };
        assert_eq!(d.predict_values(&on).unwrap(), vec![70.0]);
    }

    #[test]
    fn classes_vote_and_manhattan_distance_counts_coordinates() {
        let x = grid();
        let y: Vec<usize> = (0..10).map(|i| usize::from(i >= 5)).collect();
        let m =
            fit_neighbours(&x, Labels::Classes { y: &y, n: 2 }, 4, Weights::Uniform, 1).unwrap();
        let q = Matrix {
            rows: 1,
            cols: 1,
            data: vec![5.1],
        };
        // Neighbours 5, 6, 4, 7: three of class 1.
        assert_eq!(m.predict_proba(&q).unwrap(), vec![vec![0.25, 0.75]]);
        let e = m.predict_values(&q).expect_err("an error").to_string();
        assert!(e.contains("predicts classes"), "{e}");
        let err = fit_neighbours(&x, Labels::Classes { y: &y, n: 2 }, 11, Weights::Uniform, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("n_neighbors=11"), "{err}");
        // Manhattan: (0,0) to (1,1) is 2, to (0,1.5) is 1.5.
        let x2 = Matrix {
            rows: 2,
            cols: 2,
            data: vec![1.0, 1.0, 0.0, 1.5],
        };
        let near =
            fit_neighbours(&x2, Labels::Values(&[1.0, 2.0]), 1, Weights::Uniform, 1).unwrap();
        let origin = Matrix {
            rows: 1,
            cols: 2,
            data: vec![0.0, 0.0],
        };
        assert_eq!(near.predict_values(&origin).unwrap(), vec![2.0]);
        let euclid =
            fit_neighbours(&x2, Labels::Values(&[1.0, 2.0]), 1, Weights::Uniform, 2).unwrap();
        assert_eq!(euclid.predict_values(&origin).unwrap(), vec![1.0]);
    }
}
