//! `keel audit`: the metadata database's audit log: list and export entries, verify the hash
//! chain, and replay where an alias pointed at a moment.

use std::io::Write;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use keel_core::audit::{self, Context, Filter, Head};

use crate::auth::DbArgs;

#[derive(Subcommand)]
pub(crate) enum AuditCmd {
    /// List entries, oldest first: a table, or every field as JSON lines (--json).
    Ls {
        /// Only this user's writes.
        #[arg(long)]
        actor: Option<String>,
        /// Only entries about this subject: KIND (registered_model, model_version,
        /// experiment, run, user, grant, role, token, artifact...) or KIND:ID (registered_model:churn).
        #[arg(long)]
        subject: Option<String>,
        /// Only entries whose action contains this text (`alias`, `DELETE`).
        #[arg(long)]
        action: Option<String>,
        /// From this moment: RFC 3339 (2026-12-07T10:00:00Z), `2026-12-07 10:00:00` (UTC),
        /// a date, or epoch milliseconds.
        #[arg(long)]
        since: Option<String>,
        /// Until this moment (inclusive), as --since.
        #[arg(long)]
        until: Option<String>,
        /// Entries after this position.
        #[arg(long)]
        after: Option<i64>,
        /// At most this many entries [default: all].
        #[arg(long)]
        limit: Option<usize>,
        /// Every field of each entry as one JSON object per line (an export).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check the hash chain: every entry's hash, its link to the one before, no gaps, and the
    /// head; prints the head to record elsewhere. Exit status 1 when the chain is broken.
    Verify {
        /// A head recorded earlier (SEQ:HASH) that must still be in the chain (repeatable).
        #[arg(long, value_name = "SEQ:HASH")]
        expect: Vec<String>,
        /// The result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Which version an alias of a registered model pointed to at a moment, replayed from
    /// the log.
    Alias {
        /// The registered model.
        model: String,
        /// The alias (`champion`).
        alias: String,
        /// The moment, as `keel audit ls --since` [default: now].
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Start logging every write to this database (as `keel server --audit` does at start; a
    /// database once audited stays audited).
    Enable {
        #[command(flatten)]
        db: DbArgs,
    },
}

/// The stopping status for a broken chain, once its report is printed.
#[derive(Debug)]
pub(crate) struct ChainBroken;

impl std::fmt::Display for ChainBroken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the audit log's hash chain is broken")
    }
}

impl std::error::Error for ChainBroken {}

pub(crate) async fn command(cmd: AuditCmd) -> Result<()> {
    match cmd {
        AuditCmd::Ls {
            actor,
            subject,
            action,
            since,
            until,
            after,
            limit,
            json,
            db,
        } => {
            let (kind, id) = match subject.as_deref().map(|s| s.split_once(':')) {
                Some(Some((k, id))) => (Some(k.to_string()), Some(id.to_string())),
                Some(None) => (subject.clone(), None),
                None => (None, None),
            };
            let filter = Filter {
                after_seq: after,
                actor,
                kind,
                id,
                action,
                since: since.as_deref().map(|t| moment(t, "--since")).transpose()?,
                until: until.as_deref().map(|t| moment(t, "--until")).transpose()?,
                limit: 0,
            };
            ls(&*db.open().await?, filter, limit, json).await
        }
        AuditCmd::Verify { expect, json, db } => {
            let expect = expect
                .iter()
                .map(|e| head_arg(e))
                .collect::<Result<Vec<_>>>()?;
            let meta = db.open().await?;
            if !meta.audit_enabled().await? {
                bail!(
                    "this database's audit log is not enabled (keel server --audit or keel audit enable turns it on)"
                );
            }
            let v = audit::verify(&*meta, &expect).await?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string(&v)?)?;
            } else if v.intact() {
                writeln!(out, "intact: {} entries", v.entries)?;
            } else {
                writeln!(out, "BROKEN: {} entries read", v.entries)?;
                for p in &v.problems {
                    writeln!(out, "  {p}")?;
                }
            }
            if !json && let Some(h) = &v.last {
                writeln!(out, "head: {}:{}", h.seq, h.hash)?;
            }
            match v.intact() {
                true => Ok(()),
                false => Err(ChainBroken.into()),
            }
        }
        AuditCmd::Alias {
            model,
            alias,
            at,
            db,
        } => {
            let at = match at {
                Some(t) => moment(&t, "--at")?,
                None => keel_core::now_millis(),
            };
            let meta = db.open().await?;
            let first = meta
                .audit_entries(Filter {
                    limit: 1,
                    ..Default::default()
                })
                .await?;
            match first.first() {
                Some(e) if e.time <= at => {}
                Some(e) => bail!(
                    "the audit log starts at {} (entry {}), after {}: it cannot say",
                    crate::output::time(Some(e.time)),
                    e.seq,
                    crate::output::time(Some(at))
                ),
                None => bail!("the audit log is empty"),
            }
            let mut entries = Vec::new();
            for kind in ["registered_model", "model_version"] {
                entries.extend(
                    all(
                        &*meta,
                        Filter {
                            kind: Some(kind.into()),
                            until: Some(at),
                            ..Default::default()
                        },
                        None,
                    )
                    .await?,
                );
            }
            entries.sort_by_key(|e| e.seq);
            let found = audit::alias_at(&entries, &model, &alias);
            let when = crate::output::time(Some(at));
            match (&found.version, found.since_seq) {
                (Some(v), Some(seq)) => println!(
                    "{model}@{alias} pointed to version {v} at {when} (since entry {seq}, {} by {})",
                    crate::output::time(found.since_time),
                    found.since_actor.as_deref().unwrap_or("-")
                ),
                (None, Some(seq)) => println!(
                    "{model}@{alias} was not set at {when} (since entry {seq}, {} by {})",
                    crate::output::time(found.since_time),
                    found.since_actor.as_deref().unwrap_or("-")
                ),
                _ => println!("{model}@{alias} was not set at {when}"),
            }
            Ok(())
        }
        AuditCmd::Enable { db } => {
            let meta = db.open().await?;
            meta.enable_audit().await?;
            println!("audit log enabled: every write to this database is logged");
            Ok(())
        }
    }
}

/// Every entry matching `filter` (up to `limit`), read in pages.
async fn all(
    meta: &dyn keel_core::MetadataStore,
    filter: Filter,
    limit: Option<usize>,
) -> Result<Vec<keel_core::audit::Entry>> {
    const PAGE: usize = 5_000;
    let mut out = Vec::new();
    let mut after = filter.after_seq;
    loop {
        let want = limit.map_or(PAGE, |l| PAGE.min(l - out.len()));
        let page = meta
            .audit_entries(Filter {
                after_seq: after,
                limit: want,
                ..filter.clone()
            })
            .await?;
        let n = page.len();
        after = page.last().map(|e| e.seq).or(after);
        out.extend(page);
        if n < want || limit.is_some_and(|l| out.len() >= l) {
            return Ok(out);
        }
    }
}

async fn ls(
    meta: &dyn keel_core::MetadataStore,
    filter: Filter,
    limit: Option<usize>,
    json: bool,
) -> Result<()> {
    let entries = all(meta, filter, limit).await?;
    let mut out = std::io::stdout().lock();
    if json {
        for e in &entries {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        }
        return Ok(());
    }
    let mut t = crate::output::table(&["seq", "time", "actor", "source", "action", "subject"]);
    for e in &entries {
        t.add_row(vec![
            e.seq.to_string(),
            crate::output::time(Some(e.time)),
            e.actor.clone(),
            e.source.clone(),
            e.action.clone(),
            format!("{}:{}", e.subject.kind, e.subject.id),
        ]);
    }
    writeln!(out, "{t}")?;
    Ok(())
}

/// `SEQ:HASH`.
fn head_arg(s: &str) -> Result<Head> {
    let (seq, hash) = s.split_once(':').with_context(|| {
        format!("--expect '{s}': expected SEQ:HASH, as keel audit verify prints")
    })?;
    Ok(Head {
        seq: seq
            .parse()
            .with_context(|| format!("--expect '{s}': '{seq}' is not an entry number"))?,
        hash: hash.to_string(),
    })
}

/// A moment in epoch milliseconds: RFC 3339, `YYYY-MM-DD HH:MM:SS` or a date (UTC), or epoch
/// milliseconds.
fn moment(s: &str, flag: &str) -> Result<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    bail!(
        "{flag} '{s}': expected a moment such as 2026-12-07T10:00:00Z, '2026-12-07 10:00:00' (UTC), 2026-12-07 or epoch milliseconds"
    )
}

/// `a` with the password of any URL in it masked (`postgres://u:***@host/db`).
fn without_url_password(a: &str) -> String {
    let Some(scheme_end) = a.find("://") else {
        return a.to_string();
    };
    let rest = &a[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &a[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            ),
            None => a.to_string(),
        },
        None => a.to_string(),
    }
}

/// The context of this command's writes: the user (as runs record it), this host, and the command line with
/// secret-looking values masked.
pub(crate) fn process_context() -> Context {
    let user = crate::data::user();
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let secret = |a: &str| {
        let a = a.to_ascii_lowercase();
        a.starts_with("--")
            && ["password", "secret", "token"]
                .iter()
                .any(|s| a.contains(s))
    };
    let mut args: Vec<String> = Vec::new();
    let mut mask_next = false;
    for a in std::env::args() {
        let shown = match (mask_next, a.split_once('=')) {
            (true, _) => "***".to_string(),
            (false, Some((flag, _))) if secret(flag) => format!("{flag}=***"),
            _ => without_url_password(&a),
        };
        mask_next = secret(&a) && !a.contains('=');
        args.push(shown);
    }
    if let Some(first) = args.first_mut() {
        *first = "keel".into();
    }
    Context::new(user, format!("cli@{host}"), args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked() {
        assert_eq!(
            without_url_password("--db=postgres://keel:s3cret@db:5432/keel?sslmode=require"),
            "--db=postgres://keel:***@db:5432/keel?sslmode=require"
        );
        assert_eq!(
            without_url_password("postgres://keel@db/keel"),
            "postgres://keel@db/keel"
        );
        assert_eq!(
            without_url_password("s3://bucket/a@b:c"),
            "s3://bucket/a@b:c"
        );
        assert_eq!(without_url_password("plain"), "plain");
        assert_eq!(moment("2026-12-07", "--at").unwrap(), 1_796_601_600_000);
        assert_eq!(
            moment("2026-12-07T00:00:01Z", "--at").unwrap(),
            1_796_601_601_000
        );
        assert!(
            moment("yesterday", "--at")
                .unwrap_err()
                .to_string()
                .contains("--at 'yesterday'")
        );
    }
}
