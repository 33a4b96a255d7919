//! `keel export` / `keel import --from DIR`: a whole store moves from a local folder to S3 and
//! back, and the mlflow client reads the same experiments, runs, metric histories, artifacts,
//! registry and champion predictions from every copy.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn keel(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env_remove("KEEL_CONFIG")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run keel")
}

fn ok_json(out: Output, what: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{what}: {stdout:?}: {e}"))
}

fn roundtrip(python: &Path, args: &[&str]) {
    let out = Command::new(python)
        .arg(support::workspace().join("tests/compat/import_roundtrip.py"))
        .args(args)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .expect("run import_roundtrip.py");
    assert!(
        out.status.success(),
        "import_roundtrip.py {args:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
}

fn db(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("keel.db").display())
}

/// `keel export` of the store in `dir` (artifacts at `artifacts`) into `folder`.
fn export(dir: &Path, artifacts: &str, folder: &Path, env: &[(&str, String)]) -> serde_json::Value {
    let to = folder.display().to_string();
    let args = [
        "export",
        "--to",
        &to,
        "--db",
        &db(dir),
        "--artifacts",
        artifacts,
        "--json",
    ];
    ok_json(keel(&args, env), &format!("export into {to}"))
}

/// `keel import --from folder` into the store in `dir` (artifacts at `artifacts`).
fn import(folder: &Path, dir: &Path, artifacts: &str, env: &[(&str, String)]) -> serde_json::Value {
    let from = folder.display().to_string();
    let journal = dir.join("journal").display().to_string();
    let args = [
        "import",
        "--from",
        &from,
        "--db",
        &db(dir),
        "--artifacts",
        artifacts,
        "--journal",
        &journal,
        "--json",
    ];
    ok_json(keel(&args, env), &format!("import into {artifacts}"))
}

#[test]
fn a_store_moves_from_local_to_s3_and_back() {
    let Some(python) = support::python_with_mlflow("a_store_moves_from_local_to_s3_and_back")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    for d in [&a, &b, &c] {
        std::fs::create_dir_all(d).unwrap();
    }
    let original = support::Server::start(&a, 0);
    roundtrip(&python, &["log", &original.url]);

    // Local store -> export folder.
    let first = tmp.path().join("export-1");
    let art_a = a.join("artifacts").display().to_string();
    let sum = export(&a, &art_a, &first, &[]);
    println!("export: {sum}");
    assert_eq!(sum["runs"], 6, "{sum}");
    assert_eq!(sum["model_versions"], 2, "{sum}");
    assert_eq!(sum["metric_values"], 155, "{sum}");
    assert!(first.join("keel-export.json").exists());

    // A folder that is not empty is refused, with one line.
    let to = first.display().to_string();
    let again = keel(
        &[
            "export",
            "--to",
            &to,
            "--db",
            &db(&a),
            "--artifacts",
            &art_a,
        ],
        &[],
    );
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("not empty") && err.trim().lines().count() == 1,
        "{err}"
    );

    // Export folder -> a store whose artifacts are in S3.
    let s3 = support::S3Server::start(&python, "moved");
    let env = s3.env();
    let sum = import(&first, &b, "s3://moved/keel", &env);
    println!("import into S3: {sum}");
    assert_eq!(sum["runs_copied"], 6, "{sum}");
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let in_s3 = support::Server::start_with(&b, 0, "s3://moved/keel", &env_refs);
    roundtrip(&python, &["check", &original.url, &in_s3.url]);

    // Importing the same folder again copies nothing twice.
    let sum = import(&first, &b, "s3://moved/keel", &env);
    assert_eq!(sum["runs_copied"], 0, "{sum}");
    assert_eq!(sum["runs_already_imported_skipped"], 6, "{sum}");

    // S3 store -> export folder -> a local store again.
    let second = tmp.path().join("export-2");
    export(&b, "s3://moved/keel", &second, &env);
    let art_c = c.join("artifacts").display().to_string();
    import(&second, &c, &art_c, &[]);
    let back = support::Server::start(&c, 0);
    roundtrip(&python, &["check", &original.url, &back.url]);
}

#[test]
fn an_unfinished_export_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("runs.jsonl"), "").unwrap();
    let out = keel(
        &[
            "import",
            "--from",
            tmp.path().to_str().unwrap(),
            "--db",
            &db(tmp.path()),
            "--artifacts",
            tmp.path().join("art").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a finished keel export"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
