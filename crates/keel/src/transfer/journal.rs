//! The resume file of an import: one line per finished item (`run <id>`, `model <id>`),
//! appended and flushed as soon as the item is complete, so an interrupted import knows what it
//! need not copy again.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

pub struct Journal {
    path: PathBuf,
    done: HashSet<String>,
    file: Mutex<std::fs::File>,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path` and reads what it already holds.
    pub fn open(path: &Path) -> Result<Self> {
        let done = match std::fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the import journal {}", path.display()))?;
        Ok(Journal {
            path: path.to_path_buf(),
            done,
            file: Mutex::new(file),
        })
    }

    /// Whether a previous import finished this item.
    pub fn done(&self, kind: &str, id: &str) -> bool {
        self.done.contains(&format!("{kind} {id}"))
    }

    /// Records a finished item durably.
    pub fn record(&self, kind: &str, id: &str) -> Result<()> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("the import journal lock is poisoned"))?;
        writeln!(f, "{kind} {id}")
            .and_then(|_| f.sync_data())
            .with_context(|| format!("cannot write the import journal {}", self.path.display()))
    }
}
