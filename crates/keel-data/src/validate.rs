//! Checking a table against [`rules`](crate::rules): table rules from its profile, row rules
//! in one streaming pass over its rows, and a report of every rule with the observed value and
//! sample failing rows.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use polars::prelude::{AnyValue, DataFrame, DataType, PolarsResult, Series};
use serde::Serialize;

use crate::error::{DataError, Result};
use crate::format::Format;
use crate::profile::{ColumnProfile, ColumnStats, Table};
use crate::read::{Rows, read_table};
use crate::rules::{Rule, RuleSet, SAMPLING_Z, num, parse_age, percentile};

/// Failing rows kept per rule.
pub const SAMPLES: usize = 5;

/// The rows of a table: its format and its files, each with the name reports use.
#[derive(Debug, Clone)]
pub struct Files {
    /// Format of every file.
    pub format: Format,
    /// (name shown, path read) per file, in order.
    pub files: Vec<(String, PathBuf)>,
}

/// A row that failed a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingRow {
    /// The file it is in.
    pub file: String,
    /// Its number among the file's data rows, from 1 (a CSV header is not counted).
    pub row: u64,
    /// Its value, absent when missing.
    pub value: Option<String>,
}

/// What checking one rule found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    /// The rule as written.
    #[serde(flatten)]
    pub rule: Rule,
    /// Whether the table satisfies it.
    pub passed: bool,
    /// What the rule expects, in words.
    pub expectation: String,
    /// What was found, in words.
    pub observed: String,
    /// Rows that failed (row rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_rows: Option<u64>,
    /// Rows the rule applied to (row rules: non-missing values, or all rows for `not_null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_rows: Option<u64>,
    /// The first failing rows.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<FailingRow>,
}

/// A whole validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was checked (`NAME@VERSION` or a path).
    pub target: String,
    /// Whether every rule passed.
    pub passed: bool,
    /// Rows in the table.
    pub row_count: u64,
    /// Rules that failed.
    pub failed: usize,
    /// One result per rule, in the rules' order.
    pub results: Vec<RuleResult>,
}

/// Checks `table` (its schema and profile) against `rules`, reading the rows in `files` when a
/// row rule needs them, with `now` as the time freshness is measured from.
pub fn validate(
    target: &str,
    rules: &RuleSet,
    table: &Table,
    files: Option<&Files>,
    now: SystemTime,
) -> Result<Report> {
    let mut row_results = if rules.reads_rows() {
        let files = files.ok_or_else(|| {
            DataError::Invalid(format!("{target}: row rules need the table's rows"))
        })?;
        Some(read_rows(files, &rules.rules, false)?.into_results())
    } else {
        None
    };
    let mut results = Vec::with_capacity(rules.rules.len());
    for (i, rule) in rules.rules.iter().enumerate() {
        let found = match row_results.as_mut().and_then(|r| r.remove(&i)) {
            Some(found) => found,
            None => table_rule(rule, table, now),
        };
        results.push(RuleResult {
            rule: rule.clone(),
            passed: found.passed,
            expectation: rule.expectation(),
            observed: found.observed,
            failing_rows: found.failing,
            checked_rows: found.checked,
            samples: found.samples,
        });
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    Ok(Report {
        target: target.into(),
        passed: failed == 0,
        row_count: table.row_count,
        failed,
        results,
    })
}

/// Which of `candidates` hold no repeated value in the table's rows (for inferring `unique`
/// rules; a column is dropped at its first repeat).
pub fn unique_columns(files: &Files, candidates: &[String]) -> Result<Vec<String>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let rules: Vec<Rule> = candidates
        .iter()
        .map(|c| Rule::Unique { column: c.clone() })
        .collect();
    let checks = read_rows(files, &rules, true)?;
    let mut results = checks.into_results();
    Ok(candidates
        .iter()
        .enumerate()
        .filter(|(i, _)| results.remove(i).is_some_and(|f| f.passed))
        .map(|(_, c)| c.clone())
        .collect())
}

/// A rule's outcome before it is put into a [`RuleResult`].
struct Found {
    passed: bool,
    observed: String,
    failing: Option<u64>,
    checked: Option<u64>,
    samples: Vec<FailingRow>,
}

impl Found {
    fn table(passed: bool, observed: impl Into<String>) -> Self {
        Found {
            passed,
            observed: observed.into(),
            failing: None,
            checked: None,
            samples: Vec::new(),
        }
    }
}

fn table_rule(rule: &Rule, table: &Table, now: SystemTime) -> Found {
    let column = |name: &str| table.profile.columns.iter().find(|c| c.name == name);
    match rule {
        Rule::Schema { columns, exact } => schema_rule(columns, *exact, table),
        Rule::RowCount { min, max } => {
            let n = table.row_count;
            let passed = min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
            Found::table(passed, format!("{n} rows"))
        }
        Rule::Mean {
            column: name,
            expected,
            tolerance,
            std,
            rows,
            z,
        } => numeric(column(name), name, table, |st, n| {
            let diff = (st.mean - expected).abs();
            let allowed = match (tolerance, rows) {
                (Some(t), _) => *t,
                (None, rows) => {
                    let reference = rows.unwrap_or(1).max(1) as f64;
                    z.unwrap_or(SAMPLING_Z)
                        * std.unwrap_or(0.0)
                        * (1.0 / n.max(1) as f64 + 1.0 / reference).sqrt()
                }
            };
            Found::table(
                diff <= allowed,
                format!(
                    "mean {} (off by {}, {} allowed)",
                    num(st.mean),
                    num(diff),
                    num(allowed)
                ),
            )
        }),
        Rule::Quantile {
            column: name,
            q,
            expected,
            tolerance,
            rows,
            z,
        } => numeric(column(name), name, table, |st, n| {
            let sampled = if table.profile.exact {
                ""
            } else {
                ", estimated from a sample"
            };
            let Some(p) = percentile(*q) else {
                return Found::table(false, format!("quantile {q} is not profiled"));
            };
            let Some(v) = st.quantiles.get(p - 1).copied() else {
                return Found::table(false, format!("quantile {q} is not profiled"));
            };
            match (tolerance, rows) {
                (Some(t), _) => {
                    let diff = (v - expected).abs();
                    Found::table(
                        diff <= *t,
                        format!("p{p} {} (off by {}{sampled})", num(v), num(diff)),
                    )
                }
                (None, rows) => {
                    let reference = rows.unwrap_or(1).max(1) as f64;
                    let d = z.unwrap_or(SAMPLING_Z)
                        * (q * (1.0 - q) * (1.0 / n.max(1) as f64 + 1.0 / reference)).sqrt();
                    let (lo, hi) = (quantile_at(st, q - d), quantile_at(st, q + d));
                    let slack = 1e-9 * lo.abs().max(hi.abs()).max(1.0);
                    Found::table(
                        *expected >= lo - slack && *expected <= hi + slack,
                        format!(
                            "p{p} {} (band {} to {} for {n} values{sampled})",
                            num(v),
                            num(lo),
                            num(hi)
                        ),
                    )
                }
            }
        }),
        Rule::Freshness {
            column: name,
            max_age,
        } => match column(name) {
            None => missing(name),
            Some(c) => match (&c.stats, parse_age(max_age)) {
                (_, Err(e)) => Found::table(false, e),
                (ColumnStats::Time(t), Ok(limit)) => {
                    let ms = Duration::from_millis(t.max_ms.unsigned_abs());
                    let newest = if t.max_ms >= 0 {
                        UNIX_EPOCH + ms
                    } else {
                        UNIX_EPOCH - ms
                    };
                    let stamp = crate::report::rfc3339(t.max_ms);
                    match now.duration_since(newest) {
                        Ok(age) => {
                            let age = Duration::from_secs(age.as_secs());
                            Found::table(
                                age <= limit,
                                format!("newest {stamp}, {} old", humantime::format_duration(age)),
                            )
                        }
                        Err(_) => Found::table(true, format!("newest {stamp}, in the future")),
                    }
                }
                (ColumnStats::Empty, _) => Found::table(false, "no values"),
                _ => Found::table(
                    false,
                    format!(
                        "'{name}' is {}, not a date or datetime",
                        dtype_of(table, name)
                    ),
                ),
            },
        },
        // Row rules are answered by the row pass.
        other => Found::table(false, format!("{} needs the rows", other.kind())),
    }
}

fn missing(name: &str) -> Found {
    Found::table(false, format!("no column '{name}'"))
}

fn dtype_of<'a>(table: &'a Table, name: &str) -> &'a str {
    table
        .schema
        .columns
        .iter()
        .find(|c| c.name == name)
        .map_or("missing", |c| c.dtype.as_str())
}

/// Checks a numeric column's statistics; `check` also gets its count of values (NaN left out).
fn numeric(
    column: Option<&ColumnProfile>,
    name: &str,
    table: &Table,
    check: impl FnOnce(&crate::profile::NumericStats, u64) -> Found,
) -> Found {
    match column.map(|c| (c, &c.stats)) {
        None => missing(name),
        Some((c, ColumnStats::Numeric(st))) => check(st, c.count.saturating_sub(st.nan_count)),
        Some((_, ColumnStats::Empty)) => Found::table(false, "no values"),
        Some(_) => Found::table(
            false,
            format!("'{name}' is {}, not numeric", dtype_of(table, name)),
        ),
    }
}

/// A column's quantile at rank `r` (clamped to 0..1), read off its profile: the minimum, the
/// percentiles 1 to 99 and the maximum, linearly between them.
fn quantile_at(st: &crate::profile::NumericStats, r: f64) -> f64 {
    let r = r.clamp(0.0, 1.0) * 100.0;
    let at = |k: usize| match k {
        0 => st.min,
        100 => st.max,
        k => st.quantiles.get(k - 1).copied().unwrap_or(f64::NAN),
    };
    let k = r.floor() as usize;
    if k >= 100 {
        return st.max;
    }
    let w = r - k as f64;
    if w == 0.0 {
        at(k)
    } else {
        at(k) + (at(k + 1) - at(k)) * w
    }
}

fn schema_rule(expected: &[crate::rules::ExpectedColumn], exact: bool, table: &Table) -> Found {
    let actual = &table.schema.columns;
    let mut problems = Vec::new();
    for e in expected {
        match actual.iter().find(|c| c.name == e.name) {
            None => problems.push(format!("missing {}", e.name)),
            Some(c) => {
                // Whole numbers satisfy a float column (a batch may hold only whole values).
                if let Some(t) = &e.dtype
                    && *t != c.dtype
                    && !(t == "float" && c.dtype == "integer")
                {
                    problems.push(format!("{} is {} not {t}", c.name, c.dtype));
                }
            }
        }
    }
    if exact {
        for c in actual {
            if !expected.iter().any(|e| e.name == c.name) {
                problems.push(format!("extra {}", c.name));
            }
        }
        let order_expected: Vec<&str> = expected.iter().map(|e| e.name.as_str()).collect();
        let order_actual: Vec<&str> = actual
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| order_expected.contains(n))
            .collect();
        let shared: Vec<&str> = order_expected
            .iter()
            .copied()
            .filter(|n| order_actual.contains(n))
            .collect();
        if shared != order_actual {
            problems.push("columns in another order".into());
        }
    }
    if problems.is_empty() {
        Found::table(true, format!("{} columns as expected", actual.len()))
    } else {
        Found::table(false, problems.join("; "))
    }
}

/// Reads the rows once, running every row rule of `rules` (by index) over them.
fn read_rows(files: &Files, rules: &[Rule], probe: bool) -> Result<RowChecks> {
    let paths: Vec<&std::path::Path> = files.files.iter().map(|(_, p)| p.as_path()).collect();
    let names: Vec<String> = files.files.iter().map(|(n, _)| n.clone()).collect();
    read_table(files.format, &paths, |schema| {
        let mut checks = RowChecks {
            names: names.clone(),
            file: 0,
            row: 0,
            checks: Vec::new(),
            problems: Vec::new(),
            probe,
        };
        for (i, rule) in rules.iter().enumerate() {
            if !rule.reads_rows() {
                continue;
            }
            let Some(name) = rule.column() else { continue };
            let Some((index, _, dtype)) = schema.get_full(name) else {
                checks.problems.push((i, format!("no column '{name}'")));
                continue;
            };
            match Test::new(rule, dtype) {
                Ok(test) => checks.checks.push(Check {
                    rule: i,
                    column: index,
                    mostly: rule.mostly(),
                    test,
                    checked: 0,
                    failing: 0,
                    samples: Vec::new(),
                }),
                Err(p) => checks.problems.push((i, p)),
            }
        }
        checks
    })
}

/// Values seen so far by a `unique` rule.
enum Seen {
    Ints(HashSet<i64>),
    Floats(HashSet<u64>),
    Text(HashSet<String>),
    /// A probe that already found a repeat.
    Abandoned,
}

enum Test {
    NotNull,
    Unique(Seen),
    Range { min: f64, max: f64 },
    AllowedNumbers(HashSet<u64>),
    AllowedText(HashSet<String>),
    Regex(regex::Regex),
}

/// A float's bits with -0 read as 0, so equal numbers hash alike.
fn key(v: f64) -> u64 {
    (v + 0.0).to_bits()
}

impl Test {
    /// The test for a row rule on a column of type `dtype`, or why the rule cannot apply.
    fn new(rule: &Rule, dtype: &DataType) -> std::result::Result<Test, String> {
        let numeric = dtype.is_primitive_numeric();
        let readable = numeric || matches!(dtype, DataType::String | DataType::Boolean);
        match rule {
            Rule::NotNull { .. } => Ok(Test::NotNull),
            _ if !readable => Err(format!(
                "'{}' holds {dtype} values, which this rule cannot check",
                rule.column().unwrap_or_default()
            )),
            Rule::Unique { .. } => Ok(Test::Unique(if dtype.is_integer() {
                Seen::Ints(HashSet::new())
            } else if numeric {
                Seen::Floats(HashSet::new())
            } else {
                Seen::Text(HashSet::new())
            })),
            Rule::Range { min, max, .. } if numeric => Ok(Test::Range {
                min: min.unwrap_or(f64::NEG_INFINITY),
                max: max.unwrap_or(f64::INFINITY),
            }),
            Rule::Range { column, .. } => Err(format!(
                "'{column}' is {}, not numeric",
                crate::profile::dtype_name(dtype)
            )),
            Rule::AllowedValues { values, column, .. } if numeric => values
                .iter()
                .map(|v| {
                    v.as_f64().map(key).ok_or_else(|| {
                        format!(
                            "'{column}' is numeric but '{}' is not a number",
                            v.as_text()
                        )
                    })
                })
                .collect::<std::result::Result<_, _>>()
                .map(Test::AllowedNumbers),
            Rule::AllowedValues { values, .. } => Ok(Test::AllowedText(
                values.iter().map(|v| v.as_text()).collect(),
            )),
            Rule::Regex { pattern, .. } => regex::Regex::new(pattern)
                .map(Test::Regex)
                .map_err(|_| "the pattern is not a valid regular expression".to_string()),
            other => Err(format!("{} is not a row rule", other.kind())),
        }
    }
}

struct Check {
    rule: usize,
    column: usize,
    mostly: f64,
    test: Test,
    checked: u64,
    failing: u64,
    samples: Vec<FailingRow>,
}

struct RowChecks {
    names: Vec<String>,
    file: usize,
    /// Rows of the current file before this batch.
    row: u64,
    checks: Vec<Check>,
    /// Rules that cannot run on this table, with why.
    problems: Vec<(usize, String)>,
    /// Stop checking a `unique` column at its first repeat.
    probe: bool,
}

impl Rows for RowChecks {
    fn start_file(&mut self, index: usize) {
        self.file = index;
        self.row = 0;
    }

    fn feed(&mut self, batch: &DataFrame) -> PolarsResult<()> {
        let file = self.names.get(self.file).cloned().unwrap_or_default();
        for check in &mut self.checks {
            let s = batch.columns()[check.column].as_materialized_series();
            check.feed(s, self.row, &file, self.probe)?;
        }
        self.row += batch.height() as u64;
        Ok(())
    }
}

impl Check {
    /// Records a failure of row `i` of the batch.
    fn fail(&mut self, s: &Series, offset: u64, i: usize, file: &str) {
        self.failing += 1;
        if self.samples.len() < SAMPLES {
            let value = match s.get(i) {
                Ok(AnyValue::Null) | Err(_) => None,
                Ok(AnyValue::String(v)) => Some(v.to_string()),
                Ok(v) => Some(v.to_string()),
            };
            self.samples.push(FailingRow {
                file: file.to_string(),
                row: offset + i as u64 + 1,
                value,
            });
        }
    }

    fn feed(&mut self, s: &Series, offset: u64, file: &str, probe: bool) -> PolarsResult<()> {
        let mut failed: Vec<usize> = Vec::new();
        match &mut self.test {
            Test::NotNull => {
                self.checked += s.len() as u64;
                if s.null_count() > 0 {
                    let nulls = s.is_null();
                    failed.extend(
                        nulls
                            .iter()
                            .enumerate()
                            .filter_map(|(i, n)| n.unwrap_or(false).then_some(i)),
                    );
                }
            }
            Test::Range { min, max } => {
                let f = s.cast(&DataType::Float64)?;
                each(f.f64()?.iter(), &mut self.checked, &mut failed, |v| {
                    v >= *min && v <= *max
                });
            }
            Test::AllowedNumbers(set) => {
                let f = s.cast(&DataType::Float64)?;
                each(f.f64()?.iter(), &mut self.checked, &mut failed, |v| {
                    set.contains(&key(v))
                });
            }
            Test::AllowedText(set) => {
                let t = s.cast(&DataType::String)?;
                each(t.str()?.iter(), &mut self.checked, &mut failed, |v| {
                    set.contains(v)
                });
            }
            Test::Regex(re) => {
                let t = s.cast(&DataType::String)?;
                each(t.str()?.iter(), &mut self.checked, &mut failed, |v| {
                    re.is_match(v)
                });
            }
            Test::Unique(seen) => {
                let before = failed.len();
                let checked = &mut self.checked;
                match seen {
                    Seen::Ints(set) => {
                        let t = s.cast(&DataType::Int64)?;
                        each(t.i64()?.iter(), checked, &mut failed, |v| set.insert(v));
                    }
                    Seen::Floats(set) => {
                        let t = s.cast(&DataType::Float64)?;
                        each(t.f64()?.iter(), checked, &mut failed, |v| {
                            set.insert(key(v))
                        });
                    }
                    Seen::Text(set) => {
                        let t = s.cast(&DataType::String)?;
                        each(t.str()?.iter(), checked, &mut failed, |v| {
                            !set.contains(v) && set.insert(v.to_string())
                        });
                    }
                    Seen::Abandoned => {}
                }
                if probe && failed.len() > before {
                    *seen = Seen::Abandoned;
                }
            }
        }
        for i in failed {
            self.fail(s, offset, i, file);
        }
        Ok(())
    }

    fn found(self) -> Found {
        let allowed = ((1.0 - self.mostly) * self.checked as f64 + 1e-9).floor() as u64;
        let passed = self.failing <= allowed;
        let observed = if self.checked == 0 {
            "no values to check".to_string()
        } else {
            format!(
                "{} of {} rows fail ({}%)",
                self.failing,
                self.checked,
                num(self.failing as f64 * 100.0 / self.checked as f64)
            )
        };
        Found {
            passed,
            observed,
            failing: Some(self.failing),
            checked: Some(self.checked),
            samples: self.samples,
        }
    }
}

/// Counts each present value in `checked` and notes the index of each one `passes` refuses.
fn each<T>(
    values: impl Iterator<Item = Option<T>>,
    checked: &mut u64,
    failed: &mut Vec<usize>,
    mut passes: impl FnMut(T) -> bool,
) {
    for (i, v) in values.enumerate() {
        if let Some(v) = v {
            *checked += 1;
            if !passes(v) {
                failed.push(i);
            }
        }
    }
}

impl RowChecks {
    fn into_results(self) -> std::collections::HashMap<usize, Found> {
        let mut out: std::collections::HashMap<usize, Found> = self
            .problems
            .into_iter()
            .map(|(i, p)| (i, Found::table(false, p)))
            .collect();
        for c in self.checks {
            out.insert(c.rule, c.found());
        }
        out
    }
}
