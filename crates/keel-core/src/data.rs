//! Dataset versions: what `keel data add` records about a file or a folder it stored.
//!
//! The bytes are content-addressed in the artifact store (see [`object_path`]); a version
//! names them by hash and carries what was learnt from them (format, size, rows, schema and
//! profile, whose layout `keel-data` defines and versions).

use serde::{Deserialize, Serialize};

use crate::{ArtifactPath, Error, Result};

/// Whether a version holds one file or a folder of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// One file: its hash is the hash of its bytes.
    File,
    /// A folder: its hash is the hash of its manifest (each file's path, hash and size).
    Folder,
}

impl DataKind {
    /// The word stored and shown for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::File => "file",
            DataKind::Folder => "folder",
        }
    }

    /// Parses a stored kind.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "file" => Ok(DataKind::File),
            "folder" => Ok(DataKind::Folder),
            other => Err(Error::invalid(format!("unknown dataset kind '{other}'"))),
        }
    }
}

/// A recorded dataset version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataVersion {
    /// The dataset's name.
    pub name: String,
    /// 1, 2, ... per name.
    pub version: i64,
    /// BLAKE3 of the content (64 hex digits).
    pub hash: String,
    /// File or folder.
    pub kind: DataKind,
    /// `csv`, `parquet`, `jsonl`, or `binary` for bytes keel does not read.
    pub format: String,
    /// Total size in bytes.
    pub size_bytes: i64,
    /// Number of files (1 for a file).
    pub file_count: i64,
    /// Rows, for tabular formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count: Option<i64>,
    /// Column names, types and nullability, for tabular formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// Column statistics, for tabular formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<serde_json::Value>,
    /// Where the data was added from.
    pub source: String,
    /// Who added it.
    pub created_by: String,
    /// When, in milliseconds since the epoch.
    pub creation_time: i64,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// A dataset with its newest version, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// The dataset's name.
    pub name: String,
    /// How many versions it has.
    pub version_count: i64,
    /// When its first version was added.
    pub creation_time: i64,
    /// The newest version.
    pub latest: DataVersion,
}

/// A validation report recorded against a dataset version (`keel data validate NAME@V`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataValidation {
    /// The dataset's name.
    pub name: String,
    /// The version checked.
    pub version: i64,
    /// When, in milliseconds since the epoch.
    pub time: i64,
    /// Who ran the check.
    pub created_by: String,
    /// Whether every rule passed.
    pub passed: bool,
    /// How many rules were checked, and how many failed.
    pub rules: i64,
    pub failed: i64,
    /// The whole report, as `keel data validate --json` prints it.
    pub report: serde_json::Value,
}

impl DataValidation {
    /// A record of `report` (as `keel data validate --json` prints it: `passed`, `failed` and
    /// one entry of `results` per rule) against `name` version `version`, timed by the store.
    pub fn from_report(
        name: &str,
        version: i64,
        created_by: &str,
        report: serde_json::Value,
    ) -> Result<Self> {
        let field = |f: &str| Error::invalid(format!("report.{f} is missing or of the wrong type"));
        let passed = report["passed"].as_bool().ok_or_else(|| field("passed"))?;
        let failed = report["failed"].as_i64().ok_or_else(|| field("failed"))?;
        let rules = report["results"]
            .as_array()
            .ok_or_else(|| field("results"))?
            .len();
        Ok(DataValidation {
            name: name.to_string(),
            version,
            time: 0,
            created_by: created_by.to_string(),
            passed,
            rules: i64::try_from(rules).unwrap_or(i64::MAX),
            failed,
            report,
        })
    }
}

/// The largest report kept (its JSON text).
pub const MAX_VALIDATION_REPORT: usize = 4 << 20;

/// Checks a validation record before it is stored: a valid name and version, counts that
/// agree, and a report of bounded size.
pub fn validate_validation(v: &DataValidation) -> Result<()> {
    validate_name(&v.name)?;
    if v.version < 1 {
        return Err(Error::invalid(format!(
            "version must be a number from 1, got {}",
            v.version
        )));
    }
    if v.rules < 0 || v.failed < 0 || v.failed > v.rules || v.passed != (v.failed == 0) {
        return Err(Error::invalid(format!(
            "a report of {} rules with {} failed cannot have passed={}",
            v.rules, v.failed, v.passed
        )));
    }
    let size = v.report.to_string().len();
    if size > MAX_VALIDATION_REPORT {
        return Err(Error::invalid(format!(
            "the report is {size} bytes; at most {MAX_VALIDATION_REPORT} are kept"
        )));
    }
    Ok(())
}

/// A run that logged a dataset version as an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataUse {
    /// The run.
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// The name the run gave the dataset input.
    pub dataset_name: String,
    /// The input's context tag (`mlflow.data.context`: training, validation, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// One file of a folder version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Path inside the folder, `/`-separated.
    pub path: String,
    /// BLAKE3 of the file.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
}

/// A folder's content: its files sorted by path. Stored as an object of its own (compact
/// JSON); the hash of those bytes is the folder version's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// The files, sorted by path.
    pub files: Vec<ManifestEntry>,
}

/// The manifest layout this version of keel writes and reads.
pub const MANIFEST_FORMAT: &str = "keel.manifest/v1";

impl Manifest {
    /// A manifest of `files` (sorted here).
    pub fn new(mut files: Vec<ManifestEntry>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            format: MANIFEST_FORMAT.into(),
            files,
        }
    }

    /// The canonical bytes: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Total size of the files.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Reads stored manifest bytes, checking the layout and that every path and hash is
    /// well-formed (so restoring cannot write outside its target).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("folder manifest is damaged: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(Error::invalid(format!(
                "folder manifest has format '{}', this keel reads '{MANIFEST_FORMAT}'",
                m.format
            )));
        }
        for f in &m.files {
            validate_hash(&f.hash)?;
            ArtifactPath::parse(&f.path).map_err(|_| {
                Error::invalid(format!("folder manifest names an unsafe path '{}'", f.path))
            })?;
        }
        Ok(m)
    }
}

/// Checks a dataset name: 1-256 characters, letters, digits and `-_.`, not starting with `.`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid dataset name '{name}': use 1-256 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

/// Checks a version before it is recorded: its name, hash, format, and sizes that cannot be
/// negative (a version has at least one file).
pub fn validate_version(v: &DataVersion) -> Result<()> {
    validate_name(&v.name)?;
    validate_hash(&v.hash)?;
    if !matches!(v.format.as_str(), "csv" | "parquet" | "jsonl" | "binary") {
        return Err(Error::invalid(format!(
            "Invalid value for parameter 'format': '{}' (csv, parquet, jsonl or binary)",
            v.format
        )));
    }
    if v.size_bytes < 0 || v.file_count < 1 || v.row_count.is_some_and(|r| r < 0) {
        return Err(Error::invalid(
            "size_bytes, file_count and row_count must be non-negative (file_count at least 1)",
        ));
    }
    Ok(())
}

/// Checks a content hash: 64 lowercase hex digits.
pub fn validate_hash(hash: &str) -> Result<()> {
    if hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid content hash '{hash}': expected 64 lowercase hex digits (BLAKE3)"
        )))
    }
}

/// Hex digits of a content hash that make a version's MLflow dataset digest (MLflow allows
/// digests of at most 36 characters; 32 hex digits are 128 bits of the BLAKE3 hash).
pub const DIGEST_LEN: usize = 32;

/// The MLflow dataset digest that names the version with this content hash (or the digest
/// itself, given one): log a run input with it and the run links to the version.
pub fn digest_of(hash_or_digest: &str) -> Result<&str> {
    let ok = (hash_or_digest.len() == 64 || hash_or_digest.len() == DIGEST_LEN)
        && hash_or_digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(&hash_or_digest[..DIGEST_LEN])
    } else {
        Err(Error::invalid(format!(
            "Invalid content hash or digest '{hash_or_digest}': expected 64 or {DIGEST_LEN} lowercase hex digits"
        )))
    }
}

/// Where the object with this content hash lives in the artifact store:
/// `data/objects/<first 2 hex digits>/<the other 62>`.
pub fn object_path(hash: &str) -> Result<ArtifactPath> {
    validate_hash(hash)?;
    ArtifactPath::parse(&format!("data/objects/{}/{}", &hash[..2], &hash[2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hashes_are_checked() {
        assert!(validate_name("iris_v2.clean").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(257)] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.starts_with("Invalid dataset name"), "{bad}: {e}");
        }
        let h = "ab".repeat(32);
        assert_eq!(
            object_path(&h).unwrap().as_str(),
            format!("data/objects/ab/{}", "ab".repeat(31))
        );
        for bad in ["../../etc/passwd".to_string(), "AB".repeat(32)] {
            let e = object_path(&bad).unwrap_err().to_string();
            assert!(e.contains("expected 64 lowercase hex digits"), "{bad}: {e}");
        }
    }
}
