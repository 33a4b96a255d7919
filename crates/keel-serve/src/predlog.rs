//! The prediction log: every predicted row (inputs, outputs, model, version, role, latency,
//! request id, time) and every ground-truth record, written off the request path to Parquet
//! files partitioned by model and hour:
//!
//! ```text
//! DIR/predictions/model=NAME/hour=2026-12-02T14/part-<millis>-<uuid>.parquet
//! DIR/feedback/hour=2026-12-02T14/part-<millis>-<uuid>.parquet
//! ```
//!
//! Model calls hand their finished requests to one writer thread through a bounded queue and
//! never wait for it (nor wake it: it takes what is queued every few milliseconds). The writer
//! buffers rows per partition, writes them as a row group of the partition's open file every
//! `group_rows` rows or `group_interval` (each group lands on disk whole as soon as it is written,
//! so a process crash loses only rows not yet in a group; see [`crate::logfile`]), and finishes
//! the file (moving it into place, readable) once it holds `flush_rows` rows, every
//! `flush_interval`, and at shutdown. Ground truth is written the same way. At start, the writer
//! finishes the files a stopped process left unfinished. **Drop policy:** when more than
//! `max_pending_rows` rows are waiting to be written (the disk cannot keep up), newer rows are
//! dropped, not queued, and counted in `keel_serve_prediction_log_dropped_rows_total`;
//! predictions are never slowed or refused because of the log.
//!
//! Columns: `request_id`, `row` (the row's index within its request), `time` (UTC, ms),
//! `model`, `version`, `role` (`primary`, `canary`, `shadow` or `pinned`), `latency_ms`, then
//! one `in_<column>` per input column and one `out_<name>` per output (`out_<name>_<k>` for an
//! output with several values per row, `out_<name>_<class>` for class probabilities).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keel_core::table::Values;
use keel_onnx::{Data, Value};
use prometheus_client::metrics::counter::Counter;
use serde::Deserialize;

use crate::batch::{BatchReport, Done};
use crate::error::ServeError;
use crate::logfile::{Columns, ParquetFile, recover};
use crate::payload::Output;
use crate::predictor::Feed;

mod sketch;
use sketch::HourSketch;

/// Where and how often the log is written.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The log's root folder.
    pub dir: PathBuf,
    /// Rows buffered per partition before they are written out as one row group.
    pub group_rows: usize,
    /// Rows are written out as a row group at most this long after the first of them arrived.
    pub group_interval: Duration,
    /// A file is finished once it holds this many rows.
    pub flush_rows: usize,
    /// Every file is finished at most this long after its first row arrived.
    pub flush_interval: Duration,
    /// Rows waiting beyond this are dropped.
    pub max_pending_rows: usize,
    /// Rows each version's hourly sketch keeps (see [`keel_core::sketch`]); 0 keeps no sketch.
    pub sketch_rows: usize,
}

/// How long a file collects rows by default before it is finished.
pub const FILE_INTERVAL: Duration = Duration::from_secs(10);

impl LogConfig {
    /// Defaults for a folder: row groups of 4,096 rows or 1 s, files of at most 10 s or
    /// 1,000,000 rows, 500,000 rows pending at most.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            group_rows: 4096,
            group_interval: Duration::from_secs(1),
            flush_rows: 1_000_000,
            flush_interval: FILE_INTERVAL,
            max_pending_rows: 500_000,
            sketch_rows: keel_core::sketch::SAMPLE_ROWS,
        }
    }
}

/// One model call's answered requests, as the writer receives them (moved out of the batch,
/// not copied) and appends them to its columns.
struct Logged {
    model: Arc<str>,
    version: Arc<str>,
    ports: Arc<[String]>,
    time_ms: i64,
    /// Each request with its latency in milliseconds.
    done: Vec<(Done, f64)>,
}

/// One column being assembled for a file.
enum Cells {
    Numbers(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl Cells {
    fn len(&self) -> usize {
        match self {
            Self::Numbers(v) => v.len(),
            Self::Text(v) => v.len(),
        }
    }

    /// A column missing from the first `rows` rows, with room for `capacity`.
    fn missing(text: bool, rows: usize, capacity: usize) -> Self {
        fn nones<T: Clone>(rows: usize, capacity: usize) -> Vec<Option<T>> {
            let mut v = Vec::with_capacity(capacity.max(rows));
            v.resize(rows, None);
            v
        }
        if text {
            Self::Text(nones(rows, capacity))
        } else {
            Self::Numbers(nones(rows, capacity))
        }
    }

    fn pad(&mut self, rows: usize) {
        match self {
            Self::Numbers(v) => v.resize(rows, None),
            Self::Text(v) => v.resize(rows, None),
        }
    }
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
            if b.request_id.trim().is_empty() {
                return Err(ServeError::BadRequest(
                    "feedback needs the request_id of the prediction it is about (the x-request-id header of the answer)".into(),
                ));
            }
            if b.row.is_some_and(|r| r < 0) {
                return Err(ServeError::BadRequest(format!(
                    "row must be 0 or more, not {}",
                    b.row.unwrap_or_default()
                )));
            }
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
    Predictions(Logged),
    Feedback(Vec<Feedback>),
    Failure(Failure),
    Flush(SyncSender<()>),
}

/// A prediction request answered with an error, as the log keeps it (one row in
/// `errors/model=NAME/hour=.../`), so error rates per version come from the log like the rest.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The request's id.
    pub request_id: String,
    /// When it was answered (ms since the epoch).
    pub time_ms: i64,
    /// The served model's name.
    pub model: String,
    /// The version that answered.
    pub version: String,
    /// `primary`, `canary`, `shadow` or `pinned`.
    pub role: &'static str,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// What went wrong, in one line.
    pub error: String,
    /// Time from its arrival to its answer.
    pub latency_ms: f64,
}

/// The log's handle: cheap to share, never blocks the caller.
pub struct PredictionLog {
    tx: Mutex<Option<SyncSender<Msg>>>,
    pending: Arc<AtomicUsize>,
    max_pending: usize,
    dropped: Counter,
    writer: Mutex<Option<JoinHandle<()>>>,
    writer_thread: Thread,
    recent: RecentRequests,
}

/// How many of the latest requests' row counts the log remembers to check feedback against.
pub const RECENT_REQUESTS: usize = 65_536;

/// Ways of each bucket of [`RecentRequests`]: one 64-byte cache line of entries.
const WAYS: usize = 8;

/// The row counts of the latest requests, by a hash of their id, without a lock (the request
/// path only stores one word): a table of 4 x [`RECENT_REQUESTS`] entries (2 MiB) in buckets
/// of [`WAYS`], each bucket overwriting its oldest entry. An entry holds the id hash's upper 32
/// bits and the row count. A request is forgotten once [`WAYS`] later ones fell in its bucket:
/// [`RECENT_REQUESTS`] later requests put 2 in a bucket on average, so the request that many
/// requests ago is still known with probability 0.999 (Poisson, at most 7 of them), a more
/// recent one more surely. Feedback naming a remembered request is checked against its rows;
/// other requests (older, or answered by another replica) are not known here, and their
/// feedback is recorded and counted as unmatched.
struct RecentRequests {
    entries: Box<[AtomicU64]>,
    /// Per bucket, the way written next.
    next: Box<[AtomicU8]>,
}

impl Default for RecentRequests {
    fn default() -> Self {
        let buckets = 4 * RECENT_REQUESTS / WAYS;
        Self {
            entries: (0..buckets * WAYS).map(|_| AtomicU64::new(0)).collect(),
            next: (0..buckets).map(|_| AtomicU8::new(0)).collect(),
        }
    }
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id)
}

impl RecentRequests {
    /// The bucket of an id's hash, and the entry tag (never 0, which marks an empty entry).
    fn place(&self, id: &str) -> (usize, u64) {
        let h = id_hash(id);
        let bucket = (h as usize) % self.next.len();
        (bucket, (h >> 32).max(1) << 32)
    }

    fn remember(&self, id: &str, n: usize) {
        let (bucket, tag) = self.place(id);
        let rows = u64::from(u32::try_from(n).unwrap_or(u32::MAX));
        let way = usize::from(self.next[bucket].fetch_add(1, Ordering::Relaxed)) % WAYS;
        self.entries[bucket * WAYS + way].store(tag | rows, Ordering::Relaxed);
    }

    fn rows(&self, id: &str) -> Option<u32> {
        let (bucket, tag) = self.place(id);
        let newest = usize::from(self.next[bucket].load(Ordering::Relaxed));
        // From the newest entry back, so a request id sent again counts its latest rows.
        (1..=WAYS)
            .map(|k| {
                self.entries[bucket * WAYS + (newest + WAYS - k) % WAYS].load(Ordering::Relaxed)
            })
            .find(|e| e & !0xFFFF_FFFF == tag)
            .map(|e| (e & 0xFFFF_FFFF) as u32)
    }
}

/// What became of a batch of feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackOutcome {
    /// Records written.
    pub recorded: usize,
    /// Of them, records for a request this server remembers answering.
    pub matched: usize,
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`), or at the lowest
/// priority where that is refused: the log is then written on CPU time no request wants, so
/// encoding a row group (milliseconds of work) never holds a core a request is waiting for. If
/// the cores stay saturated for long, the writer falls behind and the bounded queue drops rows
/// (counted) instead of slowing answers.
fn yield_to_requests() {
    // SAFETY: both calls take plain values and, with 0 as the target, change only the calling
    // thread's scheduling (Linux keeps policy and nice value per thread); a failure leaves it
    // as it was.
    #[cfg(target_os = "linux")]
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

/// How often the writer takes what was queued.
const WRITER_TICK: Duration = Duration::from_millis(20);

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
            partitions: BTreeMap::new(),
            feedback: Vec::new(),
            feedback_since: None,
            feedback_files: BTreeMap::new(),
            failures: Vec::new(),
            failures_since: None,
            failure_files: BTreeMap::new(),
            sketches: BTreeMap::new(),
            sketch_name: format!("part-{}.parquet", uuid::Uuid::new_v4().simple()),
        };
        let handle = std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || {
                yield_to_requests();
                writer.run(rx)
            })?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            pending,
            max_pending,
            dropped,
            writer_thread: handle.thread().clone(),
            writer: Mutex::new(Some(handle)),
            recent: RecentRequests::default(),
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

    /// Logs a finished model call (called after its answers went out).
    pub fn record(
        &self,
        model: &Arc<str>,
        version: &Arc<str>,
        ports: &Arc<[String]>,
        report: BatchReport,
    ) {
        let rows = report.rows;
        if report.done.is_empty() || rows == 0 {
            return;
        }
        let now = Instant::now();
        let done = report
            .done
            .into_iter()
            .map(|d| {
                let latency = now.duration_since(d.tag.received).as_secs_f64() * 1e3;
                (d, latency)
            })
            .collect();
        let logged = Logged {
            model: model.clone(),
            version: version.clone(),
            ports: ports.clone(),
            time_ms: now_ms(),
            done,
        };
        if !self.send(Msg::Predictions(logged), rows) {
            self.dropped.inc_by(rows as u64);
        }
    }

    /// Logs a request answered with an error (dropped, like rows, when the log is behind).
    pub fn failed(&self, failure: Failure) {
        if !self.send(Msg::Failure(failure), 1) {
            self.dropped.inc();
        }
    }

    /// Notes that request `id` is about to be answered with `rows` rows, for checking the
    /// feedback that names it.
    pub fn remember(&self, id: &str, rows: usize) {
        self.recent.remember(id, rows);
    }

    /// Logs ground truth; refused (503) when the writer is too far behind.
    pub fn feedback(&self, records: Vec<Feedback>) -> Result<FeedbackOutcome, ServeError> {
        let n = records.len();
        let mut matched = 0;
        for r in &records {
            if let Some(rows) = self.recent.rows(&r.request_id) {
                if r.row >= i64::from(rows) {
                    return Err(ServeError::BadRequest(format!(
                        "request '{}' had {rows} row{}; feedback for row {} (counting from 0) has no prediction",
                        r.request_id,
                        if rows == 1 { "" } else { "s" },
                        r.row
                    )));
                }
                matched += 1;
            }
        }
        if self.send(Msg::Feedback(records), n) {
            Ok(FeedbackOutcome {
                recorded: n,
                matched,
            })
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
            self.writer_thread.unpark();
            let _ = done_rx.recv();
        }
    }

    /// Writes everything buffered and stops the writer.
    pub fn close(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        self.writer_thread.unpark();
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
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

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Appends column `j` of a row-major `[rows, width]` block to `col`.
fn push_strided(col: &mut Cells, data: &Data, rows: usize, width: usize, j: usize) {
    let at = |i: usize| i * width + j;
    match (col, data) {
        (Cells::Numbers(c), Data::Float(v)) => {
            c.extend((0..rows).map(|i| finite(f64::from(v[at(i)]))))
        }
        (Cells::Numbers(c), Data::Double(v)) => c.extend((0..rows).map(|i| finite(v[at(i)]))),
        (Cells::Numbers(c), Data::Int64(v)) => c.extend((0..rows).map(|i| Some(v[at(i)] as f64))),
        (Cells::Numbers(c), Data::Int32(v)) => {
            c.extend((0..rows).map(|i| Some(f64::from(v[at(i)]))))
        }
        (Cells::Text(c), Data::String(v)) => c.extend((0..rows).map(|i| Some(v[at(i)].clone()))),
        (Cells::Text(c), Data::Bool(v)) => c.extend((0..rows).map(|i| Some(v[at(i)].to_string()))),
        // A column whose type changed keeps its first type: numbers become text, text in a
        // numeric column is left out.
        (Cells::Text(c), Data::Float(v)) => c.extend((0..rows).map(|i| Some(v[at(i)].to_string()))),
        (Cells::Text(c), Data::Double(v)) => {
            c.extend((0..rows).map(|i| Some(v[at(i)].to_string())))
        }
        (Cells::Text(c), Data::Int64(v)) => c.extend((0..rows).map(|i| Some(v[at(i)].to_string()))),
        (Cells::Text(c), Data::Int32(v)) => c.extend((0..rows).map(|i| Some(v[at(i)].to_string()))),
        (Cells::Numbers(c), Data::String(_) | Data::Bool(_)) => c.extend((0..rows).map(|_| None)),
    }
}

fn is_text(data: &Data) -> bool {
    matches!(data, Data::String(_) | Data::Bool(_))
}

/// Where one request's values go: per input and output piece, its column.
#[derive(Clone)]
struct Shape {
    /// Frame columns (names and whether text), or tensor names and widths.
    inputs: Vec<(String, usize, bool)>,
    /// The output names (shared with the model's answers, so compared without copies) and
    /// each output's width and whether it is text.
    output_names: Arc<[String]>,
    outputs: Vec<(usize, bool)>,
    /// The frame's column names for a single `[N, C]` tensor fed from a frame.
    columns: Option<Arc<[String]>>,
    /// Whether the feed was a keel model's columns (else ONNX tensors).
    columnar: bool,
    /// The model's input names (tensor columns are named after them): versions of one model,
    /// logged to the same partition, may name them differently.
    ports: Arc<[String]>,
}

impl Shape {
    fn of(
        feed: &Feed,
        columns: Option<&Arc<[String]>>,
        output: &Output,
        ports: &Arc<[String]>,
    ) -> Self {
        let inputs = match feed {
            Feed::Columns(c) => c
                .names
                .iter()
                .zip(&c.values)
                .map(|(n, v)| (n.clone(), 1, matches!(v, Values::Text(_))))
                .collect(),
            Feed::Tensors(ts) => ts
                .iter()
                .map(|t| (String::new(), rows_width(&t.shape).1, is_text(&t.data)))
                .collect(),
        };
        let outputs = output
            .values
            .iter()
            .map(|v| match v {
                Value::Tensor(t) => (rows_width(&t.shape).1, is_text(&t.data)),
                Value::Maps(m) => (m.keys.len(), false),
            })
            .collect();
        let columns = match feed {
            Feed::Tensors(ts) if ts.len() == 1 => columns.cloned(),
            _ => None,
        };
        Self {
            inputs,
            output_names: output.names.clone(),
            outputs,
            columns,
            columnar: matches!(feed, Feed::Columns(_)),
            ports: ports.clone(),
        }
    }

    /// Whether a request's values have this shape, checked without building another: the
    /// names shared with the model's answers and the frame are compared by pointer first.
    fn matches(
        &self,
        feed: &Feed,
        columns: Option<&Arc<[String]>>,
        output: &Output,
        ports: &Arc<[String]>,
    ) -> bool {
        let inputs = match feed {
            Feed::Columns(c) => {
                self.columnar
                    && c.names.len() == self.inputs.len()
                    && c.names.iter().zip(&c.values).zip(&self.inputs).all(
                        |((n, v), (name, width, text))| {
                            *width == 1 && *text == matches!(v, Values::Text(_)) && n == name
                        },
                    )
            }
            Feed::Tensors(ts) => {
                !self.columnar
                    && ts.len() == self.inputs.len()
                    && ts.iter().zip(&self.inputs).all(|(t, (_, width, text))| {
                        *width == rows_width(&t.shape).1 && *text == is_text(&t.data)
                    })
            }
        };
        let outputs = output.values.len() == self.outputs.len()
            && output
                .values
                .iter()
                .zip(&self.outputs)
                .all(|(v, (width, text))| match v {
                    Value::Tensor(t) => {
                        *width == rows_width(&t.shape).1 && *text == is_text(&t.data)
                    }
                    Value::Maps(m) => *width == m.keys.len() && !*text,
                });
        let same = |a: &Arc<[String]>, b: &Arc<[String]>| Arc::ptr_eq(a, b) || a == b;
        let frame = match feed {
            Feed::Tensors(ts) if ts.len() == 1 => columns,
            _ => None,
        };
        let columns = match (frame, &self.columns) {
            (Some(a), Some(b)) => same(a, b),
            (None, None) => true,
            _ => false,
        };
        inputs
            && outputs
            && columns
            && same(&output.names, &self.output_names)
            && same(ports, &self.ports)
    }

    /// Column names, in the order values are pushed: inputs, then outputs.
    fn names(&self, output: &Output) -> Vec<(String, bool)> {
        let ports = &self.ports;
        let mut out = Vec::new();
        for (i, (name, width, text)) in self.inputs.iter().enumerate() {
            if !name.is_empty() {
                out.push((format!("in_{name}"), *text));
                continue;
            }
            let port = ports.get(i).cloned().unwrap_or_else(|| format!("input{i}"));
            match &self.columns {
                Some(c) if c.len() == *width => {
                    out.extend(c.iter().map(|n| (format!("in_{n}"), *text)));
                }
                _ if *width == 1 => out.push((format!("in_{port}"), *text)),
                _ => out.extend((0..*width).map(|j| (format!("in_{port}_{j}"), *text))),
            }
        }
        let outputs = self.output_names.iter().zip(&self.outputs);
        for ((name, (width, text)), value) in outputs.zip(&output.values) {
            match value {
                Value::Maps(m) => out.extend(
                    crate::payload::map_keys(&m.keys)
                        .into_iter()
                        .map(|k| (format!("out_{name}_{k}"), false)),
                ),
                Value::Tensor(_) if *width == 1 => out.push((format!("out_{name}"), *text)),
                Value::Tensor(_) => {
                    out.extend((0..*width).map(|j| (format!("out_{name}_{j}"), *text)))
                }
            }
        }
        out
    }
}

/// Pushes one request's values into the columns at `slots` (in [`Shape::names`] order).
fn push_request(cols: &mut [(String, Cells)], slots: &[usize], feed: &Feed, output: &Output) {
    // The slots were resolved from this request's shape, so there is one per piece.
    let mut slot = slots.iter().copied();
    match feed {
        Feed::Columns(c) => {
            for v in &c.values {
                let Some(s) = slot.next() else { return };
                match (&mut cols[s].1, v) {
                    (Cells::Numbers(col), Values::Numbers(x)) => {
                        col.extend(x.iter().map(|v| v.and_then(finite)))
                    }
                    (Cells::Text(col), Values::Text(x)) => col.extend(x.iter().cloned()),
                    (Cells::Text(col), Values::Numbers(x)) => {
                        col.extend(x.iter().map(|v| v.map(|v| v.to_string())))
                    }
                    (Cells::Numbers(col), Values::Text(x)) => col.extend(x.iter().map(|_| None)),
                }
            }
        }
        Feed::Tensors(ts) => {
            for t in ts {
                let (rows, width) = rows_width(&t.shape);
                for j in 0..width {
                    let Some(s) = slot.next() else { return };
                    push_strided(&mut cols[s].1, &t.data, rows, width, j);
                }
            }
        }
    }
    for v in &output.values {
        match v {
            Value::Tensor(t) => {
                let (rows, width) = rows_width(&t.shape);
                for j in 0..width {
                    let Some(s) = slot.next() else { return };
                    push_strided(&mut cols[s].1, &t.data, rows, width, j);
                }
            }
            Value::Maps(m) => {
                let (rows, width) = (m.rows(), m.keys.len());
                let data = Data::Float(m.values.clone());
                for j in 0..width {
                    let Some(s) = slot.next() else { return };
                    push_strided(&mut cols[s].1, &data, rows, width, j);
                }
            }
        }
    }
}

/// The rows of one partition waiting to be written, as columns: each model call's requests
/// are appended when the writer takes them and then freed, so what waits is a few numbers per
/// row, not the requests. Column layouts are resolved once per run of requests of the same
/// shape.
#[derive(Default)]
struct Buffer {
    rows: usize,
    request_id: Vec<Arc<str>>,
    row: Vec<i64>,
    time: Vec<i64>,
    model: Vec<Arc<str>>,
    version: Vec<Arc<str>>,
    role: Vec<&'static str>,
    latency: Vec<f64>,
    /// Input and output columns, in the order they first appeared.
    cols: Vec<(String, Cells)>,
    index: HashMap<String, usize>,
    /// The last request shape and the columns its values go to.
    layout: Option<(Shape, Vec<usize>)>,
    /// Rows the buffer is expected to take before it is written (the previous group's), so
    /// its columns are allocated once instead of growing row by row.
    expected: usize,
}

impl Buffer {
    /// An empty buffer expecting `rows` rows.
    fn expecting(rows: usize) -> Self {
        Self {
            expected: rows,
            ..Self::default()
        }
    }

    /// Allocates the per-row columns for the expected rows.
    fn reserve_meta(&mut self) {
        let n = self.expected;
        self.request_id.reserve(n);
        self.row.reserve(n);
        self.time.reserve(n);
        self.model.reserve(n);
        self.version.reserve(n);
        self.role.reserve(n);
        self.latency.reserve(n);
    }

    fn push(&mut self, batch: Logged) {
        for (d, ms) in &batch.done {
            let rows = d.feed.rows();
            if self.rows == 0 {
                self.reserve_meta();
            }
            let known = self.layout.as_ref().is_some_and(|(s, _)| {
                s.matches(&d.feed, d.tag.columns.as_ref(), &d.output, &batch.ports)
            });
            if !known {
                let shape = Shape::of(&d.feed, d.tag.columns.as_ref(), &d.output, &batch.ports);
                let filled = self.rows;
                let capacity = self.expected.max(filled);
                let slots = shape
                    .names(&d.output)
                    .into_iter()
                    .map(|(name, text)| {
                        *self.index.entry(name.clone()).or_insert_with(|| {
                            self.cols
                                .push((name, Cells::missing(text, filled, capacity)));
                            self.cols.len() - 1
                        })
                    })
                    .collect();
                self.layout = Some((shape, slots));
            }
            let (_, slots) = self.layout.as_ref().expect("set above");
            push_request(&mut self.cols, slots, &d.feed, &d.output);
            self.rows += rows;
            for (_, c) in self.cols.iter_mut() {
                if c.len() != self.rows {
                    c.pad(self.rows);
                }
            }
            for r in 0..rows {
                self.request_id.push(d.tag.request_id.clone());
                self.row.push(r as i64);
                self.time.push(batch.time_ms);
                self.model.push(batch.model.clone());
                self.version.push(batch.version.clone());
                self.role.push(d.tag.role);
                self.latency.push(*ms);
            }
        }
    }

    /// The partition's rows as the columns of one row group.
    fn columns(self) -> Columns {
        let mut c = Columns::new(self.rows);
        c.text("request_id", &self.request_id);
        c.int64("row", self.row);
        c.time_ms("time", self.time);
        c.text("model", &self.model);
        c.text("version", &self.version);
        c.text("role", &self.role);
        c.float64("latency_ms", self.latency);
        for (name, cells) in &self.cols {
            match cells {
                Cells::Numbers(v) => c.optional_float64(name, v),
                Cells::Text(v) => c.optional_text(name, v),
            }
        }
        c
    }
}

struct Writer {
    config: LogConfig,
    pending: Arc<AtomicUsize>,
    written: Counter,
    dropped: Counter,
    /// Prediction partitions by (model, hour since the epoch).
    partitions: BTreeMap<(Arc<str>, i64), Partition>,
    feedback: Vec<(String, Feedback)>,
    /// When the oldest unwritten ground-truth record arrived.
    feedback_since: Option<Instant>,
    /// Ground-truth files being written, by hour, with when each was started.
    feedback_files: BTreeMap<String, (ParquetFile, Instant)>,
    /// Failed requests waiting to be written.
    failures: Vec<Failure>,
    /// When the oldest of them arrived.
    failures_since: Option<Instant>,
    /// Failure files being written, by model and hour, with when each was started.
    failure_files: BTreeMap<(String, String), (ParquetFile, Instant)>,
    /// The sketches of the hours being logged, by model and hour since the epoch.
    sketches: BTreeMap<(Arc<str>, i64), HourSketch>,
    /// This writer's sketch file name in each hour's folder.
    sketch_name: String,
}

/// One model's predictions of one hour: rows waiting for the next row group, and the file
/// being written.
#[derive(Default)]
struct Partition {
    pending: Buffer,
    /// When the first of the pending rows arrived.
    pending_since: Option<Instant>,
    file: Option<ParquetFile>,
    /// When the partition's first row since its last file was finished arrived.
    since: Option<Instant>,
}

/// `2026-12-02T14` for a time in ms since the epoch (UTC).
fn hour_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H")
        .to_string()
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const HOUR_MS: i64 = 3_600_000;

impl Writer {
    fn run(mut self, rx: Receiver<Msg>) {
        let recovered = recover(&self.config.dir);
        if recovered.files > 0 || recovered.unreadable > 0 {
            tracing::info!(
                files = recovered.files,
                rows = recovered.rows,
                unreadable_groups = recovered.unreadable,
                "prediction log: finished the files a stopped server left unfinished"
            );
        }
        loop {
            // Senders never wake the writer: it takes what is queued every tick, so a request
            // costs no thread switch (flush and close unpark it at once).
            std::thread::park_timeout(WRITER_TICK);
            loop {
                match rx.try_recv() {
                    Ok(Msg::Predictions(batch)) => {
                        let key = (batch.model.clone(), batch.time_ms.div_euclid(HOUR_MS));
                        let part = self.partitions.entry(key).or_default();
                        part.since.get_or_insert_with(Instant::now);
                        part.pending_since.get_or_insert_with(Instant::now);
                        part.pending.push(batch);
                    }
                    Ok(Msg::Feedback(records)) => {
                        let hour = hour_of(now_ms());
                        self.feedback_since.get_or_insert_with(Instant::now);
                        self.feedback
                            .extend(records.into_iter().map(|r| (hour.clone(), r)));
                    }
                    Ok(Msg::Failure(f)) => {
                        self.failures_since.get_or_insert_with(Instant::now);
                        self.failures.push(f);
                    }
                    Ok(Msg::Flush(done)) => {
                        self.flush(true);
                        let _ = done.send(());
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.flush(true);
                        return;
                    }
                }
            }
            self.flush(false);
        }
    }

    /// Whether rows that started waiting at `since` are due to be written as a row group.
    fn group_due(&self, rows: usize, since: Option<Instant>) -> bool {
        rows >= self.config.group_rows
            || since.is_some_and(|s| s.elapsed() >= self.config.group_interval)
    }

    /// Writes due row groups, and finishes files that are old or large enough (all of them
    /// when `all`).
    fn flush(&mut self, all: bool) {
        let keys: Vec<(Arc<str>, i64)> = self.partitions.keys().cloned().collect();
        for key in keys {
            let Some(mut part) = self.partitions.remove(&key) else {
                continue;
            };
            let file_rows = part.file.as_ref().map_or(0, |f| f.rows);
            let closing = all
                || part
                    .since
                    .is_some_and(|s| s.elapsed() >= self.config.flush_interval)
                || file_rows + part.pending.rows >= self.config.flush_rows;
            if part.pending.rows > 0
                && (closing || self.group_due(part.pending.rows, part.pending_since))
            {
                self.write_group(&key, &mut part);
            }
            if closing {
                if let Some(file) = part.file.take() {
                    finish(file);
                    self.write_sketch(&key);
                }
                part.since = None;
            }
            if part.pending.rows > 0 || part.file.is_some() {
                self.partitions.insert(key, part);
            }
        }
        // An hour's sketch is dropped once the hour is over and its rows are written.
        let hour = now_ms().div_euclid(HOUR_MS);
        let partitions = &self.partitions;
        self.sketches
            .retain(|key, _| key.1 >= hour - 1 || partitions.contains_key(key));
        self.flush_feedback(all);
        self.flush_failures(all);
    }

    /// Rewrites a model's hour sketch (once one of the hour's files is finished, so it covers
    /// the finished files' rows).
    fn write_sketch(&self, key: &(Arc<str>, i64)) {
        let Some(sketch) = self.sketches.get(key) else {
            return;
        };
        let path = self
            .config
            .dir
            .join(keel_core::sketch::SKETCHES)
            .join(keel_core::predlog::model_partition(&key.0))
            .join(format!("hour={}", hour_of(key.1 * HOUR_MS)))
            .join(&self.sketch_name);
        if let Err(e) = sketch.write(&key.0, &path) {
            tracing::error!(error = %e, "prediction log: writing an hour's sketch failed; checks from sketches will miss its rows until the next file is finished");
        }
    }

    /// Writes buffered failures as row groups of each model's hour file once due (all of them
    /// when `all`), and finishes the files that are old enough (all of them when `all`).
    fn flush_failures(&mut self, all: bool) {
        if !self.failures.is_empty()
            && (all || self.group_due(self.failures.len(), self.failures_since))
        {
            self.failures_since = None;
            let mut by_file: BTreeMap<(String, String), Vec<Failure>> = BTreeMap::new();
            for f in std::mem::take(&mut self.failures) {
                by_file
                    .entry((f.model.clone(), hour_of(f.time_ms)))
                    .or_default()
                    .push(f);
            }
            for (key, records) in by_file {
                let rows = records.len();
                let mut columns = Columns::new(rows);
                let text = |get: fn(&Failure) -> &str| records.iter().map(get).collect::<Vec<_>>();
                columns.text("request_id", &text(|f| f.request_id.as_str()));
                columns.time_ms("time", records.iter().map(|f| f.time_ms).collect());
                columns.text("model", &text(|f| f.model.as_str()));
                columns.text("version", &text(|f| f.version.as_str()));
                columns.text("role", &text(|f| f.role));
                columns.int64(
                    "status",
                    records.iter().map(|f| i64::from(f.status)).collect(),
                );
                columns.text("error", &text(|f| f.error.as_str()));
                columns.float64("latency_ms", records.iter().map(|f| f.latency_ms).collect());
                let file = match self.failure_files.entry(key) {
                    Entry::Occupied(o) => Ok(&mut o.into_mut().0),
                    Entry::Vacant(v) => {
                        let (model, hour) = v.key();
                        let dir = self
                            .config
                            .dir
                            .join(keel_core::predlog::ERRORS)
                            .join(keel_core::predlog::model_partition(model))
                            .join(format!("hour={hour}"));
                        ParquetFile::create(&dir, columns.schema())
                            .map(|f| &mut v.insert((f, Instant::now())).0)
                    }
                };
                let result = file.and_then(|f| f.write(columns));
                self.settle(rows, result);
            }
        }
        finish_old(&mut self.failure_files, self.config.flush_interval, all);
    }

    /// Writes a partition's pending rows as one row group of its file (starting a new file
    /// when there is none or the columns changed).
    fn write_group(&mut self, key: &(Arc<str>, i64), part: &mut Partition) {
        // The next group is expected to be about as large (a tick's rows more at most).
        let expected = part.pending.rows + part.pending.rows / 4;
        let buffer = std::mem::replace(&mut part.pending, Buffer::expecting(expected));
        part.pending_since = None;
        if self.config.sketch_rows > 0 {
            self.sketches
                .entry(key.clone())
                .or_insert_with(|| HourSketch::new(self.config.sketch_rows))
                .add(&buffer);
        }
        let rows = buffer.rows;
        let dir = self
            .config
            .dir
            .join("predictions")
            .join(keel_core::predlog::model_partition(&key.0))
            .join(format!("hour={}", hour_of(key.1 * HOUR_MS)));
        let columns = buffer.columns();
        if part.file.as_ref().is_some_and(|f| !f.fits(&columns))
            && let Some(previous) = part.file.take()
        {
            finish(previous);
            self.write_sketch(key);
        }
        let result = match part.file.as_mut() {
            Some(f) => Ok(f),
            None => ParquetFile::create(&dir, columns.schema()).map(|f| part.file.insert(f)),
        }
        .and_then(|file| file.write(columns));
        self.settle(rows, result);
    }

    /// Counts `rows` written, or dropped when writing them failed; they no longer wait.
    fn settle(&self, rows: usize, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.written.inc_by(rows as u64);
            }
            Err(e) => {
                tracing::error!(error = %e, rows, "prediction log: writing rows failed; they are dropped");
                self.dropped.inc_by(rows as u64);
            }
        }
        self.pending.fetch_sub(
            rows.min(self.pending.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
    }

    /// Writes buffered ground truth as row groups of each hour's file once due (all of it
    /// when `all`), and finishes the files that are old enough (all of them when `all`).
    fn flush_feedback(&mut self, all: bool) {
        if !self.feedback.is_empty()
            && (all || self.group_due(self.feedback.len(), self.feedback_since))
        {
            self.feedback_since = None;
            let mut by_hour: BTreeMap<String, Vec<Feedback>> = BTreeMap::new();
            for (hour, r) in std::mem::take(&mut self.feedback) {
                by_hour.entry(hour).or_default().push(r);
            }
            for (hour, records) in by_hour {
                let rows = records.len();
                let mut columns = Columns::new(rows);
                let ids: Vec<&str> = records.iter().map(|r| r.request_id.as_str()).collect();
                columns.text("request_id", &ids);
                columns.int64("row", records.iter().map(|r| r.row).collect());
                columns.time_ms("time", vec![now_ms(); rows]);
                let numbers: Vec<Option<f64>> = records.iter().map(|r| r.number).collect();
                columns.optional_float64("truth_number", &numbers);
                let texts: Vec<Option<&str>> = records.iter().map(|r| r.text.as_deref()).collect();
                columns.optional_text("truth_text", &texts);
                let file = match self.feedback_files.entry(hour) {
                    Entry::Occupied(o) => Ok(&mut o.into_mut().0),
                    Entry::Vacant(v) => {
                        let dir = self
                            .config
                            .dir
                            .join("feedback")
                            .join(format!("hour={}", v.key()));
                        ParquetFile::create(&dir, columns.schema())
                            .map(|f| &mut v.insert((f, Instant::now())).0)
                    }
                };
                let result = file.and_then(|f| f.write(columns));
                self.settle(rows, result);
            }
        }
        finish_old(&mut self.feedback_files, self.config.flush_interval, all);
    }
}

/// Finishes the files started at least `interval` ago (all of them when `all`).
fn finish_old<K: Ord + Clone>(
    files: &mut BTreeMap<K, (ParquetFile, Instant)>,
    interval: Duration,
    all: bool,
) {
    let done: Vec<K> = files
        .iter()
        .filter(|(_, (_, started))| all || started.elapsed() >= interval)
        .map(|(key, _)| key.clone())
        .collect();
    for key in done {
        if let Some((file, _)) = files.remove(&key) {
            finish(file);
        }
    }
}

/// Finishes a file; when that fails, its row groups stay staged for the next start to finish.
fn finish(file: ParquetFile) {
    let rows = file.rows;
    if let Err(e) = file.finish() {
        tracing::error!(error = %e, rows, "prediction log: finishing a file failed; its row groups stay staged and are finished at the next start");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A log with the default settings in `dir`.
    fn log_in(dir: &Path) -> PredictionLog {
        PredictionLog::start(
            LogConfig::new(dir.to_path_buf()),
            Counter::default(),
            Counter::default(),
        )
        .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_thread_runs_in_the_idle_scheduling_class() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(dir.path());
        // The thread sets its class before it takes its first message: once a flush is
        // answered, it has.
        log.flush();
        let policy = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| t.ok())
            .find(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "prediction-log")
            })
            .and_then(|t| std::fs::read_to_string(t.path().join("stat")).ok())
            // After the parenthesised name, field 41 of stat ("policy") is the 39th.
            .and_then(|stat| {
                let rest = stat.rsplit_once(')')?.1;
                rest.split_whitespace().nth(38)?.parse::<i32>().ok()
            });
        log.close();
        assert_eq!(policy, Some(libc::SCHED_IDLE));
    }

    #[test]
    fn the_latest_requests_row_counts_are_remembered() {
        let recent = RecentRequests::default();
        for i in 0..RECENT_REQUESTS {
            recent.remember(&format!("req-{i}"), i % 7 + 1);
        }
        let known = (0..RECENT_REQUESTS)
            .filter(|i| recent.rows(&format!("req-{i}")) == Some((i % 7 + 1) as u32))
            .count();
        // Nearly all (the oldest forgotten with probability 0.001), and the newest half all.
        assert!(known > RECENT_REQUESTS - 100, "{known}");
        assert!(
            (RECENT_REQUESTS / 2..RECENT_REQUESTS)
                .all(|i| recent.rows(&format!("req-{i}")).is_some())
        );
        assert_eq!(recent.rows("never sent"), None);
        // An id sent again counts its latest rows.
        recent.remember("req-1", 40);
        assert_eq!(recent.rows("req-1"), Some(40));
    }

    #[test]
    fn hours_are_utc_civil_hours() {
        assert_eq!(hour_of(0), "1970-01-01T00");
        // 2026-12-02T14:30:00Z
        assert_eq!(hour_of(1_796_221_800_000), "2026-12-02T14");
        assert_eq!(hour_of(951_782_400_000), "2000-02-29T00");
    }

    fn call(id: &str, rows: usize, width: usize) -> BatchReport {
        let feed = Feed::Tensors(vec![
            keel_onnx::Tensor::new(
                vec![rows, width],
                Data::Float((0..rows * width).map(|v| v as f32).collect()),
            )
            .unwrap(),
        ]);
        let output = Output {
            names: vec!["label".to_string()].into(),
            values: vec![Value::Tensor(
                keel_onnx::Tensor::new(vec![rows], Data::Int64(vec![1; rows])).unwrap(),
            )],
            layout: crate::payload::Layout::ByInput,
        };
        let tag = crate::batch::JobTag {
            request_id: Arc::from(id),
            received: Instant::now(),
            columns: None,
            role: "primary",
        };
        BatchReport {
            done: vec![Done {
                feed,
                output: Arc::new(output),
                tag,
            }],
            rows,
            elapsed: Duration::ZERO,
            failed: 0,
        }
    }

    fn parquet_files(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path);
                }
            }
        }
        found
    }

    #[test]
    fn rows_stream_out_in_row_groups_and_files_finish_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LogConfig::new(dir.path().to_path_buf());
        config.group_rows = 3;
        config.flush_interval = Duration::from_secs(3600);
        config.sketch_rows = 4;
        let written = Counter::default();
        let log = PredictionLog::start(config, written.clone(), Counter::default()).unwrap();
        let ports: Arc<[String]> = Arc::from(vec!["x".to_string()]);
        let predictions = dir.path().join("predictions");
        let parquet = || -> Vec<PathBuf> {
            parquet_files(&predictions)
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .collect()
        };
        let written_out = || {
            for _ in 0..500 {
                if log.pending.load(Ordering::Acquire) == 0 {
                    return;
                }
                std::thread::sleep(WRITER_TICK);
            }
            panic!("rows still pending");
        };
        for i in 0..6 {
            log.record(
                &"m".into(),
                &"1".into(),
                &ports,
                call(&format!("r{i}"), 3, 2),
            );
            std::thread::sleep(WRITER_TICK);
        }
        written_out();
        // Every row is out of memory in row groups, but the file is not finished yet.
        assert!(parquet().is_empty(), "{:?}", parquet_files(dir.path()));
        // A request with other columns finishes that file and starts another.
        log.record(&"m".into(), &"1".into(), &ports, call("wide", 3, 5));
        written_out();
        assert_eq!(parquet().len(), 1);
        log.close();
        assert_eq!(written.get(), 21);
        let files = parquet_files(&predictions);
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(
            files
                .iter()
                .all(|p| p.extension().is_some_and(|e| e == "parquet"))
        );
        let mut rows = 0;
        for f in files {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
            let meta = reader.metadata();
            let height = meta.file_metadata().num_rows() as usize;
            rows += height;
            let width = meta
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .filter(|c| c.name().starts_with("in_"))
                .count();
            match height {
                18 => assert_eq!(width, 2),
                3 => assert_eq!(width, 5),
                h => panic!("a file of {h} rows"),
            }
        }
        assert_eq!(rows, 21);

        // The hour's sketch: one file, rewritten as files finished, counting all 21 rows and
        // keeping the 4 whose hashes of request id and row are smallest.
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::RowAccessor;
        let sketches = parquet_files(&dir.path().join(keel_core::sketch::SKETCHES));
        assert_eq!(sketches.len(), 1, "{sketches:?}");
        let reader = SerializedFileReader::new(std::fs::File::open(&sketches[0]).unwrap()).unwrap();
        let meta = reader.metadata().file_metadata();
        let text = meta
            .key_value_metadata()
            .unwrap()
            .iter()
            .find(|kv| kv.key == keel_core::sketch::SUMMARY_KEY)
            .and_then(|kv| kv.value.clone())
            .unwrap();
        let summary: keel_core::sketch::Summary = serde_json::from_str(&text).unwrap();
        let v = &summary.versions["1"];
        assert_eq!((summary.sample_rows, v.rows), (4, 21));
        // Columns only the wide request had count the other 18 rows as missing.
        let nulls: Vec<u64> = v.columns.values().map(|c| c.nulls).collect();
        assert_eq!(nulls.iter().filter(|n| **n == 0).count(), 3, "{nulls:?}");
        assert_eq!(nulls.iter().filter(|n| **n == 18).count(), 3, "{nulls:?}");
        let kept: Vec<i64> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().get_long(0).unwrap())
            .collect();
        let mut all: Vec<i64> = (0..6)
            .flat_map(|i| (0..3).map(move |r| keel_core::sketch::row_hash(&format!("r{i}"), r)))
            .chain((0..3).map(|r| keel_core::sketch::row_hash("wide", r)))
            .collect();
        all.sort();
        assert_eq!(kept, all[..4]);
    }

    #[test]
    fn versions_naming_their_inputs_differently_log_their_own_columns() {
        let dir = tempfile::tempdir().unwrap();
        let log = log_in(dir.path());
        let (x, y): (Arc<[String]>, Arc<[String]>) = (
            Arc::from(vec!["x".to_string()]),
            Arc::from(vec!["y".to_string()]),
        );
        log.record(&"m".into(), &"1".into(), &x, call("a", 2, 2));
        log.record(&"m".into(), &"2".into(), &y, call("b", 2, 2));
        log.record(&"m".into(), &"1".into(), &x, call("c", 2, 2));
        log.close();
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut logged = std::collections::BTreeMap::new();
        for f in parquet_files(&dir.path().join("predictions")) {
            let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
            let meta = reader.metadata().file_metadata();
            let inputs: Vec<String> = meta
                .schema_descr()
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .filter(|n| n.starts_with("in_"))
                .collect();
            for row in reader.get_row_iter(None).unwrap() {
                let row = row.unwrap();
                for (name, value) in row.get_column_iter() {
                    if name.starts_with("in_") && *value != parquet::record::Field::Null {
                        *logged.entry(name.clone()).or_insert(0) += 1;
                    }
                }
            }
            assert!(!inputs.is_empty());
        }
        // Version 1's 4 rows under x, version 2's 2 rows under y.
        let expected: std::collections::BTreeMap<String, i32> = [
            ("in_x_0".to_string(), 4),
            ("in_x_1".to_string(), 4),
            ("in_y_0".to_string(), 2),
            ("in_y_1".to_string(), 2),
        ]
        .into();
        assert_eq!(logged, expected);
    }

    #[test]
    fn feedback_takes_one_value_or_one_per_row() {
        let one = Feedback::parse(br#"{"request_id": "r1", "ground_truth": "yes"}"#).unwrap();
        assert_eq!(one[0].text.as_deref(), Some("yes"));
        let many = Feedback::parse(br#"[{"request_id": "r2", "ground_truth": [1, 2.5]}]"#).unwrap();
        assert_eq!(many.len(), 2);
        assert_eq!((many[1].row, many[1].number), (1, Some(2.5)));
        {
            let e = Feedback::parse(br#"{"ground_truth": 1}"#)
                .expect_err("an error")
                .to_string();
            assert!(e.contains("missing field `request_id`"), "{e}");
        }
    }
}
