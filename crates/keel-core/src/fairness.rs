//! Group fairness of a binary classifier on a sensitive column, with fairlearn's definitions:
//! per group the selection rate (share predicted positive), the true positive rate (recall;
//! 0 for a group with no actual positive, as scikit-learn's normalized confusion matrix gives)
//! and the false positive rate (0 for a group with no actual negative); the demographic parity
//! difference (largest minus smallest selection rate) and ratio (smallest over largest), and
//! the equalized odds difference (the larger of the true and false positive rates' spreads)
//! and ratio (the smaller of their ratios), all between groups.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Most groups a sensitive column may have: more is an identifier, not a group.
pub const MAX_GROUPS: usize = 200;

/// One group's rates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRates {
    /// The sensitive column's value (`all` for the whole data).
    pub group: String,
    /// Rows in the group.
    pub count: u64,
    /// Rows whose true value is the positive label.
    pub positives: u64,
    /// Share of rows predicted positive.
    pub selection_rate: f64,
    /// Share of actual positives predicted positive.
    pub true_positive_rate: f64,
    /// Share of actual negatives predicted positive.
    pub false_positive_rate: f64,
    /// Share of rows predicted right.
    pub accuracy: f64,
}

/// The fairness figures of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// The whole data.
    pub overall: GroupRates,
    /// Each group, by its value.
    pub groups: Vec<GroupRates>,
    pub demographic_parity_difference: f64,
    /// `None` when no group has a row predicted positive (0 over 0).
    pub demographic_parity_ratio: Option<f64>,
    pub equalized_odds_difference: f64,
    /// `None` when the true positive rate is 0 in every group (0 over 0).
    pub equalized_odds_ratio: Option<f64>,
}

fn rates(group: String, truth: &[bool], predicted: &[bool]) -> GroupRates {
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    for (t, p) in truth.iter().zip(predicted) {
        match (t, p) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fn_ += 1,
        }
    }
    let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let n = tp + fp + tn + fn_;
    GroupRates {
        group,
        count: n,
        positives: tp + fn_,
        selection_rate: share(tp + fp, n),
        true_positive_rate: share(tp, tp + fn_),
        false_positive_rate: share(fp, fp + tn),
        accuracy: share(tp + tn, n),
    }
}

fn spread(values: impl Iterator<Item = f64> + Clone) -> (f64, Option<f64>) {
    let min = values.clone().fold(f64::INFINITY, f64::min);
    let max = values.fold(f64::NEG_INFINITY, f64::max);
    (max - min, (max > 0.0).then(|| min / max))
}

/// The figures for rows whose true and predicted values are `truth` and `predicted` (the
/// positive label or not) and whose sensitive values are `groups`. Groups are listed by value.
pub fn assess(truth: &[bool], predicted: &[bool], groups: &[String]) -> Result<Rates> {
    if truth.len() != predicted.len() || truth.len() != groups.len() {
        return Err(Error::invalid(format!(
            "{} true values, {} predictions and {} sensitive values: each row needs one of each",
            truth.len(),
            predicted.len(),
            groups.len()
        )));
    }
    if truth.is_empty() {
        return Err(Error::invalid("no rows to assess"));
    }
    let mut by_group: std::collections::BTreeMap<&str, (Vec<bool>, Vec<bool>)> = Default::default();
    for ((t, p), g) in truth.iter().zip(predicted).zip(groups) {
        let entry = by_group.entry(g.as_str()).or_default();
        entry.0.push(*t);
        entry.1.push(*p);
        if by_group.len() > MAX_GROUPS {
            return Err(Error::invalid(format!(
                "the sensitive column has more than {MAX_GROUPS} distinct values: fairness is read per group"
            )));
        }
    }
    let groups: Vec<GroupRates> = by_group
        .into_iter()
        .map(|(g, (t, p))| rates(g.to_string(), &t, &p))
        .collect();
    let (dpd, dpr) = spread(groups.iter().map(|g| g.selection_rate));
    let (tpr_d, tpr_r) = spread(groups.iter().map(|g| g.true_positive_rate));
    let (fpr_d, fpr_r) = spread(groups.iter().map(|g| g.false_positive_rate));
    // As fairlearn: undefined when the true positive rates' ratio is, else the smaller of
    // the two that are defined.
    let eor = match (tpr_r, fpr_r) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, _) => a,
    };
    Ok(Rates {
        overall: rates("all".into(), truth, predicted),
        groups,
        demographic_parity_difference: dpd,
        demographic_parity_ratio: dpr,
        equalized_odds_difference: tpr_d.max(fpr_d),
        equalized_odds_ratio: eor,
    })
}

/// Which label is the positive outcome, from the values seen (true and predicted, as text):
/// `given` when named (it must be one of them, unless every value is the same other one), else
/// `1` for values within {0, 1} or {-1, 1} and `true` for booleans, as fairlearn decides.
/// Fairness needs two outcomes: more distinct values are refused.
pub fn positive_label(seen: &[&str], given: Option<&str>) -> Result<String> {
    let mut distinct: Vec<&str> = seen.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > 2 {
        let shown: Vec<&str> = distinct.iter().take(5).copied().collect();
        return Err(Error::invalid(format!(
            "fairness needs a binary outcome: the target and the predictions hold {} values ({}{})",
            distinct.len(),
            shown.join(", "),
            if distinct.len() > 5 { ", ..." } else { "" }
        )));
    }
    let number = |s: &str| s.trim().parse::<f64>().ok();
    if let Some(given) = given {
        let matches = |s: &str| {
            s == given || matches!((number(s), number(given)), (Some(a), Some(b)) if a == b)
        };
        if distinct.len() == 2 && !distinct.iter().any(|s| matches(s)) {
            return Err(Error::invalid(format!(
                "positive label '{given}' is not among the outcomes ({})",
                distinct.join(", ")
            )));
        }
        return Ok(distinct
            .iter()
            .find(|s| matches(s))
            .map_or_else(|| given.to_string(), |s| s.to_string()));
    }
    let numbers: Option<Vec<f64>> = distinct.iter().map(|s| number(s)).collect();
    if let Some(ns) = numbers
        && (ns.iter().all(|n| *n == 0.0 || *n == 1.0) || ns.iter().all(|n| *n == -1.0 || *n == 1.0))
    {
        return Ok(distinct
            .iter()
            .find(|s| number(s) == Some(1.0))
            .map_or_else(|| "1".to_string(), |s| s.to_string()));
    }
    if distinct
        .iter()
        .all(|s| s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"))
    {
        return Ok(distinct
            .iter()
            .find(|s| s.eq_ignore_ascii_case("true"))
            .map_or_else(|| "true".to_string(), |s| s.to_string()));
    }
    Err(Error::invalid(format!(
        "name the positive label (--positive-label): the outcomes are {}",
        distinct.join(", ")
    )))
}

/// Whether `value` is the positive label `positive` (as text, or as the same number).
pub fn is_positive(value: &str, positive: &str) -> bool {
    value == positive
        || matches!(
            (value.trim().parse::<f64>(), positive.trim().parse::<f64>()),
            (Ok(a), Ok(b)) if a == b
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rates_follow_the_definitions() {
        let truth = [true, true, false, false, true, false];
        let pred = [true, false, true, false, true, true];
        let r = assess(&truth, &pred, &g(&["a", "a", "a", "a", "b", "b"])).unwrap();
        let a = &r.groups[0];
        assert_eq!((a.count, a.positives), (4, 2));
        assert_eq!(a.selection_rate, 0.5);
        assert_eq!(a.true_positive_rate, 0.5);
        assert_eq!(a.false_positive_rate, 0.5);
        let b = &r.groups[1];
        assert_eq!((b.selection_rate, b.true_positive_rate), (1.0, 1.0));
        assert_eq!(b.false_positive_rate, 1.0);
        assert_eq!(r.demographic_parity_difference, 0.5);
        assert_eq!(r.demographic_parity_ratio, Some(0.5));
        assert_eq!(r.equalized_odds_difference, 0.5);
        assert_eq!(r.equalized_odds_ratio, Some(0.5));
        assert_eq!(r.overall.count, 6);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(assess(&[true], &[true, false], &g(&["a"])).is_err());
        assert!(assess(&[], &[], &[]).is_err());
        let many: Vec<String> = (0..=MAX_GROUPS).map(|i| i.to_string()).collect();
        let t = vec![true; many.len()];
        assert!(assess(&t, &t, &many).is_err());
    }

    #[test]
    fn the_positive_label_is_found_as_fairlearn_finds_it() {
        assert_eq!(positive_label(&["0", "1"], None).unwrap(), "1");
        assert_eq!(positive_label(&["1.0", "0.0"], None).unwrap(), "1.0");
        assert_eq!(positive_label(&["-1", "1"], None).unwrap(), "1");
        assert_eq!(positive_label(&["False", "True"], None).unwrap(), "True");
        assert_eq!(positive_label(&["0"], None).unwrap(), "1");
        assert!(positive_label(&["no", "yes"], None).is_err());
        assert_eq!(positive_label(&["no", "yes"], Some("yes")).unwrap(), "yes");
        assert_eq!(positive_label(&["0", "1"], Some("1.0")).unwrap(), "1");
        assert!(positive_label(&["no", "yes"], Some("maybe")).is_err());
        assert!(positive_label(&["a", "b", "c"], Some("a")).is_err());
        assert!(is_positive("1.0", "1") && !is_positive("0", "1"));
    }
}
