//! Reading a window of the prediction log: the finished files of a model's hours that overlap
//! the window, and the logged rows of one version in it, profiled as one table whose columns
//! are named as the model names its inputs (`in_` dropped) and outputs (`out_...` kept).

use std::path::{Path, PathBuf};

use keel_core::predlog::{INPUT_PREFIX, OUTPUT_PREFIX, PREDICTIONS, is_log_file, model_partition};
use keel_data::Format;
use keel_data::profile::{Sample, Table, profile_planned};
use polars::prelude::*;

use crate::error::{MonitorError, Result};
use crate::window::{Window, hour_start};

/// The finished files of `model`'s predictions in hours that overlap `window`, oldest hour
/// first (none when the model has no log).
pub fn prediction_files(log_dir: &Path, model: &str, window: &Window) -> Result<Vec<PathBuf>> {
    let dir = log_dir.join(PREDICTIONS).join(model_partition(model));
    hour_files(&dir, &|start| window.overlaps_hour(start))
}

/// The finished log files in the `hour=...` folders under `dir` whose start `keep` accepts,
/// oldest hour first (none when `dir` does not exist).
pub(crate) fn hour_files(dir: &Path, keep: &dyn Fn(i64) -> bool) -> Result<Vec<PathBuf>> {
    let hours = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io(dir, source)),
    };
    let mut found = Vec::new();
    for hour in hours {
        let hour = hour.map_err(|e| io(dir, e))?;
        let Some(start) = hour_start(&hour.file_name().to_string_lossy()) else {
            continue;
        };
        if !keep(start) {
            continue;
        }
        for file in std::fs::read_dir(hour.path()).map_err(|e| io(&hour.path(), e))? {
            let file = file.map_err(|e| io(&hour.path(), e))?;
            if is_log_file(&file.file_name().to_string_lossy()) {
                found.push((start, file.path()));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> MonitorError {
    MonitorError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Which logged rows a check reads.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The registered model's name.
    pub model: String,
    /// Only this version's rows (every version's when none).
    pub version: Option<String>,
    /// Only rows logged in this window.
    pub window: Window,
}

impl Selection {
    /// `NAME` or `NAME/VERSION`, for messages.
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{}/{v}", self.model),
            None => self.model.clone(),
        }
    }

    pub(crate) fn rows(&self) -> Expr {
        let t = col("time").dt().timestamp(TimeUnit::Milliseconds);
        let mut keep = t
            .clone()
            .gt_eq(lit(self.window.since_ms))
            .and(t.lt(lit(self.window.until_ms)));
        if let Some(v) = &self.version {
            keep = keep.and(col("version").eq(lit(v.clone())));
        }
        keep
    }
}

/// The logged rows a check read, profiled, with each column's values for drift tests.
#[derive(Debug, Clone)]
pub struct Current {
    /// Rows, schema and profile; inputs named as the model names them, outputs `out_...`.
    pub table: Table,
    /// Each column's values (see [`Sample`]).
    pub samples: Vec<Sample>,
    /// The log files holding the rows.
    pub paths: Vec<PathBuf>,
    /// How many log files held the rows.
    pub files: usize,
    /// When the first of the rows was logged (ms since the epoch).
    pub first_ms: i64,
    /// When the last of them was.
    pub last_ms: i64,
    /// Read from the hourly sketches: the rows of the merged sample numeric columns were
    /// compared through (see [`crate::sketch`]); `None` when every row was read.
    pub sampled_rows: Option<u64>,
}

impl Current {
    /// The columns read, named as in [`Current::table`].
    pub fn columns(&self) -> Vec<String> {
        self.table
            .schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }
}

/// Reads the rows `sel` selects from the log under `log_dir`. Fails with
/// [`MonitorError::NoRows`] when there are none, and with [`MonitorError::MissingColumn`]
/// when files holding the selected rows were logged with different columns.
pub fn current(log_dir: &Path, sel: &Selection) -> Result<Current> {
    let no_rows = || MonitorError::NoRows {
        model: sel.label(),
        window: sel.window.to_string(),
    };
    // Files without a selected row are left out: another version's rows may have been logged
    // with other columns.
    let mut kept: Vec<(PathBuf, Vec<String>)> = Vec::new();
    let (mut first_ms, mut last_ms) = (i64::MAX, i64::MIN);
    for path in prediction_files(log_dir, &sel.model, &sel.window)? {
        let mut lf = scan(&path).map_err(|e| unreadable(&path, e))?;
        let schema = lf.collect_schema().map_err(|e| unreadable(&path, e))?;
        let t = col("time").dt().timestamp(TimeUnit::Milliseconds);
        let span = lf
            .filter(sel.rows())
            .select([t.clone().min().alias("first"), t.max().alias("last")])
            .collect()
            .map_err(|e| unreadable(&path, e))?;
        let ms = |name: &str| -> Option<i64> { span.column(name).ok()?.i64().ok()?.get(0) };
        let (Some(first), Some(last)) = (ms("first"), ms("last")) else {
            continue;
        };
        first_ms = first_ms.min(first);
        last_ms = last_ms.max(last);
        let logged = schema
            .iter_names()
            .map(|n| n.to_string())
            .filter(|n| n.starts_with(INPUT_PREFIX) || n.starts_with(OUTPUT_PREFIX))
            .collect();
        kept.push((path, logged));
    }
    let Some((_, columns)) = kept.first() else {
        return Err(no_rows());
    };
    let columns = columns.clone();
    for (path, logged) in &kept[1..] {
        if let Some(missing) = columns.iter().find(|c| !logged.contains(c)) {
            return Err(MonitorError::MissingColumn {
                column: model_name(missing).to_string(),
                file: path.display().to_string(),
            });
        }
    }
    let keep = sel.rows();
    let projection: Vec<Expr> = columns
        .iter()
        .map(|c| col(c.as_str()).alias(model_name(c)))
        .collect();
    let plan = move |lf: LazyFrame| Ok(lf.filter(keep.clone()).select(projection.clone()));
    let paths: Vec<&Path> = kept.iter().map(|(p, _)| p.as_path()).collect();
    let (table, samples) = profile_planned(Format::Parquet, &paths, &plan)?;
    if table.row_count == 0 {
        return Err(no_rows());
    }
    Ok(Current {
        table,
        samples,
        files: kept.len(),
        paths: kept.into_iter().map(|(p, _)| p).collect(),
        first_ms,
        last_ms,
        sampled_rows: None,
    })
}

/// The window holding the newest `n` logged rows of `model` (of `version` alone when given),
/// from the oldest of them to just after the newest. Rows logged in the same millisecond as
/// the oldest of the `n` are in it too, so a window may hold a few more than `n` (a request's
/// rows share their time). Reads only the `time` (and `version`) columns of the newest hours.
pub fn newest_rows(log_dir: &Path, model: &str, version: Option<&str>, n: usize) -> Result<Window> {
    if n == 0 {
        return Err(MonitorError::Invalid(
            "--last must be at least 1 row".into(),
        ));
    }
    let label = match version {
        Some(v) => format!("{model}/{v}"),
        None => model.to_string(),
    };
    let everything = Window::new(i64::MIN, i64::MAX)?;
    let files = prediction_files(log_dir, model, &everything)?;
    // Files are sorted by hour; every row of an hour's files is newer than any of the hours
    // before it, so whole hours are read, newest first, until they hold `n` rows.
    let mut times: Vec<i64> = Vec::new();
    let mut by_hour: Vec<(Option<i64>, Vec<&PathBuf>)> = Vec::new();
    for path in &files {
        let hour = path
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|h| hour_start(&h.to_string_lossy()));
        match by_hour.last_mut() {
            Some((h, group)) if *h == hour => group.push(path),
            _ => by_hour.push((hour, vec![path])),
        }
    }
    for (_, group) in by_hour.iter().rev() {
        for path in group {
            let mut lf = scan(path).map_err(|e| unreadable(path, e))?;
            if let Some(v) = version {
                lf = lf.filter(col("version").eq(lit(v.to_string())));
            }
            let df = lf
                .select([col("time").dt().timestamp(TimeUnit::Milliseconds)])
                .collect()
                .map_err(|e| unreadable(path, e))?;
            let t = df
                .column("time")
                .and_then(|c| c.i64().cloned())
                .map_err(|e| unreadable(path, e))?;
            times.extend(t.iter().flatten());
        }
        if times.len() >= n {
            break;
        }
    }
    let Some(&newest) = times.iter().max() else {
        return Err(MonitorError::NoRows {
            model: label,
            window: "the log".into(),
        });
    };
    times.sort_unstable_by(|a, b| b.cmp(a));
    let oldest = times[n.min(times.len()) - 1];
    Window::new(oldest, newest.saturating_add(1))
}

/// A logged column's name as the model knows it: `in_age` -> `age`; outputs keep `out_`.
pub fn model_name(logged: &str) -> &str {
    logged.strip_prefix(INPUT_PREFIX).unwrap_or(logged)
}

pub(crate) fn scan(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::from(path.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
}

pub(crate) fn unreadable(path: &Path, e: PolarsError) -> MonitorError {
    let msg = e.to_string();
    MonitorError::Data(keel_data::DataError::content(
        path,
        format!(
            "cannot be read as a prediction log file: {}",
            msg.lines().next().unwrap_or("").trim()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift;
    use keel_core::predlog::HOUR_MS;

    /// 2026-12-02T14:00:00Z.
    const H14: i64 = 1_796_220_000_000;

    /// A log file as `keel serve` writes it: `rows` rows of `version` from the start of `hour`
    /// one second apart, `x` uniform on [shift, shift + 1), `color` cycling red/green/blue.
    fn write_part(
        dir: &Path,
        hour: &str,
        name: &str,
        version: &str,
        rows: usize,
        shift: f64,
        with_color: bool,
    ) {
        let start = hour_start(&format!("hour={hour}")).unwrap();
        let folder = dir
            .join("predictions/model=churn")
            .join(format!("hour={hour}"));
        std::fs::create_dir_all(&folder).unwrap();
        let n = rows;
        let time = Series::new(
            "time".into(),
            (0..n).map(|i| start + 1000 * i as i64).collect::<Vec<_>>(),
        )
        .cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))
        .unwrap();
        let mut cols = vec![
            Column::new(
                "request_id".into(),
                (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>(),
            ),
            Column::new("row".into(), vec![0i64; n]),
            time.into(),
            Column::new("model".into(), vec!["churn"; n]),
            Column::new("version".into(), vec![version; n]),
            Column::new("role".into(), vec!["primary"; n]),
            Column::new("latency_ms".into(), vec![1.5f64; n]),
            Column::new(
                "in_x".into(),
                (0..n)
                    .map(|i| shift + ((i * 7919) % 1000) as f64 / 1000.0)
                    .collect::<Vec<_>>(),
            ),
        ];
        if with_color {
            cols.push(Column::new(
                "in_color".into(),
                (0..n)
                    .map(|i| ["red", "green", "blue"][i % 3])
                    .collect::<Vec<_>>(),
            ));
        }
        if version == "2" {
            cols.push(Column::new("in_new".into(), vec![1.0f64; n]));
        }
        cols.push(Column::new(
            "out_prediction".into(),
            (0..n).map(|i| (i % 2) as f64).collect::<Vec<_>>(),
        ));
        let mut df = DataFrame::new(n, cols).unwrap();
        let f = std::fs::File::create(folder.join(name)).unwrap();
        ParquetWriter::new(f).finish(&mut df).unwrap();
    }

    fn sel(version: &str, since: i64, until: i64) -> Selection {
        Selection {
            model: "churn".into(),
            version: Some(version.into()),
            window: Window::new(since, until).unwrap(),
        }
    }

    #[test]
    fn a_window_reads_one_versions_rows_named_as_the_model_names_them() {
        let d = tempfile::tempdir().unwrap();
        write_part(
            d.path(),
            "2026-12-02T14",
            "part-1-a.parquet",
            "1",
            600,
            0.0,
            true,
        );
        write_part(
            d.path(),
            "2026-12-02T14",
            "part-2-b.parquet",
            "2",
            300,
            0.0,
            true,
        );
        write_part(
            d.path(),
            "2026-12-02T15",
            "part-3-c.parquet",
            "1",
            400,
            0.0,
            true,
        );
        write_part(
            d.path(),
            "2026-12-02T17",
            "part-4-d.parquet",
            "1",
            50,
            0.0,
            true,
        );
        // An unfinished file and a stray folder are not read.
        std::fs::write(
            d.path()
                .join("predictions/model=churn/hour=2026-12-02T14/.part-9.staging"),
            b"x",
        )
        .unwrap();
        std::fs::create_dir_all(d.path().join("predictions/model=churn/tmp")).unwrap();

        let w = Window::new(H14, H14 + 2 * HOUR_MS).unwrap();
        assert_eq!(prediction_files(d.path(), "churn", &w).unwrap().len(), 3);
        assert!(prediction_files(d.path(), "other", &w).unwrap().is_empty());

        let c = current(d.path(), &sel("1", H14, H14 + 2 * HOUR_MS)).unwrap();
        assert_eq!(c.table.row_count, 1000);
        assert_eq!(c.files, 2);
        let names: Vec<&str> = c
            .table
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["x", "color", "out_prediction"]);

        // The window's end is exclusive: rows from H14 + 300 s on are left out.
        let c = current(d.path(), &sel("1", H14, H14 + 300_000)).unwrap();
        assert_eq!(c.table.row_count, 300);
        // Version 2 was logged with one more input.
        let c = current(d.path(), &sel("2", H14, H14 + HOUR_MS)).unwrap();
        assert_eq!(c.table.row_count, 300);
        assert!(c.table.schema.columns.iter().any(|c| c.name == "new"));
    }

    #[test]
    fn no_rows_and_missing_columns_name_what_is_wrong() {
        let d = tempfile::tempdir().unwrap();
        write_part(
            d.path(),
            "2026-12-02T14",
            "part-1-a.parquet",
            "1",
            10,
            0.0,
            true,
        );
        let e = current(d.path(), &sel("1", H14 + HOUR_MS, H14 + 2 * HOUR_MS)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no logged predictions of churn/1 in 2026-12-02T15:00:00.000Z .. 2026-12-02T16:00:00.000Z"
        );
        assert!(matches!(
            current(d.path(), &sel("7", H14, H14 + HOUR_MS)),
            Err(MonitorError::NoRows { .. })
        ));

        write_part(
            d.path(),
            "2026-12-02T15",
            "part-2-b.parquet",
            "1",
            10,
            0.0,
            false,
        );
        let e = current(d.path(), &sel("1", H14, H14 + 2 * HOUR_MS))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("column 'color' is not in the prediction log ("),
            "{e}"
        );
        assert!(e.contains("part-2-b.parquet"), "{e}");
    }

    #[test]
    fn drift_is_found_in_the_moved_column_only() {
        let d = tempfile::tempdir().unwrap();
        write_part(
            d.path(),
            "2026-12-02T14",
            "part-1-a.parquet",
            "1",
            2000,
            0.0,
            true,
        );
        write_part(
            d.path(),
            "2026-12-02T15",
            "part-2-b.parquet",
            "1",
            2000,
            0.5,
            true,
        );
        // The reference: what the model was trained on, with its label.
        let n = 3000;
        let mut df = DataFrame::new(
            n,
            vec![
                Column::new(
                    "x".into(),
                    (0..n)
                        .map(|i| ((i * 7919) % 1000) as f64 / 1000.0)
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "color".into(),
                    (0..n)
                        .map(|i| ["red", "green", "blue"][i % 3])
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "label".into(),
                    (0..n).map(|i| (i % 2) as i64).collect::<Vec<_>>(),
                ),
            ],
        )
        .unwrap();
        let reference = d.path().join("reference.parquet");
        ParquetWriter::new(std::fs::File::create(&reference).unwrap())
            .finish(&mut df)
            .unwrap();
        let (rt, rs) =
            keel_data::profile::profile_with_samples(Format::Parquet, &[reference.as_path()])
                .unwrap();

        let same = current(d.path(), &sel("1", H14, H14 + HOUR_MS)).unwrap();
        let r = drift::check(
            (&rt, &rs),
            (&same.table, &same.samples),
            drift::DEFAULT_DRIFT_SHARE,
        )
        .unwrap();
        assert_eq!((r.reference_rows, r.current_rows), (3000, 2000));
        assert_eq!(r.not_logged, ["label"]);
        assert_eq!(r.not_in_reference, ["out_prediction"]);
        assert_eq!(r.drifted, 0);
        assert!(!r.dataset_drifted);

        let moved = current(d.path(), &sel("1", H14 + HOUR_MS, H14 + 2 * HOUR_MS)).unwrap();
        let r = drift::check((&rt, &rs), (&moved.table, &moved.samples), 0.5).unwrap();
        let by_name = |n: &str| {
            r.columns
                .iter()
                .find(|c| c.column == n)
                .unwrap()
                .drift
                .clone()
                .unwrap()
        };
        assert!(by_name("x").drifted);
        assert!(!by_name("color").drifted);
        assert_eq!((r.drifted, r.share), (1, 0.5));
        assert!(r.dataset_drifted);
        let r = drift::check((&rt, &rs), (&moved.table, &moved.samples), 0.6).unwrap();
        assert!(!r.dataset_drifted);
        assert!(drift::check((&rt, &rs), (&moved.table, &moved.samples), 0.0).is_err());
    }
}
