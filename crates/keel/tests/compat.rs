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

/// Both servers over TLS with a test CA: the mlflow client and keel's CLI trust it through
/// `MLFLOW_TRACKING_SERVER_CERT_PATH` and refuse the server without it; `keel serve` answers
/// `/invocations` over HTTPS; plain HTTP to a TLS port gets no answer.
#[tokio::test]
async fn both_servers_speak_tls_to_clients_that_trust_its_ca() {
    let test = "both_servers_speak_tls_to_clients_that_trust_its_ca";
    let Some(python) = support::python_with_mlflow(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, cert, key) = support::tls_files(d);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let db = format!("sqlite://{}", d.join("keel.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "server",
            "--port",
            "0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--db",
            &db,
        ])
        .arg("--artifacts")
        .arg(d.join("artifacts"))
        .current_dir(d)
        .env_remove("KEEL_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut banner,
    )
    .unwrap();
    let _server = support::Killed(child);
    let port = banner.trim().rsplit(':').next().unwrap().to_string();
    assert!(banner.contains("https://"), "{banner}");
    let url = format!("https://localhost:{port}");
    let trusting = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(&ca).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    // HTTP/2 by ALPN, whose requests carry no Host header (the authority is checked instead).
    let r = trusting
        .get(format!(
            "{url}/api/2.0/mlflow/experiments/search?max_results=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), r.version()),
        (200, reqwest::Version::HTTP_2)
    );
    assert!(
        reqwest::Client::new()
            .get(format!("{url}/health"))
            .send()
            .await
            .is_err(),
        "an unknown CA is trusted"
    );
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/health")).await;
    assert!(
        !plain.is_ok_and(|r| r.status().is_success()),
        "plain HTTP was answered on the TLS port"
    );

    let script = "import mlflow\n\
        mlflow.set_experiment('over-tls')\n\
        with mlflow.start_run():\n    mlflow.log_metric('m', 1.5)\n\
        print(mlflow.search_runs(experiment_names=['over-tls'])['metrics.m'].tolist())\n";
    let run = |trust: bool| {
        let mut c = Command::new(&python);
        c.args(["-c", script])
            .env("MLFLOW_TRACKING_URI", &url)
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0");
        if trust {
            c.env("MLFLOW_TRACKING_SERVER_CERT_PATH", &ca);
        }
        c.output().unwrap()
    };
    let out = run(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.trim().lines().last(), Some("[1.5]"), "{printed}");
    let out = run(false);
    assert!(
        !out.status.success(),
        "the mlflow client trusted an unknown CA"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("CERTIFICATE_VERIFY_FAILED"));

    // keel's CLI, with and without the CA.
    let keel = |env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["experiments", "ls", "--json", "--tracking-uri", &url])
            .current_dir(d)
            .env_remove("MLFLOW_TRACKING_SERVER_CERT_PATH")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = keel(&[("MLFLOW_TRACKING_SERVER_CERT_PATH", ca.to_str().unwrap())]);
    assert!(ok && out.contains("over-tls"), "{out}{err}");
    let (ok, _, err) = keel(&[]);
    assert!(!ok && err.lines().count() == 1, "{err}");
    let (ok, out, err) = keel(&[("MLFLOW_TRACKING_INSECURE_TLS", "true")]);
    assert!(ok && out.contains("over-tls"), "{out}{err}");
    // A wrong key for the certificate stops the server before it listens, in one line.
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "server",
            "--port",
            "0",
            "--tls-cert",
            cert,
            "--tls-key",
            cert,
            "--db",
            &db,
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--tls-key"), "{err}");

    // keel serve over TLS.
    support::price_model(d, &[]);
    let serving = support::Serving::start(d, &["price", "--tls-cert", cert, "--tls-key", key]);
    let body = serde_json::json!({"dataframe_split": {"columns": ["x1", "x2", "colour"], "data": [[0.5, -0.5, "red"]]}});
    let r = trusting
        .post(format!(
            "https://localhost:{}/invocations",
            serving.addr.rsplit(':').next().unwrap()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    // 3 * 0.5 + 2 * -0.5 + 5, as the ridge fit of shop.csv's exact relation gives it.
    let predicted = answer["predictions"][0]["variable"].as_f64().unwrap();
    assert!((predicted - 5.5).abs() < 0.05, "{answer}");
    // Stopped while this runtime keeps serving the client's HTTP/2 connection, which must
    // answer the server's closing handshake.
    let status = tokio::task::spawn_blocking(move || serving.stop())
        .await
        .unwrap();
    assert_eq!(status, 0);
}
