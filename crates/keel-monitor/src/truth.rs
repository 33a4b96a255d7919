//! Ground truth from a labelled dataset version, the batch alternative to `/feedback`: a
//! table holding each labelled prediction's request id (`request_id`, the `x-request-id` of
//! its answer), the row within the request (`row`, 0 when the table has no such column) and
//! the true value in a column of its own. The labels are joined with the log by request id and
//! row like `/feedback`'s records; where both label a row, the dataset's label wins (it is the
//! curated one). Rows without a true value are left out; a request row labelled twice is an
//! error, since keel could not tell which label is meant.

use std::path::Path;

use keel_data::Format;
use keel_data::read::{Rows, read_planned};
use polars::prelude::*;

use crate::error::{MonitorError, Result};

/// The column naming the request a label is about.
pub const REQUEST_ID: &str = "request_id";
/// The column naming the row within the request.
pub const ROW: &str = "row";

/// Labels read from a dataset version.
#[derive(Debug, Clone)]
pub struct Labels {
    /// `request_id`, `row`, `truth_number`, `truth_text`: one row per labelled request row.
    frame: DataFrame,
    /// Where they came from (`NAME@V`).
    pub source: String,
}

/// Collects a table's batches.
pub(crate) struct Collect(pub(crate) Option<DataFrame>);

impl Rows for Collect {
    fn feed(&mut self, batch: &DataFrame) -> PolarsResult<()> {
        match &mut self.0 {
            Some(df) => {
                df.vstack_mut(batch)?;
            }
            None => self.0 = Some(batch.clone()),
        }
        Ok(())
    }
}

impl Labels {
    /// Reads the labels in column `column` of the table at `paths` (in `format`), which came
    /// from `source`.
    pub fn read(format: Format, paths: &[&Path], column: &str, source: &str) -> Result<Labels> {
        if column == REQUEST_ID || column == ROW {
            return Err(MonitorError::Invalid(format!(
                "the ground truth cannot be read from '{column}': it names the labelled prediction"
            )));
        }
        let wanted = [REQUEST_ID.to_string(), ROW.to_string(), column.to_string()];
        let plan = move |mut lf: LazyFrame| -> PolarsResult<LazyFrame> {
            let schema = lf.collect_schema()?;
            let keep: Vec<Expr> = wanted
                .iter()
                .filter(|n| schema.get(n.as_str()).is_some())
                .map(|n| col(n.as_str()))
                .collect();
            Ok(lf.select(keep))
        };
        let table = read_planned(format, paths, &plan, |_| Collect(None))?.0;
        let invalid =
            |what: String| MonitorError::Invalid(format!("the labels in {source} {what}"));
        let Some(table) = table else {
            return Err(invalid("hold no rows".into()));
        };
        for needed in [REQUEST_ID, column] {
            if table.column(needed).is_err() {
                let present: Vec<&str> = table
                    .get_column_names()
                    .iter()
                    .map(|n| n.as_str())
                    .collect();
                return Err(invalid(format!(
                    "have no column '{needed}' (they have {})",
                    if present.is_empty() {
                        "none of request_id, row and the truth column".to_string()
                    } else {
                        present.join(", ")
                    }
                )));
            }
        }
        let dtype = table
            .column(column)
            .map(|c| c.dtype().clone())
            .map_err(|e| invalid(e.to_string()))?;
        let (number, text) = if dtype.is_primitive_numeric() {
            (
                col(column).cast(DataType::Float64),
                lit(NULL).cast(DataType::String),
            )
        } else {
            (
                lit(NULL).cast(DataType::Float64),
                col(column).cast(DataType::String),
            )
        };
        let row = if table.column(ROW).is_ok() {
            col(ROW).cast(DataType::Int64)
        } else {
            lit(0i64).cast(DataType::Int64)
        };
        let frame = table
            .lazy()
            .select([
                col(REQUEST_ID).cast(DataType::String).alias(REQUEST_ID),
                row.alias(ROW),
                number.alias("truth_number"),
                text.alias("truth_text"),
            ])
            .filter(
                col("truth_number")
                    .is_not_null()
                    .or(col("truth_text").is_not_null()),
            )
            .collect()
            .map_err(|e| invalid(format!("cannot be read: {e}")))?;
        if let Some(bad) = first_bad_key(&frame).map_err(|e| invalid(e.to_string()))? {
            return Err(invalid(bad));
        }
        Ok(Labels {
            frame,
            source: source.to_string(),
        })
    }

    /// Labelled request rows.
    pub fn len(&self) -> usize {
        self.frame.height()
    }

    /// Whether no row is labelled.
    pub fn is_empty(&self) -> bool {
        self.frame.height() == 0
    }

    /// The labels as ground-truth records that come after every `/feedback` record:
    /// `request_id`, `row`, `truth_time` (ms), `truth_number`, `truth_text`.
    pub(crate) fn records(&self) -> LazyFrame {
        self.frame
            .clone()
            .lazy()
            .with_column(lit(i64::MAX).alias("truth_time"))
            .select([
                col(REQUEST_ID),
                col(ROW),
                col("truth_time"),
                col("truth_number"),
                col("truth_text"),
            ])
    }
}

/// What is wrong with the labels' keys, if anything: a missing request id, a negative row, or
/// a request row labelled more than once.
fn first_bad_key(frame: &DataFrame) -> PolarsResult<Option<String>> {
    let ids = frame.column(REQUEST_ID)?.str()?;
    let rows = frame.column(ROW)?.i64()?;
    let mut seen = std::collections::HashSet::with_capacity(frame.height());
    for (id, row) in ids.iter().zip(rows.iter()) {
        let Some(id) = id.filter(|id| !id.trim().is_empty()) else {
            return Ok(Some("have a label without a request_id".into()));
        };
        let Some(row) = row.filter(|r| *r >= 0) else {
            return Ok(Some(format!(
                "have no row (counting from 0) for request '{id}'"
            )));
        };
        if !seen.insert((id, row)) {
            return Ok(Some(format!(
                "hold request '{id}' row {row} more than once"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(csv: &str, column: &str) -> Result<Labels> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.csv");
        std::fs::write(&path, csv).unwrap();
        Labels::read(Format::Csv, &[path.as_path()], column, "labels@1")
    }

    fn records(l: &Labels) -> Vec<(String, i64, Option<f64>, Option<String>)> {
        let df = l.records().collect().unwrap();
        let ids = df.column("request_id").unwrap().str().unwrap().clone();
        let rows = df.column("row").unwrap().i64().unwrap().clone();
        let n = df.column("truth_number").unwrap().f64().unwrap().clone();
        let t = df.column("truth_text").unwrap().str().unwrap().clone();
        (0..df.height())
            .map(|i| {
                (
                    ids.get(i).unwrap().to_string(),
                    rows.get(i).unwrap(),
                    n.get(i),
                    t.get(i).map(str::to_string),
                )
            })
            .collect()
    }

    #[test]
    fn numbers_text_and_booleans_are_read_like_feedback() {
        // Numbers: a missing truth is no label; no `row` column means row 0.
        let l = labels("request_id,y,other\na,1.5,x\nb,,x\nc,-2,x\n", "y").unwrap();
        assert_eq!(
            records(&l),
            vec![
                ("a".into(), 0, Some(1.5), None),
                ("c".into(), 0, Some(-2.0), None)
            ]
        );
        assert_eq!((l.len(), l.source.as_str()), (2, "labels@1"));
        // Text and booleans are labels as /feedback keeps them ("true", "false").
        let l = labels("request_id,row,y\na,0,yes\na,1,no\n", "y").unwrap();
        assert_eq!(records(&l)[1], ("a".into(), 1, None, Some("no".into())));
        let l = labels("request_id,row,ok\na,0,true\na,1,false\n", "ok").unwrap();
        assert_eq!(records(&l)[0].3.as_deref(), Some("true"));
        // The labels come after every /feedback record.
        let df = l.records().collect().unwrap();
        let time = df.column("truth_time").unwrap().i64().unwrap().clone();
        assert!(time.iter().all(|t| t == Some(i64::MAX)));
    }

    #[test]
    fn labels_keel_cannot_use_are_refused_naming_why() {
        let refused = |csv: &str, column: &str| labels(csv, column).unwrap_err().to_string();
        for (csv, column, why) in [
            (
                "id,y\na,1\n",
                "y",
                "have no column 'request_id' (they have y)",
            ),
            (
                "request_id,y\na,1\n",
                "label",
                "have no column 'label' (they have request_id)",
            ),
            (
                "request_id,row,y\na,0,1\nb,0,1\na,0,2\n",
                "y",
                "hold request 'a' row 0 more than once",
            ),
            (
                "request_id,row,y\na,-1,1\n",
                "y",
                "have no row (counting from 0) for request 'a'",
            ),
            (
                "request_id,y\n,1\n",
                "y",
                "have a label without a request_id",
            ),
        ] {
            assert_eq!(
                refused(csv, column),
                format!("the labels in labels@1 {why}"),
                "{csv}"
            );
        }
        let e = refused("request_id,y\na,1\n", "request_id");
        assert!(e.contains("it names the labelled prediction"), "{e}");
    }
}
