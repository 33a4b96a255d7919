//! The model directory: written from a training, read back, byte-identical for the same
//! inputs, and readable by MLflow's own `Model.load` (with `KEEL_PYTHON`, set by
//! `scripts/test`, pointing at a Python with mlflow).

use keel_core::table::{Columns, Values};
use keel_ml::model_dir::{KeelModel, Stamp, read, write};
use keel_ml::params::algorithm;
use keel_ml::train::{Holdout, TrainRequest, train};

fn table() -> Columns {
    let n = 300;
    let x: Vec<Option<f64>> = (0..n).map(|i| Some((i % 30) as f64 / 10.0)).collect();
    let colour: Vec<Option<String>> = (0..n)
        .map(|i| Some(["red", "blue"][i % 2].to_string()))
        .collect();
    let label = (0..n)
        .map(|i| {
            Some(
                if x[i].unwrap_or(0.0) > 1.5 {
                    "big"
                } else {
                    "small"
                }
                .to_string(),
            )
        })
        .collect();
    Columns {
        names: vec!["x".into(), "colour".into(), "size".into()],
        values: vec![
            Values::Numbers(x),
            Values::Text(colour),
            Values::Text(label),
        ],
    }
}

fn trained(t: &Columns) -> KeelModel {
    let algo = algorithm("logistic_regression").unwrap();
    let req = TrainRequest {
        target: Some("size"),
        task: None,
        algorithm: algo,
        params: algo.parse(&["C=2".into()]).unwrap(),
        holdout: Holdout::Split(0.8),
        seed: 3,
        features: None,
        drop: Vec::new(),
        test: None,
    };
    KeelModel::of(&train(t, &req).unwrap(), Some("size"), t).unwrap()
}

#[test]
fn model_directories_round_trip_byte_for_byte() {
    let t = table();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let model = trained(&t);
    write(&a, &model, &t, &Stamp::at("2026-11-30 00:00:00.000000")).unwrap();
    write(
        &b,
        &trained(&t),
        &t,
        &Stamp::at("2026-11-30 00:00:01.000000"),
    )
    .unwrap();
    assert_eq!(read(&a).unwrap(), model);
    assert_eq!(model.classes, ["big", "small"]);
    assert_eq!(
        std::fs::read(a.join("model.json")).unwrap(),
        std::fs::read(b.join("model.json")).unwrap(),
        "the same data, parameters and seed give the same model file"
    );
    let mlmodel = std::fs::read_to_string(a.join("MLmodel")).unwrap();
    assert!(mlmodel.contains("format: keel.model/v1"), "{mlmodel}");
    let example = std::fs::read_to_string(a.join("input_example.json")).unwrap();
    assert!(
        example.starts_with(r#"{"columns":["x","colour"],"data":[[0.0,"red"],[0.1,"blue"]"#),
        "{example}"
    );

    std::fs::write(a.join("model.json"), r#"{"format": "keel.model/v9"}"#).unwrap();
    {
        let e = read(&a).expect_err("an error").to_string();
        assert!(e.contains("missing field `task`"), "{e}");
    }
}

#[test]
fn mlflow_reads_the_signature_and_input_example() {
    let Some(python) =
        keel_testenv::python("mlflow_reads_the_signature_and_input_example", &["mlflow"])
    else {
        return;
    };
    let t = table();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &trained(&t),
        &t,
        &Stamp::at("2026-11-30 00:00:00.000000"),
    )
    .unwrap();
    let script = r#"
import json, sys
import mlflow
m = mlflow.models.Model.load(sys.argv[1])
example = m.load_input_example(sys.argv[1])
print(json.dumps({
    "flavors": sorted(m.flavors),
    "inputs": m.signature.inputs.to_dict(),
    "outputs": m.signature.outputs.to_dict(),
    "example_columns": list(example.columns),
    "example_rows": len(example),
}))
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "flavors": ["keel", "onnx", "python_function"],
            "inputs": [
                {"type": "double", "name": "x", "required": true},
                {"type": "string", "name": "colour", "required": true}
            ],
            "outputs": [{"type": "string", "name": "size", "required": true}],
            "example_columns": ["x", "colour"],
            "example_rows": 5
        })
    );
}
