//! Classification quality estimated without labels from the model's own probabilities
//! (confidence-based performance estimation, as NannyML's CBPE): when the probabilities are
//! calibrated (of the rows given probability p of a class, a share p really are of it), each
//! row is an expected fraction of a true or false positive, and the expected confusion matrix
//! gives the expected accuracy and ROC AUC. This holds under covariate shift (the inputs move,
//! the relation from inputs to labels does not), which is when labels are most needed and
//! least available.

/// The expected accuracy: the mean probability of the class each row was predicted as.
/// `proba` holds one row of class probabilities per example, `predicted` each one's class.
/// `None` without rows, or when a predicted class has no probability.
pub fn expected_accuracy(proba: &[Vec<f64>], predicted: &[usize]) -> Option<f64> {
    if proba.is_empty() || proba.len() != predicted.len() {
        return None;
    }
    let mut sum = 0.0;
    for (row, class) in proba.iter().zip(predicted) {
        sum += row.get(*class)?;
    }
    Some(sum / proba.len() as f64)
}

/// The expected area under the ROC curve of scores `p`, each the calibrated probability that
/// its row is positive: each row counts `p` of a positive and `1 - p` of a negative, and the
/// curve of expected true against false positive rates over every threshold is integrated
/// (tied scores move both rates at once). `None` when no row is expected positive or
/// negative.
pub fn expected_roc_auc(p: &[f64]) -> Option<f64> {
    let positives: f64 = p.iter().sum();
    let negatives = p.len() as f64 - positives;
    if !(positives > 0.0 && negatives > 0.0) || p.iter().any(|x| !(0.0..=1.0).contains(x)) {
        return None;
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    let (mut tp, mut fp, mut area) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let (tp0, fp0) = (tp, fp);
        let mut j = i;
        while j < order.len() && p[order[j]] == p[order[i]] {
            tp += p[order[j]];
            fp += 1.0 - p[order[j]];
            j += 1;
        }
        area += (fp - fp0) * (tp + tp0) / 2.0;
        i = j;
    }
    Some(area / (positives * negatives))
}

/// The expected ROC AUC of several classes: each class against the rest with its own
/// probability column, averaged (scikit-learn's `multi_class="ovr"`, `average="macro"`); for
/// two classes, the second class's.
pub fn expected_roc_auc_classes(proba: &[Vec<f64>], classes: usize) -> Option<f64> {
    let column =
        |c: usize| -> Option<Vec<f64>> { proba.iter().map(|r| r.get(c).copied()).collect() };
    if classes == 2 {
        return expected_roc_auc(&column(1)?);
    }
    let mut sum = 0.0;
    for c in 0..classes {
        sum += expected_roc_auc(&column(c)?)?;
    }
    Some(sum / classes as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator of uniform numbers in [0, 1).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed;
        move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn calibrated_probabilities_predict_their_own_accuracy_and_auc() {
        // Labels drawn from the probabilities themselves: the estimate and the realised
        // figures agree up to sampling noise.
        let mut u = uniform(3);
        let n = 20_000;
        let p: Vec<f64> = (0..n)
            .map(|_| 1.0 / (1.0 + (-(u() * 6.0 - 3.0)).exp()))
            .collect();
        let y: Vec<bool> = p.iter().map(|p| u() < *p).collect();
        let proba: Vec<Vec<f64>> = p.iter().map(|p| vec![1.0 - p, *p]).collect();
        let predicted: Vec<usize> = p.iter().map(|p| usize::from(*p >= 0.5)).collect();
        let est_acc = expected_accuracy(&proba, &predicted).unwrap();
        let real_acc = predicted
            .iter()
            .zip(&y)
            .filter(|(c, y)| (**c == 1) == **y)
            .count() as f64
            / n as f64;
        assert!((est_acc - real_acc).abs() < 0.01, "{est_acc} vs {real_acc}");
        let est_auc = expected_roc_auc(&p).unwrap();
        let real_auc = crate::classification::roc_auc(&y, &p).unwrap();
        assert!((est_auc - real_auc).abs() < 0.01, "{est_auc} vs {real_auc}");
        assert_eq!(expected_roc_auc_classes(&proba, 2), Some(est_auc));
    }

    #[test]
    fn the_expected_curve_is_exact_on_certain_rows() {
        // Certain rows: the expected curve is the realised one.
        let p = [1.0, 1.0, 0.0, 0.0, 1.0];
        assert_eq!(expected_roc_auc(&p), Some(1.0));
        // One score for every row: the diagonal.
        let flat = expected_roc_auc(&[0.3, 0.3, 0.3]).unwrap();
        assert!((flat - 0.5).abs() < 1e-12, "{flat}");
        assert_eq!(expected_roc_auc(&[1.0, 1.0]), None);
        assert_eq!(expected_roc_auc(&[1.5, 0.0]), None);
        assert_eq!(expected_accuracy(&[vec![0.2, 0.8]], &[1]), Some(0.8));
        assert_eq!(expected_accuracy(&[vec![0.2, 0.8]], &[2]), None);
    }
}
