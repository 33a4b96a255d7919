//! The official mlflow Python client against a real `keel server` process:
//! `tests/compat/mlflow_client_compat.py` runs a training script's worth of calls and checks
//! every answer, on SQLite and on PostgreSQL; and the same script against a real
//! `mlflow server`, so that what it expects is MLflow's behaviour, not keel's. And the web UI in
//! a real browser (`tests/ui/browser.py`: Debian's Chromium driven by Playwright) against a
//! server that client filled.

mod support;

use std::process::Command;

#[test]
fn mlflow_client_runs_unchanged_against_keel() {
    let Some(python) = support::python_with_mlflow("mlflow_client_runs_unchanged_against_keel")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = support::Server::start(dir.path(), 0);
    run_compat(&python, dir.path(), &server.url);
}

#[test]
fn the_compatibility_script_holds_against_mlflow_itself() {
    let Some(python) =
        support::python_with_mlflow("the_compatibility_script_holds_against_mlflow_itself")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mlflow = support::mlflow_server(&python, dir.path());
    run_compat(&python, dir.path(), &mlflow.url);
    // The same bad requests to both servers: the same status and error_code back.
    let keel_dir = tempfile::tempdir().expect("tempdir");
    let keel = support::Server::start(keel_dir.path(), 0);
    let out = Command::new(&python)
        .arg(support::workspace().join("tests/compat/bad_requests.py"))
        .args([&keel.url, &mlflow.url])
        .output()
        .expect("run bad_requests.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "keel and MLflow answer bad requests differently:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("answered as MLflow does"), "{stdout}");
}

#[test]
fn mlflow_client_runs_unchanged_against_keel_on_postgres() {
    let Some(python) =
        support::python_with_mlflow("mlflow_client_runs_unchanged_against_keel_on_postgres")
    else {
        return;
    };
    let Some(schema) =
        support::PgSchema::create("mlflow_client_runs_unchanged_against_keel_on_postgres")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts").display().to_string();
    let server = support::Server::launch(dir.path(), 0, &schema.url, &artifacts, &[]);
    run_compat(&python, dir.path(), &server.url);
}

/// Debian's Chromium (or `KEEL_CHROMIUM`), or a skip of `test` (a failure under CI).
fn chromium(test: &str) -> Option<String> {
    let chromium = std::env::var("KEEL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if std::path::Path::new(&chromium).exists() {
        return Some(chromium);
    }
    keel_testenv::skip(
        test,
        &format!("no Chromium at {chromium} (apt-get install chromium)"),
    )
}

/// The admin password the auth tests start `keel server --auth` with.
const ADMIN_PASSWORD: &str = "first-admin-pw";

#[test]
fn mlflow_and_auth_clients_against_keel_with_auth() {
    let test = "mlflow_and_auth_clients_against_keel_with_auth";
    let Some(python) = support::python_with_mlflow(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("keel.db").display());
    let artifacts = dir.path().join("artifacts").display().to_string();
    let server = support::Server::launch_with_args(
        dir.path(),
        &db,
        &artifacts,
        &["--auth"],
        &[
            ("KEEL_ADMIN_USERNAME", "admin"),
            ("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ],
    );
    run_auth(&python, dir.path(), &server.url);
}

#[test]
fn mlflow_and_auth_clients_against_keel_with_auth_on_postgres() {
    let test = "mlflow_and_auth_clients_against_keel_with_auth_on_postgres";
    let Some(python) = support::python_with_mlflow(test) else {
        return;
    };
    let Some(schema) = support::PgSchema::create(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let artifacts = dir.path().join("artifacts").display().to_string();
    let admin_file = dir.path().join("admin");
    std::fs::write(&admin_file, format!("admin:{ADMIN_PASSWORD}\n")).unwrap();
    let server = support::Server::launch_with_args(
        dir.path(),
        &schema.url,
        &artifacts,
        &["--auth", "--admin-file", admin_file.to_str().unwrap()],
        &[],
    );
    run_auth(&python, dir.path(), &server.url);
}

#[test]
fn the_web_ui_signs_in_with_a_session_on_a_server_with_auth() {
    let test = "the_web_ui_signs_in_with_a_session_on_a_server_with_auth";
    let Some(python) = keel_testenv::python(test, &["mlflow", "playwright", "requests"]) else {
        return;
    };
    let Some(chromium) = chromium(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("keel.db").display());
    let artifacts = dir.path().join("artifacts").display().to_string();
    let server = support::Server::launch_with_args(
        dir.path(),
        &db,
        &artifacts,
        &["--auth"],
        &[
            ("KEEL_ADMIN_USERNAME", "admin"),
            ("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ],
    );
    let out = Command::new(&python)
        .arg(support::workspace().join("tests/ui/signin.py"))
        .arg(&server.url)
        .env("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("KEEL_CHROMIUM", &chromium)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .current_dir(dir.path())
        .output()
        .expect("run tests/ui/signin.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("the web UI signs in"),
        "sign-in browser test failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_auth(python: &std::path::Path, dir: &std::path::Path, url: &str) {
    let script = support::workspace().join("tests/compat/mlflow_auth_compat.py");
    let out = Command::new(python)
        .arg(&script)
        .env("MLFLOW_TRACKING_URI", url)
        .env("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("PYTHONWARNINGS", "ignore")
        .current_dir(dir)
        .output()
        .expect("run the auth script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("checks passed"),
        "auth script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    println!("{}", stdout.lines().last().unwrap_or_default());
}

#[test]
fn the_web_ui_shows_what_the_mlflow_client_logged() {
    let test = "the_web_ui_shows_what_the_mlflow_client_logged";
    let Some(python) = keel_testenv::python(test, &["mlflow", "sklearn", "pandas", "playwright"])
    else {
        return;
    };
    let Some(chromium) = chromium(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = support::Server::start(dir.path(), 0);
    // A model trained and registered by keel, served by `keel serve`, for its status page.
    let d = dir.path();
    let remote = ["--tracking-uri", server.url.as_str()];
    support::price_model(d, &remote);
    let serve = [
        "price/1",
        "--log-dir",
        "log",
        "--log-file-interval",
        "100ms",
    ];
    let serving = support::Serving::start(d, &[&serve[..], &remote].concat());
    let row =
        br#"{"dataframe_split": {"columns": ["x1", "x2", "colour"], "data": [[0.5, 0.5, "red"]]}}"#;
    for _ in 0..3 {
        assert_eq!(
            support::post_json(&serving.addr, "/invocations", row).0,
            200
        );
    }
    // Two checks of what it logged, as keel records them, for the monitoring pages: a report,
    // and a monitor file's check whose alert fires.
    let logged = d.join("log/predictions/model=price");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !support::walk(&logged)
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "parquet"))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::write(
        d.join("monitor.yaml"),
        "kind: keel.monitor/v1\nmodel: price/1\nlog_dir: log\nalerts:\n  - {name: too few rows, min_rows: 1000}\n",
    )
    .unwrap();
    for args in [
        &[
            "monitor",
            "report",
            "price/1",
            "--log-dir",
            "log",
            "--window",
            "1h",
        ][..],
        &["monitor", "watch", "monitor.yaml", "--once"][..],
        // A retraining, as a dry run, for the retraining history.
        &["models", "alias", "set", "price", "champion", "1"][..],
        &[
            "monitor",
            "retrain",
            "price@champion",
            "--data",
            "shop@1",
            "--dry-run",
        ][..],
    ] {
        let (code, _, err) = support::keel_status(d, &[args, &remote[..]].concat());
        assert!(code == 0 || code == 1, "keel {args:?}: {err}");
    }
    let out = Command::new(&python)
        .arg(support::workspace().join("tests/ui/browser.py"))
        .arg(&server.url)
        .env("KEEL_SERVE_URL", format!("http://{}", serving.addr))
        .env("KEEL_BIN", env!("CARGO_BIN_EXE_keel"))
        .env("KEEL_CHROMIUM", &chromium)
        .current_dir(dir.path())
        .output()
        .expect("run tests/ui/browser.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("the web UI shows what the client logged"),
        "browser test failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_compat(python: &std::path::Path, dir: &std::path::Path, url: &str) {
    let script = support::workspace().join("tests/compat/mlflow_client_compat.py");
    let out = Command::new(python)
        .arg(&script)
        .env("MLFLOW_TRACKING_URI", url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("PYTHONWARNINGS", "ignore")
        .current_dir(dir)
        .output()
        .expect("run the compatibility script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "compatibility script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("checks passed"),
        "no summary line\n{stdout}"
    );
    println!("{}", stdout.lines().last().unwrap_or_default());
}
