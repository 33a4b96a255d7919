//! scikit-learn models exported by skl2onnx (`sklearn_models.py`, run with `KEEL_PYTHON`, set
//! by `scripts/test` to a venv with scikit-learn, skl2onnx and onnxruntime) give in keel the
//! outputs onnxruntime gives: labels equal, scores within 1e-5 (relative above 1).

use std::path::{Path, PathBuf};
use std::process::Command;

use keel_onnx::{Data, MapKeys, Model, Runtime, Tensor, Value};
use serde_json::Value as Json;

fn python() -> Option<std::path::PathBuf> {
    keel_testenv::python(
        "keel-onnx sklearn comparisons",
        &["sklearn", "skl2onnx", "onnxruntime"],
    )
}

fn export(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sklearn_models.py");
    let python = python().expect("checked by the caller");
    let out = Command::new(python)
        .arg(script)
        .arg(dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "sklearn_models.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tensor(j: &Json) -> Tensor {
    let shape: Vec<usize> = j["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let items = j["data"].as_array().unwrap();
    let num = |v: &Json| v.as_f64().unwrap_or(f64::NAN);
    let data = match j["dtype"].as_str().unwrap() {
        "float" => Data::Float(items.iter().map(|v| num(v) as f32).collect()),
        "double" => Data::Double(items.iter().map(num).collect()),
        "int64" => Data::Int64(items.iter().map(|v| v.as_i64().unwrap()).collect()),
        "int32" => Data::Int32(items.iter().map(|v| v.as_i64().unwrap() as i32).collect()),
        "bool" => Data::Bool(items.iter().map(|v| v.as_bool().unwrap()).collect()),
        "string" => Data::String(
            items
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
        ),
        other => panic!("dtype {other}"),
    };
    Tensor::new(shape, data).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * b.abs().max(1.0) || (a.is_nan() && b.is_nan())
}

fn assert_floats(case: &str, name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{case}/{name}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, *w),
            "{case}/{name}[{i}]: keel {g}, onnxruntime {w}"
        );
    }
}

fn floats(d: &Data) -> Option<Vec<f64>> {
    match d {
        Data::Float(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
        Data::Double(v) => Some(v.clone()),
        _ => None,
    }
}

fn compare(case: &str, got: &Value, want: &Json) {
    let name = want["name"].as_str().unwrap();
    match (want["kind"].as_str().unwrap(), got) {
        ("maps", Value::Maps(maps)) => {
            let keys: Vec<String> = match &maps.keys {
                MapKeys::Int64(k) => k.iter().map(|k| k.to_string()).collect(),
                MapKeys::String(k) => k.clone(),
            };
            let want_keys: Vec<String> = want["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().map_or_else(|| k.to_string(), String::from))
                .collect();
            assert_eq!(keys, want_keys, "{case}/{name}: keys");
            let want_values: Vec<f64> = want["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let got_values: Vec<f64> = maps.values.iter().map(|&v| f64::from(v)).collect();
            assert_floats(case, name, &got_values, &want_values);
        }
        ("tensor", Value::Tensor(t)) => {
            let w = tensor(want);
            assert_eq!(t.shape, w.shape, "{case}/{name}: shape");
            assert_eq!(t.elem_type(), w.elem_type(), "{case}/{name}: element type");
            match (floats(&t.data), floats(&w.data)) {
                (Some(g), Some(w)) => assert_floats(case, name, &g, &w),
                _ => assert_eq!(t.data, w.data, "{case}/{name}"),
            }
        }
        (kind, got) => panic!("{case}/{name}: onnxruntime gave {kind}, keel {got:?}"),
    }
}

#[test]
fn scikit_learn_models_match_onnxruntime() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    export(dir.path());
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} cases exported", cases.len());
    for json in cases {
        let case = json.file_stem().unwrap().to_str().unwrap().to_string();
        let record: Json = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let model =
            Model::from_file(json.with_extension("onnx")).unwrap_or_else(|e| panic!("{case}: {e}"));
        let expected_runtime = if case == "standard_ops_in_tract" {
            Runtime::Tract
        } else {
            Runtime::Keel
        };
        assert_eq!(model.runtime(), expected_runtime, "{case}");
        // Feed the inputs in the model's declared order.
        let inputs: Vec<Tensor> = model
            .inputs()
            .iter()
            .map(|port| {
                let j = record["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["name"] == port.name.as_str())
                    .unwrap_or_else(|| panic!("{case}: no input {}", port.name));
                tensor(j)
            })
            .collect();
        let outputs = model.run(inputs).unwrap_or_else(|e| panic!("{case}: {e}"));
        let want = record["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), want.len(), "{case}: output count");
        for (got, want) in outputs.iter().zip(want) {
            compare(&case, got, want);
        }
    }
}
