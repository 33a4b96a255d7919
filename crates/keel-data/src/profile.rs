//! Schema inference and column profiles, computed in one streaming pass in bounded memory.
//!
//! polars scans the file (CSV, Parquet or JSON lines) with its streaming engine and hands
//! over batches of rows; each column feeds an accumulator. Numeric columns keep their values
//! exactly up to [`EXACT_VALUES`] per column and a uniform reservoir sample of that size beyond
//! (so quantiles and histograms of very large files are estimates, marked `exact: false`);
//! counts, nulls, mean, standard deviation, minimum and maximum are always exact.
//!
//! The result is stored with the dataset version as JSON in the documented form below
//! (`keel.profile/v1`); monitoring compares live traffic against it.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::format::Format;

/// The profile layout written by this version of keel.
pub const PROFILE_FORMAT: &str = "keel.profile/v1";
/// Numeric values kept per column before sampling starts.
pub const EXACT_VALUES: usize = 2_000_000;
/// Distinct strings counted per column before the column counts as free text.
pub const MAX_DISTINCT: usize = 10_000;
/// String columns with at most this many distinct values (and values repeating on average)
/// are categorical.
pub const CATEGORICAL_MAX: usize = 1_000;
/// Categories listed in a profile.
pub const TOP_K: usize = 20;
/// Histogram bins of a numeric column.
pub const BINS: usize = 20;

/// A column's name, type and nullability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// `integer`, `float`, `boolean`, `string`, `date`, `datetime`, or polars' name for
    /// anything else.
    #[serde(rename = "type")]
    pub dtype: String,
    /// Whether any value is missing.
    pub nullable: bool,
}

/// A table's columns in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// The columns.
    pub columns: Vec<ColumnSchema>,
}

/// A histogram: `counts[i]` values fell in `[edges[i], edges[i + 1])` (the last bin closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `counts.len() + 1` bin edges.
    pub edges: Vec<f64>,
    /// Values per bin (scaled to the column's count when sampled).
    pub counts: Vec<u64>,
}

/// Statistics of a numeric column (NaN values are counted apart and left out of the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericStats {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1).
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Percentiles 1 to 99 (99 values, linear interpolation as numpy's default).
    pub quantiles: Vec<f64>,
    /// Equal-width histogram from min to max.
    pub histogram: Histogram,
    /// NaN values.
    pub nan_count: u64,
}

/// Statistics of a string or boolean column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringStats {
    /// Distinct values (a lower bound when `capped`).
    pub cardinality: u64,
    /// Whether more than [`MAX_DISTINCT`] distinct values were seen.
    pub capped: bool,
    /// The most frequent values with their counts, most frequent first.
    pub top: Vec<(String, u64)>,
    /// Shortest value, in characters.
    pub min_length: u64,
    /// Mean length, in characters.
    pub mean_length: f64,
    /// Longest value, in characters.
    pub max_length: u64,
}

/// Range of a date or datetime column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeStats {
    /// Earliest, milliseconds since the epoch (UTC).
    pub min_ms: i64,
    /// Latest, milliseconds since the epoch (UTC).
    pub max_ms: i64,
    /// Equal-width histogram of the times (edges in epoch milliseconds); absent in profiles
    /// written before keel recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// What a column's statistics describe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ColumnStats {
    /// Integers and floats.
    Numeric(NumericStats),
    /// Strings with few distinct values, and booleans.
    Categorical(StringStats),
    /// Other strings.
    Text(StringStats),
    /// Dates and datetimes.
    Time(TimeStats),
    /// No non-missing value, or a type keel does not profile.
    Empty,
}

/// One column's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// Values present.
    pub count: u64,
    /// Values missing.
    pub nulls: u64,
    /// The statistics for its kind.
    #[serde(flatten)]
    pub stats: ColumnStats,
}

/// A table's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `keel.profile/v1`.
    pub format: String,
    /// Rows.
    pub row_count: u64,
    /// Whether quantiles and histograms are exact (false once a column was sampled).
    pub exact: bool,
    /// Columns in table order.
    pub columns: Vec<ColumnProfile>,
}

/// What reading a table gave: rows, schema and profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Rows.
    pub row_count: u64,
    /// Columns.
    pub schema: Schema,
    /// Statistics.
    pub profile: Profile,
}

/// The values a column contributed, for comparing two versions: a numeric column's kept
/// values (sorted; all of them up to [`EXACT_VALUES`], else a uniform sample), or a string
/// column's count per value.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// Sorted non-NaN values.
    Numeric(Vec<f64>),
    /// Count per distinct value (all of them unless the column exceeded [`MAX_DISTINCT`]).
    Counts(std::collections::BTreeMap<String, u64>),
    /// Nothing comparable (dates, other types, or no values).
    None,
}

/// Reads `paths` (all in `format`, all with the same columns) and profiles them as one table.
pub fn profile_files(format: Format, paths: &[&Path]) -> Result<Table> {
    Ok(scan(format, paths, false)?.0)
}

/// Profiles like [`profile_files`] and also returns each column's [`Sample`].
pub fn profile_with_samples(format: Format, paths: &[&Path]) -> Result<(Table, Vec<Sample>)> {
    scan(format, paths, true)
}

/// Profiles like [`profile_with_samples`] the rows `plan` gives of each file (see
/// [`crate::read::read_planned`]).
pub fn profile_planned(
    format: Format,
    paths: &[&Path],
    plan: &crate::read::Plan,
) -> Result<(Table, Vec<Sample>)> {
    let acc = crate::read::read_planned(format, paths, plan, Accumulator::new)?;
    Ok(acc.finish(true))
}

fn scan(format: Format, paths: &[&Path], keep: bool) -> Result<(Table, Vec<Sample>)> {
    let acc = crate::read::read_table(format, paths, Accumulator::new)?;
    Ok(acc.finish(keep))
}

impl crate::read::Rows for Accumulator {
    fn feed(&mut self, df: &DataFrame) -> PolarsResult<()> {
        Accumulator::feed(self, df)
    }
}

/// How a column is accumulated.
enum Column {
    Numeric(Numeric),
    Strings(Strings),
    Time(Time),
    Other { nulls: u64, count: u64 },
}

struct Accumulator {
    names: Vec<String>,
    dtypes: Vec<String>,
    columns: Vec<Column>,
    rows: u64,
}

/// The type name profiles and schemas use for a polars type.
pub(crate) fn dtype_name(d: &DataType) -> String {
    match d {
        d if d.is_integer() => "integer".into(),
        d if d.is_float() => "float".into(),
        DataType::Boolean => "boolean".into(),
        DataType::String => "string".into(),
        DataType::Date => "date".into(),
        DataType::Datetime(_, _) => "datetime".into(),
        other => other.to_string(),
    }
}

impl Accumulator {
    fn new(schema: &polars::prelude::Schema) -> Self {
        let mut names = Vec::new();
        let mut dtypes = Vec::new();
        let mut columns = Vec::new();
        for (name, dtype) in schema.iter() {
            names.push(name.to_string());
            dtypes.push(dtype_name(dtype));
            columns.push(match dtype {
                d if d.is_primitive_numeric() => Column::Numeric(Numeric::default()),
                DataType::String | DataType::Boolean => Column::Strings(Strings::default()),
                DataType::Date | DataType::Datetime(_, _) => Column::Time(Time::default()),
                _ => Column::Other { nulls: 0, count: 0 },
            });
        }
        Accumulator {
            names,
            dtypes,
            columns,
            rows: 0,
        }
    }

    fn feed(&mut self, df: &DataFrame) -> PolarsResult<()> {
        self.rows += df.height() as u64;
        for (col, acc) in df.columns().iter().zip(self.columns.iter_mut()) {
            let s = col.as_materialized_series();
            match acc {
                Column::Numeric(n) => n.feed(&s.cast(&DataType::Float64)?)?,
                Column::Strings(t) => t.feed(&s.cast(&DataType::String)?)?,
                Column::Time(t) => t.feed(s)?,
                Column::Other { nulls, count, .. } => {
                    let n = s.null_count() as u64;
                    *nulls += n;
                    *count += s.len() as u64 - n;
                }
            }
        }
        Ok(())
    }

    fn finish(self, keep: bool) -> (Table, Vec<Sample>) {
        let rows = self.rows;
        let parts: Vec<(ColumnProfile, bool, Sample)> = self
            .columns
            .into_par_iter()
            .zip(self.names.into_par_iter())
            .map(|(c, name)| c.finish(name, keep))
            .collect();
        let exact = parts.iter().all(|(_, e, _)| *e);
        let mut samples = Vec::with_capacity(parts.len());
        let mut columns = Vec::with_capacity(parts.len());
        for (p, _, sample) in parts {
            columns.push(p);
            samples.push(sample);
        }
        let schema = Schema {
            columns: columns
                .iter()
                .zip(self.dtypes)
                .map(|(c, dtype)| ColumnSchema {
                    name: c.name.clone(),
                    dtype,
                    nullable: c.nulls > 0,
                })
                .collect(),
        };
        let table = Table {
            row_count: rows,
            schema,
            profile: Profile {
                format: PROFILE_FORMAT.into(),
                row_count: rows,
                exact,
                columns,
            },
        };
        (table, samples)
    }
}

impl Column {
    /// The column's profile, whether its statistics are exact, and its sample when `keep`.
    fn finish(self, name: String, keep: bool) -> (ColumnProfile, bool, Sample) {
        let (count, nulls, stats, exact, sample) = match self {
            Column::Numeric(n) => {
                let exact = n.seen <= EXACT_VALUES as u64;
                let (count, nulls) = (n.seen + n.nans, n.nulls);
                let (stats, kept) = n.finish(keep);
                let sample = if keep {
                    Sample::Numeric(kept)
                } else {
                    Sample::None
                };
                (count, nulls, stats, exact, sample)
            }
            Column::Strings(s) => {
                let (count, nulls) = (s.count, s.nulls);
                let (stats, counts) = s.finish(keep);
                let sample = counts.map_or(Sample::None, Sample::Counts);
                (count, nulls, stats, true, sample)
            }
            Column::Time(t) => {
                let exact = t.values.seen <= EXACT_VALUES as u64;
                let (count, nulls) = (t.values.seen, t.values.nulls);
                let stats = match t.values.finish(false) {
                    (ColumnStats::Numeric(n), _) => ColumnStats::Time(TimeStats {
                        min_ms: n.min as i64,
                        max_ms: n.max as i64,
                        histogram: Some(n.histogram),
                    }),
                    _ => ColumnStats::Empty,
                };
                (count, nulls, stats, exact, Sample::None)
            }
            Column::Other { nulls, count } => {
                (count, nulls, ColumnStats::Empty, true, Sample::None)
            }
        };
        let profile = ColumnProfile {
            name,
            count,
            nulls,
            stats,
        };
        (profile, exact, sample)
    }
}

/// Exact moments plus kept values (all, or a reservoir sample).
#[derive(Default)]
struct Numeric {
    /// Finite-or-infinite, non-NaN values seen.
    seen: u64,
    nulls: u64,
    nans: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    kept: Vec<f64>,
    rng: u64,
}

impl Numeric {
    fn feed(&mut self, s: &Series) -> PolarsResult<()> {
        let ca = s.f64()?;
        self.nulls += ca.null_count() as u64;
        for v in ca.iter().flatten() {
            if v.is_nan() {
                self.nans += 1;
                continue;
            }
            if self.seen == 0 {
                self.min = v;
                self.max = v;
                self.rng = 0x9e37_79b9_7f4a_7c15;
            }
            self.seen += 1;
            let delta = v - self.mean;
            self.mean += delta / self.seen as f64;
            self.m2 += delta * (v - self.mean);
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            if self.kept.len() < EXACT_VALUES {
                self.kept.push(v);
            } else {
                // Reservoir sampling (algorithm R) with a fixed seed: the same file always
                // gives the same profile.
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                let j = self.rng % self.seen;
                if (j as usize) < EXACT_VALUES {
                    self.kept[j as usize] = v;
                }
            }
        }
        Ok(())
    }

    /// The statistics, and the kept values sorted when `keep` (else nothing: the quantiles
    /// are then found by selection, without sorting).
    fn finish(mut self, keep: bool) -> (ColumnStats, Vec<f64>) {
        if self.seen == 0 {
            return (ColumnStats::Empty, Vec::new());
        }
        let quantiles = if keep {
            self.kept.sort_unstable_by(f64::total_cmp);
            (1..=99)
                .map(|p| quantile_sorted(&self.kept, p as f64 / 100.0))
                .collect()
        } else {
            percentiles_by_selection(&mut self.kept)
        };
        let scale = self.seen as f64 / self.kept.len() as f64;
        let histogram = histogram(&self.kept, self.min, self.max, scale);
        let stats = ColumnStats::Numeric(NumericStats {
            mean: self.mean,
            std: if self.seen > 1 {
                (self.m2 / (self.seen - 1) as f64).sqrt()
            } else {
                0.0
            },
            min: self.min,
            max: self.max,
            quantiles,
            histogram,
            nan_count: self.nans,
        });
        if !keep {
            self.kept = Vec::new();
        }
        (stats, self.kept)
    }
}

/// Percentiles 1 to 99 of unsorted values, equal to [`quantile_sorted`] on the sorted values,
/// found by selecting only the ranks they need (O(n log 198) rather than a sort's O(n log n)).
fn percentiles_by_selection(values: &mut [f64]) -> Vec<f64> {
    let n = values.len();
    let position = |p: usize| p as f64 / 100.0 * (n - 1) as f64;
    let mut ranks: Vec<usize> = (1..=99)
        .flat_map(|p| {
            let lo = position(p).floor() as usize;
            [lo, (lo + 1).min(n - 1)]
        })
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    let mut at = vec![0.0; ranks.len()];
    select_ranks(values, 0, &ranks, &mut at);
    let value = |r: usize| ranks.binary_search(&r).map_or(f64::NAN, |i| at[i]);
    (1..=99)
        .map(|p| {
            let pos = position(p);
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let (a, b) = (value(lo), value(hi));
            a + (b - a) * (pos - lo as f64)
        })
        .collect()
}

/// Puts the values of the sorted `ranks` (positions in `values`, offset by `base`) into
/// `out`, partitioning around the middle rank and recursing into each side.
fn select_ranks(values: &mut [f64], base: usize, ranks: &[usize], out: &mut [f64]) {
    if ranks.is_empty() {
        return;
    }
    let mid = ranks.len() / 2;
    let k = ranks[mid] - base;
    let (left, v, right) = values.select_nth_unstable_by(k, f64::total_cmp);
    out[mid] = *v;
    let (out_left, out_rest) = out.split_at_mut(mid);
    select_ranks(left, base, &ranks[..mid], out_left);
    select_ranks(right, base + k + 1, &ranks[mid + 1..], &mut out_rest[1..]);
}

/// The q-quantile of sorted values, interpolating linearly between the two nearest ranks.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

fn histogram(values: &[f64], min: f64, max: f64, scale: f64) -> Histogram {
    let (lo, hi) = if min < max && (max - min).is_finite() {
        (min, max)
    } else {
        (min - 0.5, min + 0.5)
    };
    let width = (hi - lo) / BINS as f64;
    let mut counts = [0f64; BINS];
    for v in values {
        let i = (((v - lo) / width) as usize).min(BINS - 1);
        counts[i] += 1.0;
    }
    Histogram {
        edges: (0..=BINS).map(|i| lo + width * i as f64).collect(),
        counts: counts.iter().map(|c| (c * scale).round() as u64).collect(),
    }
}

/// Counts of distinct strings (up to [`MAX_DISTINCT`]) and lengths.
#[derive(Default)]
struct Strings {
    count: u64,
    nulls: u64,
    counts: HashMap<String, u64>,
    capped: bool,
    min_len: u64,
    max_len: u64,
    total_len: u64,
}

impl Strings {
    fn feed(&mut self, s: &Series) -> PolarsResult<()> {
        let ca = s.str()?;
        self.nulls += ca.null_count() as u64;
        for v in ca.iter().flatten() {
            let len = v.chars().count() as u64;
            if self.count == 0 {
                self.min_len = len;
            }
            self.count += 1;
            self.min_len = self.min_len.min(len);
            self.max_len = self.max_len.max(len);
            self.total_len += len;
            if let Some(c) = self.counts.get_mut(v) {
                *c += 1;
            } else if self.counts.len() < MAX_DISTINCT {
                self.counts.insert(v.to_string(), 1);
            } else {
                self.capped = true;
            }
        }
        Ok(())
    }

    fn finish(self, keep: bool) -> (ColumnStats, Option<std::collections::BTreeMap<String, u64>>) {
        if self.count == 0 {
            return (ColumnStats::Empty, None);
        }
        let cardinality = self.counts.len() as u64;
        let kept = (keep && !self.capped).then(|| {
            self.counts
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<std::collections::BTreeMap<_, _>>()
        });
        let mut top: Vec<(String, u64)> = self.counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(TOP_K);
        let stats = StringStats {
            cardinality,
            capped: self.capped,
            top,
            min_length: self.min_len,
            mean_length: self.total_len as f64 / self.count as f64,
            max_length: self.max_len,
        };
        // Categorical when values repeat: few distinct values, each seen twice on average.
        let stats = if !self.capped
            && cardinality as usize <= CATEGORICAL_MAX
            && cardinality * 2 <= self.count
        {
            ColumnStats::Categorical(stats)
        } else {
            ColumnStats::Text(stats)
        };
        (stats, kept)
    }
}

/// Dates or datetimes, as epoch milliseconds (exact in an f64 for any real date), kept
/// like a numeric column's values for the range and histogram.
#[derive(Default)]
struct Time {
    values: Numeric,
}

impl Time {
    fn feed(&mut self, s: &Series) -> PolarsResult<()> {
        let ms = s.cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?;
        self.values
            .feed(&ms.cast(&DataType::Int64)?.cast(&DataType::Float64)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert!((quantile_sorted(&v, 0.01) - 1.03).abs() < 1e-12);
        assert_eq!(quantile_sorted(&v, 1.0), 4.0);
    }

    #[test]
    fn selected_percentiles_equal_sorted_ones() {
        for n in [1usize, 2, 3, 7, 100, 1001, 54_321] {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let mut values: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 1000) as f64 / 7.0
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_unstable_by(f64::total_cmp);
            let want: Vec<f64> = (1..=99)
                .map(|p| quantile_sorted(&sorted, p as f64 / 100.0))
                .collect();
            assert_eq!(percentiles_by_selection(&mut values), want, "n = {n}");
        }
    }

    #[test]
    fn histogram_counts_every_value_once() {
        let v: Vec<f64> = (0..100).map(f64::from).collect();
        let h = histogram(&v, 0.0, 99.0, 1.0);
        assert_eq!(h.counts.iter().sum::<u64>(), 100);
        assert_eq!(h.edges.len(), BINS + 1);
        assert_eq!(*h.counts.last().unwrap(), 5);
    }
}
