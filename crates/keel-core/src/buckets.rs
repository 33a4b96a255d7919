//! Metric histories reduced to a few hundred buckets for charts, keeping every spike.
//!
//! A bucket holds its first and last value (by step, timestamp, value), its minimum and its
//! maximum: a line drawn through first, min, max and last of each bucket covers the same pixels
//! as the full history at the chart's width (the M4 reduction), so no extreme disappears.
//!
//! The store keeps *rollups*: per run, metric and level, the same four figures over fixed step
//! ranges of `2^shift` steps ([`ROLLUP_SHIFTS`]), merged on every write (each figure is
//! idempotent, so a value logged twice changes nothing). [`plan`] covers a step range with
//! whole rollup buckets of the coarsest useful level and finer levels, then raw values, at its
//! edges, so the answer is exact for the range asked, whatever its bounds; [`reduce`] then
//! merges those pieces into the buckets the chart asked for.

use serde::Serialize;

/// The rollup levels: a level-`s` bucket covers steps `[b * 2^s, (b + 1) * 2^s)`.
pub const ROLLUP_SHIFTS: [u32; 3] = [5, 10, 15];

/// The most buckets one request may ask for.
pub const MAX_BUCKETS: usize = 4000;

/// One value of a history: (step, timestamp, value).
pub type Point = (i64, i64, f64);

/// What a piece of history (a raw value, a rollup bucket, a merged chart bucket) keeps.
/// `first`, `last`, `min` and `max` are over the non-NaN values; `nan` says whether it held NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    /// The first step this piece covers (for grouping).
    pub step: i64,
    pub first: Option<Point>,
    pub last: Option<Point>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub nan: bool,
}

impl Piece {
    /// One logged value (`value` NaN for a NaN).
    pub fn raw(step: i64, timestamp: i64, value: f64) -> Self {
        if value.is_nan() {
            return Piece {
                step,
                first: None,
                last: None,
                min: None,
                max: None,
                nan: true,
            };
        }
        Piece {
            step,
            first: Some((step, timestamp, value)),
            last: Some((step, timestamp, value)),
            min: Some(value),
            max: Some(value),
            nan: false,
        }
    }

    /// Folds `other` into this piece; the result does not depend on the order of merges.
    pub fn merge(&mut self, other: &Piece) {
        self.step = self.step.min(other.step);
        self.first = pick(self.first, other.first, |a, b| order(a, b).is_lt());
        self.last = pick(self.last, other.last, |a, b| order(a, b).is_gt());
        self.min = pick(self.min, other.min, |a, b| a < b);
        self.max = pick(self.max, other.max, |a, b| a > b);
        self.nan |= other.nan;
    }
}

fn pick<T: Copy>(a: Option<T>, b: Option<T>, better: impl Fn(T, T) -> bool) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if better(y, x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The order of a history: step, then timestamp, then value.
pub fn order(a: Point, b: Point) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2))
}

/// Which rollup bucket of level `shift` holds `step`.
pub fn bucket_of(step: i64, shift: u32) -> i64 {
    step >> shift
}

/// The rollup rows a batch of values changes: (metric index, shift, bucket) -> merged piece.
/// `key` gives each value's metric (any id the caller groups by).
pub fn rollups<K: Ord + Clone>(
    values: impl IntoIterator<Item = (K, i64, i64, f64)>,
) -> std::collections::BTreeMap<(K, u32, i64), Piece> {
    let mut out = std::collections::BTreeMap::new();
    for (key, step, ts, value) in values {
        let p = Piece::raw(step, ts, value);
        for shift in ROLLUP_SHIFTS {
            let b = bucket_of(step, shift);
            out.entry((key.clone(), shift, b))
                .and_modify(|q: &mut Piece| q.merge(&p))
                .or_insert(Piece {
                    step: b << shift,
                    ..p
                });
        }
    }
    out
}

/// A part of a step range and where its values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The logged values with steps in `lo..=hi`.
    Raw { lo: i64, hi: i64 },
    /// The rollup buckets `from..=to` of level `shift`.
    Rollup { shift: u32, from: i64, to: i64 },
}

/// How many pieces a request may read per series before a coarser level is used.
pub fn budget(buckets: usize) -> i64 {
    (buckets.max(1) * 8).max(4000) as i64
}

/// Covers `lo..=hi` with sources, in step order: whole rollup buckets of the finest level
/// that needs at most `budget` of them, finer levels and raw values at the edges.
pub fn plan(lo: i64, hi: i64, budget: i64) -> Vec<Source> {
    let mut out = Vec::new();
    cover(lo, hi, budget, ROLLUP_SHIFTS.len(), &mut out);
    out
}

fn cover(lo: i64, hi: i64, budget: i64, levels: usize, out: &mut Vec<Source>) {
    if lo > hi {
        return;
    }
    let width = (hi as i128) - (lo as i128) + 1;
    if width <= budget as i128 {
        out.push(Source::Raw { lo, hi });
        return;
    }
    // The whole buckets of level `s` inside lo..=hi.
    let whole = |s: u32| {
        let size = 1i128 << s;
        let from = (lo as i128 + size - 1).div_euclid(size);
        let to = (hi as i128 + 1).div_euclid(size) - 1;
        (from, to)
    };
    let usable: Vec<usize> = (0..levels)
        .filter(|&i| {
            let (from, to) = whole(ROLLUP_SHIFTS[i]);
            from <= to
        })
        .collect();
    let chosen = usable
        .iter()
        .copied()
        .find(|&i| {
            let (from, to) = whole(ROLLUP_SHIFTS[i]);
            to - from < budget as i128
        })
        .or_else(|| usable.last().copied());
    let Some(i) = chosen else {
        out.push(Source::Raw { lo, hi });
        return;
    };
    let s = ROLLUP_SHIFTS[i];
    let (from, to) = whole(s);
    let left_end = (from << s) - 1;
    let right_start = (to + 1) << s;
    let (from, to) = (from as i64, to as i64);
    if left_end >= lo as i128 {
        cover(lo, left_end as i64, budget, i, out);
    }
    out.push(Source::Rollup { shift: s, from, to });
    if right_start <= hi as i128 {
        cover(right_start as i64, hi, budget, i, out);
    }
}

/// One chart series: a run's metric over a step range, in at most the buckets asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    pub run_id: String,
    pub key: String,
    /// The step range the buckets cover (absent for an empty history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_step: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_step: Option<i64>,
    /// Whether the buckets are the logged values themselves (no two merged).
    pub raw: bool,
    /// Per bucket, columnar: first and last value's step, timestamp and value; minimum and
    /// maximum (`null` where a bucket held only NaN); whether it held a NaN.
    pub first_step: Vec<i64>,
    pub first_ts: Vec<i64>,
    pub first: Vec<Option<f64>>,
    pub last_step: Vec<i64>,
    pub last_ts: Vec<i64>,
    pub last: Vec<Option<f64>>,
    pub min: Vec<Option<f64>>,
    pub max: Vec<Option<f64>>,
    pub nan: Vec<bool>,
}

impl Series {
    fn push(&mut self, p: &Piece) {
        let (fs, ft, fv) = split(p.first, p.step);
        let (ls, lt, lv) = split(p.last, p.step);
        self.first_step.push(fs);
        self.first_ts.push(ft);
        self.first.push(fv);
        self.last_step.push(ls);
        self.last_ts.push(lt);
        self.last.push(lv);
        self.min.push(p.min);
        self.max.push(p.max);
        self.nan.push(p.nan);
    }

    /// How many buckets it holds.
    pub fn len(&self) -> usize {
        self.first_step.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first_step.is_empty()
    }
}

fn split(p: Option<Point>, step: i64) -> (i64, i64, Option<f64>) {
    match p {
        Some((s, t, v)) => (s, t, Some(v)),
        None => (step, 0, None),
    }
}

/// Merges `pieces` (in step order, covering `lo..=hi`) into at most `buckets` buckets of equal
/// step width (by position when the range is one step), and fills `series`.
pub fn reduce(series: &mut Series, pieces: &[Piece], lo: i64, hi: i64, buckets: usize) {
    let n = buckets.max(1);
    series.raw = pieces.len() <= n && pieces.iter().all(|p| p.first == p.last);
    if pieces.len() <= n {
        for p in pieces {
            series.push(p);
        }
        return;
    }
    let width = (hi as i128) - (lo as i128) + 1;
    let group = |i: usize, p: &Piece| -> usize {
        if width <= 1 {
            i * n / pieces.len()
        } else {
            let off = (p.step.max(lo) as i128) - (lo as i128);
            ((off * n as i128) / width).clamp(0, n as i128 - 1) as usize
        }
    };
    let mut current: Option<(usize, Piece)> = None;
    for (i, p) in pieces.iter().enumerate() {
        let g = group(i, p);
        match &mut current {
            Some((cg, acc)) if *cg == g => acc.merge(p),
            _ => {
                if let Some((_, acc)) = current.take() {
                    series.push(&acc);
                }
                current = Some((g, *p));
            }
        }
    }
    if let Some((_, acc)) = current {
        series.push(&acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(sources: &[Source]) -> Vec<(i64, i64)> {
        sources
            .iter()
            .map(|s| match *s {
                Source::Raw { lo, hi } => (lo, hi),
                Source::Rollup { shift, from, to } => (from << shift, ((to + 1) << shift) - 1),
            })
            .collect()
    }

    #[test]
    fn a_plan_covers_the_range_exactly_once_in_order() {
        for (lo, hi) in [
            (0, 1_000_000),
            (-70_000, 5_000_000),
            (17, 4_017),
            (3, 40_000_000),
            (0, 0),
            (999_999, 1_000_123),
            (i64::MAX - 10_000_000, i64::MAX - 1),
        ] {
            let p = plan(lo, hi, budget(500));
            let spans = covered(&p);
            assert_eq!(spans.first().map(|s| s.0), Some(lo), "{lo}..{hi}: {p:?}");
            assert_eq!(spans.last().map(|s| s.1), Some(hi), "{lo}..{hi}: {p:?}");
            for w in spans.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0, "{lo}..{hi}: gap or overlap in {p:?}");
            }
            let pieces: i128 = p
                .iter()
                .map(|s| match *s {
                    Source::Raw { lo, hi } => hi as i128 - lo as i128 + 1,
                    Source::Rollup { from, to, .. } => (to - from + 1) as i128,
                })
                .sum();
            assert!(
                pieces <= 5 * budget(500) as i128,
                "{lo}..{hi}: {pieces} pieces"
            );
        }
    }

    #[test]
    fn a_million_steps_read_about_a_thousand_rollup_rows() {
        let p = plan(0, 999_999, budget(500));
        assert!(p.contains(&Source::Rollup {
            shift: 10,
            from: 0,
            to: 975
        }));
    }

    #[test]
    fn rollups_are_the_same_whatever_the_order_or_repeats_of_values() {
        let values: Vec<(u8, i64, i64, f64)> = (0..5000)
            .map(|i| (1, i, 1000 + i, ((i * 7919) % 1013) as f64 - 500.0))
            .chain([(1, 77, 9, f64::NAN), (1, 4000, 5, 1e300)])
            .collect();
        let a = rollups(values.iter().copied());
        let mut shuffled = values.clone();
        shuffled.reverse();
        shuffled.extend(values.iter().take(100).copied());
        let b = rollups(shuffled);
        assert_eq!(a, b);
        let top = a
            .get(&(1, 15, 0))
            .copied()
            .unwrap_or_else(|| Piece::raw(0, 0, 0.0));
        assert_eq!(top.max, Some(1e300));
        assert_eq!(top.min, Some(-500.0));
        assert!(top.nan);
        assert_eq!(top.first, Some((0, 1000, -500.0)));
    }

    #[test]
    fn reduction_keeps_every_extreme() {
        let pieces: Vec<Piece> = (0..100_000)
            .map(|i| Piece::raw(i, i, if i == 54_321 { 1e9 } else { (i % 10) as f64 }))
            .collect();
        let mut s = Series::default();
        reduce(&mut s, &pieces, 0, 99_999, 300);
        assert!(s.len() <= 300);
        assert_eq!(
            s.max.iter().flatten().cloned().fold(f64::MIN, f64::max),
            1e9
        );
        assert_eq!(s.first_step[0], 0);
        assert_eq!(s.last_step[s.len() - 1], 99_999);
        assert!(!s.raw);
    }
}
