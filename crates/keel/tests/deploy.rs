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
