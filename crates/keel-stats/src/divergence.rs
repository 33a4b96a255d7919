//! Distances between two distributions: Wasserstein (on samples), Jensen-Shannon and the
//! population stability index (on frequencies over the same bins or categories).

use crate::{Result, StatsError, finite, sorted};

/// The first Wasserstein (earth mover's) distance between the empirical distributions of `u`
/// and `v`: the area between their CDFs, as scipy's `wasserstein_distance` without weights.
pub fn wasserstein_distance(u: &[f64], v: &[f64]) -> Result<f64> {
    finite(u, "the first sample")?;
    finite(v, "the second sample")?;
    let (u, v) = (sorted(u), sorted(v));
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    // Walk the merged values; between consecutive ones both CDFs are constant.
    let mut x = u[0].min(v[0]);
    loop {
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
        let next = match (u.get(i), v.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        total += (i as f64 / nu - j as f64 / nv).abs() * (next - x);
        x = next;
    }
    Ok(total)
}

/// The Jensen-Shannon distance (the square root of the divergence, natural logarithm) between
/// two frequency vectors over the same bins, as scipy's `jensenshannon`: each vector is
/// normalised to sum to one first.
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> Result<f64> {
    let (p, q) = normalised_pair(p, q)?;
    let mut sum = 0.0;
    for (a, b) in p.iter().zip(&q) {
        let m = (a + b) / 2.0;
        sum += rel_entr(*a, m) + rel_entr(*b, m);
    }
    // Rounding can leave a tiny negative number for identical inputs.
    Ok((sum / 2.0).max(0.0).sqrt())
}

/// The population stability index sum((c - r) * ln(c / r)) of current shares `cur` against
/// reference shares `reference`. Empty bins count as `floor` (0.0001, as Evidently) so that a
/// category missing on one side gives a large but finite index.
pub fn psi(reference: &[f64], cur: &[f64]) -> Result<f64> {
    const FLOOR: f64 = 0.0001;
    let (r, c) = normalised_pair(reference, cur)?;
    Ok(r.iter()
        .zip(&c)
        .map(|(r, c)| {
            let (r, c) = (r.max(FLOOR), c.max(FLOOR));
            (c - r) * (c / r).ln()
        })
        .sum())
}

fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

fn normalised_pair(p: &[f64], q: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    if p.len() != q.len() {
        return Err(StatsError::Shape(format!(
            "the two frequency vectors differ in length ({} and {})",
            p.len(),
            q.len()
        )));
    }
    Ok((
        normalised(p, "the first frequencies")?,
        normalised(q, "the second frequencies")?,
    ))
}

fn normalised(p: &[f64], what: &'static str) -> Result<Vec<f64>> {
    finite(p, what)?;
    if p.iter().any(|x| *x < 0.0) {
        return Err(StatsError::Shape(format!("{what} hold a negative count")));
    }
    let total: f64 = p.iter().sum();
    if total <= 0.0 {
        return Err(StatsError::Empty(what));
    }
    Ok(p.iter().map(|x| x / total).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasserstein_of_shifted_samples_is_the_shift() {
        let u = [0.0, 1.0, 3.0];
        let v: Vec<f64> = u.iter().map(|x| x + 2.5).collect();
        assert!((wasserstein_distance(&u, &v).unwrap() - 2.5).abs() < 1e-12);
        // scipy's own example: wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0
        assert!((wasserstein_distance(&u, &[5.0, 6.0, 8.0]).unwrap() - 5.0).abs() < 1e-12);
    }

    #[test]
    fn jensen_shannon_of_disjoint_distributions_is_sqrt_ln2() {
        let d = jensen_shannon(&[1.0, 0.0], &[0.0, 1.0]).unwrap();
        assert!((d - std::f64::consts::LN_2.sqrt()).abs() < 1e-12);
        assert_eq!(jensen_shannon(&[2.0, 2.0], &[1.0, 1.0]).unwrap(), 0.0);
    }

    #[test]
    fn psi_is_zero_for_equal_shares_and_grows_with_change() {
        assert_eq!(psi(&[0.5, 0.5], &[5.0, 5.0]).unwrap(), 0.0);
        let small = psi(&[0.5, 0.5], &[0.45, 0.55]).unwrap();
        let large = psi(&[0.5, 0.5], &[0.1, 0.9]).unwrap();
        assert!(0.0 < small && small < large);
        {
            let e = psi(&[1.0], &[1.0, 2.0]).expect_err("an error").to_string();
            assert!(e.contains("differ in length (1 and 2)"), "{e}");
        }
    }
}
