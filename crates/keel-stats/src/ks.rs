//! The two-sample Kolmogorov-Smirnov test (two-sided), as scipy's `ks_2samp` with
//! `method="auto"` defines it.
//!
//! The statistic is the largest distance between the two right-continuous empirical CDFs. The
//! p-value is exact while neither sample has more than [`MAX_EXACT_N`] values: the share of the
//! monotone lattice paths from (0, 0) to (n1, n2) that touch the band the statistic defines
//! (for equal sizes by the closed alternating sum, otherwise by dynamic programming over path
//! probabilities, which stay in [0, 1] and so cannot overflow). Above that it comes from the
//! limiting Kolmogorov distribution with Stephens' finite-size correction; scipy uses the exact
//! one-sample distribution there, and the two differ by well under 1e-3.

use serde::Serialize;

use crate::{Result, finite, sorted};

/// Largest sample size (per side) for which the p-value is computed exactly.
pub const MAX_EXACT_N: usize = 10_000;

/// The outcome of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ks {
    /// Largest absolute difference between the two empirical CDFs.
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
}

/// Two-sided two-sample KS test of `a` against `b` (finite values only).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<Ks> {
    finite(a, "the first sample")?;
    finite(b, "the second sample")?;
    let (a, b) = (sorted(a), sorted(b));
    let statistic = statistic_sorted(&a, &b);
    let (n1, n2) = (a.len(), b.len());
    let pvalue = if n1.max(n2) <= MAX_EXACT_N {
        exact_pvalue(n1, n2, statistic)
    } else {
        asymptotic_pvalue(n1, n2, statistic)
    };
    Ok(Ks {
        statistic,
        pvalue: pvalue.clamp(0.0, 1.0),
    })
}

/// The KS distance between two sorted samples.
pub fn statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    while i < a.len() && j < b.len() {
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    // Past the end of one sample its CDF is 1; the other only rises towards 1.
    if i < a.len() {
        d = d.max((i as f64 / n1 - 1.0).abs());
    }
    if j < b.len() {
        d = d.max((1.0 - j as f64 / n2).abs());
    }
    d
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// P(D >= d) under the null hypothesis, counting lattice paths.
fn exact_pvalue(n1: usize, n2: usize, d: f64) -> f64 {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) as f64 * n2 as f64;
    // The statistic is a multiple of 1/lcm; rounding removes floating-point noise.
    let h = (d * lcm).round() as usize;
    if h == 0 {
        return 1.0;
    }
    if n1 == n2 {
        outside_square(n1, h)
    } else {
        1.0 - inside_band(n1, n2, h * g)
    }
}

/// The share of paths of an n x n walk that reach |x - y| >= h, by the alternating sum
/// 2 * sum_k (-1)^(k-1) C(2n, n - kh) / C(2n, n) evaluated in nested form, which avoids
/// cancellation.
fn outside_square(n: usize, h: usize) -> f64 {
    let mut p = 0.0;
    let mut k = n / h;
    loop {
        let mut term = 1.0;
        for j in 0..h {
            let top = n as f64 - (k * h + j) as f64;
            let bottom = (n + k * h + j + 1) as f64;
            term = top * term / bottom;
        }
        p = term * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// The probability that a uniformly random monotone path from (0, 0) to (m, n) keeps
/// |i*n - j*m| < `band` at every lattice point.
fn inside_band(m: usize, n: usize, band: usize) -> f64 {
    let inside = |i: usize, j: usize| (i * n).abs_diff(j * m) < band;
    // row[j] = probability of standing at (i, j) having stayed inside.
    let mut row = vec![0.0f64; n + 1];
    row[0] = 1.0;
    for j in 1..=n {
        row[j] = if inside(0, j) {
            row[j - 1] * ((n - j + 1) as f64 / (m + n - j + 1) as f64)
        } else {
            0.0
        };
    }
    for i in 1..=m {
        let mut prev = 0.0; // row[i][j - 1]
        for (j, cell) in row.iter_mut().enumerate() {
            let remaining = (m + n - i - j + 1) as f64;
            let value = if inside(i, j) {
                // From (i - 1, j) by a step in x, or from (i, j - 1) by a step in y.
                let from_left = *cell * ((m - i + 1) as f64 / remaining);
                let from_below = if j > 0 {
                    prev * ((n - j + 1) as f64 / remaining)
                } else {
                    0.0
                };
                from_left + from_below
            } else {
                0.0
            };
            *cell = value;
            prev = value;
        }
    }
    row[n]
}

/// Kolmogorov's limiting distribution with Stephens' correction for the effective size.
fn asymptotic_pvalue(n1: usize, n2: usize, d: f64) -> f64 {
    let en = (n1 as f64 * n2 as f64) / (n1 + n2) as f64;
    let sq = en.sqrt();
    kolmogorov_sf((sq + 0.12 + 0.11 / sq) * d)
}

/// Q(lambda) = 2 * sum_{k>=1} (-1)^(k-1) exp(-2 k^2 lambda^2).
fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=100 {
        let k = k as f64;
        let term = (-2.0 * k * k * lambda * lambda).exp();
        sum += sign * term;
        if term < 1e-16 {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_have_distance_zero_and_pvalue_one() {
        let a = [1.0, 2.0, 3.0];
        let r = ks_2samp(&a, &a).unwrap();
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.pvalue, 1.0);
    }

    #[test]
    fn disjoint_samples_have_distance_one() {
        let r = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0, 7.0]).unwrap();
        assert_eq!(r.statistic, 1.0);
        // Exactly 2 of the C(7, 3) = 35 paths touch the corner band: p = 2/35.
        assert!((r.pvalue - 2.0 / 35.0).abs() < 1e-12, "{}", r.pvalue);
    }

    #[test]
    fn square_and_band_methods_agree() {
        for n in [3usize, 7, 20] {
            for h in 1..=n {
                let square = outside_square(n, h);
                let band = 1.0 - inside_band(n, n, h * n);
                assert!(
                    (square - band).abs() < 1e-12,
                    "n={n} h={h}: {square} vs {band}"
                );
            }
        }
    }

    #[test]
    fn empty_and_nan_samples_are_refused() {
        {
            let e = ks_2samp(&[], &[1.0]).expect_err("an error").to_string();
            assert!(e.contains("the first sample: no values"), "{e}");
        }
        {
            let e = ks_2samp(&[f64::NAN], &[1.0])
                .expect_err("an error")
                .to_string();
            assert!(
                e.contains("the first sample: a value is not a finite number"),
                "{e}"
            );
        }
    }
}
