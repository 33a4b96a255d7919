//! The prediction log's hourly sketches: what `keel serve` keeps of each model's hour beside
//! the log so a check over a long window reads kilobytes, not the rows.
//!
//! ```text
//! DIR/sketches/model=NAME/hour=2026-12-02T14/part-<writer id>.parquet
//! ```
//!
//! One file per writer (a serving process) and hour, rewritten in place each time one of the
//! hour's log files is finished, covering every row written to the hour's files by then (all
//! of them once the hour's last file is finished; rows a crashed process left staged are
//! finished into the log at the next start, but are in no sketch). Per version it holds:
//!
//! - **exact figures** ([`VersionSummary`], JSON in the file's `keel.sketch` metadata): rows,
//!   first and last time, and per column the missing values and, for text, the count of every
//!   category (up to [`MAX_CATEGORIES`] distinct; beyond that the column is marked `capped`);
//! - **a bottom-k row sample**: the logged rows (every column, as in the log, plus
//!   [`HASH_COLUMN`]) whose [`row_hash`] of request id and row index is among the `k` smallest
//!   of the version's hour. The hash depends on the row's identity alone, so the sample does not
//!   depend on arrival order, on how rows were split into files, or on how many replicas served
//!   them: the `k` smallest of a union are the `k` smallest of the parts' `k` smallest.
//!
//! Merging is exact and deterministic: counts add, and the rows kept over several hours are
//! those whose hash is at most the smallest `k`-th hash of any full hour: a uniform sample of
//! every row in those hours (all of them when no hour is full). Same rows, same answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The sketches' folder under the log's root.
pub const SKETCHES: &str = "sketches";
/// The file metadata key holding a sketch's [`Summary`] as JSON.
pub const SUMMARY_KEY: &str = "keel.sketch";
/// The sample's column holding each row's [`row_hash`].
pub const HASH_COLUMN: &str = "row_hash";
/// Rows a version's hour keeps by default.
pub const SAMPLE_ROWS: usize = 1024;
/// Distinct categories a text column counts exactly before it is marked `capped`.
pub const MAX_CATEGORIES: usize = 1_000;

/// A row's place in the bottom-k order: a 63-bit hash (non-negative as an `i64`) of its request
/// id and its index within the request. Stable across releases and machines (FNV-1a, then
/// the SplitMix64 finaliser to spread the bits).
pub fn row_hash(request_id: &str, row: i64) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in request_id.bytes().chain(row.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 1) as i64
}

/// What a sketch file holds beside its sample: the exact figures of each version's rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rows each version's sample keeps at most (`k`).
    pub sample_rows: usize,
    /// By version.
    pub versions: BTreeMap<String, VersionSummary>,
}

/// The exact figures of one version's rows of an hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionSummary {
    /// Rows logged.
    pub rows: u64,
    /// When the first was logged (ms since the epoch).
    pub first_ms: i64,
    /// When the last was.
    pub last_ms: i64,
    /// Per logged column (`in_...`, `out_...`).
    pub columns: BTreeMap<String, ColumnSummary>,
}

/// The exact figures of one column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnSummary {
    /// Whether the column holds text.
    pub text: bool,
    /// Rows without a value (including rows logged before the column appeared).
    pub nulls: u64,
    /// Text columns: each category's count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, u64>,
    /// Whether more than [`MAX_CATEGORIES`] categories were seen (the counts are then partial).
    #[serde(default)]
    pub capped: bool,
}

impl ColumnSummary {
    /// Counts one text value (or a missing one).
    pub fn add_text(&mut self, value: Option<&str>) {
        match value {
            None => self.nulls += 1,
            Some(v) => {
                if let Some(n) = self.categories.get_mut(v) {
                    *n += 1;
                } else if self.categories.len() < MAX_CATEGORIES {
                    self.categories.insert(v.to_string(), 1);
                } else {
                    self.capped = true;
                }
            }
        }
    }

    /// Adds another part's figures.
    pub fn merge(&mut self, other: &ColumnSummary) {
        self.text |= other.text;
        self.nulls += other.nulls;
        self.capped |= other.capped;
        for (k, n) in &other.categories {
            if let Some(m) = self.categories.get_mut(k) {
                *m += n;
            } else if self.categories.len() < MAX_CATEGORIES {
                self.categories.insert(k.clone(), *n);
            } else {
                self.capped = true;
            }
        }
    }
}

impl VersionSummary {
    /// Adds another part's figures; a column only one side logged counts the other side's rows
    /// as missing.
    pub fn merge(&mut self, other: &VersionSummary) {
        if other.rows == 0 {
            return;
        }
        if self.rows == 0 {
            *self = other.clone();
            return;
        }
        for (name, c) in self.columns.iter_mut() {
            if !other.columns.contains_key(name) {
                c.nulls += other.rows;
            }
        }
        for (name, c) in &other.columns {
            let mine = self
                .columns
                .entry(name.clone())
                .or_insert_with(|| ColumnSummary {
                    text: c.text,
                    nulls: self.rows,
                    ..ColumnSummary::default()
                });
            mine.merge(c);
        }
        self.rows += other.rows;
        self.first_ms = self.first_ms.min(other.first_ms);
        self.last_ms = self.last_ms.max(other.last_ms);
    }
}

/// The largest hash a merged sample keeps: given each hour's sample hashes (of the versions
/// read, from every file of the hour) and `k`, the smallest `k`-th smallest hash of a full hour
/// (`i64::MAX` when no hour holds more than `k` rows: every row is kept).
pub fn sample_threshold(hours: &mut [Vec<i64>], k: usize) -> i64 {
    let mut threshold = i64::MAX;
    for hashes in hours.iter_mut() {
        if k > 0 && hashes.len() > k {
            let (_, kth, _) = hashes.select_nth_unstable(k - 1);
            threshold = threshold.min(*kth);
        }
    }
    threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_hashes_are_stable_and_spread() {
        // Fixed values (also computed by an independent implementation of FNV-1a and
        // SplitMix64's finaliser): a release that changed them would change every stored
        // sample.
        assert_eq!(row_hash("req-1", 3), 8_751_336_926_649_096_402);
        assert_eq!(row_hash("a", 0), 2_323_067_162_896_000_229);
        assert_ne!(row_hash("a", 0), row_hash("a", 1));
        assert_ne!(row_hash("a", 1), row_hash("b", 1));
        let hashes: Vec<i64> = (0..10_000).map(|i| row_hash("req", i)).collect();
        assert!(hashes.iter().all(|h| *h >= 0));
        let below_half = hashes.iter().filter(|h| **h < i64::MAX / 2).count();
        assert!((4_800..5_200).contains(&below_half), "{below_half}");
    }

    #[test]
    fn the_threshold_keeps_the_k_smallest_of_the_fullest_hour() {
        let mut hours = vec![vec![5, 1, 9, 3], vec![2, 8], vec![7, 6, 4]];
        // k = 2: hour 1 keeps {1, 3} (threshold 3), hour 3 keeps {4, 6} (6); hour 2 is not full.
        assert_eq!(sample_threshold(&mut hours, 2), 3);
        assert_eq!(sample_threshold(&mut hours, 4), i64::MAX);
    }

    #[test]
    fn summaries_merge_exactly_whatever_the_order() {
        let part = |rows: u64, cats: &[&str], first: i64| {
            let mut c = ColumnSummary {
                text: true,
                ..Default::default()
            };
            for v in cats {
                c.add_text(Some(v));
            }
            for _ in cats.len() as u64..rows {
                c.add_text(None);
            }
            VersionSummary {
                rows,
                first_ms: first,
                last_ms: first + 10,
                columns: [("in_c".to_string(), c)].into(),
            }
        };
        let (a, b) = (part(3, &["x", "y"], 100), part(2, &["x", "x"], 50));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.rows, 5);
        assert_eq!((ab.first_ms, ab.last_ms), (50, 110));
        let c = &ab.columns["in_c"];
        assert_eq!((c.nulls, c.categories["x"], c.categories["y"]), (1, 3, 1));
        // A column one side did not log counts its rows as missing.
        let mut other = part(4, &["z"], 0);
        other
            .columns
            .insert("in_d".into(), ColumnSummary::default());
        ab.merge(&other);
        assert_eq!(ab.columns["in_d"].nulls, 5);
    }
}
