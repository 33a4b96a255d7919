//! k-means clustering, scikit-learn's `KMeans`, fitted by linfa-clustering (k-means++ starts,
//! Lloyd iterations, the best of `n_init` runs by inertia), kept as its centroids.
//!
//! Quality is measured as scikit-learn measures it: the inertia (the sum of squared distances
//! of rows to their nearest centroid) and the silhouette coefficient, on at most
//! [`SILHOUETTE_SAMPLE`] rows drawn with the seed (scikit-learn's `silhouette_score` with
//! `sample_size`), since it compares every pair of rows.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::matrix::Matrix;
use crate::rng::Rng;

/// Most rows the silhouette coefficient is computed on.
pub const SILHOUETTE_SAMPLE: usize = 2000;

/// A fitted k-means model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansModel {
    /// One centroid per cluster, in the pipeline's feature space.
    pub centroids: Vec<Vec<f64>>,
}

/// What k-means is asked (scikit-learn's names).
#[derive(Debug, Clone, Copy)]
pub struct KMeansSpec {
    /// Clusters.
    pub n_clusters: usize,
    /// Runs from different starts; the one with the least inertia is kept.
    pub n_init: usize,
    /// Most iterations per run.
    pub max_iter: u64,
    /// Convergence: the summed squared movement of the centroids (on standardised features,
    /// scikit-learn's relative `tol`).
    pub tol: f64,
    /// Seed of the starts.
    pub seed: u64,
}

/// Quality of a clustering of some rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusteringMetrics {
    /// Sum of squared distances of the rows to their centroid.
    pub inertia: f64,
    /// Mean silhouette coefficient, from -1 to 1 (`None` when the rows fall in one cluster).
    pub silhouette: Option<f64>,
    /// Rows per cluster.
    pub sizes: Vec<u64>,
}

/// Fits k-means on the rows of `x`.
pub fn fit_kmeans(x: &Matrix, spec: &KMeansSpec) -> Result<KMeansModel> {
    fit(x, spec, None)
}

/// Fits k-means by one run of Lloyd's iterations from the given centroids (scikit-learn's
/// `init` array), with `spec`'s iterations and tolerance.
pub fn fit_kmeans_from(x: &Matrix, starts: &[Vec<f64>], spec: &KMeansSpec) -> Result<KMeansModel> {
    if starts.len() != spec.n_clusters || starts.iter().any(|s| s.len() != x.cols) {
        return Err(MlError::Invalid(format!(
            "k_means: {} starting centroids for {} clusters of {} features",
            starts.len(),
            spec.n_clusters,
            x.cols
        )));
    }
    let flat: Vec<f64> = starts.iter().flatten().copied().collect();
    let starts = Array2::from_shape_vec((spec.n_clusters, x.cols), flat)
        .map_err(|e| MlError::Invalid(format!("starting centroids: {e}")))?;
    fit(x, &KMeansSpec { n_init: 1, ..*spec }, Some(starts))
}

fn fit(x: &Matrix, spec: &KMeansSpec, starts: Option<Array2<f64>>) -> Result<KMeansModel> {
    if spec.n_clusters > x.rows {
        return Err(MlError::Invalid(format!(
            "n_clusters={} is more than the {} training rows",
            spec.n_clusters, x.rows
        )));
    }
    let records = Array2::from_shape_vec((x.rows, x.cols), x.data.clone())
        .map_err(|e| MlError::Invalid(format!("feature matrix: {e}")))?;
    // linfa stops when the centroids' Euclidean movement is below its tolerance; scikit-learn
    // when the squared movement is below `tol` times the features' mean variance (1 here).
    let mut params =
        KMeans::params_with_rng(spec.n_clusters, Xoshiro256Plus::seed_from_u64(spec.seed))
            .n_runs(spec.n_init)
            .max_n_iterations(spec.max_iter)
            .tolerance(spec.tol.sqrt());
    if let Some(starts) = starts {
        params = params.init_method(KMeansInit::Precomputed(starts));
    }
    let fitted = params
        .fit(&DatasetBase::from(records))
        .map_err(|e| MlError::Invalid(format!("k_means: {e}")))?;
    Ok(KMeansModel {
        centroids: fitted
            .centroids()
            .outer_iter()
            .map(|c| c.to_vec())
            .collect(),
    })
}

fn squared(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

impl KMeansModel {
    /// The nearest centroid of each row and its squared distance (ties go to the lower index).
    pub fn assign(&self, x: &Matrix) -> Vec<(usize, f64)> {
        (0..x.rows)
            .into_par_iter()
            .map(|i| {
                let row = x.row(i);
                self.centroids
                    .iter()
                    .enumerate()
                    .map(|(k, c)| (k, squared(row, c)))
                    .fold(
                        (0, f64::INFINITY),
                        |best, (k, d)| if d < best.1 { (k, d) } else { best },
                    )
            })
            .collect()
    }

    /// The cluster of each row.
    pub fn predict(&self, x: &Matrix) -> Vec<usize> {
        self.assign(x).into_iter().map(|(k, _)| k).collect()
    }

    /// Inertia, silhouette (on a sample drawn with `seed`) and cluster sizes of the rows of `x`.
    pub fn evaluate(&self, x: &Matrix, seed: u64) -> ClusteringMetrics {
        let assigned = self.assign(x);
        let mut sizes = vec![0u64; self.centroids.len()];
        for (k, _) in &assigned {
            sizes[*k] += 1;
        }
        let inertia = assigned.iter().map(|(_, d)| d).sum();
        let mut rows: Vec<usize> = (0..x.rows).collect();
        if rows.len() > SILHOUETTE_SAMPLE {
            let mut rng = Rng::new(seed);
            rng.shuffle(&mut rows);
            rows.truncate(SILHOUETTE_SAMPLE);
            rows.sort_unstable();
        }
        let labels: Vec<usize> = rows.iter().map(|&i| assigned[i].0).collect();
        let points: Vec<&[f64]> = rows.iter().map(|&i| x.row(i)).collect();
        ClusteringMetrics {
            inertia,
            silhouette: silhouette(&points, &labels, self.centroids.len()),
            sizes,
        }
    }
}

/// The mean silhouette coefficient of `points` in clusters `labels` (Euclidean distance): for
/// each point, `(b - a) / max(a, b)` with `a` its mean distance to the rest of its cluster and
/// `b` the least mean distance to another cluster; 0 for a point alone in its cluster.
/// `None` when fewer than two clusters are present.
pub fn silhouette(points: &[&[f64]], labels: &[usize], n_clusters: usize) -> Option<f64> {
    let mut counts = vec![0usize; n_clusters];
    for &l in labels {
        counts[l] += 1;
    }
    if counts.iter().filter(|&&c| c > 0).count() < 2 {
        return None;
    }
    let scores: Vec<f64> = (0..points.len())
        .into_par_iter()
        .map(|i| {
            let mut sums = vec![0.0; n_clusters];
            for (j, p) in points.iter().enumerate() {
                if i != j {
                    sums[labels[j]] += squared(points[i], p).sqrt();
                }
            }
            let own = labels[i];
            if counts[own] == 1 {
                return 0.0;
            }
            let a = sums[own] / (counts[own] - 1) as f64;
            let b = (0..n_clusters)
                .filter(|&k| k != own && counts[k] > 0)
                .map(|k| sums[k] / counts[k] as f64)
                .fold(f64::INFINITY, f64::min);
            let top = a.max(b);
            if top > 0.0 { (b - a) / top } else { 0.0 }
        })
        .collect();
    Some(scores.iter().sum::<f64>() / scores.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silhouette_matches_a_hand_computed_case() {
        // Clusters {0, 1} and {4}: point 0: a = 1, b = 4 -> 0.75; point 1: a = 1, b = 3 ->
        // 2/3; point 4 is alone -> 0. Mean (0.75 + 2/3 + 0) / 3.
        let p: Vec<[f64; 1]> = vec![[0.0], [1.0], [4.0]];
        let points: Vec<&[f64]> = p.iter().map(|r| r.as_slice()).collect();
        let s = silhouette(&points, &[0, 0, 1], 2).unwrap();
        assert!((s - (0.75 + 2.0 / 3.0) / 3.0).abs() < 1e-12, "{s}");
        assert_eq!(silhouette(&points, &[1, 1, 1], 2), None);
    }

    #[test]
    fn kmeans_finds_separated_blobs_and_is_seeded() {
        // Three tight blobs of 100 rows around (0, 0), (10, 0), (0, 10).
        let mut rng = Rng::new(4);
        let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let centres = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
        let mut data = Vec::new();
        for i in 0..300 {
            let (cx, cy) = centres[i % 3];
            data.push(cx + unit() - 0.5);
            data.push(cy + unit() - 0.5);
        }
        let x = Matrix {
            rows: 300,
            cols: 2,
            data,
        };
        let spec = KMeansSpec {
            n_clusters: 3,
            n_init: 3,
            max_iter: 300,
            tol: 1e-4,
            seed: 1,
        };
        let m = fit_kmeans(&x, &spec).unwrap();
        let labels = m.predict(&x);
        // Rows of one blob share a cluster, and blobs differ.
        for i in 3..300 {
            assert_eq!(labels[i], labels[i % 3], "row {i}");
        }
        assert!(labels[0] != labels[1] && labels[1] != labels[2] && labels[0] != labels[2]);
        let q = m.evaluate(&x, 0);
        assert_eq!(q.sizes, vec![100, 100, 100]);
        assert!(q.silhouette.unwrap() > 0.9, "{q:?}");
        // Uniform noise in [-0.5, 0.5]^2 has variance 1/6 per axis: inertia about 300 / 6.
        assert!((q.inertia - 50.0).abs() < 10.0, "{q:?}");
        assert_eq!(
            fit_kmeans(&x, &spec).unwrap(),
            m,
            "the same seed, the same centroids"
        );
        let err = fit_kmeans(
            &x,
            &KMeansSpec {
                n_clusters: 301,
                ..spec
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("n_clusters=301"), "{err}");
    }
}
