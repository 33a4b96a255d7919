//! The formats keel reads: CSV, Parquet and JSON lines; anything else is versioned as bytes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// A data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One JSON object per line.
    Jsonl,
    /// Bytes keel stores and restores but does not read.
    Binary,
}

impl Format {
    /// Parses `--format`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "binary" => Ok(Format::Binary),
            other => Err(DataError::Invalid(format!(
                "unknown format '{other}': use csv, parquet, jsonl or binary"
            ))),
        }
    }

    /// The format a file's extension suggests (`binary` when it suggests none).
    pub fn from_path(path: &Path) -> Self {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Format::Csv,
            Some("parquet" | "pq") => Format::Parquet,
            Some("jsonl" | "ndjson") => Format::Jsonl,
            _ => Format::Binary,
        }
    }

    /// The format of a folder: the one its files share, else `binary`.
    pub fn of_files<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut seen: Option<Format> = None;
        for p in paths {
            let f = Format::from_path(p);
            match seen {
                None => seen = Some(f),
                Some(s) if s == f => {}
                Some(_) => return Format::Binary,
            }
        }
        seen.unwrap_or(Format::Binary)
    }

    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Jsonl => "jsonl",
            Format::Binary => "binary",
        }
    }

    /// Whether keel reads rows and columns from it.
    pub fn is_tabular(self) -> bool {
        self != Format::Binary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_extensions_and_flags() {
        assert_eq!(Format::from_path(Path::new("a/b.CSV")), Format::Csv);
        assert_eq!(Format::from_path(Path::new("x.ndjson")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("big.bin")), Format::Binary);
        assert_eq!(
            Format::of_files([Path::new("a.csv"), Path::new("b.csv")]),
            Format::Csv
        );
        assert_eq!(
            Format::of_files([Path::new("a.csv"), Path::new("b.parquet")]),
            Format::Binary
        );
        let e = Format::parse("xlsx").expect_err("an error").to_string();
        assert!(e.contains("unknown format 'xlsx'"), "{e}");
    }
}
