//! What keel's tests need from the machine, found one way in every crate:
//!
//! - [`python`]: the interpreter with the reference tools (`KEEL_PYTHON`, else the workspace's
//!   `.venv`), checked by importing the modules a test needs; [`evidently_python`], Evidently's
//!   own (`KEEL_EVIDENTLY_PYTHON`, else `.venv-evidently`);
//! - [`postgres_url`]: the PostgreSQL server `KEEL_TEST_DATABASE_URL` names, checked by
//!   connecting to its port.
//!
//! When one is missing the test says so and returns early: [`skip`] prints `SKIPPED <test>:
//! <reason>` and appends the same line to the file `KEEL_SKIP_LOG` names (`scripts/test` sets
//! it and prints the count and the reasons at the end, since cargo hides what passing tests
//! print). Under CI (`CI` set) a skip fails the test instead: CI installs everything.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Reports that `test` cannot run because of `reason`: panics under CI, else prints and logs
/// the skip. Returns `None` so callers can `return` it.
pub fn skip<T>(test: &str, reason: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{test} cannot run: {reason} (CI must provide it)");
    }
    let line = format!("SKIPPED {test}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os("KEEL_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
    {
        let _ = writeln!(f, "{line}");
    }
    None
}

/// The workspace's root folder (this crate lives at `crates/keel-testenv`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The Python with the reference tools that can import every one of `modules`, or a skip.
pub fn python(test: &str, modules: &[&str]) -> Option<PathBuf> {
    python_in("KEEL_PYTHON", ".venv", test, modules)
}

/// The Python of Evidently's own virtualenv (`KEEL_EVIDENTLY_PYTHON`, else the workspace's
/// `.venv-evidently`: Evidently 0.7 needs a pandas below 3), or a skip.
pub fn evidently_python(test: &str) -> Option<PathBuf> {
    python_in(
        "KEEL_EVIDENTLY_PYTHON",
        ".venv-evidently",
        test,
        &["evidently"],
    )
}

fn python_in(variable: &str, venv: &str, test: &str, modules: &[&str]) -> Option<PathBuf> {
    let candidate = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(venv).join("bin/python"));
    let imports = format!("import {}", modules.join(", "));
    let ok = Command::new(&candidate)
        .args(["-c", &imports])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(candidate);
    }
    skip(
        test,
        &format!(
            "no Python at {} can `{imports}` (scripts/test installs it into {venv}; or set {variable})",
            candidate.display()
        ),
    )
}

/// The URL of the PostgreSQL server the tests may use, when it is set and answers, or a skip.
pub fn postgres_url(test: &str) -> Option<String> {
    let Ok(url) = std::env::var("KEEL_TEST_DATABASE_URL") else {
        return skip(
            test,
            "KEEL_TEST_DATABASE_URL is not set (postgres://user@host:port/db; scripts/test and .ci/run set it)",
        );
    };
    let reachable = host_port(&url)
        .and_then(|hp| hp.to_socket_addrs().ok())
        .into_iter()
        .flatten()
        .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    if reachable {
        Some(url)
    } else {
        skip(test, &format!("no PostgreSQL answers at {url}"))
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL (port 5432 when absent).
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    Some(if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:5432")
    })
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn urls_give_their_server() {
        assert_eq!(
            host_port("postgres://root@127.0.0.1:5432/test").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            host_port("postgres://db.example/test?sslmode=off").as_deref(),
            Some("db.example:5432")
        );
        assert_eq!(host_port("not a url"), None);
    }
}
