//! The deployment files in `deploy/` are checked offline by `deploy/check.py`: Kubernetes
//! manifests against the official schemas (strict), the Dockerfile's stages against the
//! workspace, and every keel command and setting they use against the real binary.

mod support;

use std::process::Command;

#[test]
fn deployment_files_are_valid() {
    let Some(python) = support::python_with_mlflow("deployment_files_are_valid") else {
        return;
    };
    let out = Command::new(python)
        .arg(support::workspace().join("deploy/check.py"))
        .arg(env!("CARGO_BIN_EXE_keel"))
        .current_dir(support::workspace())
        .output()
        .expect("run deploy/check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "deploy/check.py failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("deploy files: OK"), "{stdout}");
}

/// The crates `package` links (normal dependencies, with only the features it asks for, and
/// `extra` cargo arguments such as `--no-default-features`).
fn linked(package: &str, extra: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", package])
        .args(extra)
        .current_dir(support::workspace())
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn each_crate_links_nothing_its_layer_must_not_depend_on() {
    let heavy = [
        "polars",
        "polars-core",
        "sqlx",
        "object_store",
        "axum",
        "reqwest",
    ];
    let rules: [(&str, &[&str]); 8] = [
        ("keel-core", &heavy),
        ("keel-stats", &heavy),
        ("keel-onnx", &heavy),
        (
            "keel-store",
            &["polars", "polars-core", "axum", "keel-data", "keel-server"],
        ),
        (
            "keel-server",
            &[
                "polars",
                "polars-core",
                "keel-data",
                "keel-ml",
                "keel-serve",
            ],
        ),
        (
            "keel-data",
            &["sqlx", "axum", "keel-store", "keel-server", "keel-serve"],
        ),
        (
            "keel-ml",
            &[
                "polars",
                "polars-core",
                "sqlx",
                "axum",
                "keel-data",
                "keel-store",
            ],
        ),
        (
            "keel-serve",
            &[
                "polars",
                "polars-core",
                "polars-arrow",
                "sqlx",
                "object_store",
                "keel-data",
                "keel-store",
                "keel-server",
            ],
        ),
    ];
    let mut broken = Vec::new();
    for (package, forbidden) in rules {
        let links = linked(package, &[]);
        assert!(links.iter().any(|l| l == package), "{package}: {links:?}");
        for f in forbidden {
            if links.iter().any(|l| l == f) {
                broken.push(format!("{package} links {f}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
    // The serving-only build of the binary.
    let links = linked("keel", &["--no-default-features"]);
    assert!(links.iter().any(|l| l == "keel-serve"), "{links:?}");
    for f in [
        "polars",
        "sqlx",
        "object_store",
        "keel-data",
        "keel-store",
        "keel-server",
    ] {
        assert!(
            !links.iter().any(|l| l == f),
            "the serving-only build links {f}"
        );
    }
}
