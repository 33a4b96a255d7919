//! Validation rules: what a table must satisfy, written in YAML (`keel.rules/v1`) by hand or
//! inferred from a reference version's profile.
//!
//! ```yaml
//! format: keel.rules/v1
//! rules:
//!   - rule: schema            # these columns, in this order, with these types
//!     columns: [{name: id, type: integer}, {name: city, type: string}]
//!   - rule: row_count
//!     min: 1000
//!   - rule: not_null
//!     column: id
//!   - rule: unique
//!     column: id
//!   - rule: range
//!     column: age
//!     min: 0
//!     max: 120
//!     mostly: 0.99            # row rules pass when this share of checked rows passes
//!   - rule: allowed_values
//!     column: city
//!     values: [Paris, Lyon]
//!   - rule: regex
//!     column: email
//!     pattern: '^[^@]+@[^@]+$'
//!   - rule: mean
//!     column: age
//!     expected: 41.5
//!     tolerance: 2.0
//!   - rule: quantile
//!     column: age
//!     q: 0.5
//!     expected: 40
//!     tolerance: 2.0
//!   - rule: freshness
//!     column: updated_at
//!     max_age: 24h
//! ```
//!
//! Row rules (`not_null`, `unique`, `range`, `allowed_values`, `regex`) read every row and
//! report sample failing rows; missing values are checked only by `not_null`. Table rules
//! (`schema`, `row_count`, `mean`, `quantile`, `freshness`) are answered from the profile.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::profile::{ColumnStats, NumericStats, Table};

/// The rules layout read and written by this version of keel.
pub const RULES_FORMAT: &str = "keel.rules/v1";

/// A set of rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// `keel.rules/v1`.
    pub format: String,
    /// The rules, checked in order.
    pub rules: Vec<Rule>,
}

/// A column a `schema` rule expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedColumn {
    /// Column name.
    pub name: String,
    /// Type as profiles name it (`integer`, `float`, `string`, ...); any type when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

/// A value listed by an `allowed_values` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number.
    Float(f64),
    /// Text.
    Text(String),
}

impl Scalar {
    /// The value as a number, if it is one (text that parses as a number counts).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(*i as f64),
            Scalar::Float(f) => Some(*f),
            Scalar::Text(t) => t.trim().parse().ok(),
            Scalar::Bool(_) => None,
        }
    }

    /// The value as text, as a string or boolean column holds it.
    pub fn as_text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// The table has these columns with these types: exactly these, in this order, unless
    /// `exact` is false (then at least these, in any order). An `integer` column satisfies
    /// an expected `float`.
    Schema {
        /// Expected columns.
        columns: Vec<ExpectedColumn>,
        /// Whether other columns or another order fail the rule.
        #[serde(default = "yes")]
        exact: bool,
    },
    /// The number of rows is within bounds.
    RowCount {
        /// Fewest rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        /// Most rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
    /// No value is missing.
    NotNull {
        /// Column.
        column: String,
        /// Share of rows that must pass (1 when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mostly: Option<f64>,
    },
    /// No value appears twice (checking keeps every distinct value in memory: about the
    /// column's size for a column of distinct values).
    Unique {
        /// Column.
        column: String,
    },
    /// Values lie within `[min, max]`.
    Range {
        /// Column.
        column: String,
        /// Smallest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Largest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        /// Share of rows that must pass (1 when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mostly: Option<f64>,
    },
    /// Values are among those listed.
    AllowedValues {
        /// Column.
        column: String,
        /// The allowed values.
        values: Vec<Scalar>,
        /// Share of rows that must pass (1 when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mostly: Option<f64>,
    },
    /// Values contain a match of a regular expression (anchor it with `^...$` to match whole
    /// values); numbers and booleans are matched as text.
    Regex {
        /// Column.
        column: String,
        /// The expression, in the syntax of Rust's `regex` crate.
        pattern: String,
        /// Share of rows that must pass (1 when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mostly: Option<f64>,
    },
    /// The column's mean is within `tolerance` of `expected`; or, given `rows` (the row
    /// count of the data `expected` and `std` were measured on) instead of a tolerance, within
    /// `z` standard errors of the difference of two means:
    /// `z * std * sqrt(1/n + 1/rows)` for `n` checked values, so the allowance shrinks as
    /// either table grows and a sample of the same distribution passes at any size.
    Mean {
        /// Column.
        column: String,
        /// Expected mean.
        expected: f64,
        /// Largest allowed absolute difference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance: Option<f64>,
        /// The reference's standard deviation (with `rows`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        std: Option<f64>,
        /// The reference's row count: the allowance comes from sampling.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<u64>,
        /// Standard errors allowed with `rows` ([`SAMPLING_Z`] when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        z: Option<f64>,
    },
    /// The column's `q` quantile (0.01 to 0.99 by hundredths) is within `tolerance` of
    /// `expected`; or, given `rows` (the reference's row count) instead of a tolerance,
    /// `expected` lies between the checked column's quantiles at `q ± d`, with
    /// `d = z * sqrt(q (1 - q) (1/n + 1/rows))`: the distribution-free confidence band of a
    /// quantile (order statistics), which holds for discrete columns and ties too.
    Quantile {
        /// Column.
        column: String,
        /// Which quantile.
        q: f64,
        /// Expected value.
        expected: f64,
        /// Largest allowed absolute difference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tolerance: Option<f64>,
        /// The reference's row count: the allowance comes from sampling.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rows: Option<u64>,
        /// Standard errors allowed with `rows` ([`SAMPLING_Z`] when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        z: Option<f64>,
    },
    /// The newest value of a date or datetime column is at most `max_age` old (`90s`,
    /// `15min`, `24h`, `7days`).
    Freshness {
        /// Column.
        column: String,
        /// Oldest acceptable age of the newest value.
        max_age: String,
    },
}

fn yes() -> bool {
    true
}

impl Rule {
    /// The rule's name as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::Schema { .. } => "schema",
            Rule::RowCount { .. } => "row_count",
            Rule::NotNull { .. } => "not_null",
            Rule::Unique { .. } => "unique",
            Rule::Range { .. } => "range",
            Rule::AllowedValues { .. } => "allowed_values",
            Rule::Regex { .. } => "regex",
            Rule::Mean { .. } => "mean",
            Rule::Quantile { .. } => "quantile",
            Rule::Freshness { .. } => "freshness",
        }
    }

    /// The column the rule is about, if one.
    pub fn column(&self) -> Option<&str> {
        match self {
            Rule::Schema { .. } | Rule::RowCount { .. } => None,
            Rule::NotNull { column, .. }
            | Rule::Unique { column }
            | Rule::Range { column, .. }
            | Rule::AllowedValues { column, .. }
            | Rule::Regex { column, .. }
            | Rule::Mean { column, .. }
            | Rule::Quantile { column, .. }
            | Rule::Freshness { column, .. } => Some(column),
        }
    }

    /// Whether checking the rule reads every row (rather than the profile).
    pub fn reads_rows(&self) -> bool {
        matches!(
            self,
            Rule::NotNull { .. }
                | Rule::Unique { .. }
                | Rule::Range { .. }
                | Rule::AllowedValues { .. }
                | Rule::Regex { .. }
        )
    }

    /// The share of checked rows that must pass (row rules; 1 for the others).
    pub fn mostly(&self) -> f64 {
        match self {
            Rule::NotNull { mostly, .. }
            | Rule::Range { mostly, .. }
            | Rule::AllowedValues { mostly, .. }
            | Rule::Regex { mostly, .. } => mostly.unwrap_or(1.0),
            _ => 1.0,
        }
    }

    /// What the rule expects, in words.
    pub fn expectation(&self) -> String {
        let share = |m: &Option<f64>| match m {
            Some(m) if *m < 1.0 => format!(" for {}% of rows", num(m * 100.0)),
            _ => String::new(),
        };
        match self {
            Rule::Schema { columns, exact } => {
                let cols: Vec<String> = columns
                    .iter()
                    .map(|c| match &c.dtype {
                        Some(t) => format!("{} {t}", c.name),
                        None => c.name.clone(),
                    })
                    .collect();
                if *exact {
                    format!("exactly: {}", cols.join(", "))
                } else {
                    format!("at least: {}", cols.join(", "))
                }
            }
            Rule::RowCount { min, max } => bounds(min.map(|v| v as f64), max.map(|v| v as f64)),
            Rule::NotNull { mostly, .. } => format!("no missing values{}", share(mostly)),
            Rule::Unique { .. } => "no repeated values".into(),
            Rule::Range {
                min, max, mostly, ..
            } => format!("{}{}", bounds(*min, *max), share(mostly)),
            Rule::AllowedValues { values, mostly, .. } => {
                let mut listed: Vec<String> = values.iter().take(8).map(Scalar::as_text).collect();
                if values.len() > 8 {
                    listed.push(format!("... ({} in all)", values.len()));
                }
                format!("one of {}{}", listed.join(", "), share(mostly))
            }
            Rule::Regex {
                pattern, mostly, ..
            } => format!("matches /{pattern}/{}", share(mostly)),
            Rule::Mean {
                expected,
                tolerance,
                std,
                rows,
                z,
                ..
            } => match (tolerance, rows) {
                (Some(t), _) => format!("mean {} ± {}", num(*expected), num(*t)),
                (None, rows) => format!(
                    "mean {} ± {} standard errors (std {}, {} reference rows)",
                    num(*expected),
                    num(z.unwrap_or(SAMPLING_Z)),
                    num(std.unwrap_or(f64::NAN)),
                    rows.unwrap_or(0)
                ),
            },
            Rule::Quantile {
                q,
                expected,
                tolerance,
                rows,
                z,
                ..
            } => match (tolerance, rows) {
                (Some(t), _) => {
                    format!("p{} {} ± {}", (q * 100.0).round(), num(*expected), num(*t))
                }
                (None, rows) => format!(
                    "p{} {} within {} standard errors ({} reference rows)",
                    (q * 100.0).round(),
                    num(*expected),
                    num(z.unwrap_or(SAMPLING_Z)),
                    rows.unwrap_or(0)
                ),
            },
            Rule::Freshness { max_age, .. } => format!("newest value at most {max_age} old"),
        }
    }

    /// Checks the rule's own arguments (not the data): a one-line error naming rule `index`.
    fn check(&self, index: usize) -> Result<()> {
        let bad = |what: String| {
            Err(DataError::Invalid(format!(
                "rule {} ({}{}): {what}",
                index + 1,
                self.kind(),
                self.column().map(|c| format!(" {c}")).unwrap_or_default()
            )))
        };
        let m = self.mostly();
        if m.is_nan() || m <= 0.0 || m > 1.0 {
            return bad(format!("mostly must be above 0 and at most 1, not {m}"));
        }
        match self {
            Rule::RowCount {
                min: Some(a),
                max: Some(b),
            } if a > b => bad(format!("min {a} is above max {b}")),
            Rule::Range {
                min: Some(a),
                max: Some(b),
                ..
            } if a > b || a.is_nan() || b.is_nan() => bad(format!("min {a} is above max {b}")),
            Rule::Range {
                min: None,
                max: None,
                ..
            } => bad("give min, max or both".into()),
            Rule::AllowedValues { values, .. } if values.is_empty() => {
                bad("values lists nothing".into())
            }
            Rule::Regex { pattern, .. } => match regex::Regex::new(pattern) {
                Ok(_) => Ok(()),
                Err(e) => bad(format!(
                    "pattern is not a valid regular expression: {}",
                    e.to_string().lines().last().unwrap_or("invalid").trim()
                )),
            },
            Rule::Mean {
                tolerance, rows, ..
            }
            | Rule::Quantile {
                tolerance, rows, ..
            } if tolerance.is_some() == rows.is_some() => {
                bad("give either tolerance or rows (the reference's row count)".into())
            }
            Rule::Mean {
                tolerance: Some(t), ..
            }
            | Rule::Quantile {
                tolerance: Some(t), ..
            } if t.is_nan() || *t < 0.0 => bad(format!("tolerance must be 0 or more, not {t}")),
            Rule::Mean { z: Some(z), .. } | Rule::Quantile { z: Some(z), .. }
                if z.is_nan() || *z <= 0.0 =>
            {
                bad(format!("z must be above 0, not {z}"))
            }
            Rule::Mean {
                rows: Some(_), std, ..
            } if !std.is_some_and(|s| s >= 0.0) => {
                bad("with rows, give std (the reference's standard deviation, 0 or more)".into())
            }
            Rule::Mean { rows: Some(0), .. } | Rule::Quantile { rows: Some(0), .. } => {
                bad("rows must be 1 or more".into())
            }
            Rule::Quantile { q, .. } if percentile(*q).is_none() => bad(format!(
                "q must be one of 0.01, 0.02, ... 0.99 (the profiled percentiles), not {q}"
            )),
            Rule::Freshness { max_age, .. } => parse_age(max_age).map(|_| ()).or_else(bad),
            Rule::Schema { columns, .. } if columns.is_empty() => {
                bad("columns lists nothing".into())
            }
            _ => Ok(()),
        }
    }
}

/// The percentile (1 to 99) a quantile `q` names, if it names one.
pub fn percentile(q: f64) -> Option<usize> {
    let p = (q * 100.0).round();
    ((q * 100.0 - p).abs() < 1e-9 && (1.0..=99.0).contains(&p)).then_some(p as usize)
}

/// Parses a `max_age` like `90s`, `15min`, `24h` or `7days`.
pub fn parse_age(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("max_age '{s}' is not a duration like 90s, 15min, 24h or 7days: {e}"))
}

fn bounds(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("between {} and {}", num(a), num(b)),
        (Some(a), None) => format!("at least {}", num(a)),
        (None, Some(b)) => format!("at most {}", num(b)),
        (None, None) => "anything".into(),
    }
}

pub use keel_core::table::num;

impl RuleSet {
    /// Reads rules from YAML, checking each rule's arguments.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let set: RuleSet = serde_norway::from_str(text)
            .map_err(|e| DataError::Invalid(format!("the rules cannot be read: {e}")))?;
        if set.format != RULES_FORMAT {
            return Err(DataError::Invalid(format!(
                "the rules say format '{}'; this keel reads '{RULES_FORMAT}'",
                set.format
            )));
        }
        for (i, r) in set.rules.iter().enumerate() {
            r.check(i)?;
        }
        Ok(set)
    }

    /// The rules as YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_norway::to_string(self)
            .map_err(|e| DataError::Invalid(format!("the rules cannot be written: {e}")))
    }

    /// Whether any rule reads every row.
    pub fn reads_rows(&self) -> bool {
        self.rules.iter().any(Rule::reads_rows)
    }
}

/// Standard errors a mean or quantile may be off by when its rule allows for sampling
/// (`rows`): 4 leaves a chance of about 6 in 100,000 that a rule fails on data drawn from the
/// reference's own distribution, so a file of hundreds of inferred rules stays green on such
/// data, while a shift of a fraction of a standard deviation fails on a few thousand rows.
pub const SAMPLING_Z: f64 = 4.0;
/// Quantiles inferred rules check.
pub const INFER_QUANTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

/// Rules inferred from a reference table: its schema; rows from half to twice as many; no
/// missing values where it has none; `unique` for the columns in `unique` (found by reading the
/// reference, see [`unique_candidates`]); for numeric columns a range widened by a tenth of the
/// observed span on each side (never below 0 for a column without negative values), and mean
/// and quantiles p5, p25, p50, p75, p95 within what sampling allows for the row counts of the
/// reference and of the data checked (the rules carry the reference's `rows`); for text
/// columns with at most 20 distinct values, those values. Regular expressions and freshness
/// are not inferred: they say what the data should be, which a profile cannot know.
pub fn infer(table: &Table, unique: &[String]) -> RuleSet {
    let mut rules = vec![Rule::Schema {
        columns: table
            .schema
            .columns
            .iter()
            .map(|c| ExpectedColumn {
                name: c.name.clone(),
                dtype: Some(c.dtype.clone()),
            })
            .collect(),
        exact: true,
    }];
    let n = table.row_count;
    rules.push(Rule::RowCount {
        min: Some(n.div_ceil(2)),
        max: Some(n.saturating_mul(2)),
    });
    for (c, s) in table.profile.columns.iter().zip(&table.schema.columns) {
        let column = c.name.clone();
        if c.nulls == 0 && c.count > 0 {
            rules.push(Rule::NotNull {
                column: column.clone(),
                mostly: None,
            });
        }
        if unique.contains(&c.name) {
            rules.push(Rule::Unique {
                column: column.clone(),
            });
        }
        match &c.stats {
            ColumnStats::Numeric(st) => rules.extend(numeric_rules(
                &column,
                st,
                c.count.saturating_sub(st.nan_count),
            )),
            ColumnStats::Categorical(st)
                if s.dtype == "string" && st.cardinality as usize <= st.top.len() =>
            {
                rules.push(Rule::AllowedValues {
                    column,
                    values: st
                        .top
                        .iter()
                        .map(|(v, _)| Scalar::Text(v.clone()))
                        .collect(),
                    mostly: None,
                })
            }
            _ => {}
        }
    }
    RuleSet {
        format: RULES_FORMAT.into(),
        rules,
    }
}

/// Range, mean and quantile rules of a numeric column with `rows` values (NaN left out).
fn numeric_rules(column: &str, st: &NumericStats, rows: u64) -> Vec<Rule> {
    let mut rules = Vec::new();
    if st.min.is_finite() && st.max.is_finite() {
        let pad = (st.max - st.min) * 0.1;
        let mut min = st.min - pad;
        if st.min >= 0.0 && min < 0.0 {
            min = 0.0;
        }
        rules.push(Rule::Range {
            column: column.into(),
            min: Some(round_sig(min)),
            max: Some(round_sig(st.max + pad)),
            mostly: None,
        });
    }
    if st.mean.is_finite() && st.std.is_finite() && rows > 0 {
        rules.push(Rule::Mean {
            column: column.into(),
            expected: st.mean,
            tolerance: None,
            std: Some(st.std),
            rows: Some(rows),
            z: None,
        });
        for q in INFER_QUANTILES {
            if let Some(v) = percentile(q).and_then(|p| st.quantiles.get(p - 1)) {
                rules.push(Rule::Quantile {
                    column: column.into(),
                    q,
                    expected: *v,
                    tolerance: None,
                    rows: Some(rows),
                    z: None,
                });
            }
        }
    }
    rules
}

/// Rounds to 6 significant digits, so inferred bounds read well.
fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(5 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// Columns of a reference table that might hold no repeated value, worth checking with
/// [`crate::validate::unique_columns`]: integer columns, and text columns whose distinct values
/// (as far as the profile counted them) are as many as their values.
pub fn unique_candidates(table: &Table) -> Vec<String> {
    table
        .profile
        .columns
        .iter()
        .zip(&table.schema.columns)
        .filter(|(c, s)| {
            c.count > 1
                && match &c.stats {
                    ColumnStats::Numeric(_) => s.dtype == "integer",
                    ColumnStats::Text(st) | ColumnStats::Categorical(st) => {
                        s.dtype == "string" && (st.capped || st.cardinality == c.count)
                    }
                    _ => false,
                }
        })
        .map(|(c, _)| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_and_write_yaml() {
        let text = "format: keel.rules/v1\nrules:\n  - rule: range\n    column: age\n    min: 0\n    max: 120\n    mostly: 0.99\n  - rule: allowed_values\n    column: city\n    values: [Paris, 'yes', 3]\n";
        let set = RuleSet::from_yaml(text).unwrap();
        assert_eq!(
            set.rules[0],
            Rule::Range {
                column: "age".into(),
                min: Some(0.0),
                max: Some(120.0),
                mostly: Some(0.99)
            }
        );
        assert_eq!(
            set.rules[1],
            Rule::AllowedValues {
                column: "city".into(),
                values: vec![
                    Scalar::Text("Paris".into()),
                    Scalar::Text("yes".into()),
                    Scalar::Int(3)
                ],
                mostly: None
            }
        );
        let again = RuleSet::from_yaml(&set.to_yaml().unwrap()).unwrap();
        assert_eq!(again, set);
    }

    #[test]
    fn bad_rules_name_the_rule_and_field() {
        let typo =
            "format: keel.rules/v1\nrules:\n  - rule: not_null\n    column: a\n    mostyl: 0.9\n";
        let e = RuleSet::from_yaml(typo).unwrap_err().to_string();
        assert!(e.contains("mostyl"), "{e}");
        let unknown = "format: keel.rules/v1\nrules:\n  - rule: positive\n    column: a\n";
        let e = RuleSet::from_yaml(unknown).unwrap_err().to_string();
        assert!(e.contains("positive"), "{e}");
        let regex = "format: keel.rules/v1\nrules:\n  - rule: row_count\n  - rule: regex\n    column: e\n    pattern: '(['\n";
        let e = RuleSet::from_yaml(regex).unwrap_err().to_string();
        assert!(e.starts_with("rule 2 (regex e): pattern"), "{e}");
        let q = "format: keel.rules/v1\nrules:\n  - rule: quantile\n    column: a\n    q: 0.333\n    expected: 1\n    tolerance: 1\n";
        let e = RuleSet::from_yaml(q).unwrap_err().to_string();
        assert!(e.contains("q must be one of"), "{e}");
        let age = "format: keel.rules/v1\nrules:\n  - rule: freshness\n    column: t\n    max_age: soon\n";
        let e = RuleSet::from_yaml(age).unwrap_err().to_string();
        assert!(e.contains("max_age 'soon'"), "{e}");
        let version = "format: keel.rules/v9\nrules: []\n";
        let e = RuleSet::from_yaml(version)
            .expect_err("an error")
            .to_string();
        assert!(e.contains("this keel reads 'keel.rules/v1'"), "{e}");
    }

    #[test]
    fn numbers_read_briefly() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(1.0 / 3.0), "0.333333");
        assert_eq!(round_sig(123.456789), 123.457);
        assert_eq!(percentile(0.5), Some(50));
        assert_eq!(percentile(0.055), None);
    }
}
