//! The prediction log: every predicted row (inputs, outputs, model, version, role, latency,
//! request id, time) and every ground-truth record, written off the request path to Parquet
//! files partitioned by model and hour:
//!
//! ```text
//! DIR/predictions/model=NAME/hour=2026-12-02T14/part-<millis>-<uuid>.parquet
//! DIR/feedback/hour=2026-12-02T14/part-<millis>-<uuid>.parquet
//! ```
//!
//! Model workers hand finished batches to one writer thread through a bounded queue and never
//! wait for it. The writer buffers rows per partition and writes a file when a partition holds
//! `flush_rows` rows, every `flush_interval`, and at shutdown. **Drop policy:** when more than
//! `max_pending_rows` rows are waiting to be written (the disk cannot keep up), newer rows are
//! dropped, not queued, and counted in `keel_serve_prediction_log_dropped_rows_total`;
//! predictions are never slowed or refused because of the log.
//!
//! Columns: `request_id`, `row` (the row's index within its request), `time` (UTC, ms),
//! `model`, `version`, `role` (`primary`, `canary`, `shadow` or `pinned`), `latency_ms`, then
//! one `in_<column>` per input column and one `out_<name>` per output (`out_<name>_<k>` for an
//! output with several values per row, `out_<name>_<class>` for class probabilities).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_data::columns::Values;
use keel_onnx::{Data, Value};
use polars::prelude::{
    Column, DataFrame, DataType, IntoColumn, NamedFrom, ParquetWriter, Series, TimeUnit, TimeZone,
};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;

use crate::batch::BatchReport;
use crate::error::ServeError;
use crate::predictor::Feed;

/// Where and how often the log is written.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The log's root folder.
    pub dir: PathBuf,
    /// A partition is written once it holds this many rows.
    pub flush_rows: usize,
    /// Every partition is written at least this often.
    pub flush_interval: Duration,
    /// Rows waiting beyond this are dropped.
    pub max_pending_rows: usize,
}

impl LogConfig {
    /// Defaults for a folder: 50,000 rows or 10 s per file, 500,000 rows pending at most.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            flush_rows: 50_000,
            flush_interval: Duration::from_secs(10),
            max_pending_rows: 500_000,
        }
    }
}

/// One predicted request, as the writer receives it.
struct Entry {
    model: Arc<str>,
    version: Arc<str>,
    role: &'static str,
    request_id: Arc<str>,
    time_ms: i64,
    latency_ms: f64,
    inputs: Vec<(String, Cells)>,
    outputs: Vec<(String, Cells)>,
    rows: usize,
}

/// One column's values for the rows of one request.
enum Cells {
    Numbers(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

/// Ground truth for a logged prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Feedback {
    /// The request the prediction answered.
    pub request_id: String,
    /// The row within the request.
    pub row: i64,
    /// The true value, when a number.
    pub number: Option<f64>,
    /// The true value, when text.
    pub text: Option<String>,
}

#[derive(Deserialize)]
struct FeedbackBody {
    request_id: String,
    #[serde(default)]
    row: Option<i64>,
    ground_truth: serde_json::Value,
}

impl Feedback {
    /// Parses `POST /feedback`: one object or a list of objects, each `{"request_id": ...,
    /// "ground_truth": value}` (with `"row"` for a row other than the first), or
    /// `"ground_truth": [values]` for every row of a request in order.
    pub fn parse(body: &[u8]) -> Result<Vec<Feedback>, ServeError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ServeError::BadRequest(format!("the body is not JSON: {e}")))?;
        let items = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        let mut out = Vec::new();
        for item in items {
            let b: FeedbackBody = serde_json::from_value(item).map_err(|e| {
                ServeError::BadRequest(format!(
                    "feedback needs {{\"request_id\": ..., \"ground_truth\": ...}}: {e}"
                ))
            })?;
            let one = |row: i64, v: &serde_json::Value| -> Result<Feedback, ServeError> {
                let (number, text) = match v {
                    serde_json::Value::Number(n) => (n.as_f64(), None),
                    serde_json::Value::String(s) => (None, Some(s.clone())),
                    serde_json::Value::Bool(b) => (None, Some(b.to_string())),
                    serde_json::Value::Null => (None, None),
                    _ => {
                        return Err(ServeError::BadRequest(
                            "ground_truth must be a number, a string, a boolean or a list of them"
                                .into(),
                        ));
                    }
                };
                Ok(Feedback {
                    request_id: b.request_id.clone(),
                    row,
                    number,
                    text,
                })
            };
            match (&b.ground_truth, b.row) {
                (serde_json::Value::Array(values), None) => {
                    for (i, v) in values.iter().enumerate() {
                        out.push(one(i as i64, v)?);
                    }
                }
                (v, row) => out.push(one(row.unwrap_or(0), v)?),
            }
        }
        if out.is_empty() {
            return Err(ServeError::BadRequest("no feedback records".into()));
        }
        Ok(out)
    }
}

enum Msg {
    Predictions(Vec<Entry>),
    Feedback(Vec<Feedback>),
    Flush(SyncSender<()>),
}

/// The log's handle: cheap to share, never blocks the caller.
pub struct PredictionLog {
    tx: Mutex<Option<SyncSender<Msg>>>,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    dropped: Counter,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl PredictionLog {
    /// Starts the writer thread; `written` and `dropped` count rows.
    pub fn start(config: LogConfig, written: Counter, dropped: Counter) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let (tx, rx) = sync_channel(4096);
        let pending = Arc::new(AtomicUsize::new(0));
        let max_pending = config.max_pending_rows;
        let writer = Writer {
            config,
            pending: pending.clone(),
            written,
            dropped: dropped.clone(),
            buffers: BTreeMap::new(),
            feedback: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            pending,
            max_pending,
            dropped,
            writer: Mutex::new(Some(handle)),
        })
    }

    fn send(&self, msg: Msg, rows: usize) -> bool {
        if self.pending.load(Ordering::Acquire) + rows > self.max_pending {
            return false;
        }
        let Ok(guard) = self.tx.lock() else {
            return false;
        };
        let Some(tx) = guard.as_ref() else {
            return false;
        };
        self.pending.fetch_add(rows, Ordering::AcqRel);
        if tx.try_send(msg).is_err() {
            self.pending.fetch_sub(rows, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Logs a finished batch (called by model workers).
    pub fn record(&self, model: &str, version: &str, ports: &[String], report: &BatchReport<'_>) {
        let (model, version): (Arc<str>, Arc<str>) = (Arc::from(model), Arc::from(version));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let entries: Vec<Entry> = report
            .done
            .iter()
            .map(|d| {
                let rows = d.feed.rows();
                Entry {
                    model: model.clone(),
                    version: version.clone(),
                    role: d.tag.role,
                    request_id: d.tag.request_id.clone(),
                    time_ms: now,
                    latency_ms: Instant::now().duration_since(d.tag.received).as_secs_f64() * 1e3,
                    inputs: input_cells(d.feed, d.tag.columns.as_deref(), ports),
                    outputs: output_cells(&d.output.names, &d.output.values),
                    rows,
                }
            })
            .collect();
        let rows: usize = entries.iter().map(|e| e.rows).sum();
        if rows > 0 && !self.send(Msg::Predictions(entries), rows) {
            self.dropped.inc_by(rows as u64);
        }
    }

    /// Logs ground truth; refused (503) when the writer is too far behind.
    pub fn feedback(&self, records: Vec<Feedback>) -> Result<(), ServeError> {
        let n = records.len();
        if self.send(Msg::Feedback(records), n) {
            Ok(())
        } else {
            Err(ServeError::Unavailable(
                "the prediction log is behind; retry the feedback shortly".into(),
            ))
        }
    }

    /// Writes everything buffered and waits until it is on disk.
    pub fn flush(&self) {
        let (done_tx, done_rx) = sync_channel(1);
        let sent = self
            .tx
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|tx| tx.send(Msg::Flush(done_tx)).is_ok()))
            .unwrap_or(false);
        if sent {
            let _ = done_rx.recv();
        }
    }

    /// Writes everything buffered and stops the writer.
    pub fn close(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

/// The input columns of a request's rows.
fn input_cells(feed: &Feed, columns: Option<&[String]>, ports: &[String]) -> Vec<(String, Cells)> {
    match feed {
        Feed::Columns(c) => c
            .names
            .iter()
            .zip(&c.values)
            .map(|(n, v)| {
                let cells = match v {
                    Values::Numbers(x) => Cells::Numbers(x.clone()),
                    Values::Text(x) => Cells::Text(x.clone()),
                };
                (format!("in_{n}"), cells)
            })
            .collect(),
        Feed::Tensors(ts) => {
            let mut out = Vec::new();
            for (i, t) in ts.iter().enumerate() {
                let port = ports.get(i).cloned().unwrap_or_else(|| format!("input{i}"));
                let (rows, width) = rows_width(&t.shape);
                let names: Vec<String> = match columns {
                    Some(c) if ts.len() == 1 && c.len() == width => c.to_vec(),
                    _ if width == 1 => vec![port.clone()],
                    _ => (0..width).map(|j| format!("{port}_{j}")).collect(),
                };
                for (j, name) in names.into_iter().enumerate() {
                    out.push((format!("in_{name}"), strided(&t.data, rows, width, j)));
                }
            }
            out
        }
    }
}

/// A tensor's rows (its first dimension) and values per row.
fn rows_width(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n, rest @ ..] => (*n, rest.iter().product()),
    }
}

/// Column `j` of a row-major `[rows, width]` block.
fn strided(data: &Data, rows: usize, width: usize, j: usize) -> Cells {
    let at = |i: usize| i * width + j;
    match data {
        Data::Float(v) => Cells::Numbers((0..rows).map(|i| finite(f64::from(v[at(i)]))).collect()),
        Data::Double(v) => Cells::Numbers((0..rows).map(|i| finite(v[at(i)])).collect()),
        Data::Int64(v) => Cells::Numbers((0..rows).map(|i| Some(v[at(i)] as f64)).collect()),
        Data::Int32(v) => Cells::Numbers((0..rows).map(|i| Some(f64::from(v[at(i)]))).collect()),
        Data::Bool(v) => Cells::Text((0..rows).map(|i| Some(v[at(i)].to_string())).collect()),
        Data::String(v) => Cells::Text((0..rows).map(|i| Some(v[at(i)].clone())).collect()),
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The output columns of a request's rows.
fn output_cells(names: &[String], values: &[Value]) -> Vec<(String, Cells)> {
    let mut out = Vec::new();
    for (name, v) in names.iter().zip(values) {
        match v {
            Value::Tensor(t) => {
                let (rows, width) = rows_width(&t.shape);
                if width == 1 {
                    out.push((format!("out_{name}"), strided(&t.data, rows, 1, 0)));
                } else {
                    for j in 0..width {
                        out.push((format!("out_{name}_{j}"), strided(&t.data, rows, width, j)));
                    }
                }
            }
            Value::Maps(m) => {
                let keys = crate::payload::map_keys(&m.keys);
                let rows = m.rows();
                for (k, key) in keys.iter().enumerate() {
                    let col = (0..rows)
                        .map(|i| finite(f64::from(m.values[i * keys.len() + k])))
                        .collect();
                    out.push((format!("out_{name}_{key}"), Cells::Numbers(col)));
                }
            }
        }
    }
    out
}

/// Rows of one partition waiting to be written.
#[derive(Default)]
struct Buffer {
    rows: usize,
    request_id: Vec<String>,
    row: Vec<i64>,
    time: Vec<i64>,
    model: Vec<String>,
    version: Vec<String>,
    role: Vec<&'static str>,
    latency: Vec<f64>,
    columns: BTreeMap<String, Cells>,
    since: Option<Instant>,
}

impl Buffer {
    fn push(&mut self, e: Entry) {
        let before = self.rows;
        for r in 0..e.rows {
            self.request_id.push(e.request_id.to_string());
            self.row.push(r as i64);
            self.time.push(e.time_ms);
            self.model.push(e.model.to_string());
            self.version.push(e.version.to_string());
            self.role.push(e.role);
            self.latency.push(e.latency_ms);
        }
        self.rows += e.rows;
        for (name, cells) in e.inputs.into_iter().chain(e.outputs) {
            let col = self.columns.entry(name).or_insert_with(|| match cells {
                Cells::Numbers(_) => Cells::Numbers(vec![None; before]),
                Cells::Text(_) => Cells::Text(vec![None; before]),
            });
            match (col, cells) {
                (Cells::Numbers(c), Cells::Numbers(v)) => c.extend(v),
                (Cells::Text(c), Cells::Text(v)) => c.extend(v),
                // A column that changes type keeps its first type; the odd values are text.
                (Cells::Text(c), Cells::Numbers(v)) => {
                    c.extend(v.into_iter().map(|x| x.map(|x| x.to_string())))
                }
                (Cells::Numbers(c), Cells::Text(v)) => c.extend(v.iter().map(|_| None)),
            }
        }
        // Columns this entry lacked get nulls.
        for col in self.columns.values_mut() {
            match col {
                Cells::Numbers(c) => c.resize(self.rows, None),
                Cells::Text(c) => c.resize(self.rows, None),
            }
        }
        self.since.get_or_insert_with(Instant::now);
    }

    fn frame(self) -> polars::prelude::PolarsResult<DataFrame> {
        let time = Series::new("time".into(), self.time).cast(&DataType::Datetime(
            TimeUnit::Milliseconds,
            Some(TimeZone::UTC),
        ))?;
        let mut columns: Vec<Column> = vec![
            Column::new("request_id".into(), self.request_id),
            Column::new("row".into(), self.row),
            time.into_column(),
            Column::new("model".into(), self.model),
            Column::new("version".into(), self.version),
            Column::new("role".into(), self.role),
            Column::new("latency_ms".into(), self.latency),
        ];
        for (name, cells) in self.columns {
            columns.push(match cells {
                Cells::Numbers(v) => Column::new(name.into(), v),
                Cells::Text(v) => Column::new(name.into(), v),
            });
        }
        DataFrame::new(self.rows, columns)
    }
}

struct Writer {
    config: LogConfig,
    pending: Arc<AtomicUsize>,
    written: Counter,
    dropped: Counter,
    /// Buffers by (model, hour).
    buffers: BTreeMap<(String, String), Buffer>,
    feedback: Vec<(String, Feedback)>,
}

/// `2026-12-02T14` for a time in ms since the epoch (UTC).
fn hour_of(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3600;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}")
}

/// A partition value safe as a folder name.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Msg::Predictions(entries)) => {
                    for e in entries {
                        let key = (e.model.to_string(), hour_of(e.time_ms));
                        self.buffers.entry(key).or_default().push(e);
                    }
                    self.flush(false);
                }
                Ok(Msg::Feedback(records)) => {
                    let hour = hour_of(now_ms());
                    self.feedback
                        .extend(records.into_iter().map(|r| (hour.clone(), r)));
                    self.flush(false);
                }
                Ok(Msg::Flush(done)) => {
                    self.flush(true);
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => self.flush(false),
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush(true);
                    return;
                }
            }
        }
    }

    /// Writes partitions that are full or old enough (all of them when `all`).
    fn flush(&mut self, all: bool) {
        let due: Vec<(String, String)> = self
            .buffers
            .iter()
            .filter(|(_, b)| {
                all || b.rows >= self.config.flush_rows
                    || b.since
                        .is_some_and(|s| s.elapsed() >= self.config.flush_interval)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(buffer) = self.buffers.remove(&key) else {
                continue;
            };
            let rows = buffer.rows;
            let dir = self
                .config
                .dir
                .join("predictions")
                .join(format!("model={}", safe(&key.0)))
                .join(format!("hour={}", key.1));
            match buffer
                .frame()
                .map_err(|e| e.to_string())
                .and_then(|df| write(&dir, df))
            {
                Ok(()) => {
                    self.written.inc_by(rows as u64);
                }
                Err(e) => {
                    tracing::error!(error = %e, rows, "prediction log: writing a file failed; rows dropped");
                    self.dropped.inc_by(rows as u64);
                }
            }
            self.pending.fetch_sub(
                rows.min(self.pending.load(Ordering::Acquire)),
                Ordering::AcqRel,
            );
        }
        let feedback_due =
            !self.feedback.is_empty() && (all || self.feedback.len() >= self.config.flush_rows);
        if feedback_due {
            let records = std::mem::take(&mut self.feedback);
            let n = records.len();
            let mut by_hour: BTreeMap<String, Vec<Feedback>> = BTreeMap::new();
            for (hour, r) in records {
                by_hour.entry(hour).or_default().push(r);
            }
            for (hour, records) in by_hour {
                let dir = self
                    .config
                    .dir
                    .join("feedback")
                    .join(format!("hour={hour}"));
                let time = now_ms();
                let frame = (|| {
                    let t = Series::new("time".into(), vec![time; records.len()]).cast(
                        &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC)),
                    )?;
                    DataFrame::new(
                        records.len(),
                        vec![
                            Column::new(
                                "request_id".into(),
                                records
                                    .iter()
                                    .map(|r| r.request_id.clone())
                                    .collect::<Vec<_>>(),
                            ),
                            Column::new(
                                "row".into(),
                                records.iter().map(|r| r.row).collect::<Vec<_>>(),
                            ),
                            t.into_column(),
                            Column::new(
                                "truth_number".into(),
                                records.iter().map(|r| r.number).collect::<Vec<_>>(),
                            ),
                            Column::new(
                                "truth_text".into(),
                                records.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
                            ),
                        ],
                    )
                })();
                if let Err(e) = frame
                    .map_err(|e| e.to_string())
                    .and_then(|df| write(&dir, df))
                {
                    tracing::error!(error = %e, "prediction log: writing feedback failed");
                }
            }
            self.pending.fetch_sub(
                n.min(self.pending.load(Ordering::Acquire)),
                Ordering::AcqRel,
            );
        }
    }
}

/// Writes a frame as a new Parquet file in `dir` (written aside, then renamed into place).
fn write(dir: &Path, mut df: DataFrame) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = format!(
        "part-{}-{}.parquet",
        now_ms(),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    ParquetWriter::new(file)
        .finish(&mut df)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(&name)).map_err(|e| format!("{}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_utc_civil_hours() {
        assert_eq!(hour_of(0), "1970-01-01T00");
        // 2026-12-02T14:30:00Z
        assert_eq!(hour_of(1_796_221_800_000), "2026-12-02T14");
        assert_eq!(hour_of(951_782_400_000), "2000-02-29T00");
    }

    #[test]
    fn feedback_takes_one_value_or_one_per_row() {
        let one = Feedback::parse(br#"{"request_id": "r1", "ground_truth": "yes"}"#).unwrap();
        assert_eq!(one[0].text.as_deref(), Some("yes"));
        let many = Feedback::parse(br#"[{"request_id": "r2", "ground_truth": [1, 2.5]}]"#).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!((many[1].row, many[1].number), (1, Some(2.5)));
        assert!(Feedback::parse(br#"{"ground_truth": 1}"#).is_err());
    }
}
