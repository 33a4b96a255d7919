//! A whole table in memory as plain columns of numbers or text: what training reads, what a
//! served model's requests become and what the prediction log writes. Plain data with no
//! reader attached (keel-data fills it from files with the same type inference as its
//! profiles), so serving and training share it without a data-frame library.

/// One column's values; `None` is a missing value.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Integers, floats, and dates or datetimes as epoch milliseconds.
    Numbers(Vec<Option<f64>>),
    /// Strings, and booleans as `true` / `false`.
    Text(Vec<Option<String>>),
}

impl Values {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Values::Numbers(v) => v.len(),
            Values::Text(v) => v.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A number as a short label: integers without a fraction, very large or small magnitudes in
/// scientific notation, the rest with up to six decimals and no trailing zeros.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        format!("{x:.4e}")
    } else {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A table's columns in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    /// Column names.
    pub names: Vec<String>,
    /// Values per column, all of the same length.
    pub values: Vec<Values>,
}

impl Columns {
    /// Rows in the table.
    pub fn rows(&self) -> usize {
        self.values.first().map_or(0, Values::len)
    }

    /// The rows at `rows` (in that order) as a table of their own.
    pub fn take(&self, rows: &[usize]) -> Columns {
        let values = self
            .values
            .iter()
            .map(|v| match v {
                Values::Numbers(x) => Values::Numbers(rows.iter().map(|&i| x[i]).collect()),
                Values::Text(t) => Values::Text(rows.iter().map(|&i| t[i].clone()).collect()),
            })
            .collect();
        Columns {
            names: self.names.clone(),
            values,
        }
    }

    /// The column called `name`.
    pub fn get(&self, name: &str) -> Option<&Values> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.values[i])
    }
}
