//! Linear models, kept as plain coefficients (so the stored model is a few numbers, identical
//! for identical inputs, and exports directly to ONNX's linear operators): least squares (QR
//! and a small singular-value decomposition, linfa-linalg) and ridge regression (linfa-linear) here,
//! logistic regression in [`crate::logistic`].

use linfa::Dataset;
use linfa::traits::Fit;
use linfa_linalg::qr::QRInto;
use linfa_linalg::svd::SVDInto;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::matrix::Matrix;

/// A fitted linear model: one row of coefficients and one intercept per output (one output
/// for regression and binary classification, one per class for several classes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// Coefficients, one row per output, one value per feature.
    pub coef: Vec<Vec<f64>>,
    /// Intercepts, one per output.
    pub intercept: Vec<f64>,
}

/// The features and target less their means (the intercept is fitted by centring, as
/// scikit-learn does), with those means.
struct Centred {
    x: Array2<f64>,
    y: Array1<f64>,
    x_means: Vec<f64>,
    y_mean: f64,
}

fn centre(x: &Matrix, y: &[f64], algorithm: &str) -> Result<Centred> {
    let (n, f) = (x.rows, x.cols);
    if n == 0 {
        return Err(MlError::Invalid(format!("{algorithm}: no rows to fit")));
    }
    let mut x_means = vec![0.0; f];
    for i in 0..n {
        for (m, v) in x_means.iter_mut().zip(x.row(i)) {
            *m += v;
        }
    }
    x_means.iter_mut().for_each(|m| *m /= n as f64);
    let y_mean = y.iter().sum::<f64>() / n as f64;
    let mut data = Vec::with_capacity(n * f);
    for i in 0..n {
        data.extend(x.row(i).iter().zip(&x_means).map(|(v, m)| v - m));
    }
    let x = Array2::from_shape_vec((n, f), data)
        .map_err(|e| MlError::Invalid(format!("feature matrix: {e}")))?;
    Ok(Centred {
        x,
        y: y.iter().map(|v| v - y_mean).collect(),
        x_means,
        y_mean,
    })
}

impl Centred {
    /// The model with coefficients `coef` on the centred features.
    fn model(&self, coef: Vec<f64>) -> LinearModel {
        let intercept = self.y_mean
            - coef
                .iter()
                .zip(&self.x_means)
                .map(|(w, m)| w * m)
                .sum::<f64>();
        LinearModel {
            coef: vec![coef],
            intercept: vec![intercept],
        }
    }
}

/// Ordinary least squares with an intercept, scikit-learn's `LinearRegression`: on the centred
/// data, the minimum-norm least-squares coefficients (singular values below
/// `eps * max(rows, features)` times the largest count as zero, as in NumPy's and SciPy's
/// `lstsq`). Collinear features, such as one-hot columns beside the intercept or a column given
/// twice, then share their weight: a solver without that rule (QR without pivoting) answers
/// with huge coefficients that cancel, and predictions that are off by rounding.
///
/// Computed as a Householder QR of `[X y]` (whose last column gives `Q'y` without forming `Q`)
/// and the singular-value decomposition of the small `R`, which has `X`'s singular values:
/// about the cost of a plain QR solve.
pub fn fit_least_squares(x: &Matrix, y: &[f64]) -> Result<LinearModel> {
    let c = centre(x, y, "linear_regression")?;
    let (n, f) = c.x.dim();
    if f == 0 {
        return Ok(c.model(Vec::new()));
    }
    let failed = |e: linfa_linalg::LinalgError| MlError::Invalid(format!("linear_regression: {e}"));
    // The triangle and the projected target, or the features themselves when they are wider
    // than tall (then their own decomposition is small).
    let (r, qty) = if n > f {
        let mut augmented = Array2::<f64>::zeros((n, f + 1));
        augmented.slice_mut(ndarray::s![.., ..f]).assign(&c.x);
        augmented.column_mut(f).assign(&c.y);
        let r = augmented.qr_into().map_err(failed)?.into_r();
        (
            r.slice(ndarray::s![..f, ..f]).to_owned(),
            r.slice(ndarray::s![..f, f]).to_owned(),
        )
    } else {
        (c.x.clone(), c.y.clone())
    };
    let (u, sigma, vt) = r.svd_into(true, true).map_err(failed)?;
    let (Some(u), Some(vt)) = (u, vt) else {
        return Err(MlError::Invalid(
            "linear_regression: the decomposition gave no singular vectors".into(),
        ));
    };
    let largest = sigma.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
    let cutoff = f64::EPSILON * n.max(f) as f64 * largest;
    let projected = u.t().dot(&qty);
    let mut coef = Array1::<f64>::zeros(f);
    for (k, s) in sigma.iter().enumerate() {
        if s.abs() > cutoff {
            coef.scaled_add(projected[k] / s, &vt.row(k));
        }
    }
    Ok(c.model(coef.to_vec()))
}

/// Ridge regression, scikit-learn's `Ridge`: minimises `|y - Xw - b|^2 + alpha |w|^2` with
/// the intercept `b` not penalised. Solved as least squares (linfa-linear) on the centred data
/// stacked over `sqrt(alpha) I`, whose normal equations are exactly ridge's.
pub fn fit_ridge(x: &Matrix, y: &[f64], alpha: f64) -> Result<LinearModel> {
    let c = centre(x, y, "ridge_regression")?;
    let (n, f) = c.x.dim();
    let root = alpha.sqrt();
    let mut stacked = Array2::<f64>::zeros((n + f, f));
    stacked.slice_mut(ndarray::s![..n, ..]).assign(&c.x);
    for j in 0..f {
        stacked[[n + j, j]] = root;
    }
    let targets: Array1<f64> =
        c.y.iter()
            .copied()
            .chain(std::iter::repeat_n(0.0, f))
            .collect();
    let fitted = linfa_linear::LinearRegression::new()
        .with_intercept(false)
        .fit(&Dataset::new(stacked, targets))
        .map_err(|e| MlError::Invalid(format!("ridge_regression: {e}")))?;
    Ok(c.model(fitted.params().to_vec()))
}

impl LinearModel {
    /// `x . coef[k] + intercept[k]` for each row and output.
    fn scores(&self, x: &Matrix) -> Vec<Vec<f64>> {
        (0..x.rows)
            .map(|i| {
                let row = x.row(i);
                self.coef
                    .iter()
                    .zip(&self.intercept)
                    .map(|(w, b)| row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + b)
                    .collect()
            })
            .collect()
    }

    /// Predicted values (regression).
    pub fn predict_values(&self, x: &Matrix) -> Vec<f64> {
        self.scores(x).into_iter().map(|s| s[0]).collect()
    }

    /// Class probabilities (classification): the logistic function of the one score for two
    /// classes, the softmax of the scores for more.
    pub fn predict_proba(&self, x: &Matrix) -> Vec<Vec<f64>> {
        self.scores(x)
            .into_iter()
            .map(|s| {
                if s.len() == 1 {
                    let p = 1.0 / (1.0 + (-s[0]).exp());
                    vec![1.0 - p, p]
                } else {
                    let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    e.iter().map(|v| v / sum).collect()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::fit_logistic;
    use crate::rng::Rng;

    /// Standard normal draws (Box-Muller) from the seeded generator.
    fn normals(rng: &mut Rng, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 + 1e-12;
                let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect()
    }

    #[test]
    fn collinear_features_share_their_weight_and_predict_exactly() {
        // y = 2 a + 3 and the column given twice, plus one-hot columns of a constant: least
        // squares has many solutions; the minimum-norm one halves a's weight between its copies
        // and gives the constant's columns none.
        let rows: Vec<[f64; 4]> = (0..20).map(|i| [i as f64, i as f64, 1.0, 0.0]).collect();
        let x = Matrix {
            rows: rows.len(),
            cols: 4,
            data: rows.iter().flatten().copied().collect(),
        };
        let y: Vec<f64> = rows.iter().map(|r| 2.0 * r[0] + 3.0).collect();
        let m = fit_least_squares(&x, &y).unwrap();
        for (got, want) in m.coef[0].iter().zip([1.0, 1.0, 0.0, 0.0]) {
            assert!((got - want).abs() < 1e-12, "{:?}", m.coef);
        }
        assert!((m.intercept[0] - 3.0).abs() < 1e-12, "{:?}", m.intercept);
        for (p, t) in m.predict_values(&x).iter().zip(&y) {
            assert!((p - t).abs() < 1e-12);
        }
    }

    #[test]
    fn least_squares_recovers_exact_coefficients() {
        let mut rng = Rng::new(1);
        let data = normals(&mut rng, 200 * 3);
        let x = Matrix {
            rows: 200,
            cols: 3,
            data,
        };
        let y: Vec<f64> = (0..200)
            .map(|i| 3.0 * x.row(i)[0] - 2.0 * x.row(i)[1] + 0.5 * x.row(i)[2] + 5.0)
            .collect();
        let m = fit_least_squares(&x, &y).unwrap();
        for (got, want) in m.coef[0].iter().zip([3.0, -2.0, 0.5]) {
            assert!((got - want).abs() < 1e-8, "{got} vs {want}");
        }
        assert!((m.intercept[0] - 5.0).abs() < 1e-8);
        let p = m.predict_values(&x);
        assert!((p[7] - y[7]).abs() < 1e-8);
    }

    #[test]
    fn ridge_solves_its_normal_equations() {
        let mut rng = Rng::new(3);
        let (n, f) = (300, 3);
        let x = Matrix {
            rows: n,
            cols: f,
            data: normals(&mut rng, n * f),
        };
        let noise = normals(&mut rng, n);
        let y: Vec<f64> = (0..n)
            .map(|i| 2.0 * x.row(i)[0] - x.row(i)[1] + 4.0 + noise[i])
            .collect();
        // No penalty: least squares.
        let ols = fit_least_squares(&x, &y).unwrap();
        let zero = fit_ridge(&x, &y, 0.0).unwrap();
        for (a, b) in ols.coef[0].iter().zip(&zero.coef[0]) {
            assert!((a - b).abs() < 1e-9);
        }
        assert!((ols.intercept[0] - zero.intercept[0]).abs() < 1e-9);
        // With alpha = 50: the gradient of |y - Xw - b|^2 + alpha |w|^2 vanishes.
        let alpha = 50.0;
        let m = fit_ridge(&x, &y, alpha).unwrap();
        let residual: Vec<f64> = (0..n).map(|i| y[i] - m.predict_values(&x)[i]).collect();
        assert!(
            residual.iter().sum::<f64>().abs() < 1e-8,
            "intercept not free"
        );
        for j in 0..f {
            let g = -2.0 * (0..n).map(|i| x.row(i)[j] * residual[i]).sum::<f64>()
                + 2.0 * alpha * m.coef[0][j];
            assert!(g.abs() < 1e-7, "feature {j}: gradient {g}");
        }
        // And the coefficients shrink.
        assert!(m.coef[0][0] < ols.coef[0][0] && m.coef[0][0] > 1.5, "{m:?}");
    }

    #[test]
    fn logistic_regression_separates_two_and_three_classes() {
        let mut rng = Rng::new(2);
        let n = 2000;
        let x = Matrix {
            rows: n,
            cols: 2,
            data: normals(&mut rng, n * 2),
        };
        let noise = normals(&mut rng, n);
        let y: Vec<usize> = (0..n)
            .map(|i| usize::from(2.0 * x.row(i)[0] - x.row(i)[1] + 0.3 * noise[i] > 0.0))
            .collect();
        let m = fit_logistic(&x, &y, 2, 1.0, 100, 1e-4).unwrap();
        let proba = m.predict_proba(&x);
        let metrics = keel_stats::classification(&y, &proba, 2).unwrap();
        assert!(metrics.roc_auc.unwrap() > 0.98, "{metrics:?}");
        // The direction learned is the one that generated the labels.
        assert!(m.coef[0][0] > 0.0 && m.coef[0][1] < 0.0, "{m:?}");
        // Class 1 as the rarer and as the more frequent class: its probability either way.
        for (threshold, ones) in [(2.0, 0.15..0.25), (-2.0, 0.75..0.85)] {
            let y: Vec<usize> = (0..n)
                .map(|i| usize::from(2.0 * x.row(i)[0] - x.row(i)[1] + 0.3 * noise[i] > threshold))
                .collect();
            let share = y.iter().sum::<usize>() as f64 / n as f64;
            assert!(ones.contains(&share), "{share}");
            let m = fit_logistic(&x, &y, 2, 1.0, 100, 1e-4).unwrap();
            let auc = keel_stats::classification(&y, &m.predict_proba(&x), 2)
                .unwrap()
                .roc_auc
                .unwrap();
            assert!(auc > 0.98, "class 1 share {share}: AUC {auc}");
        }

        // Three blobs around (0, 4), (4, 0), (-4, -4).
        let centres = [(0.0, 4.0), (4.0, 0.0), (-4.0, -4.0)];
        let y3: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let mut data = normals(&mut rng, n * 2);
        for (i, c) in y3.iter().enumerate() {
            data[2 * i] += centres[*c].0;
            data[2 * i + 1] += centres[*c].1;
        }
        let x3 = Matrix {
            rows: n,
            cols: 2,
            data,
        };
        let m3 = fit_logistic(&x3, &y3, 3, 1.0, 200, 1e-4).unwrap();
        let proba = m3.predict_proba(&x3);
        assert!(
            proba
                .iter()
                .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-12)
        );
        let metrics = keel_stats::classification(&y3, &proba, 3).unwrap();
        assert!(metrics.accuracy > 0.97, "{metrics:?}");
    }
}
