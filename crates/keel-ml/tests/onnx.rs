//! The ONNX export: keel's predictions and onnxruntime's on the same rows agree within 1e-5
//! for every model kind, and MLflow loads the model directory through `mlflow.onnx` and
//! `mlflow.pyfunc` (with `KEEL_PYTHON`, set by `scripts/test`, pointing at a Python with
//! mlflow and onnxruntime).

use std::path::Path;

use keel_core::table::{Columns, Values};
use keel_ml::model_dir::{KeelModel, Stamp, write};
use keel_ml::params::algorithm;
use keel_ml::rng::Rng;
use keel_ml::train::{Holdout, TrainRequest, train};
use serde_json::json;

/// 600 rows of three numeric features (exact in `f32`; every 37th value of `b` missing) and
/// a text column, and three targets: a binary and a three-class label, and a number.
fn table() -> Columns {
    let n = 600;
    let mut rng = Rng::new(11);
    let mut draw = || (rng.below(4096) as f64 - 2048.0) / 256.0;
    let a: Vec<Option<f64>> = (0..n).map(|_| Some(draw())).collect();
    let b: Vec<Option<f64>> = (0..n).map(|i| (i % 37 != 5).then(&mut draw)).collect();
    let c: Vec<Option<f64>> = (0..n).map(|_| Some(draw())).collect();
    let get = |v: &[Option<f64>], i: usize| v[i].unwrap_or(0.0);
    // A text column with every 29th value missing; red raises the binary label's odds.
    let colour: Vec<Option<String>> = (0..n)
        .map(|i| (i % 29 != 3).then(|| ["red", "green", "blue"][(i * 7) % 3].to_string()))
        .collect();
    let red = |i: usize| {
        if colour[i].as_deref() == Some("red") {
            1.0
        } else {
            0.0
        }
    };
    let binary = (0..n)
        .map(|i| {
            Some(
                if get(&a, i) + 0.5 * get(&b, i) + 2.0 * red(i) > 0.3 {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            )
        })
        .collect();
    let three = (0..n)
        .map(|i| {
            let s = get(&a, i) - get(&c, i);
            Some(["x", "y", "z"][usize::from(s > -2.0) + usize::from(s > 2.0)].to_string())
        })
        .collect();
    let value = (0..n)
        .map(|i| Some(2.0 * get(&a, i) - get(&b, i) + (get(&c, i) / 2.0).sin()))
        .collect();
    // Integer targets, as a 0/1 column of a CSV or a grade: classes in the target's own type.
    let flag = (0..n)
        .map(|i| Some(f64::from(u8::from(get(&a, i) - get(&c, i) > 0.5))))
        .collect();
    let grade = (0..n)
        .map(|i| {
            let s = get(&a, i) + get(&c, i);
            Some(f64::from(u8::from(s > -2.0) + u8::from(s > 2.0)) * 5.0)
        })
        .collect();
    Columns {
        names: [
            "a", "b", "c", "colour", "binary", "three", "value", "flag", "grade",
        ]
        .map(String::from)
        .to_vec(),
        values: vec![
            Values::Numbers(a),
            Values::Numbers(b),
            Values::Numbers(c),
            Values::Text(colour),
            Values::Text(binary),
            Values::Text(three),
            Values::Numbers(value),
            Values::Numbers(flag),
            Values::Numbers(grade),
        ],
    }
}

/// A model of `target` ("" for none: k-means) on the numeric columns.
fn fit(t: &Columns, target: &str, algo: &str, params: &[&str]) -> KeelModel {
    fit_on(t, target, algo, params, false)
}

/// A model of `target` on the numeric columns and, with `text`, the text column.
fn fit_on(t: &Columns, target: &str, algo: &str, params: &[&str], text: bool) -> KeelModel {
    let a = algorithm(algo).unwrap();
    let target = Some(target).filter(|t| !t.is_empty());
    let others: Vec<String> = ["binary", "three", "value", "flag", "grade"]
        .iter()
        .filter(|n| Some(**n) != target)
        .chain((!text).then_some(&"colour"))
        .map(|n| n.to_string())
        .collect();
    let req = TrainRequest {
        target,
        task: None,
        algorithm: a,
        params: a
            .parse(&params.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .unwrap(),
        holdout: Holdout::Split(0.8),
        seed: 5,
        features: None,
        drop: others,
        test: None,
    };
    KeelModel::of(&train(t, &req).unwrap(), target, t).unwrap()
}

/// Writes `model`'s directory with `expected.json`: input rows and keel's outputs on them.
fn write_case(dir: &Path, model: &KeelModel, t: &Columns) {
    write(dir, model, t, &Stamp::at("2026-11-30 00:00:00.000000")).unwrap();
    let rows: Vec<usize> = (0..t.rows()).step_by(3).collect();
    let x = model.pipeline.transform(t, &rows).unwrap();
    let inputs: Vec<Vec<serde_json::Value>> = rows
        .iter()
        .map(|&i| {
            model
                .inputs
                .iter()
                .map(|c| match t.get(&c.name) {
                    Some(Values::Numbers(v)) => json!(v[i]),
                    Some(Values::Text(v)) => json!(v[i]),
                    None => serde_json::Value::Null,
                })
                .collect()
        })
        .collect();
    let mut outputs = serde_json::Map::new();
    if let keel_ml::train::Model::Clusters(m) = &model.model {
        outputs.insert("cluster".into(), json!(m.predict(&x)));
    } else if model.task == "classification" {
        let proba = model.model.predict_proba(&x).unwrap();
        let label: Vec<&str> = proba
            .iter()
            .map(|p| model.classes[keel_stats::classification::argmax(p)].as_str())
            .collect();
        // Labels in the target's own type: numbers for an integer target.
        let label: Vec<serde_json::Value> = match model.label_type {
            keel_ml::train::LabelType::String => label.iter().map(|l| json!(l)).collect(),
            _ => label
                .iter()
                .map(|l| json!(l.parse::<i64>().unwrap()))
                .collect(),
        };
        outputs.insert("label".into(), json!(label));
        for (k, class) in model.classes.iter().enumerate() {
            let p: Vec<f64> = proba.iter().map(|p| p[k]).collect();
            outputs.insert(format!("probability_{class}"), json!(p));
        }
    } else {
        outputs.insert(
            "variable".into(),
            json!(model.model.predict_values(&x).unwrap()),
        );
    }
    let columns: Vec<&str> = model.inputs.iter().map(|c| c.name.as_str()).collect();
    let expected = json!({"columns": columns, "rows": inputs, "outputs": outputs});
    std::fs::write(dir.join("expected.json"), expected.to_string()).unwrap();
}

#[test]
fn onnx_models_predict_what_keel_predicts() {
    let t = table();
    let cases: Vec<(&str, KeelModel)> = vec![
        (
            "logistic_binary",
            fit(&t, "binary", "logistic_regression", &[]),
        ),
        (
            "logistic_three",
            fit(&t, "three", "logistic_regression", &[]),
        ),
        ("linear", fit(&t, "value", "linear_regression", &[])),
        ("tree", fit(&t, "binary", "decision_tree", &["max_depth=6"])),
        (
            "forest_three",
            fit(&t, "three", "random_forest", &["n_estimators=20"]),
        ),
        (
            "forest_value",
            fit(&t, "value", "random_forest", &["n_estimators=10"]),
        ),
        (
            "boosting_binary",
            fit(&t, "binary", "gradient_boosting", &[]),
        ),
        (
            "boosting_three",
            fit(&t, "three", "gradient_boosting", &["max_iter=30"]),
        ),
        ("boosting_value", fit(&t, "value", "gradient_boosting", &[])),
        ("kmeans", fit(&t, "", "k_means", &["n_clusters=4"])),
        // Integer targets: classification inferred, labels given back as integers.
        ("logistic_flag", fit(&t, "flag", "logistic_regression", &[])),
        (
            "forest_grade",
            fit(&t, "grade", "random_forest", &["n_estimators=10"]),
        ),
        // With the text column: one input per column, one-hot or ordinal codes.
        (
            "logistic_text",
            fit_on(&t, "binary", "logistic_regression", &[], true),
        ),
        (
            "forest_text",
            fit_on(&t, "three", "random_forest", &["n_estimators=20"], true),
        ),
        (
            "boosting_text_value",
            fit_on(&t, "value", "gradient_boosting", &[], true),
        ),
        (
            "kmeans_text",
            fit_on(&t, "", "k_means", &["n_clusters=3"], true),
        ),
    ];
    let root = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for (name, model) in &cases {
        let dir = root.path().join(name);
        write_case(&dir, model, &t);
        let mlmodel = std::fs::read_to_string(dir.join("MLmodel")).unwrap();
        assert!(
            mlmodel.contains("loader_module: mlflow.onnx") && dir.join("model.onnx").exists(),
            "{name}: {mlmodel}"
        );
        dirs.push(dir);
    }
    let Some(python) = keel_testenv::python(
        "onnx_models_predict_what_keel_predicts",
        &["mlflow", "onnxruntime"],
    ) else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(&dirs)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches(" ok ").count(),
        cases.len()
    );
}

#[test]
fn nearest_neighbour_models_have_no_onnx_flavor() {
    let t = table();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &fit(&t, "binary", "k_neighbors", &[]),
        &t,
        &Stamp::at("2026-11-30 00:00:00.000000"),
    )
    .unwrap();
    assert!(!dir.path().join("model.onnx").exists());
    let mlmodel = std::fs::read_to_string(dir.path().join("MLmodel")).unwrap();
    assert!(!mlmodel.contains("onnx"), "{mlmodel}");
}
