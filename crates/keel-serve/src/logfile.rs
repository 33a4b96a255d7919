//! The prediction log's Parquet files, written from plain columns with polars' own Arrow arrays
//! and Parquet layer: no data frames and no thread pool, so the log's writer thread keeps its
//! memory (and the code it runs) small. Files are written under a hidden name and moved into
//! place once finished, so readers only ever see whole files.
//!
//! The files read back with polars as the log's documented schema: text as `String`, times as
//! `Datetime(ms, UTC)`, numbers as `Float64` / `Int64` (the Arrow schema travels in the
//! file's metadata, as polars writes it).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use polars::prelude::PlSmallStr;
use polars_arrow::array::{Array, PrimitiveArray, Utf8ViewArray};
use polars_arrow::datatypes::{ArrowDataType, ArrowSchema, Field, TimeUnit};
use polars_arrow::record_batch::RecordBatchT;
use polars_parquet::write::{
    CompressionOptions, Encoding, FileWriter, RowGroupIterator, StatisticsOptions, Version,
    WriteOptions,
};

/// The columns of one row group, built column by column.
pub(crate) struct Columns {
    rows: usize,
    fields: Vec<Field>,
    arrays: Vec<Box<dyn Array>>,
}

impl Columns {
    /// No columns yet, for `rows` rows.
    pub(crate) fn new(rows: usize) -> Self {
        Self {
            rows,
            fields: Vec::new(),
            arrays: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, array: Box<dyn Array>) {
        debug_assert_eq!(array.len(), self.rows, "column {name}");
        self.fields.push(Field::new(
            PlSmallStr::from_str(name),
            array.dtype().clone(),
            true,
        ));
        self.arrays.push(array);
    }

    /// A text column with a value in every row.
    pub(crate) fn text<S: AsRef<str>>(&mut self, name: &str, values: &[S]) {
        self.push(name, Utf8ViewArray::from_slice_values(values).boxed());
    }

    /// A text column with missing values.
    pub(crate) fn optional_text<S: AsRef<str>>(&mut self, name: &str, values: &[Option<S>]) {
        self.push(name, Utf8ViewArray::from_slice(values).boxed());
    }

    /// A 64-bit integer column.
    pub(crate) fn int64(&mut self, name: &str, values: Vec<i64>) {
        self.push(name, PrimitiveArray::from_vec(values).boxed());
    }

    /// A time column: milliseconds since the epoch, UTC.
    pub(crate) fn time_ms(&mut self, name: &str, values: Vec<i64>) {
        let utc = ArrowDataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        self.push(name, PrimitiveArray::from_vec(values).to(utc).boxed());
    }

    /// A float column with a value in every row.
    pub(crate) fn float64(&mut self, name: &str, values: Vec<f64>) {
        self.push(name, PrimitiveArray::from_vec(values).boxed());
    }

    /// A float column with missing values.
    pub(crate) fn optional_float64(&mut self, name: &str, values: &[Option<f64>]) {
        self.push(name, PrimitiveArray::<f64>::from(values).boxed());
    }

    /// The columns' names and types.
    pub(crate) fn schema(&self) -> Arc<ArrowSchema> {
        Arc::new(
            self.fields
                .iter()
                .map(|f| (f.name.clone(), f.clone()))
                .collect(),
        )
    }
}

/// zstd-compressed pages with min/max and null-count statistics, plain-encoded (the log's
/// columns are either unique per row or compress to nothing).
fn options() -> WriteOptions {
    WriteOptions {
        statistics: StatisticsOptions::default(),
        version: Version::V1,
        compression: CompressionOptions::Zstd(None),
        data_page_size: None,
    }
}

/// A Parquet file being written row group by row group, under a hidden name until finished.
pub(crate) struct ParquetFile {
    writer: FileWriter<BufWriter<File>>,
    schema: Arc<ArrowSchema>,
    tmp: PathBuf,
    path: PathBuf,
    /// Rows written so far.
    pub(crate) rows: usize,
}

impl ParquetFile {
    /// Starts `dir/part-<millis>-<uuid>.parquet` for columns of `schema`.
    pub(crate) fn create(dir: &Path, schema: Arc<ArrowSchema>) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = format!(
            "part-{}-{}.parquet",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            uuid::Uuid::new_v4().simple()
        );
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let writer = FileWriter::try_new(BufWriter::new(file), (*schema).clone(), options())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        Ok(Self {
            writer,
            schema,
            tmp,
            path: dir.join(name),
            rows: 0,
        })
    }

    /// Whether `columns` have this file's names and types.
    pub(crate) fn fits(&self, columns: &Columns) -> bool {
        self.schema.len() == columns.fields.len()
            && self
                .schema
                .iter_values()
                .zip(&columns.fields)
                .all(|(a, b)| {
                    a.name == b.name && a.dtype == b.dtype && a.is_nullable == b.is_nullable
                })
    }

    /// Writes the columns as one row group (they must [fit](Self::fits)).
    pub(crate) fn write(&mut self, columns: Columns) -> Result<(), String> {
        let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", self.tmp.display());
        let rows = columns.rows;
        let batch = RecordBatchT::try_new(rows, self.schema.clone(), columns.arrays)
            .map_err(|e| failed(&e))?;
        let encodings = vec![vec![Encoding::Plain]; self.schema.len()];
        let groups = RowGroupIterator::try_new(
            std::iter::once(Ok(batch)),
            &self.schema,
            options(),
            encodings.into(),
        )
        .map_err(|e| failed(&e))?;
        for group in groups {
            let group = group.map_err(|e| failed(&e))?;
            self.writer
                .write(rows as u64, group)
                .map_err(|e| failed(&e))?;
        }
        self.rows += rows;
        Ok(())
    }

    /// Writes the footer and moves the file into place; the rows it holds. A file that cannot
    /// be finished is removed.
    pub(crate) fn finish(mut self) -> Result<usize, String> {
        let written = self
            .writer
            .end(None)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                self.writer
                    .into_inner()
                    .into_inner()
                    .map_err(|e| e.error().to_string())?
                    .sync_all()
                    .map_err(|e| e.to_string())
            });
        let placed =
            written.and_then(|_| std::fs::rename(&self.tmp, &self.path).map_err(|e| e.to_string()));
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(format!("{}: {e}", self.path.display()));
        }
        Ok(self.rows)
    }

    /// Removes an unfinished file after a write failed.
    pub(crate) fn abandon(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes `columns` as a whole new file in `dir`.
pub(crate) fn write_file(dir: &Path, columns: Columns) -> Result<(), String> {
    let mut file = ParquetFile::create(dir, columns.schema())?;
    if let Err(e) = file.write(columns) {
        file.abandon();
        return Err(e);
    }
    file.finish().map(|_| ())
}

#[cfg(test)]
mod tests {
    use polars::prelude::{DataType, SerReader, TimeUnit as PlTimeUnit, TimeZone};

    use super::*;

    #[test]
    fn files_read_back_with_polars_types_and_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let columns = |rows: usize| {
            let mut c = Columns::new(rows);
            c.text(
                "id",
                &(0..rows).map(|i| format!("r{i}")).collect::<Vec<_>>(),
            );
            c.int64("row", (0..rows as i64).collect());
            c.time_ms("time", vec![1_796_221_800_000; rows]);
            c.float64("latency_ms", vec![0.5; rows]);
            let x: Vec<Option<f64>> = (0..rows)
                .map(|i| (i % 2 == 0).then_some(i as f64))
                .collect();
            c.optional_float64("in_x", &x);
            let t: Vec<Option<&str>> = (0..rows).map(|i| (i % 3 == 0).then_some("a")).collect();
            c.optional_text("in_t", &t);
            c
        };
        let mut file = ParquetFile::create(dir.path(), columns(1).schema()).unwrap();
        let mut other = Columns::new(1);
        other.int64("row", vec![1]);
        assert!(!file.fits(&other));
        assert!(file.fits(&columns(4)));
        file.write(columns(4)).unwrap();
        file.write(columns(3)).unwrap();
        let hidden: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(hidden.len(), 1);
        assert_eq!(file.finish().unwrap(), 7);
        let path = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert!(
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("part-")
        );
        let df = polars::prelude::ParquetReader::new(File::open(&path).unwrap())
            .finish()
            .unwrap();
        assert_eq!(df.height(), 7);
        let dtypes: Vec<DataType> = df.dtypes();
        assert_eq!(
            dtypes,
            vec![
                DataType::String,
                DataType::Int64,
                DataType::Datetime(PlTimeUnit::Milliseconds, Some(TimeZone::UTC)),
                DataType::Float64,
                DataType::Float64,
                DataType::String,
            ]
        );
        let x = df.column("in_x").unwrap().f64().unwrap();
        assert_eq!(x.get(0), Some(0.0));
        assert_eq!(x.get(1), None);
        assert_eq!(x.get(6), Some(2.0));
        assert_eq!(x.null_count(), 3);
        let t = df.column("in_t").unwrap().str().unwrap();
        // Rows 0..4 are the first row group, 4..7 the second.
        let texts: Vec<Option<&str>> = (0..7).map(|i| t.get(i)).collect();
        let (a, none) = (Some("a"), None);
        assert_eq!(texts, vec![a, none, none, a, a, none, none]);
        let id = df.column("id").unwrap().str().unwrap();
        assert_eq!((id.get(3), id.get(4)), (Some("r3"), Some("r0")));
    }
}
