//! The prediction log's Parquet files, written from plain columns with polars' own Arrow arrays
//! and Parquet layer: no data frames and no thread pool, so the log's writer thread keeps its
//! memory (and the code it runs) small.
//!
//! A file is written one row group at a time, and each row group is first a whole Parquet file
//! of its own in the file's hidden staging folder (`.part-<millis>-<uuid>.staging/`), moved into
//! place there once written: a process that dies loses no row group it wrote. Finishing the file
//! copies the groups' column chunks, as they are (nothing is decoded or compressed again), into
//! one Parquet file with one footer and moves it into place, so readers only ever see whole
//! files. [`recover`] does the same at start for the files a process left unfinished; a lock on
//! the staging folder tells a live writer's folder (another replica's) from a dead one's.
//!
//! The files read back with polars as the log's documented schema: text as `String`, times as
//! `Datetime(ms, UTC)`, numbers as `Float64` / `Int64` (the Arrow schema travels in the
//! file's metadata, as polars writes it).

use std::fs::File;
use std::io::{BufWriter, Write};
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
use polars_parquet_format::thrift::protocol::{TCompactInputProtocol, TCompactOutputProtocol};
use polars_parquet_format::{FileMetaData, RowGroup};

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

/// A Parquet file being written row group by row group, each staged as a Parquet file of its
/// own until the file is finished.
pub(crate) struct ParquetFile {
    schema: Arc<ArrowSchema>,
    staging: PathBuf,
    path: PathBuf,
    /// Held (locked) while the file is being written; dropping it tells [`recover`] the
    /// staging folder was left behind.
    _lock: File,
    groups: usize,
    /// Rows written so far.
    pub(crate) rows: usize,
}

const STAGING_SUFFIX: &str = ".staging";
const GROUP_SUFFIX: &str = ".group";
const LOCK_NAME: &str = "lock";

impl ParquetFile {
    /// Starts `dir/part-<millis>-<uuid>.parquet` for columns of `schema`.
    pub(crate) fn create(dir: &Path, schema: Arc<ArrowSchema>) -> Result<Self, String> {
        let name = format!(
            "part-{}-{}.parquet",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            uuid::Uuid::new_v4().simple()
        );
        let staging = dir.join(format!(".{name}{STAGING_SUFFIX}"));
        std::fs::create_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
        let lock_path = staging.join(LOCK_NAME);
        let lock = File::create(&lock_path)
            .and_then(|f| f.try_lock().map_err(std::io::Error::from).map(|()| f))
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        Ok(Self {
            schema,
            staging,
            path: dir.join(name),
            _lock: lock,
            groups: 0,
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

    /// Writes the columns as one row group (they must [fit](Self::fits)): a Parquet file in the
    /// staging folder, in place once whole.
    pub(crate) fn write(&mut self, columns: Columns) -> Result<(), String> {
        let rows = columns.rows;
        let group = self
            .staging
            .join(format!("{:06}{GROUP_SUFFIX}", self.groups));
        write_parquet(&group, &self.schema, columns)?;
        self.groups += 1;
        self.rows += rows;
        Ok(())
    }

    /// Combines the row groups into the finished file and removes the staging folder; the rows
    /// it holds. When that fails, the staging folder is kept for [`recover`] to finish at the
    /// next start.
    pub(crate) fn finish(self) -> Result<usize, String> {
        let combined = combine(&self.staging, &self.path)?;
        remove_staging(&self.staging);
        Ok(combined.rows)
    }
}

fn remove_staging(staging: &Path) {
    if let Err(e) = std::fs::remove_dir_all(staging) {
        tracing::warn!(folder = %staging.display(), error = %e, "prediction log: could not remove a staging folder");
    }
}

/// Writes `columns` as a whole Parquet file of one row group at `path` (under a hidden name
/// first, moved into place once written). Not synced: the page cache holds it through a
/// process crash, and finished files are synced.
fn write_parquet(path: &Path, schema: &ArrowSchema, columns: Columns) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", tmp.display());
    let rows = columns.rows;
    let file = File::create(&tmp).map_err(|e| failed(&e))?;
    let written = (|| {
        let mut writer = FileWriter::try_new(BufWriter::new(file), schema.clone(), options())
            .map_err(|e| failed(&e))?;
        let batch = RecordBatchT::try_new(rows, Arc::new(schema.clone()), columns.arrays)
            .map_err(|e| failed(&e))?;
        let encodings = vec![vec![Encoding::Plain]; schema.len()];
        let groups = RowGroupIterator::try_new(
            std::iter::once(Ok(batch)),
            schema,
            options(),
            encodings.into(),
        )
        .map_err(|e| failed(&e))?;
        for group in groups {
            let group = group.map_err(|e| failed(&e))?;
            writer.write(rows as u64, group).map_err(|e| failed(&e))?;
        }
        writer.end(None).map_err(|e| failed(&e))?;
        writer
            .into_inner()
            .into_inner()
            .map_err(|e| failed(e.error()))?;
        std::fs::rename(&tmp, path).map_err(|e| failed(&e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// What combining a staging folder's row groups gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Combined {
    /// Rows in the finished file (0 when there was nothing to write and no file was made).
    pub(crate) rows: usize,
    /// Group files that could not be read (cut short by an operating-system crash) and were
    /// left out.
    pub(crate) unreadable: usize,
}

/// A staged row group: the file's bytes and its footer.
struct Group {
    bytes: Vec<u8>,
    meta: FileMetaData,
}

const MAGIC: &[u8; 4] = b"PAR1";

/// Reads a group file and its footer.
fn read_group(path: &Path) -> Result<Group, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let n = bytes.len();
    if n < 12 || &bytes[..4] != MAGIC || &bytes[n - 4..] != MAGIC {
        return Err("not a whole Parquet file".into());
    }
    let len = u32::from_le_bytes([bytes[n - 8], bytes[n - 7], bytes[n - 6], bytes[n - 5]]) as usize;
    if len > n - 12 {
        return Err("its footer's length runs past the file".into());
    }
    let footer = &bytes[n - 8 - len..n - 8];
    // The protocol refuses to allocate more than its budget (counted in decoded bytes, which
    // exceed the encoded ones); a footer's decoded size is a small multiple of its length.
    let budget = len.saturating_mul(64).max(1 << 20);
    let meta = FileMetaData::read_from_in_protocol(&mut TCompactInputProtocol::new(footer, budget))
        .map_err(|e| format!("its footer cannot be read: {e}"))?;
    Ok(Group { bytes, meta })
}

/// The byte range a row group's column chunks occupy in its file.
fn chunk_range(group: &RowGroup) -> Option<(usize, usize)> {
    let mut range: Option<(i64, i64)> = None;
    for column in &group.columns {
        let meta = column.meta_data.as_ref()?;
        let start = meta
            .dictionary_page_offset
            .map_or(meta.data_page_offset, |d| d.min(meta.data_page_offset));
        let end = start.checked_add(meta.total_compressed_size)?;
        range = Some(range.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
    }
    let (start, end) = range?;
    Some((usize::try_from(start).ok()?, usize::try_from(end).ok()?))
}

/// Copies the row groups staged in `staging` (in the order they were written) into one Parquet
/// file at `target`, written in the staging folder, synced, then moved into place: the column
/// chunks' bytes are copied as they are and one footer lists them all (without the page indexes
/// the group files carried). Unreadable group files are left out and counted.
fn combine(staging: &Path, target: &Path) -> Result<Combined, String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", target.display());
    let mut names: Vec<PathBuf> = std::fs::read_dir(staging)
        .map_err(|e| failed(&e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == &GROUP_SUFFIX[1..]))
        .collect();
    names.sort();
    let tmp = staging.join("combined.tmp");
    let mut out = BufWriter::new(File::create(&tmp).map_err(|e| failed(&e))?);
    out.write_all(MAGIC).map_err(|e| failed(&e))?;
    let mut offset = MAGIC.len();
    let mut combined = Combined::default();
    let mut first: Option<FileMetaData> = None;
    let mut row_groups = Vec::new();
    for name in &names {
        let group = match read_group(name).and_then(|g| {
            let same_schema = first.as_ref().is_none_or(|f| f.schema == g.meta.schema);
            if !same_schema {
                return Err("its columns differ from the first group's".into());
            }
            Ok(g)
        }) {
            Ok(group) => group,
            Err(e) => {
                tracing::warn!(file = %name.display(), error = %e, "prediction log: a staged row group is left out");
                combined.unreadable += 1;
                continue;
            }
        };
        for mut rg in group.meta.row_groups.clone() {
            let Some((start, end)) =
                chunk_range(&rg).filter(|(s, e)| s <= e && *e <= group.bytes.len())
            else {
                tracing::warn!(file = %name.display(), "prediction log: a staged row group's column chunks lie outside its file; left out");
                combined.unreadable += 1;
                continue;
            };
            out.write_all(&group.bytes[start..end])
                .map_err(|e| failed(&e))?;
            let shift = offset as i64 - start as i64;
            for column in &mut rg.columns {
                if column.file_offset != 0 {
                    column.file_offset += shift;
                }
                column.offset_index_offset = None;
                column.offset_index_length = None;
                column.column_index_offset = None;
                column.column_index_length = None;
                if let Some(meta) = column.meta_data.as_mut() {
                    meta.data_page_offset += shift;
                    meta.dictionary_page_offset = meta.dictionary_page_offset.map(|o| o + shift);
                    meta.index_page_offset = meta.index_page_offset.map(|o| o + shift);
                    meta.bloom_filter_offset = None;
                    meta.bloom_filter_length = None;
                }
            }
            rg.file_offset = Some(offset as i64);
            rg.ordinal = i16::try_from(row_groups.len()).ok();
            combined.rows += usize::try_from(rg.num_rows).unwrap_or(0);
            offset += end - start;
            row_groups.push(rg);
        }
        first.get_or_insert(group.meta);
    }
    let Some(mut meta) = first else {
        drop(out);
        let _ = std::fs::remove_file(&tmp);
        return Ok(combined);
    };
    meta.num_rows = row_groups.iter().map(|g| g.num_rows).sum();
    meta.row_groups = row_groups;
    let mut footer = Vec::new();
    meta.write_to_out_protocol(&mut TCompactOutputProtocol::new(&mut footer))
        .map_err(|e| failed(&e))?;
    let len = u32::try_from(footer.len()).map_err(|e| failed(&e))?;
    out.write_all(&footer).map_err(|e| failed(&e))?;
    out.write_all(&len.to_le_bytes()).map_err(|e| failed(&e))?;
    out.write_all(MAGIC).map_err(|e| failed(&e))?;
    out.into_inner()
        .map_err(|e| failed(e.error()))?
        .sync_all()
        .map_err(|e| failed(&e))?;
    std::fs::rename(&tmp, target).map_err(|e| failed(&e))?;
    Ok(combined)
}

/// What [`recover`] found and finished.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Files finished from the row groups a stopped process had staged.
    pub(crate) files: usize,
    /// Rows in them.
    pub(crate) rows: usize,
    /// Staged group files that could not be read and were left out.
    pub(crate) unreadable: usize,
}

/// Finishes the files that processes which stopped (crashed or were killed) left unfinished
/// anywhere under `root`: every staging folder whose lock no live process holds is combined
/// into its file (or, when the file was already in place, only removed). Folders a live
/// writer holds are left alone.
pub(crate) fn recover(root: &Path) -> Recovered {
    let mut found = Recovered::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name();
            let Some(file_name) = name
                .to_str()
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.strip_suffix(STAGING_SUFFIX))
            else {
                stack.push(path);
                continue;
            };
            // A live writer holds the lock; a folder without a lock file is not one of ours.
            let Ok(lock) = File::options().write(true).open(path.join(LOCK_NAME)) else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue;
            }
            let target = dir.join(file_name);
            if !target.exists() {
                match combine(&path, &target) {
                    Ok(c) => {
                        found.files += usize::from(c.rows > 0);
                        found.rows += c.rows;
                        found.unreadable += c.unreadable;
                    }
                    Err(e) => {
                        tracing::error!(folder = %path.display(), error = %e, "prediction log: an unfinished file could not be recovered; its staging folder is kept");
                        continue;
                    }
                }
            }
            drop(lock);
            remove_staging(&path);
        }
    }
    found
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

    fn sample(rows: usize, from: i64) -> Columns {
        let mut c = Columns::new(rows);
        c.text(
            "id",
            &(0..rows)
                .map(|i| format!("r{}", from + i as i64))
                .collect::<Vec<_>>(),
        );
        c.int64("row", (from..from + rows as i64).collect());
        c
    }

    fn finished(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        files.sort();
        files
    }

    fn read_rows(path: &Path) -> Vec<i64> {
        let df = polars::prelude::ParquetReader::new(File::open(path).unwrap())
            .finish()
            .unwrap();
        df.column("row")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }

    #[test]
    fn row_groups_a_stopped_writer_staged_are_recovered_and_a_live_writers_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A writer that stops after writing two row groups (dropped unfinished, as a killed
        // process leaves its file).
        let mut crashed = ParquetFile::create(d, sample(1, 0).schema()).unwrap();
        crashed.write(sample(4, 0)).unwrap();
        crashed.write(sample(3, 4)).unwrap();
        drop(crashed);
        // One whose last group was cut short by an operating-system crash.
        let mut cut = ParquetFile::create(d, sample(1, 0).schema()).unwrap();
        cut.write(sample(2, 100)).unwrap();
        let staging = cut.staging.clone();
        drop(cut);
        let good = std::fs::read(staging.join("000000.group")).unwrap();
        std::fs::write(staging.join("000001.group"), &good[..good.len() / 2]).unwrap();
        // And one still being written.
        let mut live = ParquetFile::create(d, sample(1, 0).schema()).unwrap();
        live.write(sample(5, 200)).unwrap();
        assert!(finished(d).is_empty());

        let found = recover(d);
        assert_eq!(
            found,
            Recovered {
                files: 2,
                rows: 9,
                unreadable: 1
            }
        );
        let mut recovered: Vec<Vec<i64>> = finished(d).iter().map(|p| read_rows(p)).collect();
        recovered.sort();
        assert_eq!(recovered, vec![vec![0, 1, 2, 3, 4, 5, 6], vec![100, 101]]);
        // The live writer's folder is untouched and it finishes its file as usual.
        assert!(live.staging.is_dir());
        let path = live.path.clone();
        assert_eq!(live.finish().unwrap(), 5);
        assert_eq!(read_rows(&path), vec![200, 201, 202, 203, 204]);
        // Only the finished files are left.
        let left: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
        assert_eq!(recover(d), Recovered::default());
    }

    #[test]
    fn a_staging_folder_whose_file_is_already_in_place_is_only_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut file = ParquetFile::create(d, sample(1, 0).schema()).unwrap();
        file.write(sample(3, 0)).unwrap();
        // Stopped after the finished file was moved into place, before its staging folder
        // was removed: recovering must not write the rows a second time.
        combine(&file.staging, &file.path).unwrap();
        let staging = file.staging.clone();
        drop(file);
        assert_eq!(recover(d), Recovered::default());
        assert!(!staging.exists());
        let files = finished(d);
        assert_eq!(files.len(), 1);
        assert_eq!(read_rows(&files[0]), vec![0, 1, 2]);
    }

    #[test]
    fn a_file_without_readable_groups_is_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = ParquetFile::create(d, sample(1, 0).schema()).unwrap();
        std::fs::write(file.staging.join("000000.group"), b"PAR1").unwrap();
        drop(file);
        assert_eq!(
            recover(d),
            Recovered {
                files: 0,
                rows: 0,
                unreadable: 1
            }
        );
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
    }
}
