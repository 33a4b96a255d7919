//! The audit log: every write to the metadata store, who made it, from where, and the state of
//! what it changed before and after, in entries chained by hash.
//!
//! Entry `n` carries the hash of entry `n - 1` and its own hash over both, so an entry changed
//! or deleted after the fact breaks the chain at that point, and the store's head (the last
//! sequence number and hash) tells when entries were cut off the end. [`verify`] walks the chain;
//! a head recorded elsewhere (`keel audit verify` prints it) also catches a chain rewritten
//! whole.
//!
//! Who is writing travels with the task that writes: the server wraps each request in
//! [`scope`] with its [`Context`], the CLI wraps its command, and the store reads [`current`]
//! when it appends the entry inside the write's own transaction.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// The hash of the entry before the first.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who writes, from where and why: the request or command a write belongs to.
#[derive(Debug, Default)]
pub struct Context {
    /// The user (`anonymous` until a server asking who calls knows; the OS user for the CLI).
    actor: Mutex<String>,
    /// Where from: the client's address, or `cli@HOST`.
    pub source: String,
    /// What was asked: `POST /api/2.0/mlflow/registered-models/alias`, or the command line.
    pub action: String,
    /// The request's parameters, secrets masked and long lists counted ([`summarize`]).
    pub request: Option<Value>,
    /// Entries written for this context so far.
    written: AtomicU32,
}

impl Context {
    /// A context for `actor` acting from `source` by `action`.
    pub fn new(
        actor: impl Into<String>,
        source: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Context {
            actor: Mutex::new(actor.into()),
            source: source.into(),
            action: action.into(),
            request: None,
            written: AtomicU32::new(0),
        }
    }

    /// This context with the request's parameters.
    pub fn with_request(mut self, request: Option<Value>) -> Self {
        self.request = request;
        self
    }

    /// Who writes.
    pub fn actor(&self) -> String {
        self.actor.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Names who writes, once the server knows who calls.
    pub fn set_actor(&self, actor: &str) {
        if let Ok(mut a) = self.actor.lock() {
            *a = actor.to_string();
        }
    }

    /// Counts an entry written for this context.
    pub fn wrote(&self) {
        self.written.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries written for this context so far.
    pub fn written(&self) -> u32 {
        self.written.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    static CURRENT: Arc<Context>;
}

static PROCESS: OnceLock<Arc<Context>> = OnceLock::new();

/// Runs `f` with `ctx` as the context of the writes it makes.
pub async fn scope<F: std::future::Future>(ctx: Arc<Context>, f: F) -> F::Output {
    CURRENT.scope(ctx, f).await
}

/// Sets the context of writes made outside any [`scope`] (a CLI command's spawned tasks, say);
/// the first call wins.
pub fn set_process_context(ctx: Context) {
    let _ = PROCESS.set(Arc::new(ctx));
}

/// The context of the running task's writes: its [`scope`], else the process's, else an
/// unnamed `system` one.
pub fn current() -> Arc<Context> {
    CURRENT
        .try_with(Arc::clone)
        .ok()
        .or_else(|| PROCESS.get().cloned())
        .unwrap_or_else(|| Arc::new(Context::new("system", "", "")))
}

/// What an entry is about: a kind and its identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub kind: String,
    pub id: String,
}

impl Subject {
    pub fn new(kind: &str, id: impl Into<String>) -> Self {
        Subject {
            kind: kind.to_string(),
            id: id.into(),
        }
    }
}

/// One entry of the log, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When, in milliseconds since the epoch.
    pub time: i64,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub subject: Subject,
    pub request: Option<Value>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// BLAKE3 over this entry's fields and `prev_hash` ([`Entry::compute_hash`]).
    pub hash: String,
}

impl Entry {
    /// The hash this entry must carry: BLAKE3 over a fixed, length-prefixed encoding of every
    /// field but `hash`, so no two different entries encode alike.
    pub fn compute_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"keel.audit/v1");
        let mut field = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        let json = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
        field(&self.seq.to_le_bytes());
        field(&self.time.to_le_bytes());
        field(self.actor.as_bytes());
        field(self.source.as_bytes());
        field(self.action.as_bytes());
        field(self.subject.kind.as_bytes());
        field(self.subject.id.as_bytes());
        field(json(&self.request).as_bytes());
        field(json(&self.before).as_bytes());
        field(json(&self.after).as_bytes());
        field(self.prev_hash.as_bytes());
        h.finalize().to_hex().to_string()
    }
}

/// The last entry's position and hash, as the store keeps it beside the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// Which entries to list; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Entries after this position.
    pub after_seq: Option<i64>,
    pub actor: Option<String>,
    /// A subject kind (`registered_model`), and optionally its id.
    pub kind: Option<String>,
    pub id: Option<String>,
    /// Entries whose action contains this text.
    pub action: Option<String>,
    /// From and until (inclusive), milliseconds since the epoch.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// At most this many, oldest first.
    pub limit: usize,
}

/// Reads and switches the audit log; part of every metadata store.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Starts logging every write (for good: a database once audited stays audited).
    async fn enable_audit(&self) -> Result<()>;
    /// Whether writes are logged.
    async fn audit_enabled(&self) -> Result<bool>;
    /// Entries matching `f`, oldest first.
    async fn audit_entries(&self, f: Filter) -> Result<Vec<Entry>>;
    /// The last entry's position and hash, as kept beside the log (`None` before the first).
    async fn audit_head(&self) -> Result<Option<Head>>;
    /// Appends an entry for a write outside the metadata store (an artifact, say), in the
    /// context of the running task.
    async fn audit_record(
        &self,
        subject: Subject,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<()>;
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Entries read.
    pub entries: u64,
    /// The chain's last entry as read from the log.
    pub last: Option<Head>,
    /// The head kept beside the log.
    pub head: Option<Head>,
    /// Every break found, in order; empty when the log is intact.
    pub problems: Vec<String>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the whole chain in pages: each entry's hash, its link to the one before, gaps in the
/// sequence, and the stored head against the last entry. `expect` are heads recorded earlier
/// (`SEQ:HASH`): each must still be in the chain.
pub async fn verify(store: &dyn AuditStore, expect: &[Head]) -> Result<Verification> {
    const PAGE: usize = 5_000;
    let mut v = Verification {
        head: store.audit_head().await?,
        ..Default::default()
    };
    let mut prev = Head {
        seq: 0,
        hash: GENESIS.to_string(),
    };
    let mut seen_expect = vec![false; expect.len()];
    loop {
        let page = store
            .audit_entries(Filter {
                after_seq: Some(prev.seq),
                limit: PAGE,
                ..Default::default()
            })
            .await?;
        let n = page.len();
        for e in page {
            v.entries += 1;
            if e.seq != prev.seq + 1 {
                v.problems.push(format!(
                    "entries {} to {} are missing",
                    prev.seq + 1,
                    e.seq - 1
                ));
            }
            if e.prev_hash != prev.hash {
                v.problems.push(format!(
                    "entry {} does not follow entry {}: its link {} is not that entry's hash {}",
                    e.seq, prev.seq, e.prev_hash, prev.hash
                ));
            }
            let computed = e.compute_hash();
            if computed != e.hash {
                v.problems.push(format!(
                    "entry {} was changed after it was written: its fields hash to {computed}, not {}",
                    e.seq, e.hash
                ));
            }
            for (i, x) in expect.iter().enumerate() {
                if x.seq == e.seq {
                    seen_expect[i] = true;
                    if x.hash != e.hash {
                        v.problems.push(format!(
                            "entry {} has hash {}, not the {} recorded earlier",
                            e.seq, e.hash, x.hash
                        ));
                    }
                }
            }
            prev = Head {
                seq: e.seq,
                hash: e.hash,
            };
        }
        if n < PAGE {
            break;
        }
    }
    if v.entries > 0 {
        v.last = Some(prev.clone());
    }
    match (&v.head, &v.last) {
        (Some(h), Some(l)) if h != l => v.problems.push(format!(
            "the log ends at entry {} ({}) but its head says entry {} ({}): entries were cut off or added around the head",
            l.seq, l.hash, h.seq, h.hash
        )),
        (Some(h), None) => v.problems.push(format!(
            "the log is empty but its head says entry {} ({})",
            h.seq, h.hash
        )),
        (None, Some(l)) => v.problems.push(format!(
            "the log holds {} entries up to {} but has no head",
            v.entries, l.seq
        )),
        _ => {}
    }
    for (i, x) in expect.iter().enumerate() {
        if !seen_expect[i] {
            v.problems.push(format!(
                "entry {} recorded earlier with hash {} is not in the log",
                x.seq, x.hash
            ));
        }
    }
    Ok(v)
}

/// A short fingerprint of a secret's stored hash: shows that it changed, not what it is.
pub fn fingerprint(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..12].to_string()
}

/// What the log says an alias pointed to at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasAt {
    /// The version, or `None` when the alias was not set (or the model did not exist).
    pub version: Option<String>,
    /// The entry that last changed the answer before the moment, if any did.
    pub since_seq: Option<i64>,
    pub since_time: Option<i64>,
    pub since_actor: Option<String>,
}

/// Replays the entries of a registered model (and its versions) up to a moment, oldest first,
/// and answers where `alias` of `model` pointed: each model entry's state after it holds the
/// whole alias map (a rename moves it, a deletion clears it), and a deleted version takes its
/// aliases with it. `entries` are every `registered_model` and `model_version` entry up to
/// the moment, in order.
pub fn alias_at(entries: &[Entry], model: &str, alias: &str) -> AliasAt {
    let name_of = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut at = AliasAt {
        version: None,
        since_seq: None,
        since_time: None,
        since_actor: None,
    };
    for e in entries {
        let before = match e.subject.kind.as_str() {
            "registered_model" => {
                let (was, is) = (name_of(&e.before), name_of(&e.after));
                let concerns = e.subject.id == model
                    || was.as_deref() == Some(model)
                    || is.as_deref() == Some(model);
                if !concerns {
                    continue;
                }
                let before = at.version.clone();
                at.version = match is.as_deref() == Some(model) {
                    true => e
                        .after
                        .as_ref()
                        .and_then(|a| a.get("aliases"))
                        .and_then(Value::as_array)
                        .and_then(|list| {
                            list.iter()
                                .find(|a| a.get("alias").and_then(Value::as_str) == Some(alias))
                        })
                        .and_then(|a| a.get("version"))
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        }),
                    false => None,
                };
                before
            }
            "model_version" => {
                let Some((name, version)) = e.subject.id.rsplit_once('/') else {
                    continue;
                };
                if name != model || e.after.is_some() || at.version.as_deref() != Some(version) {
                    continue;
                }
                at.version.take()
            }
            _ => continue,
        };
        if before != at.version {
            at.since_seq = Some(e.seq);
            at.since_time = Some(e.time);
            at.since_actor = Some(e.actor.clone());
        }
    }
    at
}

/// Longest text kept whole in a summarized request.
const MAX_TEXT: usize = 512;
/// Longest list kept whole in a summarized request.
const MAX_LIST: usize = 32;

/// A request body as the log keeps it: values under secret-looking keys masked, texts past
/// 512 characters cut, and lists past 32 items replaced by their length and first items.
pub fn summarize(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let secret = ["password", "token", "secret", "credential"]
                        .iter()
                        .any(|s| k.to_ascii_lowercase().contains(s));
                    let v = match secret {
                        true if !v.is_null() => Value::String("***".into()),
                        _ => summarize(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) if items.len() > MAX_LIST => serde_json::json!({
            "count": items.len(),
            "first": items.iter().take(4).map(summarize).collect::<Vec<_>>(),
        }),
        Value::Array(items) => Value::Array(items.iter().map(summarize).collect()),
        Value::String(s) if s.chars().count() > MAX_TEXT => {
            Value::String(format!("{}…", s.chars().take(MAX_TEXT).collect::<String>()))
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> Entry {
        let mut e = Entry {
            seq,
            time: 1_700_000_000_000 + seq,
            actor: "alice".into(),
            source: "127.0.0.1".into(),
            action: "POST /x".into(),
            subject: Subject::new("registered_model", "m"),
            request: Some(serde_json::json!({"a": 1})),
            before: None,
            after: Some(serde_json::json!({"name": "m"})),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let e = entry(1, GENESIS);
        type Change = Box<dyn Fn(&mut Entry)>;
        let changes: Vec<Change> = vec![
            Box::new(|e| e.seq += 1),
            Box::new(|e| e.time += 1),
            Box::new(|e| e.actor.push('x')),
            Box::new(|e| e.source.push('x')),
            Box::new(|e| e.action.push('x')),
            Box::new(|e| e.subject.kind.push('x')),
            Box::new(|e| e.subject.id.push('x')),
            Box::new(|e| e.request = None),
            Box::new(|e| e.before = Some(Value::Null)),
            Box::new(|e| e.after = None),
            Box::new(|e| e.prev_hash = "1".repeat(64)),
        ];
        for change in changes {
            let mut c = e.clone();
            change(&mut c);
            assert_ne!(c.compute_hash(), e.hash);
        }
        // Moving text between neighbouring fields changes the hash too.
        let mut c = e.clone();
        c.actor = "alic".into();
        c.source = "e127.0.0.1".into();
        assert_ne!(c.compute_hash(), e.hash);
    }

    fn model_entry(seq: i64, id: &str, before: Option<Value>, after: Option<Value>) -> Entry {
        Entry {
            subject: Subject::new("registered_model", id),
            before,
            after,
            ..entry(seq, GENESIS)
        }
    }

    fn model_state(name: &str, aliases: &[(&str, &str)]) -> Option<Value> {
        let aliases: Vec<Value> = aliases
            .iter()
            .map(|(a, v)| serde_json::json!({"alias": a, "version": v}))
            .collect();
        Some(serde_json::json!({"name": name, "aliases": aliases}))
    }

    #[test]
    fn alias_at_follows_moves_renames_and_deletions() {
        let log = [
            model_entry(1, "m", None, model_state("m", &[])),
            model_entry(
                2,
                "m",
                model_state("m", &[]),
                model_state("m", &[("champion", "1")]),
            ),
            model_entry(3, "other", None, model_state("other", &[("champion", "7")])),
            model_entry(
                4,
                "m",
                model_state("m", &[("champion", "1")]),
                model_state("m", &[("champion", "2"), ("b", "1")]),
            ),
            Entry {
                subject: Subject::new("model_version", "m/1"),
                before: Some(serde_json::json!({"name": "m", "version": "1"})),
                after: None,
                ..entry(5, GENESIS)
            },
            model_entry(
                6,
                "n",
                model_state("m", &[("champion", "2")]),
                model_state("n", &[("champion", "2")]),
            ),
        ];
        let at = |upto: usize, alias: &str, model: &str| alias_at(&log[..upto], model, alias);
        assert_eq!(at(1, "champion", "m").version, None);
        assert_eq!(at(2, "champion", "m").version.as_deref(), Some("1"));
        assert_eq!(at(3, "champion", "m").version.as_deref(), Some("1"));
        let moved = at(4, "champion", "m");
        assert_eq!(
            (moved.version.as_deref(), moved.since_seq),
            (Some("2"), Some(4))
        );
        // Deleting version 1 takes alias b, not champion (on version 2).
        assert_eq!(at(4, "b", "m").version.as_deref(), Some("1"));
        assert_eq!(at(5, "b", "m").version, None);
        assert_eq!(at(5, "champion", "m").version.as_deref(), Some("2"));
        // Renamed: the old name has no alias any more, the new one carries it.
        assert_eq!(at(6, "champion", "m").version, None);
        assert_eq!(at(6, "champion", "n").version.as_deref(), Some("2"));
        assert_eq!(at(6, "champion", "other").version.as_deref(), Some("7"));
    }

    #[test]
    fn summaries_mask_secrets_and_count_long_lists() {
        let body = serde_json::json!({
            "username": "bob",
            "password": "hunter2",
            "metrics": (0..100).map(|i| serde_json::json!({"key": "m", "value": i})).collect::<Vec<_>>(),
            "description": "d".repeat(2000),
            "nested": {"api_token": "t", "keep": [1, 2]},
        });
        let s = summarize(&body);
        assert_eq!(s["username"], "bob");
        assert_eq!(s["password"], "***");
        assert_eq!(s["nested"]["api_token"], "***");
        assert_eq!(s["nested"]["keep"], serde_json::json!([1, 2]));
        assert_eq!(s["metrics"]["count"], 100);
        assert_eq!(s["metrics"]["first"].as_array().map(Vec::len), Some(4));
        assert_eq!(
            s["description"].as_str().map(|d| d.chars().count()),
            Some(513)
        );
    }
}
