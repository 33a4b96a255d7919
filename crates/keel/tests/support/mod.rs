//! Helpers shared by the binary's integration tests: start a real `keel server` process on a
//! free loopback port with its data in a temporary folder, and find the Python with mlflow.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `keel server` child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub port: u16,
}

impl Server {
    /// Starts `keel server` with its metadata and artifacts under `dir` on `port` (0 = any).
    pub fn start(dir: &Path, port: u16) -> Server {
        let artifacts = dir.join("artifacts").display().to_string();
        Server::start_with(dir, port, &artifacts, &[])
    }

    /// Starts `keel server` with its metadata under `dir`, its artifacts at `artifacts` (a path
    /// or URL) and extra environment variables.
    pub fn start_with(dir: &Path, port: u16, artifacts: &str, env: &[(&str, &str)]) -> Server {
        let db = format!("sqlite://{}", dir.join("keel.db").display());
        Server::launch(dir, port, &db, artifacts, env)
    }

    /// Starts `keel server` on the metadata store `db` (a URL) and the artifact store
    /// `artifacts`, in `dir`.
    pub fn launch(
        dir: &Path,
        port: u16,
        db: &str,
        artifacts: &str,
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch_on(dir, port, db, artifacts, &[], env)
    }

    /// [`Server::launch`] on any free port with extra arguments (`--auth`, say).
    pub fn launch_with_args(
        dir: &Path,
        db: &str,
        artifacts: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch_on(dir, 0, db, artifacts, args, env)
    }

    fn launch_on(
        dir: &Path,
        port: u16,
        db: &str,
        artifacts: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(args)
            .arg("--db")
            .arg(db)
            .arg("--artifacts")
            .arg(artifacts)
            .env_remove("KEEL_CONFIG")
            .envs(env.iter().copied())
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

/// Runs `cmd` to its end as [`Command::output`] does, but kills it and fails the test when it
/// is still running after `limit`, with what it printed so far: a hung child must fail its
/// test rather than hold the whole suite.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(mut pipe) = pipe {
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
        }
        rx
    };
    let out_rx = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err_rx = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let collect = |rx: &std::sync::mpsc::Receiver<Vec<u8>>, wait: Duration| {
        let mut all = Vec::new();
        let deadline = Instant::now() + wait;
        while let Ok(chunk) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            all.extend(chunk);
        }
        all
    };
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let grace = Duration::from_secs(1);
            let (out, err) = (collect(&out_rx, grace), collect(&err_rx, grace));
            panic!(
                "{cmd:?} was still running after {} s; killed. Its output:\n{}\n{}",
                limit.as_secs(),
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close with the process (or with whatever it left behind, which gets 5 s).
    let grace = Duration::from_secs(5);
    let (stdout, stderr) = (collect(&out_rx, grace), collect(&err_rx, grace));
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// A child process killed (and reaped) on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a fresh connection; the status code and the body.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let (status, _head, body) = http_with_head(addr, method, path, body);
    (status, body)
}

/// One HTTP/1.1 request over a fresh connection; the status code, the response head (status
/// line and headers) and the body.
pub fn http_with_head(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    request(addr, method, path, "", body)
}

/// One HTTP/1.1 request with a JSON body; the status code and the body.
pub fn http_json(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let json = "Content-Type: application/json\r\n";
    let (status, _head, body) = request(addr, method, path, json, body);
    (status, body)
}

/// One HTTP/1.1 POST with a JSON body; the status code, the response head and the body.
pub fn post_json(addr: &str, path: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    request(
        addr,
        "POST",
        path,
        "Content-Type: application/json\r\n",
        body,
    )
}

/// One HTTP/1.1 POST with a JSON body and more header lines (each ending in `\r\n`); the
/// status code, the response head and the body.
pub fn post_json_with(
    addr: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let headers = format!("Content-Type: application/json\r\n{headers}");
    request(addr, "POST", path, &headers, body)
}

fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    // A server that never answers fails the test instead of holding the suite.
    let limit = Some(Duration::from_secs(300));
    s.set_read_timeout(limit).expect("read timeout");
    s.set_write_timeout(limit).expect("write timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .and_then(|_| s.write_all(body))
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {addr}{path}: no whole answer within 300 s: {e}"));
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(raw.len());
    let status = std::str::from_utf8(&raw[..head_end.min(12)])
        .ok()
        .and_then(|h| h.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    (status, head, raw[head_end..].to_vec())
}

/// Waits until `GET path` on `addr` answers 200.
pub fn wait_ready(addr: &str, path: &str, what: &str) {
    wait_ready_for(addr, path, what, Duration::from_secs(30));
}

/// [`wait_ready`] with its own time limit.
pub fn wait_ready_for(addr: &str, path: &str, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() && http(addr, "GET", path, b"").0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} at {addr} did not become ready");
}

fn wait_healthy(url: &str) {
    wait_ready(url.trim_start_matches("http://"), "/health", "keel server");
}

/// A loopback port nobody listens on right now, for a request that must fail to connect
/// (servers the tests start bind port 0 themselves and say which port they got).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The `127.0.0.1:PORT` a server started on port 0 announces on its standard error, in the
/// first line holding `marker`; the rest of that output is read and dropped by a thread, so
/// the server never blocks on a full pipe.
fn announced_addr(child: &mut Child, marker: &str, what: &str) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("{what} stopped before listening:\n{}", seen.join("\n"));
        };
        if line.contains(marker)
            && let Some(at) = line.find("http://127.0.0.1:")
        {
            let rest = &line[at + "http://".len()..];
            let end = "127.0.0.1:".len()
                + rest["127.0.0.1:".len()..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len() - "127.0.0.1:".len());
            std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
            return rest[..end].to_string();
        }
        seen.push(line);
    }
}

/// An S3-compatible server (moto, from the test virtualenv) on a loopback port, killed on drop.
pub struct S3Server {
    child: Child,
    pub addr: String,
}

impl S3Server {
    /// Starts `moto_server` beside `python` and creates `bucket` in it.
    pub fn start(python: &Path, bucket: &str) -> S3Server {
        let moto = python.with_file_name("moto_server");
        let mut child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", moto.display()));
        let addr = announced_addr(&mut child, "Running on", "moto S3 server");
        let server = S3Server { child, addr };
        wait_ready(&server.addr, "/moto-api/", "moto S3 server");
        let (status, body) = http(&server.addr, "PUT", &format!("/{bucket}"), b"");
        assert_eq!(
            status,
            200,
            "create bucket: {}",
            String::from_utf8_lossy(&body)
        );
        server
    }

    /// The environment a client of this server needs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://{}", self.addr)),
            ("AWS_ACCESS_KEY_ID", "keel-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "keel-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A schema of its own in the PostgreSQL that `KEEL_TEST_DATABASE_URL` names, dropped on drop;
/// `url` points keel at it.
pub struct PgSchema {
    admin: String,
    name: String,
    pub url: String,
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

impl PgSchema {
    /// `None` (after saying why) when `KEEL_TEST_DATABASE_URL` is not set.
    pub fn create(test: &str) -> Option<PgSchema> {
        let admin = keel_testenv::postgres_url(test)?;
        let name = format!("keel_test_{}", uuid::Uuid::new_v4().simple());
        block_on(async {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("connect to KEEL_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut c)
                .await
                .expect("create the test schema");
        });
        let sep = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{sep}options=-c%20search_path%3D{name}");
        Some(PgSchema { admin, name, url })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        block_on(async {
            if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&self.admin).await
            {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA {} CASCADE",
                    self.name
                )))
                .execute(&mut c)
                .await;
            }
        });
    }
}

/// A Python interpreter with the test requirements (mlflow, scikit-learn, pandas, moto,
/// kubernetes-validate), or a skip of `test` (a failure under CI, which installs it).
pub fn python_with_mlflow(test: &str) -> Option<PathBuf> {
    keel_testenv::python(
        test,
        &[
            "mlflow",
            "sklearn",
            "pandas",
            "moto.server",
            "kubernetes_validate",
        ],
    )
}

/// Runs `keel` in `dir` (the workspace and the default store `keel-data/` live there).
pub fn keel(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = keel_status(dir, args);
    (code == 0, out, err)
}

/// Runs `keel` in `dir` and returns its exit status with what it printed.
pub fn keel_status(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEEL_DB")
        .env_remove("KEEL_ARTIFACTS")
        .env("KEEL_USER", "tester")
        .output()
        .expect("run keel");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = keel(dir, &all);
    assert!(ok, "keel {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// A small seeded generator for test data (Knuth's MMIX linear congruential constants).
pub struct Lcg(pub u64);

impl Lcg {
    fn step(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.step() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A whole number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        (self.step() >> 33) % n
    }
}

/// 600 rows: x1, x2 numeric, colour of three; label "yes" when 2 x1 - x2 (+ 1 for red)
/// is positive (a little noise); price linear in x1 and x2.
pub fn shop() -> String {
    let mut s = String::from("x1,x2,colour,label,price\n");
    let mut rng = Lcg(7);
    let mut unit = || rng.unit();
    for i in 0..600 {
        let (a, b) = (unit() * 4.0 - 2.0, unit() * 4.0 - 2.0);
        let colour = ["red", "blue", "green"][i % 3];
        let z = 2.0 * a - b + if colour == "red" { 1.0 } else { 0.0 } + (unit() - 0.5) * 0.2;
        let label = if z > 0.0 { "yes" } else { "no" };
        s.push_str(&format!(
            "{a:.4},{b:.4},{colour},{label},{:.4}\n",
            3.0 * a + 2.0 * b + 5.0
        ));
    }
    s
}

/// A real `mlflow server` (from the test venv) on a free loopback port, killed on drop.
pub struct MlflowServer {
    child: Child,
    pub url: String,
}

impl Drop for MlflowServer {
    /// Ends the whole process group: `mlflow server` starts uvicorn and a job consumer that
    /// would outlive the command itself.
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signals the process group the child leads (made so at spawn).
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
            for _ in 0..50 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // SAFETY: as above; whatever did not stop on SIGTERM.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mlflow server` with its store and artifacts in `dir`, serving artifacts as keel does.
pub fn mlflow_server(python: &Path, dir: &Path) -> MlflowServer {
    let mut child = Command::new(python.with_file_name("mlflow"))
        .args(["server", "--host", "127.0.0.1", "--port", "0"])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("mlartifacts"))
        .args(["--workers", "1"])
        .process_group(0)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mlflow server");
    let addr = announced_addr(&mut child, "Uvicorn running on", "mlflow server");
    let server = MlflowServer {
        child,
        url: format!("http://{addr}"),
    };
    wait_ready_for(
        &addr,
        "/health",
        "mlflow server",
        std::time::Duration::from_secs(120),
    );
    server
}

/// The resident memory of process `pid`, in MiB. Fails the test when it cannot be read: a
/// memory check that reads nothing must not pass.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the memory of process {pid}: {e}"));
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS line for process {pid}"))
        / 1024.0
}

/// A running `keel serve`, stopped (SIGINT, then waited for) on drop.
pub struct Serving {
    pub child: Child,
    pub addr: String,
}

impl Serving {
    /// Starts `keel serve ARGS` on a port it binds itself (port 0), read back from the line
    /// it prints once listening; the rest of its output goes on to the test's.
    pub fn start(dir: &Path, args: &[&str]) -> Serving {
        Serving::start_with_env(dir, args, &[])
    }

    /// As [`Serving::start`], with extra environment variables.
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .arg("serve")
            .args(args)
            .args(["--port", "0"])
            .current_dir(dir)
            .env_remove("KEEL_DB")
            .env_remove("KEEL_ARTIFACTS")
            .env_remove("MLFLOW_TRACKING_URI")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keel serve");
        // Read by a thread, so that a server that never says it listens fails the test.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut seen = Vec::new();
        let addr = loop {
            let line = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let why = match e {
                        std::sync::mpsc::RecvTimeoutError::Timeout => {
                            "was not listening after 600 s"
                        }
                        std::sync::mpsc::RecvTimeoutError::Disconnected => {
                            "stopped before listening"
                        }
                    };
                    panic!("keel serve {why}:\n{}", seen.join("\n"));
                }
            };
            let rest = line
                .strip_prefix("listening on http://")
                .map(|r| (r, false))
                .or_else(|| {
                    line.strip_prefix("listening on https://")
                        .map(|r| (r, true))
                });
            if let Some((rest, tls)) = rest {
                break (
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                    tls,
                );
            }
            seen.push(line);
        };
        let (addr, tls) = addr;
        eprintln!("{}", seen.join("\n"));
        std::thread::spawn(move || rx.into_iter().for_each(|l| eprintln!("{l}")));
        if !tls {
            wait_ready(&addr, "/ping", "keel serve");
        }
        Serving { child, addr }
    }

    /// Stops the server gracefully and returns its exit status; fails the test when it has
    /// not stopped 120 s after the signal.
    pub fn stop(mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code().unwrap_or(-1),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Dropping `self` kills it.
                Ok(None) => panic!("keel serve was still running 120 s after SIGINT"),
                Err(_) => break -1,
            }
        };
        std::mem::forget(self);
        code
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Versions the shop table in `d`'s stores (the local ones, or a server's with `remote` =
/// `["--tracking-uri", URL]`) and registers a ridge regression of its price as the next version
/// of `price`; what `keel train` printed.
pub fn price_model(d: &Path, remote: &[&str]) -> Value {
    std::fs::write(d.join("shop.csv"), shop()).unwrap();
    json(d, &[&["data", "add", "shop.csv"][..], remote].concat());
    let train = [
        "train",
        "--data",
        "shop",
        "--target",
        "price",
        "--drop",
        "label",
        "--algo",
        "ridge_regression",
        "--register",
        "price",
    ];
    json(d, &[&train[..], remote].concat())
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The `x-request-id` header of an answer's head (as [`post_json`] returns it).
pub fn request_id(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(|v| v.trim().to_string())
        })
        .expect("an x-request-id header")
}

/// A test CA and a server certificate it signed for `localhost` and `127.0.0.1`, written to
/// `dir` as `ca.pem`, `cert.pem` and `key.pem`; returns their paths in that order.
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "keel test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}
