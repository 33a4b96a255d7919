//! Helpers shared by the binary's integration tests: start a real `keel server` process on a
//! free loopback port with its data in a temporary folder, and find the Python with mlflow.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `keel server` child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub port: u16,
}

impl Server {
    /// Starts `keel server` with its metadata and artifacts under `dir` on `port` (0 = any).
    pub fn start(dir: &Path, port: u16) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--db")
            .arg(format!("sqlite://{}", dir.join("keel.db").display()))
            .arg("--artifacts")
            .arg(dir.join("artifacts"))
            .env_remove("KEEL_CONFIG")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn keel server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read server banner");
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("url in banner")
            .to_string();
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "unexpected banner: {line}"
        );
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in url");
        wait_healthy(&url);
        Server { child, url, port }
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = url.trim_start_matches("http://").to_string();
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("keel server at {url} did not become healthy");
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A Python interpreter that can import mlflow, scikit-learn and pandas: `KEEL_PYTHON`, else the
/// workspace's `.venv`. `None` (with the reason) when there is none; under CI that is a failure,
/// because `.ci/run` installs it.
pub fn python_with_mlflow() -> Result<PathBuf, String> {
    let candidate = std::env::var_os("KEEL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let ok = Command::new(&candidate)
        .args(["-c", "import mlflow, sklearn, pandas"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return Ok(candidate);
    }
    let reason = format!(
        "no Python with mlflow, scikit-learn and pandas at {} (set KEEL_PYTHON or run scripts/test)",
        candidate.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{reason}: CI must install it");
    }
    Err(reason)
}
