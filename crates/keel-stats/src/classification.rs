//! Classification quality, defined as scikit-learn defines it, so keel's numbers can be put
//! beside a scikit-learn evaluation: classes are `0..n_classes`, probabilities one row per
//! example.
//!
//! Binary problems report precision, recall and F1 of class 1 (scikit-learn's `pos_label=1`);
//! multiclass problems report their unweighted mean over classes (`average="macro"`), and ROC
//! AUC one class against the rest, averaged the same way. A precision or recall whose
//! denominator is zero counts as 0 (scikit-learn's `zero_division` default).

use serde::{Deserialize, Serialize};

use crate::StatsError;

/// Rows: true class; columns: predicted class.
pub type Confusion = Vec<Vec<u64>>;

/// The quality of predicted probabilities against true classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Share of examples whose most probable class is the true one.
    pub accuracy: f64,
    /// Precision (class 1, or the macro mean).
    pub precision: f64,
    /// Recall (class 1, or the macro mean).
    pub recall: f64,
    /// F1 (class 1, or the macro mean).
    pub f1: f64,
    /// Area under the ROC curve; `None` when a class is absent from the true classes.
    pub roc_auc: Option<f64>,
    /// Mean negative log-likelihood of the true class (probabilities clipped to
    /// `[ε, 1 - ε]`, ε the f64 machine epsilon).
    pub log_loss: f64,
    /// Counts of (true, predicted) classes.
    pub confusion: Confusion,
}

/// Metrics of `proba` (one row of `n_classes` probabilities per example) against `y_true`.
/// The predicted class is the most probable one (the first on ties).
pub fn classification(
    y_true: &[usize],
    proba: &[Vec<f64>],
    n_classes: usize,
) -> Result<ClassificationMetrics, StatsError> {
    if y_true.is_empty() {
        return Err(StatsError::Empty("the true classes"));
    }
    if proba.len() != y_true.len() {
        return Err(StatsError::Shape(format!(
            "{} probability rows for {} true classes",
            proba.len(),
            y_true.len()
        )));
    }
    if n_classes < 2 {
        return Err(StatsError::Shape(
            "classification needs 2 classes or more".into(),
        ));
    }
    if let Some(bad) = y_true.iter().find(|c| **c >= n_classes) {
        return Err(StatsError::Shape(format!(
            "class {bad} is outside 0..{n_classes}"
        )));
    }
    if let Some(row) = proba.iter().find(|r| r.len() != n_classes) {
        return Err(StatsError::Shape(format!(
            "a probability row has {} values for {n_classes} classes",
            row.len()
        )));
    }
    let y_pred: Vec<usize> = proba.iter().map(|r| argmax(r)).collect();
    let confusion = confusion_matrix(y_true, &y_pred, n_classes);
    let (precision, recall, f1) = if n_classes == 2 {
        class_scores(&confusion, 1)
    } else {
        let per: Vec<(f64, f64, f64)> = (0..n_classes)
            .map(|c| class_scores(&confusion, c))
            .collect();
        let k = n_classes as f64;
        (
            per.iter().map(|s| s.0).sum::<f64>() / k,
            per.iter().map(|s| s.1).sum::<f64>() / k,
            per.iter().map(|s| s.2).sum::<f64>() / k,
        )
    };
    let roc_auc = if n_classes == 2 {
        let positive: Vec<bool> = y_true.iter().map(|c| *c == 1).collect();
        let scores: Vec<f64> = proba.iter().map(|r| r[1]).collect();
        roc_auc(&positive, &scores)
    } else {
        (0..n_classes)
            .map(|c| {
                let positive: Vec<bool> = y_true.iter().map(|t| *t == c).collect();
                let scores: Vec<f64> = proba.iter().map(|r| r[c]).collect();
                roc_auc(&positive, &scores)
            })
            .sum::<Option<f64>>()
            .map(|s| s / n_classes as f64)
    };
    Ok(ClassificationMetrics {
        accuracy: accuracy(y_true, &y_pred),
        precision,
        recall,
        f1,
        roc_auc,
        log_loss: log_loss(y_true, proba),
        confusion,
    })
}

/// Index of the largest value (the first of equals).
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Share of equal pairs.
pub fn accuracy(y_true: &[usize], y_pred: &[usize]) -> f64 {
    let right = y_true.iter().zip(y_pred).filter(|(t, p)| t == p).count();
    right as f64 / y_true.len().max(1) as f64
}

/// Counts of (true, predicted) pairs; classes at or above `n_classes` are ignored.
pub fn confusion_matrix(y_true: &[usize], y_pred: &[usize], n_classes: usize) -> Confusion {
    let mut m = vec![vec![0u64; n_classes]; n_classes];
    for (t, p) in y_true.iter().zip(y_pred) {
        if *t < n_classes && *p < n_classes {
            m[*t][*p] += 1;
        }
    }
    m
}

/// Precision, recall and F1 of class `c`, 0 where a denominator is 0.
fn class_scores(m: &Confusion, c: usize) -> (f64, f64, f64) {
    let tp = m[c][c] as f64;
    let predicted: u64 = m.iter().map(|row| row[c]).sum();
    let actual: u64 = m[c].iter().sum();
    let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
    let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
    let f1 = if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    };
    (p, r, f1)
}

/// Area under the ROC curve of `scores` for the positives: the probability that a random
/// positive scores above a random negative, ties counting one half (the Mann-Whitney U
/// statistic). `None` when either class is absent.
pub fn roc_auc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    // Sum of the positives' ranks (1-based), tied scores sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        let positives = order[i..=j].iter().filter(|k| positive[**k]).count();
        rank_sum += mean_rank * positives as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The ROC curve: (false positive rate, true positive rate, threshold) at each distinct score,
/// from the highest threshold down, starting at (0, 0). Empty when either class is absent.
pub fn roc_curve(positive: &[bool], scores: &[f64]) -> Vec<(f64, f64, f64)> {
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut out = vec![(0.0, 0.0, f64::INFINITY)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if positive[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order
            .get(k + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_tie {
            out.push((fp / n_neg, tp / n_pos, scores[i]));
        }
    }
    out
}

/// Mean of `-ln p(true class)`, each row normalised to sum 1 and clipped to `[ε, 1 - ε]`.
pub fn log_loss(y_true: &[usize], proba: &[Vec<f64>]) -> f64 {
    let eps = f64::EPSILON;
    let total: f64 = y_true
        .iter()
        .zip(proba)
        .map(|(t, row)| {
            let sum: f64 = row.iter().sum();
            let p = if sum > 0.0 { row[*t] / sum } else { 0.0 };
            -p.clamp(eps, 1.0 - eps).ln()
        })
        .sum();
    total / y_true.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn binary_metrics_by_hand() {
        // true:  1 1 1 0 0 0 1 0
        // p(1): .9 .8 .3 .6 .2 .1 .7 .4  -> predicted 1 1 0 1 0 0 1 0
        let y = [1, 1, 1, 0, 0, 0, 1, 0];
        let p1 = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4];
        let proba: Vec<Vec<f64>> = p1.iter().map(|p| vec![1.0 - p, *p]).collect();
        let m = classification(&y, &proba, 2).unwrap();
        // tp 3 (rows 0,1,6), fn 1 (row 2), fp 1 (row 3), tn 3.
        assert_eq!(m.confusion, vec![vec![3, 1], vec![1, 3]]);
        close(m.accuracy, 6.0 / 8.0);
        close(m.precision, 3.0 / 4.0);
        close(m.recall, 3.0 / 4.0);
        close(m.f1, 3.0 / 4.0);
        // Pairs (positive, negative) ordered correctly: positives .9 .8 .7 .3 against
        // negatives .6 .4 .2 .1: 4 + 4 + 4 + 2 = 14 of 16.
        close(m.roc_auc.unwrap(), 14.0 / 16.0);
        let want = -(0.9f64.ln()
            + 0.8f64.ln()
            + 0.3f64.ln()
            + 0.4f64.ln()
            + 0.8f64.ln()
            + 0.9f64.ln()
            + 0.7f64.ln()
            + 0.6f64.ln())
            / 8.0;
        close(m.log_loss, want);
    }

    #[test]
    fn ties_count_one_half_in_the_auc() {
        close(roc_auc(&[true, false], &[0.5, 0.5]).unwrap(), 0.5);
        close(
            roc_auc(&[true, true, false, false], &[0.8, 0.4, 0.4, 0.1]).unwrap(),
            (2.0 + 1.5) / 4.0,
        );
        assert_eq!(roc_auc(&[true, true], &[0.1, 0.2]), None);
        let curve = roc_curve(&[true, true, false, false], &[0.8, 0.4, 0.4, 0.1]);
        assert_eq!(
            curve,
            vec![
                (0.0, 0.0, f64::INFINITY),
                (0.0, 0.5, 0.8),
                (0.5, 1.0, 0.4),
                (1.0, 1.0, 0.1)
            ]
        );
    }

    #[test]
    fn multiclass_averages_over_classes() {
        // Three classes; predictions: 0 right twice, class 1 predicted for a true 2.
        let y = [0, 0, 1, 2, 2];
        let proba = vec![
            vec![0.7, 0.2, 0.1],
            vec![0.6, 0.3, 0.1],
            vec![0.2, 0.5, 0.3],
            vec![0.1, 0.6, 0.3],
            vec![0.1, 0.2, 0.7],
        ];
        let m = classification(&y, &proba, 3).unwrap();
        assert_eq!(
            m.confusion,
            vec![vec![2, 0, 0], vec![0, 1, 0], vec![0, 1, 1]]
        );
        close(m.accuracy, 0.8);
        // Precision: class 0: 2/2, class 1: 1/2, class 2: 1/1.
        close(m.precision, (1.0 + 0.5 + 1.0) / 3.0);
        // Recall: 2/2, 1/1, 1/2.
        close(m.recall, (1.0 + 1.0 + 0.5) / 3.0);
        // F1: 1, 2/3, 2/3.
        close(m.f1, (1.0 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0);
        // One against the rest: class 0 scores .7 .6 vs .2 .1 .1 -> 1; class 1: .5 vs
        // .2 .3 .6 .2 -> 3/4; class 2: .3 .7 vs .1 .1 .3 -> (2.5 + 3) / 6.
        close(m.roc_auc.unwrap(), (1.0 + 0.75 + 5.5 / 6.0) / 3.0);
    }

    #[test]
    fn zero_denominators_count_as_zero_and_bad_shapes_are_refused() {
        let proba = vec![vec![0.9, 0.1]; 3];
        let m = classification(&[0, 0, 1], &proba, 2).unwrap();
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        {
            let e = classification(&[0, 2], &proba[..2], 2)
                .expect_err("an error")
                .to_string();
            assert!(e.contains("class 2 is outside 0..2"), "{e}");
        }
        {
            let e = classification(&[0], &proba, 2)
                .expect_err("an error")
                .to_string();
            assert!(e.contains("3 probability rows for 1 true classes"), "{e}");
        }
        {
            let e = classification(&[], &[], 2)
                .expect_err("an error")
                .to_string();
            assert!(e.contains("the true classes: no values"), "{e}");
        }
        // A certain wrong answer costs -ln(ε), not infinity.
        close(log_loss(&[1], &[vec![1.0, 0.0]]), -f64::EPSILON.ln());
    }
}
