//! Dividing rows into training and held-out parts: one seeded split, or k folds for
//! cross-validation. With `strata` (class per row) every class is divided in the same
//! proportion, as scikit-learn's stratified splitters do. Index lists come back sorted, so a
//! split depends only on the rows, the fraction or k, and the seed.

use crate::error::{Result, invalid};
use crate::rng::Rng;

/// Training and held-out row indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows to fit on.
    pub train: Vec<usize>,
    /// Rows to evaluate on.
    pub test: Vec<usize>,
}

/// Rows `0..n` shuffled by `seed`, grouped by stratum (one group when `strata` is `None`),
/// groups in order of their first appearance.
fn shuffled_groups(n: usize, seed: u64, strata: Option<&[usize]>) -> Vec<Vec<usize>> {
    let mut rng = Rng::new(seed);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    match strata {
        None => groups.push((0..n).collect()),
        Some(s) => {
            let mut index_of: Vec<Option<usize>> = Vec::new();
            for (row, &c) in s.iter().enumerate().take(n) {
                if index_of.len() <= c {
                    index_of.resize(c + 1, None);
                }
                let g = *index_of[c].get_or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(row);
            }
        }
    }
    for g in &mut groups {
        rng.shuffle(g);
    }
    groups
}

/// Holds out `test_fraction` of the rows (of each stratum), chosen by `seed`.
pub fn train_test(
    n: usize,
    test_fraction: f64,
    seed: u64,
    strata: Option<&[usize]>,
) -> Result<Split> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return invalid(format!(
            "--split: the training share must be between 0 and 1, not {}",
            1.0 - test_fraction
        ));
    }
    if strata.is_some_and(|s| s.len() != n) {
        return invalid("one class per row is needed to stratify");
    }
    let mut split = Split {
        train: Vec::new(),
        test: Vec::new(),
    };
    for group in shuffled_groups(n, seed, strata) {
        let held = (group.len() as f64 * test_fraction).round() as usize;
        split.test.extend_from_slice(&group[..held]);
        split.train.extend_from_slice(&group[held..]);
    }
    split.train.sort_unstable();
    split.test.sort_unstable();
    if split.train.is_empty() || split.test.is_empty() {
        return invalid(format!(
            "--split: {n} rows leave an empty {} part at a training share of {}",
            if split.train.is_empty() {
                "training"
            } else {
                "held-out"
            },
            1.0 - test_fraction
        ));
    }
    Ok(split)
}

/// `k` folds: each row is held out in exactly one, strata spread evenly over the folds.
pub fn k_folds(n: usize, k: usize, seed: u64, strata: Option<&[usize]>) -> Result<Vec<Split>> {
    if k < 2 {
        return invalid(format!("--cv: at least 2 folds are needed, not {k}"));
    }
    if k > n {
        return invalid(format!(
            "--cv: {k} folds need at least {k} rows; there are {n}"
        ));
    }
    if strata.is_some_and(|s| s.len() != n) {
        return invalid("one class per row is needed to stratify");
    }
    let mut fold_of = vec![0usize; n];
    // Deal each stratum's shuffled rows round the folds, continuing where the last one ended,
    // so fold sizes differ by at most one.
    let mut next = 0;
    for group in shuffled_groups(n, seed, strata) {
        for row in group {
            fold_of[row] = next;
            next = (next + 1) % k;
        }
    }
    Ok((0..k)
        .map(|f| {
            let (test, train): (Vec<usize>, Vec<usize>) = (0..n).partition(|r| fold_of[*r] == f);
            Split { train, test }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_is_fixed_by_its_seed_and_keeps_class_shares() {
        let classes: Vec<usize> = (0..100).map(|i| usize::from(i % 4 == 0)).collect();
        let a = train_test(100, 0.2, 42, Some(&classes)).unwrap();
        assert_eq!(a, train_test(100, 0.2, 42, Some(&classes)).unwrap());
        assert_ne!(a, train_test(100, 0.2, 43, Some(&classes)).unwrap());
        assert_eq!((a.train.len(), a.test.len()), (80, 20));
        // 25 of class 1: 5 held out; 75 of class 0: 15.
        assert_eq!(a.test.iter().filter(|r| classes[**r] == 1).count(), 5);
        let mut all: Vec<usize> = a.train.iter().chain(&a.test).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn folds_cover_every_row_once() {
        let classes: Vec<usize> = (0..53).map(|i| i % 3).collect();
        let folds = k_folds(53, 5, 1, Some(&classes)).unwrap();
        let mut held: Vec<usize> = folds.iter().flat_map(|f| f.test.clone()).collect();
        held.sort_unstable();
        assert_eq!(held, (0..53).collect::<Vec<_>>());
        for f in &folds {
            assert!(f.test.len() == 10 || f.test.len() == 11, "{}", f.test.len());
            assert_eq!(f.train.len() + f.test.len(), 53);
        }
    }

    #[test]
    fn impossible_splits_are_refused_by_name() {
        let e = train_test(3, 0.1, 1, None).unwrap_err().to_string();
        assert!(e.contains("empty held-out part"), "{e}");
        {
            let e = train_test(10, 1.0, 1, None)
                .expect_err("an error")
                .to_string();
            assert!(e.contains("training share must be between 0 and 1"), "{e}");
        }
        assert!(
            k_folds(3, 5, 1, None)
                .unwrap_err()
                .to_string()
                .contains("5 folds")
        );
        {
            let e = k_folds(10, 1, 1, None).expect_err("an error").to_string();
            assert!(e.contains("at least 2 folds are needed"), "{e}");
        }
    }
}
