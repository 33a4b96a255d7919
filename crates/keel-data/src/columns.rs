//! Reading a whole table into memory as plain columns of numbers or text ([`Columns`], defined
//! in keel-core), for training: read with the same type inference as profiles
//! ([`crate::read`]), so a column is numeric in a model exactly when it is numeric in the
//! dataset's schema.

use std::path::Path;

use polars::prelude::{DataFrame, DataType, PolarsResult, Schema, TimeUnit};

use crate::error::Result;
use crate::format::Format;
use crate::read::{Rows, read_table};

pub use keel_core::table::{Columns, Values};

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

/// The columns of a data frame already in memory.
pub fn from_frame(df: &DataFrame) -> PolarsResult<Columns> {
    let mut columns = empty_like(df.schema());
    columns.feed(df)?;
    Ok(columns)
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
