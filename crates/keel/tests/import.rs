//! `keel import --from-mlflow`: a real `mlflow server` (from the test venv) gets a realistic
//! tracking history through the official client; keel imports it; then the client reads both
//! servers and every experiment, run, param, tag, metric history, dataset input, artifact byte,
//! registered model, version, alias and the champion's predictions must be identical. A second
//! import resumes from the journal and changes nothing.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn script(python: &Path, args: &[&str], cwd: &Path) -> Output {
    let out = Command::new(python)
        .arg(support::workspace().join("tests/compat/import_roundtrip.py"))
        .args(args)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("PYTHONWARNINGS", "ignore")
        .current_dir(cwd)
        .output()
        .expect("run import_roundtrip.py");
    assert!(
        out.status.success(),
        "import_roundtrip.py {args:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn import(dir: &Path, source: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["import", "--from-mlflow", source, "--json"])
        .arg("--db")
        .arg(format!("sqlite://{}", dir.join("keel.db").display()))
        .arg("--artifacts")
        .arg(dir.join("artifacts"))
        .arg("--journal")
        .arg(dir.join("import.journal"))
        .env_remove("KEEL_CONFIG")
        .current_dir(dir)
        .output()
        .expect("run keel import");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "keel import failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("summary {stdout:?}: {e}"))
}

#[test]
fn an_mlflow_server_imports_into_keel_identically() {
    let Some(python) =
        support::python_with_mlflow("an_mlflow_server_imports_into_keel_identically")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src_dir = dir.path().join("mlflow");
    let dst_dir = dir.path().join("keel");
    std::fs::create_dir_all(&src_dir).unwrap();
    std::fs::create_dir_all(&dst_dir).unwrap();
    let mlflow = support::mlflow_server(&python, &src_dir);
    script(&python, &["log", &mlflow.url], &src_dir);

    let first = import(&dst_dir, &mlflow.url);
    println!("first import: {first}");
    for (field, want) in [
        ("experiments_created", 2),
        ("runs_copied", 6),
        ("registered_models", 1),
        ("model_versions", 2),
        ("aliases", 1),
        ("logged_models_copied", 2),
    ] {
        assert_eq!(first[field], want, "{field} in {first}");
    }
    assert_eq!(first["metric_values"], 3 * 51 + 2, "{first}");
    assert!(
        first["artifact_files"].as_u64().unwrap() >= 9 + 2 * 4,
        "{first}"
    );

    let keel = support::Server::start(&dst_dir, 0);
    let out = script(&python, &["check", &mlflow.url, &keel.url], &dst_dir);
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());

    // Again: everything is in the journal, nothing is copied twice.
    let second = import(&dst_dir, &mlflow.url);
    assert_eq!(second["runs_copied"], 0, "{second}");
    assert_eq!(second["runs_already_imported_skipped"], 6, "{second}");
    assert_eq!(second["experiments_created"], 0, "{second}");
    assert_eq!(second["model_versions"], 0, "{second}");
    script(&python, &["check", &mlflow.url, &keel.url], &dst_dir);
}

#[test]
fn an_unreachable_source_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "import",
            "--from-mlflow",
            &format!("http://127.0.0.1:{port}"),
        ])
        .arg("--db")
        .arg(format!("sqlite://{}", dir.path().join("keel.db").display()))
        .arg("--artifacts")
        .arg(dir.path().join("artifacts"))
        .arg("--journal")
        .arg(dir.path().join("j"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}
