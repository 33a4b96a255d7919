//! Served models checked against the Python tools (with `KEEL_PYTHON`, set by `scripts/test`
//! to a venv with scikit-learn, skl2onnx, onnxruntime and mlflow): scikit-learn models
//! exported by skl2onnx answer over HTTP what onnxruntime answers (within 1e-5), and an MLflow
//! model directory with the onnx flavor answers what `mlflow.pyfunc` predicts.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use keel_serve::server::ServeOptions;
use keel_serve::source::ModelSpec;
use keel_serve::supervisor::ServedModel;
use serde_json::{Value, json};
use support::Server;

fn python() -> Option<String> {
    let p = std::env::var("KEEL_PYTHON").ok();
    if p.is_none() {
        eprintln!(
            "SKIPPED: KEEL_PYTHON is not set (scripts/test sets it to a venv with skl2onnx and mlflow)"
        );
    }
    p
}

fn run(python: &str, script: &Path, out: &Path) {
    let done = Command::new(python)
        .arg(script)
        .arg(out)
        .output()
        .expect("run python");
    assert!(
        done.status.success(),
        "{}: {}",
        script.display(),
        String::from_utf8_lossy(&done.stderr)
    );
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0)
}

/// The v2 datatype of a recorded dtype.
fn datatype(dtype: &str) -> &'static str {
    match dtype {
        "float" => "FP32",
        "double" => "FP64",
        "int64" => "INT64",
        "int32" => "INT32",
        "bool" => "BOOL",
        _ => "BYTES",
    }
}

/// Flat values of a recorded tensor (NaN recorded as null stays null: JSON has no NaN).
fn flat(v: &Value) -> Vec<Value> {
    v["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scikit_learn_models_served_over_http_answer_as_onnxruntime() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../keel-onnx/tests/sklearn_models.py");
    run(&python, &script, dir.path());
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20);
    let models = cases
        .iter()
        .map(|c| ServedModel {
            name: c.file_stem().unwrap().to_string_lossy().into_owned(),
            primary: ModelSpec::Path(c.with_extension("onnx")),
            canary: None,
            shadow: None,
        })
        .collect();
    let server = Server::start(models, ServeOptions::default(), None).await;
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        let record: Value = serde_json::from_str(&std::fs::read_to_string(case).unwrap()).unwrap();
        // NaN inputs cannot travel in JSON numbers; such cases are covered in-process.
        if record["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| flat(i).iter().any(Value::is_null))
        {
            continue;
        }
        let inputs: Vec<Value> = record["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                json!({"name": i["name"], "shape": i["shape"],
                    "datatype": datatype(i["dtype"].as_str().unwrap()), "data": i["data"]})
            })
            .collect();
        let (status, answer) = server
            .json(
                &format!("/v2/models/{name}/infer"),
                &json!({"inputs": inputs}),
            )
            .await;
        assert_eq!(status, 200, "{name}: {answer}");
        let outputs = answer["outputs"].as_array().unwrap();
        for want in record["outputs"].as_array().unwrap() {
            let out_name = want["name"].as_str().unwrap();
            let got = outputs
                .iter()
                .find(|o| o["name"] == out_name)
                .unwrap_or_else(|| panic!("{name}: no output {out_name} in {answer}"));
            let got_data = got["data"].as_array().unwrap();
            let want_data = flat(want);
            assert_eq!(got_data.len(), want_data.len(), "{name}/{out_name}");
            if want["kind"] == "maps" {
                let keys: Vec<String> = want["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().map_or_else(|| k.to_string(), String::from))
                    .collect();
                assert_eq!(got["parameters"]["keys"], json!(keys), "{name}/{out_name}");
            } else {
                assert_eq!(got["shape"], want["shape"], "{name}/{out_name}");
            }
            for (i, (g, w)) in got_data.iter().zip(&want_data).enumerate() {
                match (g.as_f64(), w.as_f64()) {
                    (Some(g), Some(w)) => assert!(
                        close(g, w),
                        "{name}/{out_name}[{i}]: keel {g}, onnxruntime {w}"
                    ),
                    _ => assert_eq!(g, w, "{name}/{out_name}[{i}]"),
                }
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mlflow_onnx_model_directory_answers_as_mlflow_pyfunc() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlflow_onnx_model.py");
    run(&python, &script, dir.path());
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("expected.json")).unwrap())
            .unwrap();
    let model = ServedModel {
        name: "iris".into(),
        primary: ModelSpec::Path(dir.path().join("model")),
        canary: None,
        shadow: None,
    };
    let server = Server::start(vec![model], ServeOptions::default(), None).await;
    let (status, answer) = server
        .json(
            "/invocations",
            &json!({"dataframe_split": expected["split"]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let got = answer["predictions"].as_array().unwrap();
    let want = expected["records"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["output_label"], w["output_label"], "{g} vs {w}");
        let (gp, wp) = (
            g["output_probability"].as_object().unwrap(),
            w["output_probability"].as_object().unwrap(),
        );
        assert_eq!(gp.keys().collect::<Vec<_>>(), wp.keys().collect::<Vec<_>>());
        for (k, v) in wp {
            assert!(
                close(gp[k].as_f64().unwrap(), v.as_f64().unwrap()),
                "{k}: {g} vs {w}"
            );
        }
    }
    // The signature orders the columns: sent in reverse with an extra one first, the model
    // still gets its own order, and the extra column is left out.
    let split = &expected["split"];
    let mut columns = vec![json!("extra")];
    columns.extend(split["columns"].as_array().unwrap().iter().rev().cloned());
    let data: Vec<Value> = split["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut cells = vec![json!(99.0)];
            cells.extend(row.as_array().unwrap().iter().rev().cloned());
            Value::Array(cells)
        })
        .collect();
    let (status, shuffled) = server
        .json(
            "/invocations",
            &json!({"dataframe_split": {"columns": columns, "data": data}}),
        )
        .await;
    assert_eq!(status, 200, "{shuffled}");
    assert_eq!(
        shuffled, answer,
        "the columns' order must not change the answers"
    );
    // The signature names the columns: one missing is a 400 naming it.
    let mut split = expected["split"].clone();
    split["columns"][2] = json!("petal");
    let (status, answer) = server
        .json("/invocations", &json!({"dataframe_split": split}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("petal_length"),
        "{answer}"
    );
    server.stop().await;
}
