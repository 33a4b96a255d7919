//! Reading a table (one file or several with the same columns) batch by batch with polars'
//! streaming engine, in bounded memory. Profiles and validation rules consume the batches.
//!
//! CSV column types are inferred from the first [`INFER_ROWS`] rows, and ISO 8601 dates and
//! datetimes are recognised as such. A value further down that does not fit its inferred type
//! makes the whole read start again with types inferred from every row (so a column that mixes
//! numbers and text is read as text); the consumer is rebuilt for that second read. An integer
//! column holding a value beyond 64 bits is then read as floats.

use std::path::Path;
use std::sync::{Arc, Mutex};

use polars::prelude::*;

use crate::error::{DataError, Result};
use crate::format::Format;

/// CSV column types are first inferred from this many rows.
pub const INFER_ROWS: usize = 10_000;

/// Receives a table's rows in order, batch by batch.
pub trait Rows: Send + 'static {
    /// File `index` (into the paths read) starts; its rows follow.
    fn start_file(&mut self, _index: usize) {}
    /// The next rows.
    fn feed(&mut self, batch: &DataFrame) -> PolarsResult<()>;
}

/// Reads `paths` (all in `format`, all with the same columns) into the consumer `make` builds
/// from the table's schema, and returns it after the last row.
pub fn read_table<R: Rows>(
    format: Format,
    paths: &[&Path],
    make: impl Fn(&polars::prelude::Schema) -> R,
) -> Result<R> {
    read_planned(format, paths, &Ok, make)
}

/// A query applied to each file before its rows are read: rows kept, columns chosen or
/// renamed. polars pushes filters and projections into the scan, so a Parquet reader decodes
/// only what the plan needs.
pub type Plan = dyn Fn(LazyFrame) -> PolarsResult<LazyFrame> + Sync;

/// Reads like [`read_table`] the rows `plan` gives of each file; `make` receives the planned
/// schema, which must be the same for every file.
pub fn read_planned<R: Rows>(
    format: Format,
    paths: &[&Path],
    plan: &Plan,
    make: impl Fn(&polars::prelude::Schema) -> R,
) -> Result<R> {
    let mut full_inference = false;
    let mut floats: Vec<String> = Vec::new();
    loop {
        match read_with(format, paths, plan, &make, full_inference, &floats) {
            Ok(r) => return Ok(r),
            Err(Attempt::Retry) if !full_inference => full_inference = true,
            // An integer column with a value beyond 64 bits is read as floats, as a column
            // whose values are not all integers would be.
            Err(Attempt::Overflow(column, e)) => {
                if floats.contains(&column) || floats.len() >= MAX_FLOAT_RETRIES {
                    return Err(e);
                }
                floats.push(column);
            }
            Err(other) => return Err(other.into_error()),
        }
    }
}

/// How many integer columns may be re-read as floats before a read gives up.
const MAX_FLOAT_RETRIES: usize = 64;

/// A failed read: final, worth repeating with full type inference, or with one more integer
/// column read as floats (the error to give if that cannot be done).
enum Attempt {
    Failed(DataError),
    Retry,
    Overflow(String, DataError),
}

impl Attempt {
    fn into_error(self) -> DataError {
        match self {
            Attempt::Failed(e) => e,
            Attempt::Retry => DataError::Invalid("the table could not be read".into()),
            Attempt::Overflow(_, e) => e,
        }
    }
}

impl From<DataError> for Attempt {
    fn from(e: DataError) -> Self {
        Attempt::Failed(e)
    }
}

fn read_with<R: Rows>(
    format: Format,
    paths: &[&Path],
    plan: &Plan,
    make: &impl Fn(&polars::prelude::Schema) -> R,
    full_inference: bool,
    floats: &[String],
) -> std::result::Result<R, Attempt> {
    let first = *paths
        .first()
        .ok_or_else(|| DataError::Invalid("no files to read".into()))?;
    let mut consumer: Option<Arc<Mutex<R>>> = None;
    let mut schema: Option<(SchemaRef, &Path)> = None;
    for (index, path) in paths.iter().enumerate() {
        let size = std::fs::metadata(path)
            .map_err(|e| DataError::io(path, e))?
            .len();
        if size == 0 {
            return Err(DataError::content(path, "the file is empty").into());
        }
        if format == Format::Csv {
            crate::locate::check_csv(path)?;
        }
        let mut lf = open(format, path, full_inference, floats)
            .and_then(plan)
            .map_err(|e| read_error(format, path, e))?;
        let this = lf
            .collect_schema()
            .map_err(|e| read_error(format, path, e))?;
        match &schema {
            None => schema = Some((this.clone(), path)),
            Some((s, p)) if **s != *this => {
                return Err(DataError::content(
                    path,
                    format!(
                        "its columns ({}) differ from those of {} ({})",
                        names(&this),
                        p.display(),
                        names(s)
                    ),
                )
                .into());
            }
            Some(_) => {}
        }
        let shared = consumer
            .get_or_insert_with(|| Arc::new(Mutex::new(make(&this))))
            .clone();
        shared
            .lock()
            .map_err(|_| DataError::Invalid("table reader poisoned".into()))?
            .start_file(index);
        let sink = PlanCallback::new(move |df: DataFrame| {
            let mut r = shared
                .lock()
                .map_err(|_| polars_err!(ComputeError: "table reader poisoned"))?;
            r.feed(&df)?;
            Ok(false)
        });
        if let Err(e) = lf
            .sink_batches(sink, true, None)
            .and_then(|lf| lf.collect_with_engine(Engine::Streaming))
        {
            if format == Format::Csv && !full_inference {
                return Err(Attempt::Retry);
            }
            if format == Format::Csv
                && let Some(column) = overflowing_column(&e.to_string())
            {
                return Err(Attempt::Overflow(column, read_error(format, path, e)));
            }
            return Err(read_error(format, path, e).into());
        }
    }
    let consumer = consumer.ok_or_else(|| DataError::content(first, "nothing to read"))?;
    let consumer = Arc::try_unwrap(consumer)
        .map_err(|_| DataError::Invalid("table reader still in use".into()))?
        .into_inner()
        .map_err(|_| DataError::Invalid("table reader poisoned".into()))?;
    Ok(consumer)
}

fn names(s: &polars::prelude::Schema) -> String {
    s.iter_names()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The column of an integer that does not fit in 64 bits, from polars' parse error.
fn overflowing_column(message: &str) -> Option<String> {
    let rest = message.split("as dtype `i64` at column '").nth(1)?;
    Some(rest.split("' (column number").next()?.to_string())
}

fn open(
    format: Format,
    path: &Path,
    full_inference: bool,
    floats: &[String],
) -> PolarsResult<LazyFrame> {
    let p = PlRefPath::from(path.to_string_lossy().as_ref());
    match format {
        Format::Csv => LazyCsvReader::new(p)
            .with_has_header(true)
            .with_try_parse_dates(true)
            .with_infer_schema_length((!full_inference).then_some(INFER_ROWS))
            .with_dtype_overwrite((!floats.is_empty()).then(|| {
                Arc::new(
                    floats
                        .iter()
                        .map(|c| Field::new(c.as_str().into(), DataType::Float64))
                        .collect::<Schema>(),
                )
            }))
            .finish(),
        Format::Parquet => LazyFrame::scan_parquet(p, ScanArgsParquet::default()),
        Format::Jsonl => LazyJsonLineReader::new(p)
            .with_infer_schema_length(None)
            .finish(),
        Format::Binary => polars_bail!(ComputeError: "binary data has no rows to read"),
    }
}

/// A one-line error for a file polars could not read, with the line and column found by
/// [`crate::locate`] where the format allows.
/// A Parquet file's lazy scan and what it gives, with the reading errors every other read
/// gives: `query` builds on the scan.
pub(crate) fn query_parquet<T>(
    path: &Path,
    query: impl FnOnce(LazyFrame) -> PolarsResult<T>,
) -> Result<T> {
    open(Format::Parquet, path, false, &[])
        .and_then(query)
        .map_err(|e| read_error(Format::Parquet, path, e))
}

fn read_error(format: Format, path: &Path, e: PolarsError) -> DataError {
    if (format == Format::Csv || format == Format::Jsonl)
        && let Some(found) = crate::locate::first_problem(format, path)
    {
        return found;
    }
    let msg = e.to_string();
    let first = msg.lines().next().unwrap_or("cannot be read").trim();
    DataError::content(
        path,
        format!("cannot be read as {}: {first}", format.as_str()),
    )
}
