//! A whole table in memory as plain columns of numbers or text, for training: read with the
//! same type inference as profiles ([`crate::read`]), so a column is numeric in a model exactly
//! when it is numeric in the dataset's schema.

use std::path::Path;

use polars::prelude::{DataFrame, DataType, PolarsResult, Schema, TimeUnit};

use crate::error::Result;
use crate::format::Format;
use crate::read::{Rows, read_table};

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

/// Reads every row of `paths` (all in `format`) into memory.
pub fn load_columns(format: Format, paths: &[&Path]) -> Result<Columns> {
    read_table(format, paths, empty_like)
}

/// Empty columns for a schema: numbers, dates and datetimes as numbers, the rest as text.
fn empty_like(schema: &Schema) -> Columns {
    Columns {
        names: schema.iter_names().map(|n| n.to_string()).collect(),
        values: schema
            .iter()
            .map(|(_, dtype)| {
                if dtype.is_primitive_numeric() || is_time(dtype) {
                    Values::Numbers(Vec::new())
                } else {
                    Values::Text(Vec::new())
                }
            })
            .collect(),
    }
}

impl Columns {
    /// The columns of a data frame already in memory.
    pub fn from_frame(df: &DataFrame) -> PolarsResult<Columns> {
        let mut columns = empty_like(df.schema());
        columns.feed(df)?;
        Ok(columns)
    }
}

fn is_time(dtype: &DataType) -> bool {
    matches!(dtype, DataType::Date | DataType::Datetime(_, _))
}

impl Rows for Columns {
    fn feed(&mut self, batch: &DataFrame) -> PolarsResult<()> {
        for (column, values) in batch.columns().iter().zip(self.values.iter_mut()) {
            let s = column.as_materialized_series();
            match values {
                Values::Numbers(out) => {
                    let s = if is_time(s.dtype()) {
                        s.cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?
                            .cast(&DataType::Int64)?
                    } else {
                        s.clone()
                    };
                    let f = s.cast(&DataType::Float64)?;
                    out.extend(f.f64()?.iter());
                }
                Values::Text(out) => {
                    let t = s.cast(&DataType::String)?;
                    out.extend(t.str()?.iter().map(|v| v.map(str::to_string)));
                }
            }
        }
        Ok(())
    }
}
