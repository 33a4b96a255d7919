//! The prediction log's Parquet files, written column by column with the `parquet` crate's
//! low-level writer: no data frames, no Arrow arrays and no thread pool, so the log's writer
//! thread keeps its memory (and the code it runs) small.
//!
//! A file is written one row group at a time, and each row group is first a whole Parquet file
//! of its own in the file's hidden staging folder (`.part-<millis>-<uuid>.staging/`), moved into
//! place there once written: a process that dies loses no row group it wrote. Finishing the file
//! copies the groups' column chunks, as they are (nothing is decoded or compressed again), into
//! one Parquet file with one footer and moves it into place, so readers only ever see whole
//! files. [`recover`] does the same at start for the files a process left unfinished; a lock on
//! the staging folder tells a live writer's folder (another replica's) from a dead one's.
//!
//! Every column is optional and carries its Parquet logical type, and each file carries its
//! Arrow schema (`ARROW:schema`, as Arrow writers add it), so readers (polars, pyarrow, DuckDB,
//! pandas) see the log's documented schema: text as UTF-8 strings, times as millisecond
//! timestamps in `UTC`, numbers as 64-bit floats and integers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema};
use parquet::arrow::encode_arrow_schema;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::column::writer::{ColumnCloseResult, ColumnWriter};
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

/// A column's type in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Int64,
    TimeMs,
    Float64,
}

/// One column's values: the present ones, and a definition level per row (1 present, 0
/// missing).
enum Cells {
    Bytes(Vec<ByteArray>),
    Int64(Vec<i64>),
    Float64(Vec<f64>),
}

/// The names and types of a file's columns.
pub(crate) type Schema = Arc<[(String, Kind)]>;

/// The columns of one row group, built column by column.
pub(crate) struct Columns {
    rows: usize,
    fields: Vec<(String, Kind)>,
    cells: Vec<(Cells, Vec<i16>)>,
}

/// Texts as Parquet byte arrays; a value equal to the one before shares its bytes (model,
/// version and role are the same for long runs of rows, a request id for each of its rows).
fn byte_arrays<'a>(values: impl Iterator<Item = &'a str>) -> Vec<ByteArray> {
    let mut out: Vec<ByteArray> = Vec::with_capacity(values.size_hint().0);
    let mut previous: Option<&str> = None;
    for v in values {
        let same = previous == Some(v);
        match out.last() {
            Some(last) if same => {
                let shared = last.clone();
                out.push(shared);
            }
            _ => out.push(ByteArray::from(v)),
        }
        previous = Some(v);
    }
    out
}

/// Definition levels for values that are all present.
fn all_present(rows: usize) -> Vec<i16> {
    vec![1; rows]
}

/// Definition levels for optional values.
fn levels<T>(values: &[Option<T>]) -> Vec<i16> {
    values.iter().map(|v| i16::from(v.is_some())).collect()
}

impl Columns {
    /// No columns yet, for `rows` rows.
    pub(crate) fn new(rows: usize) -> Self {
        Self {
            rows,
            fields: Vec::new(),
            cells: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, kind: Kind, cells: Cells, defs: Vec<i16>) {
        debug_assert_eq!(defs.len(), self.rows, "column {name}");
        self.fields.push((name.to_string(), kind));
        self.cells.push((cells, defs));
    }

    /// A text column with a value in every row.
    pub(crate) fn text<S: AsRef<str>>(&mut self, name: &str, values: &[S]) {
        let bytes = byte_arrays(values.iter().map(AsRef::as_ref));
        self.push(
            name,
            Kind::Text,
            Cells::Bytes(bytes),
            all_present(values.len()),
        );
    }

    /// A text column with missing values.
    pub(crate) fn optional_text<S: AsRef<str>>(&mut self, name: &str, values: &[Option<S>]) {
        let bytes = byte_arrays(values.iter().flatten().map(AsRef::as_ref));
        self.push(name, Kind::Text, Cells::Bytes(bytes), levels(values));
    }

    /// A 64-bit integer column.
    pub(crate) fn int64(&mut self, name: &str, values: Vec<i64>) {
        let defs = all_present(values.len());
        self.push(name, Kind::Int64, Cells::Int64(values), defs);
    }

    /// A time column: milliseconds since the epoch, UTC.
    pub(crate) fn time_ms(&mut self, name: &str, values: Vec<i64>) {
        let defs = all_present(values.len());
        self.push(name, Kind::TimeMs, Cells::Int64(values), defs);
    }

    /// A float column with a value in every row.
    pub(crate) fn float64(&mut self, name: &str, values: Vec<f64>) {
        let defs = all_present(values.len());
        self.push(name, Kind::Float64, Cells::Float64(values), defs);
    }

    /// A float column with missing values.
    pub(crate) fn optional_float64(&mut self, name: &str, values: &[Option<f64>]) {
        let present = values.iter().flatten().copied().collect();
        self.push(name, Kind::Float64, Cells::Float64(present), levels(values));
    }

    /// The columns' names and types.
    pub(crate) fn schema(&self) -> Schema {
        self.fields.clone().into()
    }
}

/// The Parquet schema of a file's columns: each optional, with its logical type.
fn parquet_schema(schema: &Schema) -> Result<TypePtr, ParquetError> {
    let fields = schema
        .iter()
        .map(|(name, kind)| {
            let (physical, logical) = match kind {
                Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
                Kind::Int64 => (Physical::INT64, None),
                Kind::TimeMs => (
                    Physical::INT64,
                    Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
                ),
                Kind::Float64 => (Physical::DOUBLE, None),
            };
            Type::primitive_type_builder(name, physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(
        Type::group_type_builder("schema")
            .with_fields(fields)
            .build()?,
    ))
}

/// The Arrow schema of a file's columns, as Arrow readers should see them.
fn arrow_schema(schema: &Schema) -> ArrowSchema {
    ArrowSchema::new(
        schema
            .iter()
            .map(|(name, kind)| {
                let dtype = match kind {
                    Kind::Text => ArrowType::Utf8,
                    Kind::Int64 => ArrowType::Int64,
                    Kind::TimeMs => ArrowType::Timestamp(
                        arrow_schema::TimeUnit::Millisecond,
                        Some("UTC".into()),
                    ),
                    Kind::Float64 => ArrowType::Float64,
                };
                ArrowField::new(name, dtype, true)
            })
            .collect::<Vec<_>>(),
    )
}

/// zstd-compressed pages with min/max and null-count statistics per column chunk,
/// plain-encoded (the log's columns are either unique per row or compress to nothing), and
/// `metadata` as the file's key-value metadata.
fn properties(metadata: Option<Vec<KeyValue>>) -> WriterPropertiesPtr {
    Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(Default::default()))
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true)
            .set_created_by(format!("keel {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(metadata)
            .build(),
    )
}

/// The key-value metadata of a file of `schema`: its encoded Arrow schema.
fn arrow_metadata(schema: &Schema) -> Option<Vec<KeyValue>> {
    Some(vec![KeyValue::new(
        "ARROW:schema".to_string(),
        encode_arrow_schema(&arrow_schema(schema)),
    )])
}

/// A Parquet file being written row group by row group, each staged as a Parquet file of its
/// own until the file is finished.
pub(crate) struct ParquetFile {
    schema: Schema,
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
    pub(crate) fn create(dir: &Path, schema: Schema) -> Result<Self, String> {
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
        *self.schema == *columns.fields
    }

    /// Writes the columns as one row group (they must [fit](Self::fits)): a Parquet file in the
    /// staging folder, in place once whole.
    pub(crate) fn write(&mut self, columns: Columns) -> Result<(), String> {
        let rows = columns.rows;
        let group = self
            .staging
            .join(format!("{:06}{GROUP_SUFFIX}", self.groups));
        write_parquet(&group, &self.schema, columns, Vec::new())?;
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

/// Writes `columns` as a whole file of one row group at `path`, replacing any file there, with
/// `metadata` beside the Arrow schema in its key-value metadata (see [`write_parquet`]).
pub(crate) fn write_file(
    path: &Path,
    columns: Columns,
    metadata: Vec<KeyValue>,
) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    write_parquet(path, &columns.schema(), columns, metadata)
}

/// Writes `columns` as a whole Parquet file of one row group at `path` (under a hidden name
/// first, moved into place once written), with `extra` key-value metadata. Not synced: the
/// page cache holds it through a process crash, and finished files are synced.
fn write_parquet(
    path: &Path,
    schema: &Schema,
    columns: Columns,
    extra: Vec<KeyValue>,
) -> Result<(), String> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", tmp.display());
    let file = File::create(&tmp).map_err(|e| failed(&e))?;
    let written = (|| {
        let mut metadata = arrow_metadata(schema).unwrap_or_default();
        metadata.extend(extra);
        let props = properties(Some(metadata));
        let mut writer = SerializedFileWriter::new(file, parquet_schema(schema)?, props)?;
        let mut group = writer.next_row_group()?;
        for (cells, defs) in &columns.cells {
            let mut column = group
                .next_column()?
                .ok_or_else(|| ParquetError::General("more columns than the schema".into()))?;
            match (column.untyped(), cells) {
                (ColumnWriter::ByteArrayColumnWriter(w), Cells::Bytes(v)) => {
                    w.write_batch(v, Some(defs), None)?;
                }
                (ColumnWriter::Int64ColumnWriter(w), Cells::Int64(v)) => {
                    w.write_batch(v, Some(defs), None)?;
                }
                (ColumnWriter::DoubleColumnWriter(w), Cells::Float64(v)) => {
                    w.write_batch(v, Some(defs), None)?;
                }
                _ => {
                    return Err(ParquetError::General(
                        "a column's values are not its type".into(),
                    ));
                }
            }
            column.close()?;
        }
        group.close()?;
        writer.into_inner()?;
        Ok(())
    })()
    .map_err(|e: ParquetError| failed(&e))
    .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| failed(&e)));
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

/// A staged row group file, opened, and its footer.
struct Group {
    file: File,
    meta: ParquetMetaData,
}

/// Opens a group file and reads its footer, checking that every column chunk it lists lies
/// within the file (a file an operating-system crash cut short fails one or the other).
fn read_group(path: &Path) -> Result<Group, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let meta = ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| format!("its footer cannot be read: {e}"))?;
    for rg in meta.row_groups() {
        for column in rg.columns() {
            let (start, size) = column.byte_range();
            if start.checked_add(size).is_none_or(|end| end > len) {
                return Err("its column chunks lie outside the file".into());
            }
        }
    }
    Ok(Group { file, meta })
}

/// Copies the row groups staged in `staging` (in the order they were written) into one Parquet
/// file at `target`, written in the staging folder, synced, then moved into place: the column
/// chunks' bytes are copied as they are and one footer lists them all. Unreadable group files
/// are left out and counted.
fn combine(staging: &Path, target: &Path) -> Result<Combined, String> {
    let failed = |e: &dyn std::fmt::Display| format!("{}: {e}", target.display());
    let mut names: Vec<PathBuf> = std::fs::read_dir(staging)
        .map_err(|e| failed(&e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == &GROUP_SUFFIX[1..]))
        .collect();
    names.sort();
    let tmp = staging.join("combined.tmp");
    let mut combined = Combined::default();
    let mut out: Option<SerializedFileWriter<File>> = None;
    for name in &names {
        let group = match read_group(name).and_then(|g| {
            let same_schema = out
                .as_ref()
                .is_none_or(|w| w.schema_descr().root_schema() == g.meta.file_metadata().schema());
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
        let writer = match &mut out {
            Some(w) => w,
            None => {
                let file = File::create(&tmp).map_err(|e| failed(&e))?;
                // The finished file keeps the groups' schema and key-value metadata (their
                // Arrow schema).
                let meta = group.meta.file_metadata();
                let schema = meta.schema_descr().root_schema_ptr();
                let props = properties(meta.key_value_metadata().cloned());
                out.insert(SerializedFileWriter::new(file, schema, props).map_err(|e| failed(&e))?)
            }
        };
        for rg in group.meta.row_groups() {
            let mut rg_out = writer.next_row_group().map_err(|e| failed(&e))?;
            for column in rg.columns() {
                let close = ColumnCloseResult {
                    bytes_written: u64::try_from(column.compressed_size()).unwrap_or(0),
                    rows_written: u64::try_from(rg.num_rows()).unwrap_or(0),
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: None,
                    offset_index: None,
                };
                rg_out
                    .append_column(&group.file, close)
                    .map_err(|e| failed(&e))?;
            }
            rg_out.close().map_err(|e| failed(&e))?;
            combined.rows += usize::try_from(rg.num_rows()).unwrap_or(0);
        }
    }
    let Some(writer) = out else {
        return Ok(combined);
    };
    writer
        .into_inner()
        .map_err(|e| failed(&e))?
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
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::*;

    /// A column's name, physical type and logical type.
    type ColumnType = (String, Physical, Option<LogicalType>);

    /// A file's columns and its rows.
    fn read_back(path: &Path) -> (Vec<ColumnType>, Vec<Vec<Field>>) {
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        let schema = reader.metadata().file_metadata().schema_descr();
        let columns = schema
            .columns()
            .iter()
            .map(|c| {
                (
                    c.name().to_string(),
                    c.physical_type(),
                    c.logical_type_ref().cloned(),
                )
            })
            .collect();
        let rows = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect();
        (columns, rows)
    }

    #[test]
    fn files_read_back_with_the_logs_types_and_nulls() {
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
        let mut renamed = Columns::new(1);
        renamed.text("id", &["r"]);
        renamed.float64("row", vec![1.0]);
        assert!(!file.fits(&renamed), "same names, another type");
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
        let (types, rows) = read_back(&path);
        let utc_ms = Some(LogicalType::timestamp(true, TimeUnit::MILLIS));
        let text = Some(LogicalType::String);
        assert_eq!(
            types,
            vec![
                ("id".into(), Physical::BYTE_ARRAY, text.clone()),
                ("row".into(), Physical::INT64, None),
                ("time".into(), Physical::INT64, utc_ms),
                ("latency_ms".into(), Physical::DOUBLE, None),
                ("in_x".into(), Physical::DOUBLE, None),
                ("in_t".into(), Physical::BYTE_ARRAY, text),
            ]
        );
        assert_eq!(rows.len(), 7);
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert_eq!(kv.len(), 1);
        assert_eq!(kv[0].key, "ARROW:schema");
        let schema = parquet::arrow::parquet_to_arrow_schema(
            reader.metadata().file_metadata().schema_descr(),
            Some(kv),
        )
        .unwrap();
        assert_eq!(schema, arrow_schema(&columns(1).schema()));
        // Rows 0..4 are the first row group, 4..7 the second.
        let column = |i: usize| rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
        let (a, none) = (Field::Str("a".into()), Field::Null);
        assert_eq!(
            column(5),
            vec![
                a.clone(),
                none.clone(),
                none.clone(),
                a.clone(),
                a,
                none.clone(),
                none.clone()
            ]
        );
        let x = column(4);
        assert_eq!(
            (&x[0], &x[1], &x[6]),
            (&Field::Double(0.0), &none, &Field::Double(2.0))
        );
        assert_eq!(x.iter().filter(|f| **f == Field::Null).count(), 3);
        assert_eq!(
            (&column(0)[3], &column(0)[4]),
            (&Field::Str("r3".into()), &Field::Str("r0".into()))
        );
        assert_eq!(column(2)[0], Field::TimestampMillis(1_796_221_800_000));
        assert_eq!(column(1)[6], Field::Long(2));
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
        read_back(path)
            .1
            .iter()
            .map(|r| match r[1] {
                Field::Long(v) => v,
                ref f => panic!("row is {f:?}"),
            })
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
