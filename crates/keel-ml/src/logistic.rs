//! L2-regularised logistic regression with scikit-learn's `lbfgs` objective: the mean log loss
//! plus `|w|^2 / (2 C n)`, the intercepts not penalised; the logistic function of one score for
//! two classes, the softmax of one score per class for more. argmin's L-BFGS (with a
//! More-Thuente line search) minimises it and stops when the mean gradient's norm is below
//! `tol`, as scikit-learn stops on its largest component.
//!
//! The loss and its gradient come from one pass over the row-major rows, and argmin's separate
//! requests for the two at the same point are answered from that one pass.

use std::sync::Mutex;

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::Array1;

use crate::error::{MlError, Result};
use crate::linear::LinearModel;
use crate::matrix::Matrix;

/// Past gradients L-BFGS keeps (scikit-learn's, through SciPy, is 10 as well).
const HISTORY: usize = 10;

/// A point with its loss and gradient.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// The objective on `x` and classes `y`, with `outputs` scores per row (1 for two classes).
struct Objective<'a> {
    x: &'a Matrix,
    y: &'a [usize],
    outputs: usize,
    /// `1 / (C n)`.
    penalty: f64,
    /// The last point evaluated, with its loss and gradient.
    last: Mutex<Option<Evaluated>>,
}

/// `ln(1 + e^z)` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl Objective<'_> {
    /// Parameters per output: the coefficients, then the intercept.
    fn width(&self) -> usize {
        self.x.cols + 1
    }

    /// Loss and gradient at `w`.
    fn evaluate(&self, w: &[f64]) -> (f64, Vec<f64>) {
        let (d, width, k) = (self.x.cols, self.width(), self.outputs);
        let mut grad = vec![0.0; width * k];
        let mut loss = 0.0;
        let mut z = vec![0.0; k];
        for i in 0..self.x.rows {
            let row = self.x.row(i);
            for (o, zo) in z.iter_mut().enumerate() {
                let p = &w[o * width..(o + 1) * width];
                *zo = p[d] + row.iter().zip(&p[..d]).map(|(a, b)| a * b).sum::<f64>();
            }
            let class = self.y[i];
            if k == 1 {
                let y = if class == 1 { 1.0 } else { 0.0 };
                loss += softplus(z[0]) - y * z[0];
                z[0] = 1.0 / (1.0 + (-z[0]).exp()) - y;
            } else {
                let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = z.iter().map(|v| (v - top).exp()).sum();
                let log_total = top + total.ln();
                loss += log_total - z[class];
                for (o, zo) in z.iter_mut().enumerate() {
                    *zo = (*zo - log_total).exp() - if o == class { 1.0 } else { 0.0 };
                }
            }
            // z now holds each output's residual.
            for (o, r) in z.iter().enumerate() {
                let g = &mut grad[o * width..(o + 1) * width];
                for (gj, xj) in g[..d].iter_mut().zip(row) {
                    *gj += r * xj;
                }
                g[d] += r;
            }
        }
        let n = self.x.rows.max(1) as f64;
        loss /= n;
        grad.iter_mut().for_each(|g| *g /= n);
        for o in 0..k {
            for j in 0..d {
                let wj = w[o * width + j];
                loss += 0.5 * self.penalty * wj * wj;
                grad[o * width + j] += self.penalty * wj;
            }
        }
        (loss, grad)
    }

    /// [`Objective::evaluate`], once per point.
    fn at(&self, w: &Array1<f64>) -> (f64, Vec<f64>) {
        let w = w.as_slice().map_or_else(|| w.to_vec(), <[f64]>::to_vec);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, loss, grad)) = last.as_ref()
            && *p == w
        {
            return (*loss, grad.clone());
        }
        let (loss, grad) = self.evaluate(&w);
        *last = Some((w, loss, grad.clone()));
        (loss, grad)
    }
}

impl CostFunction for Objective<'_> {
    type Param = Array1<f64>;
    type Output = f64;

    fn cost(&self, w: &Self::Param) -> std::result::Result<f64, ArgminError> {
        Ok(self.at(w).0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;

    fn gradient(&self, w: &Self::Param) -> std::result::Result<Array1<f64>, ArgminError> {
        Ok(Array1::from_vec(self.at(w).1))
    }
}

/// Fits logistic regression on classes `0..n_classes` of `y` (scikit-learn's `C`, `max_iter`
/// and `tol`).
pub fn fit_logistic(
    x: &Matrix,
    y: &[usize],
    n_classes: usize,
    c: f64,
    max_iter: u64,
    tol: f64,
) -> Result<LinearModel> {
    if x.rows == 0 {
        return Err(MlError::Invalid(
            "logistic_regression: no rows to fit".into(),
        ));
    }
    let outputs = if n_classes == 2 { 1 } else { n_classes };
    let objective = Objective {
        x,
        y,
        outputs,
        penalty: 1.0 / (c * x.rows as f64),
        last: Mutex::new(None),
    };
    let width = objective.width();
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), HISTORY)
        .with_tolerance_grad(tol)
        .map_err(|e| MlError::Invalid(format!("logistic_regression: {e}")))?;
    let result = Executor::new(objective, solver)
        .configure(|state| {
            state
                .param(Array1::zeros(width * outputs))
                .max_iters(max_iter)
        })
        .run()
        .map_err(|e| MlError::Invalid(format!("logistic_regression: {e}")))?;
    let state = result.state();
    let Some(w) = state.best_param.as_ref().or(state.param.as_ref()) else {
        return Err(MlError::Invalid(
            "logistic_regression: the solver returned no parameters".into(),
        ));
    };
    let d = x.cols;
    Ok(LinearModel {
        coef: (0..outputs)
            .map(|o| w.iter().skip(o * width).take(d).copied().collect())
            .collect(),
        intercept: (0..outputs).map(|o| w[o * width + d]).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary and a three-class problem with overlap, so the optimum is finite.
    fn problem(classes: usize) -> (Matrix, Vec<usize>) {
        let mut rng = crate::rng::Rng::new(9);
        let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let n = 500;
        let mut data = Vec::with_capacity(n * 3);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let row = [unit() * 4.0 - 2.0, unit() * 4.0 - 2.0, unit() * 4.0 - 2.0];
            let score = row[0] - 0.5 * row[1] + unit() * 2.0 - 1.0;
            y.push(if classes == 2 {
                usize::from(score > 0.0)
            } else {
                usize::from(score > -0.7) + usize::from(score > 0.7)
            });
            data.extend(row);
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

    #[test]
    fn the_optimum_has_a_vanishing_gradient() {
        for classes in [2, 3] {
            let (x, y) = problem(classes);
            let m = fit_logistic(&x, &y, classes, 0.5, 1000, 1e-10).unwrap();
            let outputs = m.coef.len();
            assert_eq!(outputs, if classes == 2 { 1 } else { 3 });
            let objective = Objective {
                x: &x,
                y: &y,
                outputs,
                penalty: 1.0 / (0.5 * x.rows as f64),
                last: Mutex::new(None),
            };
            let w: Vec<f64> = m
                .coef
                .iter()
                .zip(&m.intercept)
                .flat_map(|(c, b)| c.iter().copied().chain([*b]))
                .collect();
            let (_, grad) = objective.evaluate(&w);
            let norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
            assert!(norm < 1e-8, "{classes} classes: gradient norm {norm}");
            // The direction that made the labels.
            assert!(
                m.coef[outputs - 1][0] > 0.0 && m.coef[outputs - 1][1] < 0.0,
                "{m:?}"
            );
        }
    }

    #[test]
    fn loss_and_gradient_match_finite_differences() {
        let (x, y) = problem(3);
        let objective = Objective {
            x: &x,
            y: &y,
            outputs: 3,
            penalty: 0.01,
            last: Mutex::new(None),
        };
        let w: Vec<f64> = (0..12).map(|i| (i as f64 - 5.0) / 7.0).collect();
        let (_, grad) = objective.evaluate(&w);
        let h = 1e-6;
        for j in 0..w.len() {
            let (mut up, mut down) = (w.clone(), w.clone());
            up[j] += h;
            down[j] -= h;
            let numeric = (objective.evaluate(&up).0 - objective.evaluate(&down).0) / (2.0 * h);
            assert!(
                (numeric - grad[j]).abs() < 1e-6,
                "{j}: {numeric} vs {}",
                grad[j]
            );
        }
        assert!(softplus(800.0).is_finite() && (softplus(-800.0)).abs() < 1e-300);
    }
}
