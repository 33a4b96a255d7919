//! The hourly sketch the writer keeps of each model's rows (see [`keel_core::sketch`] for what
//! it holds and why it merges exactly): exact counts per version and column, and the rows with
//! the `k` smallest [`row_hash`]es, kept as they are logged.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::Path;
use std::sync::Arc;

use keel_core::sketch::{
    ColumnSummary, HASH_COLUMN, SUMMARY_KEY, Summary, VersionSummary, row_hash,
};
use parquet::file::metadata::KeyValue;

use super::{Buffer, Cells};
use crate::logfile::{Columns, write_file};

/// One model's hour, as far as this writer logged it.
pub(super) struct HourSketch {
    k: usize,
    /// Every column logged in the hour, with whether it holds text, in the order seen.
    names: Vec<(String, bool)>,
    index: HashMap<String, usize>,
    versions: BTreeMap<Arc<str>, VersionSketch>,
}

struct VersionSketch {
    rows: u64,
    first_ms: i64,
    last_ms: i64,
    /// By the hour's column index.
    columns: Vec<ColumnSummary>,
    /// The kept rows; the top is the one with the largest hash (the next to go).
    kept: BinaryHeap<Kept>,
}

/// A kept row; ordered by hash, then identity, so ties cannot depend on arrival order.
#[derive(PartialEq)]
struct Kept {
    hash: i64,
    request_id: Arc<str>,
    row: i64,
    time: i64,
    role: &'static str,
    latency: f64,
    /// By the hour's column index (shorter when columns appeared later).
    values: Vec<Cell>,
}

#[derive(PartialEq)]
enum Cell {
    Missing,
    Number(f64),
    Text(String),
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.hash, &self.request_id, self.row).cmp(&(other.hash, &other.request_id, other.row))
    }
}

impl HourSketch {
    /// An empty hour keeping `k` rows per version.
    pub(super) fn new(k: usize) -> Self {
        Self {
            k,
            names: Vec::new(),
            index: HashMap::new(),
            versions: BTreeMap::new(),
        }
    }

    fn slot(&mut self, name: &str, text: bool) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        self.names.push((name.to_string(), text));
        self.index.insert(name.to_string(), self.names.len() - 1);
        for v in self.versions.values_mut() {
            v.columns.push(ColumnSummary {
                text,
                nulls: v.rows,
                ..ColumnSummary::default()
            });
        }
        self.names.len() - 1
    }

    /// Counts a buffer's rows and keeps those among the `k` smallest hashes of their version.
    pub(super) fn add(&mut self, buf: &Buffer) {
        let slots: Vec<usize> = buf
            .cols
            .iter()
            .map(|(name, cells)| self.slot(name, matches!(cells, Cells::Text(_))))
            .collect();
        // Each hour column's buffer column, if the buffer has it.
        let mut source: Vec<Option<usize>> = vec![None; self.names.len()];
        for (j, s) in slots.iter().enumerate() {
            source[*s] = Some(j);
        }
        for r in 0..buf.rows {
            let names = &self.names;
            let v = self
                .versions
                .entry(buf.version[r].clone())
                .or_insert_with(|| VersionSketch {
                    rows: 0,
                    first_ms: i64::MAX,
                    last_ms: i64::MIN,
                    columns: names
                        .iter()
                        .map(|(_, text)| ColumnSummary {
                            text: *text,
                            ..ColumnSummary::default()
                        })
                        .collect(),
                    kept: BinaryHeap::new(),
                });
            v.rows += 1;
            v.first_ms = v.first_ms.min(buf.time[r]);
            v.last_ms = v.last_ms.max(buf.time[r]);
            for (c, summary) in v.columns.iter_mut().enumerate() {
                match source[c].map(|j| &buf.cols[j].1) {
                    Some(Cells::Numbers(x)) if x[r].is_some() => {}
                    Some(Cells::Text(x)) => summary.add_text(x[r].as_deref()),
                    _ => summary.nulls += 1,
                }
            }
            let hash = row_hash(&buf.request_id[r], buf.row[r]);
            let wanted = v.kept.len() < self.k
                || v.kept.peek().is_some_and(|top| {
                    (hash, &buf.request_id[r], buf.row[r]) < (top.hash, &top.request_id, top.row)
                });
            if !wanted {
                continue;
            }
            let values = source
                .iter()
                .map(|j| match j.map(|j| &buf.cols[j].1) {
                    Some(Cells::Numbers(x)) => x[r].map_or(Cell::Missing, Cell::Number),
                    Some(Cells::Text(x)) => x[r].clone().map_or(Cell::Missing, Cell::Text),
                    None => Cell::Missing,
                })
                .collect();
            v.kept.push(Kept {
                hash,
                request_id: buf.request_id[r].clone(),
                row: buf.row[r],
                time: buf.time[r],
                role: buf.role[r],
                latency: buf.latency[r],
                values,
            });
            if v.kept.len() > self.k {
                v.kept.pop();
            }
        }
    }

    /// The exact figures of each version.
    fn summary(&self) -> Summary {
        Summary {
            sample_rows: self.k,
            versions: self
                .versions
                .iter()
                .map(|(version, v)| {
                    let columns = self
                        .names
                        .iter()
                        .zip(&v.columns)
                        .map(|((name, _), c)| (name.clone(), c.clone()))
                        .collect();
                    let summary = VersionSummary {
                        rows: v.rows,
                        first_ms: v.first_ms,
                        last_ms: v.last_ms,
                        columns,
                    };
                    (version.to_string(), summary)
                })
                .collect(),
        }
    }

    /// The kept rows, by version then hash, as log columns with [`HASH_COLUMN`] first.
    fn columns(&self, model: &str) -> Columns {
        let rows: Vec<(&str, &Kept)> = self
            .versions
            .iter()
            .flat_map(|(version, v)| {
                let mut kept: Vec<&Kept> = v.kept.iter().collect();
                kept.sort();
                kept.into_iter().map(move |k| (&**version, k))
            })
            .collect();
        let mut c = Columns::new(rows.len());
        c.int64(HASH_COLUMN, rows.iter().map(|(_, k)| k.hash).collect());
        let ids: Vec<&str> = rows.iter().map(|(_, k)| &*k.request_id).collect();
        c.text("request_id", &ids);
        c.int64("row", rows.iter().map(|(_, k)| k.row).collect());
        c.time_ms("time", rows.iter().map(|(_, k)| k.time).collect());
        c.text("model", &vec![model; rows.len()]);
        let versions: Vec<&str> = rows.iter().map(|(v, _)| *v).collect();
        c.text("version", &versions);
        let roles: Vec<&str> = rows.iter().map(|(_, k)| k.role).collect();
        c.text("role", &roles);
        c.float64("latency_ms", rows.iter().map(|(_, k)| k.latency).collect());
        for (i, (name, text)) in self.names.iter().enumerate() {
            fn cell(k: &Kept, i: usize) -> &Cell {
                k.values.get(i).unwrap_or(&Cell::Missing)
            }
            if *text {
                let values: Vec<Option<&str>> = rows
                    .iter()
                    .map(|(_, k)| match cell(k, i) {
                        Cell::Text(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect();
                c.optional_text(name, &values);
            } else {
                let values: Vec<Option<f64>> = rows
                    .iter()
                    .map(|(_, k)| match cell(k, i) {
                        Cell::Number(x) => Some(*x),
                        _ => None,
                    })
                    .collect();
                c.optional_float64(name, &values);
            }
        }
        c
    }

    /// Writes the sketch to `path`, replacing what was there.
    pub(super) fn write(&self, model: &str, path: &Path) -> Result<(), String> {
        let summary = serde_json::to_string(&self.summary()).map_err(|e| e.to_string())?;
        write_file(
            path,
            self.columns(model),
            vec![KeyValue::new(SUMMARY_KEY.to_string(), summary)],
        )
    }
}
