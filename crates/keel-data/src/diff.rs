//! `keel data diff`: what changed between two tables: columns added, removed or retyped,
//! row counts, and per column how far the distribution moved, measured with the drift
//! statistics monitoring uses ([`keel_stats::drift`]).

use std::collections::HashMap;
use std::path::Path;

use keel_stats::drift::{self, ColumnDrift};
use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::format::Format;
use crate::profile::{ColumnStats, Sample, Table, profile_with_samples};

/// A column that is not the same in both tables' schemas.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaChange {
    /// Column name.
    pub column: String,
    /// `added`, `removed` or `type`.
    pub change: &'static str,
    /// Its type before (none when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Its type after (none when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// How one column shared by both tables changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnChange {
    /// Column name.
    pub column: String,
    /// Missing values before and after.
    pub nulls: (u64, u64),
    /// The drift decision, where the column's values can be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<ColumnDrift>,
    /// Why there is no drift decision, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The difference between two tables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// Rows before and after.
    pub rows: (u64, u64),
    /// Columns added, removed or retyped.
    pub schema: Vec<SchemaChange>,
    /// Columns present in both.
    pub columns: Vec<ColumnChange>,
    /// How many shared columns drifted.
    pub drifted: usize,
}

impl Diff {
    /// Evidently's dataset rule: the share of shared columns that drifted, and whether it
    /// reaches `drift_share` (no shared column: share 0, not drifted).
    pub fn dataset_drift(&self, drift_share: f64) -> (f64, bool) {
        let shared = self.columns.len();
        if shared == 0 {
            return (0.0, false);
        }
        let share = self.drifted as f64 / shared as f64;
        (share, self.drifted as f64 >= drift_share * shared as f64)
    }
}

/// Compares table `b` (current) against table `a` (reference).
pub fn diff(a: (Format, &[&Path]), b: (Format, &[&Path])) -> Result<Diff> {
    if a.0 == Format::Parquet && b.0 == Format::Parquet {
        return diff_by_column(a.1, b.1);
    }
    let (ta, sa) = profile_with_samples(a.0, a.1)?;
    let (tb, sb) = profile_with_samples(b.0, b.1)?;
    Ok(compare(&ta, &sa, &tb, &sb))
}

/// A Parquet table's columns and their types (its first file's; reading checks the rest).
fn parquet_columns(paths: &[&Path]) -> Result<Vec<(String, String)>> {
    let first = *paths
        .first()
        .ok_or_else(|| crate::error::DataError::Invalid("no files to read".into()))?;
    let schema = crate::read::query_parquet(first, |mut lf| lf.collect_schema())?;
    Ok(schema
        .iter()
        .map(|(n, d)| (n.to_string(), crate::profile::dtype_name(d)))
        .collect())
}

/// [`diff`] of two Parquet tables one column at a time: a shared column's values are read
/// from each side (Parquet stores columns apart, so only that column is decoded), compared and
/// dropped before the next, two columns at once on two cores. Memory holds a few columns, not
/// two tables, and the figures are those of [`compare`] over whole tables.
fn diff_by_column(a: &[&Path], b: &[&Path]) -> Result<Diff> {
    let (ca, cb) = (parquet_columns(a)?, parquet_columns(b)?);
    let types_b: HashMap<&str, &str> = cb.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
    let one = |paths: &[&Path], name: &str| {
        let name = name.to_string();
        crate::profile::profile_planned(Format::Parquet, paths, &move |lf: LazyFrame| {
            Ok(lf.select([col(name.as_str())]))
        })
    };
    let shared: Vec<&str> = ca
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| types_b.contains_key(n))
        .collect();
    let compared: Vec<Diff> = shared
        .par_iter()
        .with_max_len(1)
        .map(|name| {
            let (ta, sa) = one(a, name)?;
            let (tb, sb) = one(b, name)?;
            Ok(compare(&ta, &sa, &tb, &sb))
        })
        .collect::<Result<_>>()?;
    let rows = |paths: &[&Path]| -> Result<u64> {
        let mut n = 0;
        for p in paths {
            n += crate::read::query_parquet(p, |lf| {
                let df = lf
                    .select([len().cast(DataType::UInt64).alias("rows")])
                    .collect()?;
                df.column("rows")?
                    .u64()?
                    .get(0)
                    .ok_or_else(|| PolarsError::NoData("the row count is missing".into()))
            })?;
        }
        Ok(n)
    };
    let mut out = Diff {
        rows: (rows(a)?, rows(b)?),
        schema: Vec::new(),
        columns: Vec::new(),
        drifted: 0,
    };
    let mut compared = compared.into_iter();
    for (name, dtype) in &ca {
        if types_b.contains_key(name.as_str()) {
            if let Some(d) = compared.next() {
                out.schema.extend(d.schema);
                out.columns.extend(d.columns);
            }
        } else {
            out.schema.push(SchemaChange {
                column: name.clone(),
                change: "removed",
                before: Some(dtype.clone()),
                after: None,
            });
        }
    }
    let in_a: std::collections::HashSet<&str> = ca.iter().map(|(n, _)| n.as_str()).collect();
    for (name, dtype) in &cb {
        if !in_a.contains(name.as_str()) {
            out.schema.push(SchemaChange {
                column: name.clone(),
                change: "added",
                before: None,
                after: Some(dtype.clone()),
            });
        }
    }
    out.drifted = out
        .columns
        .iter()
        .filter(|c| c.drift.as_ref().is_some_and(|d| d.drifted))
        .count();
    Ok(out)
}

/// Compares two profiled tables with their samples.
pub fn compare(ta: &Table, sa: &[Sample], tb: &Table, sb: &[Sample]) -> Diff {
    compare_with(ta, sa, tb, sb, &|_| None)
}

/// Compares like [`compare`], with the test `choose` gives a column instead of the default
/// (a test that cannot apply to the column leaves it undecided, with the reason as its note).
pub fn compare_with(
    ta: &Table,
    sa: &[Sample],
    tb: &Table,
    sb: &[Sample],
    choose: &dyn Fn(&str) -> Option<drift::Choice>,
) -> Diff {
    let types = |t: &Table| -> HashMap<String, (usize, String)> {
        t.schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), (i, c.dtype.clone())))
            .collect()
    };
    let (before, after) = (types(ta), types(tb));
    let mut schema = Vec::new();
    for c in &ta.schema.columns {
        match after.get(&c.name) {
            None => schema.push(SchemaChange {
                column: c.name.clone(),
                change: "removed",
                before: Some(c.dtype.clone()),
                after: None,
            }),
            Some((_, t)) if *t != c.dtype => schema.push(SchemaChange {
                column: c.name.clone(),
                change: "type",
                before: Some(c.dtype.clone()),
                after: Some(t.clone()),
            }),
            Some(_) => {}
        }
    }
    for c in &tb.schema.columns {
        if !before.contains_key(&c.name) {
            schema.push(SchemaChange {
                column: c.name.clone(),
                change: "added",
                before: None,
                after: Some(c.dtype.clone()),
            });
        }
    }
    let mut columns = Vec::new();
    for c in &ta.schema.columns {
        let Some((j, _)) = after.get(&c.name) else {
            continue;
        };
        let i = before[&c.name].0;
        let (pa, pb) = (&ta.profile.columns[i], &tb.profile.columns[*j]);
        let chosen = choose(&c.name);
        let decided = |d: keel_stats::Result<ColumnDrift>| match d {
            Ok(d) => (Some(d), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let (drift, note) = match (&sa[i], &sb[*j]) {
            (Sample::Numeric(x), Sample::Numeric(y)) if !x.is_empty() && !y.is_empty() => {
                decided(match chosen {
                    Some(choice) => drift::numeric_with(choice, x, y),
                    None => drift::numeric(x, y),
                })
            }
            (Sample::Counts(x), Sample::Counts(y))
                if matches!(pa.stats, ColumnStats::Categorical(_))
                    || matches!(pb.stats, ColumnStats::Categorical(_)) =>
            {
                decided(match chosen {
                    Some(choice) => drift::categorical_with(choice, x, y),
                    None => drift::categorical(x, y),
                })
            }
            (Sample::Counts(_), Sample::Counts(_)) => (
                None,
                Some("free text: compared by length and cardinality only".into()),
            ),
            _ => (None, Some("no comparable values on both sides".into())),
        };
        columns.push(ColumnChange {
            column: c.name.clone(),
            nulls: (pa.nulls, pb.nulls),
            drift,
            note,
        });
    }
    let drifted = columns
        .iter()
        .filter(|c| c.drift.as_ref().is_some_and(|d| d.drifted))
        .count();
    Diff {
        rows: (ta.row_count, tb.row_count),
        schema,
        columns,
        drifted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, rows: impl Iterator<Item = String>) -> std::path::PathBuf {
        let p = dir.join(name);
        let mut s = String::new();
        for r in rows {
            s.push_str(&r);
            s.push('\n');
        }
        std::fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn shifted_column_drifts_and_schema_changes_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.csv",
            std::iter::once("x,y,c,gone".to_string())
                .chain((0..3000).map(|i| format!("{},{},{},1", i % 100, i % 7, ["u", "v"][i % 2]))),
        );
        let b = write(
            dir.path(),
            "b.csv",
            std::iter::once("x,y,c,new".to_string()).chain(
                (0..2000).map(|i| format!("{},{},{},z", i % 100 + 40, i % 7, ["u", "v"][i % 2])),
            ),
        );
        let d = diff((Format::Csv, &[&a]), (Format::Csv, &[&b])).unwrap();
        assert_eq!(d.rows, (3000, 2000));
        let changes: Vec<(&str, &str)> = d
            .schema
            .iter()
            .map(|c| (c.column.as_str(), c.change))
            .collect();
        assert_eq!(changes, [("gone", "removed"), ("new", "added")]);
        let x = &d.columns[0];
        let xd = x.drift.as_ref().unwrap();
        assert_eq!(xd.test, drift::Test::Wasserstein);
        assert!(xd.drifted);
        let y = d.columns[1].drift.as_ref().unwrap();
        assert!(!y.drifted, "{y:?}");
        assert!(!d.columns[2].drift.as_ref().unwrap().drifted);
        assert_eq!(d.drifted, 1);
    }

    #[test]
    fn parquet_tables_compared_column_by_column_give_the_whole_tables_answer() {
        let dir = tempfile::tempdir().unwrap();
        let parquet = |name: &str, df: &mut DataFrame| {
            let p = dir.path().join(name);
            ParquetWriter::new(std::fs::File::create(&p).unwrap())
                .finish(df)
                .unwrap();
            p
        };
        let n = 5000;
        let a = parquet(
            "a.parquet",
            &mut df!(
                "x" => (0..n).map(|i| (i % 97) as f64).collect::<Vec<_>>(),
                "k" => (0..n).map(|i| ["u", "v", "w"][i % 3]).collect::<Vec<_>>(),
                "t" => (0..n).map(|i| i as i64).collect::<Vec<_>>(),
                "gone" => vec![1i64; n],
                "few" => (0..n).map(|i| (i % 4) as f64).collect::<Vec<_>>(),
            )
            .unwrap(),
        );
        let m = 3000;
        let b = parquet(
            "b.parquet",
            &mut df!(
                "new" => vec!["z"; m],
                "x" => (0..m).map(|i| (i % 97) as f64 + 20.0).collect::<Vec<_>>(),
                "few" => (0..m).map(|i| if i % 9 == 0 { None } else { Some((i % 4) as f64) }).collect::<Vec<_>>(),
                "k" => (0..m).map(|i| ["u", "v", "w", "u"][i % 4]).collect::<Vec<_>>(),
                "t" => (0..m).map(|i| format!("{i}")).collect::<Vec<_>>(),
            )
            .unwrap(),
        );
        let (pa, pb): (&[&Path], &[&Path]) = (&[&a], &[&b]);
        let by_column = diff((Format::Parquet, pa), (Format::Parquet, pb)).unwrap();
        let (ta, sa) = profile_with_samples(Format::Parquet, pa).unwrap();
        let (tb, sb) = profile_with_samples(Format::Parquet, pb).unwrap();
        let whole = compare(&ta, &sa, &tb, &sb);
        assert_eq!(by_column, whole);
        assert_eq!(by_column.rows, (5000, 3000));
        let changes: Vec<(&str, &str)> = by_column
            .schema
            .iter()
            .map(|c| (c.column.as_str(), c.change))
            .collect();
        assert_eq!(
            changes,
            [("t", "type"), ("gone", "removed"), ("new", "added")]
        );
        let few = by_column
            .columns
            .iter()
            .find(|c| c.column == "few")
            .unwrap();
        assert_eq!(few.nulls, (0, 334));
    }
}
