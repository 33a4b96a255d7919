//! Regression quality, defined as scikit-learn defines it.

use serde::{Deserialize, Serialize};

use crate::StatsError;

/// The quality of predicted values against true ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination, `1 - SS_res / SS_tot`; for constant true values 1 when
    /// every prediction is exact and 0 otherwise (scikit-learn's `force_finite`).
    pub r2: f64,
    /// Mean absolute percentage error, as a fraction: `mean(|y - p| / max(|y|, ε))`, ε the f64
    /// machine epsilon (so a true 0 gives a huge, finite term, as in scikit-learn).
    pub mape: f64,
}

/// Metrics of `y_pred` against `y_true`.
pub fn regression(y_true: &[f64], y_pred: &[f64]) -> Result<RegressionMetrics, StatsError> {
    if y_true.is_empty() {
        return Err(StatsError::Empty("the true values"));
    }
    if y_true.len() != y_pred.len() {
        return Err(StatsError::Shape(format!(
            "{} predictions for {} true values",
            y_pred.len(),
            y_true.len()
        )));
    }
    if y_true.iter().chain(y_pred).any(|v| !v.is_finite()) {
        return Err(StatsError::NotFinite("the true values or predictions"));
    }
    let n = y_true.len() as f64;
    let mean = y_true.iter().sum::<f64>() / n;
    let (mut sq, mut abs, mut pct, mut tot) = (0.0, 0.0, 0.0, 0.0);
    for (t, p) in y_true.iter().zip(y_pred) {
        let e = t - p;
        sq += e * e;
        abs += e.abs();
        pct += e.abs() / t.abs().max(f64::EPSILON);
        tot += (t - mean) * (t - mean);
    }
    let r2 = if tot > 0.0 {
        1.0 - sq / tot
    } else if sq == 0.0 {
        1.0
    } else {
        0.0
    };
    Ok(RegressionMetrics {
        rmse: (sq / n).sqrt(),
        mae: abs / n,
        r2,
        mape: pct / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn regression_metrics_by_hand() {
        // Errors 1, -1, 2, 0 against true 2, 4, 5, 9 (mean 5, SS_tot 9 + 1 + 0 + 16 = 26).
        let m = regression(&[2.0, 4.0, 5.0, 9.0], &[1.0, 5.0, 3.0, 9.0]).unwrap();
        close(m.rmse, (6.0f64 / 4.0).sqrt());
        close(m.mae, 1.0);
        close(m.r2, 1.0 - 6.0 / 26.0);
        close(m.mape, (0.5 + 0.25 + 0.4 + 0.0) / 4.0);
    }

    #[test]
    fn constant_truth_and_bad_input() {
        assert_eq!(regression(&[3.0, 3.0], &[3.0, 3.0]).unwrap().r2, 1.0);
        assert_eq!(regression(&[3.0, 3.0], &[3.0, 4.0]).unwrap().r2, 0.0);
        assert!(regression(&[0.0], &[1.0]).unwrap().mape > 1e15);
        {
            let e = regression(&[], &[]).expect_err("an error").to_string();
            assert!(e.contains("the true values: no values"), "{e}");
        }
        {
            let e = regression(&[1.0], &[1.0, 2.0])
                .expect_err("an error")
                .to_string();
            assert!(e.contains("2 predictions for 1 true values"), "{e}");
        }
        {
            let e = regression(&[f64::NAN], &[1.0])
                .expect_err("an error")
                .to_string();
            assert!(e.contains("not a finite number"), "{e}");
        }
    }
}
