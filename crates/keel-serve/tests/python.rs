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

fn python() -> Option<std::path::PathBuf> {
    keel_testenv::python(
        "keel-serve reference comparisons",
        &["mlflow", "sklearn", "skl2onnx", "onnxruntime"],
    )
}

fn run(python: &Path, script: &Path, out: &Path) {
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

/// One row of one output as comparable values: a label, a list of numbers, or a map (class
/// to probability) whatever the protocol wrapped it in.
#[derive(Debug)]
enum RowAnswer {
    Values(Vec<Value>),
    Map(std::collections::BTreeMap<String, f64>),
}

fn row_answer(v: &Value) -> RowAnswer {
    match v {
        Value::Object(m) if m.contains_key("keys") && m.contains_key("values") => RowAnswer::Map(
            m["keys"]
                .as_array()
                .unwrap()
                .iter()
                .zip(m["values"].as_array().unwrap())
                .map(|(k, v)| {
                    let k = k.as_str().map_or_else(|| k.to_string(), String::from);
                    (k, v.as_f64().unwrap())
                })
                .collect(),
        ),
        Value::Object(m) => RowAnswer::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .collect(),
        ),
        Value::Array(items) => RowAnswer::Values(
            items
                .iter()
                .flat_map(|i| match i {
                    Value::Array(inner) => inner.clone(),
                    other => vec![other.clone()],
                })
                .collect(),
        ),
        other => RowAnswer::Values(vec![other.clone()]),
    }
}

fn same_row(what: &str, got: &RowAnswer, want: &RowAnswer) {
    match (got, want) {
        (RowAnswer::Values(g), RowAnswer::Values(w)) => {
            assert_eq!(g.len(), w.len(), "{what}: keel {g:?}, reference {w:?}");
            for (g, w) in g.iter().zip(w) {
                match (g.as_f64(), w.as_f64()) {
                    (Some(a), Some(b)) => {
                        assert!(close(a, b), "{what}: keel {g}, reference {w}")
                    }
                    _ => assert_eq!(g, w, "{what}"),
                }
            }
        }
        (RowAnswer::Map(g), RowAnswer::Map(w)) => {
            assert_eq!(
                g.keys().collect::<Vec<_>>(),
                w.keys().collect::<Vec<_>>(),
                "{what}: classes"
            );
            for (k, b) in w {
                assert!(close(g[k], *b), "{what}[{k}]: keel {}, reference {b}", g[k]);
            }
        }
        _ => panic!("{what}: keel {got:?}, reference {want:?}"),
    }
}

/// Every row of every output of an answer, in any of the three answer shapes: MLflow records
/// (frame input), MLflow named tensors (tensor input) or the Open Inference Protocol's outputs.
fn answer_rows(answer: &Value) -> std::collections::BTreeMap<String, Vec<RowAnswer>> {
    let mut by_output = std::collections::BTreeMap::new();
    if let Some(outputs) = answer.get("outputs").and_then(Value::as_array) {
        for o in outputs {
            let name = o["name"].as_str().unwrap().to_string();
            let shape: Vec<usize> = o["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let per_row: usize = shape[1..].iter().product();
            let data = o["data"].as_array().unwrap();
            let keys = o.get("parameters").and_then(|p| p.get("keys"));
            let rows = data
                .chunks(per_row.max(1))
                .map(|chunk| match keys {
                    Some(keys) => row_answer(&json!({"keys": keys, "values": chunk})),
                    None => RowAnswer::Values(chunk.to_vec()),
                })
                .collect();
            by_output.insert(name, rows);
        }
        return by_output;
    }
    match &answer["predictions"] {
        Value::Array(records) => {
            for r in records {
                for (name, v) in r.as_object().unwrap() {
                    by_output
                        .entry(name.clone())
                        .or_insert_with(Vec::new)
                        .push(row_answer(v));
                }
            }
        }
        Value::Object(named) => {
            for (name, rows) in named {
                by_output.insert(
                    name.clone(),
                    rows.as_array().unwrap().iter().map(row_answer).collect(),
                );
            }
        }
        other => panic!("no predictions in {other}"),
    }
    by_output
}

/// A CSV cell: empty for null, text as it is (the reference texts hold no commas or quotes).
fn csv_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The request bodies of every format of both protocols for `rows` (one case's columns in the
/// client's order), each with a label; `model_order` is the column order positional tensor
/// formats must follow, `input` the model's input name (matrix models) and `version` its
/// version on the versioned v2 route.
fn request_bodies(
    case: &Value,
    rows: &[Value],
    input: &str,
    version: &str,
) -> Vec<(String, String, &'static str, String)> {
    let columns: Vec<&str> = case["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let types: Vec<&str> = case["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let n = rows.len();
    let record = |row: &Value| -> String {
        // Written by hand so the keys keep the client's order.
        let fields: Vec<String> = columns
            .iter()
            .zip(row.as_array().unwrap())
            .map(|(c, v)| format!("{}: {v}", Value::from(*c)))
            .collect();
        format!("{{{}}}", fields.join(", "))
    };
    let records = format!(
        "[{}]",
        rows.iter().map(record).collect::<Vec<_>>().join(", ")
    );
    let mut bodies = vec![
        (
            "dataframe_split".to_string(),
            "/invocations".to_string(),
            "application/json",
            json!({"dataframe_split": {"columns": columns, "data": rows}}).to_string(),
        ),
        (
            "dataframe_records".into(),
            "/invocations".into(),
            "application/json",
            format!("{{\"dataframe_records\": {records}}}"),
        ),
        (
            "instances (records)".into(),
            "/invocations".into(),
            "application/json",
            format!("{{\"instances\": {records}}}"),
        ),
        (
            "inputs (records)".into(),
            "/invocations".into(),
            "application/json",
            format!("{{\"inputs\": {records}}}"),
        ),
        (
            "csv".into(),
            "/invocations".into(),
            "text/csv",
            std::iter::once(columns.join(","))
                .chain(rows.iter().map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(csv_cell)
                        .collect::<Vec<_>>()
                        .join(",")
                }))
                .map(|l| l + "\n")
                .collect(),
        ),
    ];
    let mut v2_inputs = Vec::new();
    if case["kind"] == "matrix" {
        // Positional tensors follow the model's own column order.
        let order: Vec<usize> = case["model_columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| columns.iter().position(|c| m == c).unwrap())
            .collect();
        let matrix: Vec<Value> = rows
            .iter()
            .map(|r| Value::Array(order.iter().map(|&j| r[j].clone()).collect()))
            .collect();
        for field in ["instances", "inputs"] {
            bodies.push((
                format!("{field} (tensor)"),
                "/invocations".into(),
                "application/json",
                json!({ field: matrix }).to_string(),
            ));
        }
        bodies.push((
            "inputs (named tensor)".into(),
            "/invocations".into(),
            "application/json",
            json!({"inputs": {input: matrix}}).to_string(),
        ));
        let flat: Vec<Value> = matrix
            .iter()
            .flat_map(|r| r.as_array().unwrap().clone())
            .collect();
        v2_inputs.push(json!({"name": input, "shape": [n, order.len()],
            "datatype": "FP32", "data": flat}));
    } else {
        let named: serde_json::Map<String, Value> = columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let column: Vec<Value> = rows.iter().map(|r| json!([r[j]])).collect();
                (c.to_string(), Value::Array(column))
            })
            .collect();
        bodies.push((
            "inputs (named tensors)".into(),
            "/invocations".into(),
            "application/json",
            json!({ "inputs": named }).to_string(),
        ));
        for (j, c) in columns.iter().enumerate() {
            let data: Vec<Value> = rows.iter().map(|r| r[j].clone()).collect();
            let datatype = if types[j] == "text" { "BYTES" } else { "FP32" };
            v2_inputs.push(json!({"name": c, "shape": [n, 1], "datatype": datatype, "data": data}));
        }
    }
    if case["kind"] == "matrix" && case["model_columns"] != case["columns"] {
        // A column model also takes one [N] tensor per column over v2, by name.
        let per_column: Vec<Value> = columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let data: Vec<Value> = rows.iter().map(|r| r[j].clone()).collect();
                json!({"name": c, "shape": [n], "datatype": "FP32", "data": data})
            })
            .collect();
        let body = json!({"inputs": per_column}).to_string();
        bodies.push(("v2 (columns)".into(), "v2".into(), "application/json", body));
    }
    let v2 = json!({"inputs": v2_inputs}).to_string();
    bodies.push(("v2".into(), "v2".into(), "application/json", v2.clone()));
    bodies.push((
        format!("v2 version {version}"),
        format!("v2/versions/{version}"),
        "application/json",
        v2,
    ));
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_format_of_both_protocols_answers_as_onnxruntime_and_mlflow_pyfunc() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serving_references.py");
    run(&python, &script, dir.path());
    let mut cases: Vec<(String, Value)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let case: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_stem().unwrap().to_string_lossy().into_owned(), case)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(cases.len(), 4, "every reference case was written");
    let models = cases
        .iter()
        .map(|(name, case)| ServedModel {
            name: name.clone(),
            primary: ModelSpec::Path(dir.path().join(case["path"].as_str().unwrap())),
            canary: None,
            shadow: None,
        })
        .collect();
    let server = Server::start(models, ServeOptions::default(), None).await;
    let mut checked = 0;
    for (name, case) in &cases {
        let (status, meta) = server.get(&format!("/v2/models/{name}")).await;
        assert_eq!(status, 200, "{meta}");
        let meta: Value = serde_json::from_str(&meta).unwrap();
        let input = meta["inputs"][0]["name"].as_str().unwrap().to_string();
        let version = meta["versions"][0].as_str().unwrap().to_string();
        let rows = case["rows"].as_array().unwrap();
        assert!(
            rows.iter()
                .any(|r| r.as_array().unwrap().iter().any(Value::is_null)),
            "{name}: the rows hold missing values"
        );
        // Every row at once, one row alone, and one row with a missing value alone.
        let with_null = rows
            .iter()
            .position(|r| r.as_array().unwrap().iter().any(Value::is_null))
            .unwrap();
        for picked in [
            (0..rows.len()).collect::<Vec<_>>(),
            vec![0],
            vec![with_null],
        ] {
            let sent: Vec<Value> = picked.iter().map(|&i| rows[i].clone()).collect();
            for (format, path, content_type, body) in request_bodies(case, &sent, &input, &version)
            {
                let path = match path.strip_prefix("v2") {
                    Some(rest) => format!("/v2/models/{name}{rest}/infer"),
                    None => format!("/models/{name}{path}"),
                };
                let (status, _, answer) = server.post(&path, content_type, body).await;
                let what = format!("{name}, {format}, {} rows", sent.len());
                assert_eq!(status, 200, "{what}: {answer}");
                let got = answer_rows(&answer);
                for (output, want) in case["outputs"].as_object().unwrap() {
                    let got = got
                        .get(output)
                        .unwrap_or_else(|| panic!("{what}: no output {output} in {answer}"));
                    assert_eq!(got.len(), sent.len(), "{what}/{output}: rows");
                    for (k, &i) in picked.iter().enumerate() {
                        let want = row_answer(&want[i]);
                        same_row(&format!("{what}/{output}[{i}]"), &got[k], &want);
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 100, "{checked} requests compared");
    server.stop().await;
}

// --- python_function models served by Python workers -------------------------------------

/// The options that run Python models with the test venv's interpreter.
fn python_options(python: &Path, workers: usize) -> ServeOptions {
    let mut options = ServeOptions::default();
    options.python.python = Some(python.to_path_buf());
    options.python.workers = workers;
    options
}

/// Whether two answers agree: numbers within `tol` (relative, absolute below 1), everything
/// else exactly.
fn same_within(got: &Value, want: &Value, tol: f64) -> bool {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            (g - w).abs() <= tol * w.abs().max(1.0)
        }
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(g, w)| same_within(g, w, tol))
        }
        (Value::Object(g), Value::Object(w)) => {
            g.len() == w.len()
                && w.iter()
                    .all(|(k, w)| g.get(k).is_some_and(|g| same_within(g, w, tol)))
        }
        _ => got == want,
    }
}

/// The same numbers (Python workers run the model itself: 1e-9 allows only the last bits a
/// batch's arithmetic may change), labels and text exactly.
fn same_json(got: &Value, want: &Value) -> bool {
    same_within(got, want, 1e-9)
}

/// Saves the pyfunc test models with MLflow's own answers (`tests/pyfunc_models.py`).
fn pyfunc_models(python: &Path, out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyfunc_models.py");
    run(python, &script, out);
}

fn served(name: &str, dir: &Path) -> ServedModel {
    ServedModel {
        name: name.into(),
        primary: ModelSpec::Path(dir.join(name)),
        canary: None,
        shadow: None,
    }
}

/// The V2 datatype and data of a column of records.
fn v2_column(rows: &[Value], column: &str) -> Value {
    let data: Vec<Value> = rows.iter().map(|r| r[column].clone()).collect();
    let datatype = match &data[0] {
        Value::Bool(_) => "BOOL",
        Value::String(_) => "BYTES",
        Value::Number(n) if n.is_i64() => "INT64",
        _ => "FP64",
    };
    json!({"name": column, "shape": [data.len()], "datatype": datatype, "data": data})
}

/// One V2 answer turned back into MLflow's predictions: records for a data frame's columns,
/// the values of `predictions` otherwise.
fn v2_as_predictions(answer: &Value, rows: usize) -> Value {
    let outputs = answer["outputs"].as_array().unwrap();
    if let [one] = outputs.as_slice()
        && one["name"] == "predictions"
    {
        let data = one["data"].as_array().unwrap();
        let shape: Vec<usize> = one["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        if shape.len() == 1 {
            return Value::Array(data.clone());
        }
        let width = data.len() / rows;
        return Value::Array(
            data.chunks(width)
                .map(|c| Value::Array(c.to_vec()))
                .collect(),
        );
    }
    Value::Array(
        (0..rows)
            .map(|i| {
                let mut record = serde_json::Map::new();
                for o in outputs {
                    record.insert(o["name"].as_str().unwrap().into(), o["data"][i].clone());
                }
                Value::Object(record)
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_function_models_answer_as_mlflow_pyfunc_in_every_format() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    pyfunc_models(&python, dir.path());
    let names = [
        "pipeline", "forest", "boosting", "xgboost", "lightgbm", "scorer",
    ];
    let cache = tempfile::tempdir().unwrap();
    // Once with the scikit-learn models converted to ONNX (checked, then run by keel), once
    // with every model in Python workers: both must answer as MLflow does.
    for convert in [true, false] {
        let mut models: Vec<ServedModel> = names.iter().map(|n| served(n, dir.path())).collect();
        models.push(served("embedder", dir.path()));
        let mut options = python_options(&python, 2);
        options.python.convert = convert;
        options.python.convert_cache = cache.path().to_path_buf();
        let server = Server::start(models, options, None).await;
        for name in names {
            let (_, meta) = server.get(&format!("/v2/models/{name}")).await;
            let meta: Value = serde_json::from_str(&meta).unwrap();
            let native = convert && name != "scorer";
            assert_eq!(
                meta["parameters"]["runtime"],
                if native { "keel-onnx" } else { "python" },
                "{name}: {meta}"
            );
            let note = meta["parameters"]["note"].as_str().unwrap_or_default();
            // A converted model's values are those its conversion was checked to within 1e-5.
            let tol = if native { 1e-5 } else { 1e-9 };
            let same_json = |g: &Value, w: &Value| same_within(g, w, tol);
            if native {
                let converter = match name {
                    "xgboost" | "lightgbm" => "onnxmltools",
                    _ => "skl2onnx",
                };
                assert!(
                    note.starts_with(&format!("converted to ONNX by {converter}")),
                    "{name}: {note}"
                );
                assert!(note.contains("checked on"), "{name}: {note}");
            } else {
                assert!(note.starts_with("not converted to ONNX"), "{name}: {note}");
            }
            let record: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.path().join(format!("{name}.json"))).unwrap(),
            )
            .unwrap();
            let rows = record["rows"].as_array().unwrap();
            let want = &record["predictions"];
            let columns: Vec<String> = rows[0].as_object().unwrap().keys().cloned().collect();
            let path = format!("/models/{name}/invocations");
            let split = json!({"dataframe_split": {
                "columns": columns,
                "data": rows.iter().map(|r| columns.iter().map(|c| r[c].clone()).collect::<Vec<_>>()).collect::<Vec<_>>(),
            }});
            let by_column: serde_json::Map<String, Value> = columns
                .iter()
                .map(|c| {
                    (
                        c.clone(),
                        Value::Array(rows.iter().map(|r| r[c].clone()).collect()),
                    )
                })
                .collect();
            let bodies = [
                ("dataframe_split", split),
                ("dataframe_records", json!({"dataframe_records": rows})),
                ("instances", json!({"instances": rows})),
                ("inputs", json!({"inputs": by_column})),
            ];
            for (format, body) in bodies {
                let (status, answer) = server.json(&path, &body).await;
                assert_eq!(status, 200, "{name} {format}: {answer}");
                assert!(
                    same_json(&answer["predictions"], want),
                    "{name} {format}: keel {} vs mlflow {want}",
                    answer["predictions"]
                );
            }
            // CSV, as pandas writes it.
            let mut csv = columns.join(",");
            for r in rows {
                csv.push('\n');
                let cells: Vec<String> = columns
                    .iter()
                    .map(|c| match &r[c] {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => {
                            if *b {
                                "True".into()
                            } else {
                                "False".into()
                            }
                        }
                        other => other.to_string(),
                    })
                    .collect();
                csv.push_str(&cells.join(","));
            }
            let (status, _, answer) = server.post(&path, "text/csv", csv).await;
            assert_eq!(status, 200, "{name} csv: {answer}");
            assert!(
                same_json(&answer["predictions"], want),
                "{name} csv: {answer}"
            );
            // The Open Inference Protocol, one input per column.
            let inputs: Vec<Value> = columns.iter().map(|c| v2_column(rows, c)).collect();
            let (status, answer) = server
                .json(
                    &format!("/v2/models/{name}/infer"),
                    &json!({"inputs": inputs}),
                )
                .await;
            assert_eq!(status, 200, "{name} v2: {answer}");
            assert!(
                same_json(&v2_as_predictions(&answer, rows.len()), want),
                "{name} v2: keel {answer} vs mlflow {want}"
            );
            // One row per request, all at once: batched across requests, each answered its own.
            let answers = futures::future::join_all(rows.iter().map(|r| {
                let body = json!({"dataframe_records": [r]});
                let server = &server;
                let path = path.clone();
                async move { server.json(&path, &body).await }
            }))
            .await;
            for (i, (status, answer)) in answers.iter().enumerate() {
                assert_eq!(*status, 200, "{name} row {i}: {answer}");
                assert!(
                    same_json(&answer["predictions"][0], &want[i]),
                    "{name} row {i}: keel {answer} vs mlflow {}",
                    want[i]
                );
            }
        }
        // A tensor model: a [N, 3] float32 array in, a [N, 2] array out.
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("embedder.json")).unwrap(),
        )
        .unwrap();
        let want = &record["predictions"];
        for body in [
            json!({"inputs": record["tensor"]}),
            json!({"instances": record["tensor"]}),
        ] {
            let (status, answer) = server.json("/models/embedder/invocations", &body).await;
            assert_eq!(status, 200, "{answer}");
            assert!(
                same_json(&answer["predictions"], want),
                "keel {answer} vs mlflow {want}"
            );
        }
        let flat: Vec<Value> = record["tensor"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().clone())
            .collect();
        let (status, answer) = server
        .json(
            "/v2/models/embedder/infer",
            &json!({"inputs": [{"name": "input", "shape": [20, 3], "datatype": "FP32", "data": flat}]}),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            same_json(&v2_as_predictions(&answer, 20), want),
            "keel {answer} vs mlflow {want}"
        );
        // Requests that do not fit the signature are refused before they reach Python.
        let cases = [
            (
                json!({"dataframe_records": [{"amount": 1.0, "items": 2.5, "member": true, "region": "x"}]}),
                "column 'items' must hold long values, got 2.5",
            ),
            (
                json!({"dataframe_records": [{"amount": 1.0, "items": 2, "member": "yes", "region": "x"}]}),
                "column 'member' must hold boolean values, got 'yes'",
            ),
            (
                json!({"dataframe_records": [{"amount": 1.0, "items": 2, "member": true}]}),
                "missing input column 'region'",
            ),
            (
                json!({"dataframe_records": [{"amount": "lots", "items": 2, "member": true, "region": "x"}]}),
                "column 'amount' must hold double values, got strings",
            ),
        ];
        for (body, message) in cases {
            let (status, answer) = server.json("/models/scorer/invocations", &body).await;
            assert_eq!(status, 400, "{answer}");
            assert!(
                answer["message"].as_str().unwrap().contains(message),
                "{answer}"
            );
        }
        let (status, answer) = server
            .json(
                "/models/embedder/invocations",
                &json!({"inputs": [[1.0, 2.0]]}),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("shape"),
            "{answer}"
        );
        // The metadata names the runtime and the signature's inputs.
        let (status, meta) = server.get("/v2/models/scorer").await;
        assert_eq!(status, 200, "{meta}");
        let meta: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta["platform"], "mlflow_pyfunc", "{meta}");
        assert_eq!(
            meta["inputs"][1],
            json!({"name": "items", "datatype": "INT64", "shape": [-1]}),
            "{meta}"
        );
        server.stop().await;
    }
    // The conversion is cached with its verdict: served again, the forest's conversion is
    // reused without running Python (the interpreter given does not exist).
    let mut o = python_options(&python, 1).python;
    o.convert_cache = cache.path().to_path_buf();
    o.python = Some(PathBuf::from("/nonexistent/python3"));
    let p = keel_serve::predictor::Predictor::open(
        &dir.path().join("forest"),
        &o,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(p.runtime(), "keel-onnx");
    // A conversion whose answers disagree with the model's is not served: the forest's check
    // with one value moved by 1e-4 fails on that row.
    let cached = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p.join("check.json"))
                .is_ok_and(|c| c.contains("\"classifier\": false"))
        })
        .expect("the forest's cached conversion");
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(cached.join("model.onnx"), work.path().join("model.onnx")).unwrap();
    let mut check: Value =
        serde_json::from_str(&std::fs::read_to_string(cached.join("check.json")).unwrap()).unwrap();
    let v = check["predictions"][5].as_f64().unwrap();
    check["predictions"][5] = json!(v + 1e-4 * v.abs().max(1.0));
    std::fs::write(work.path().join("check.json"), check.to_string()).unwrap();
    let ml = keel_serve::mlmodel::MlModel::read(&dir.path().join("forest")).unwrap();
    let verdict = keel_serve::python::convert::check_folder(&ml, work.path()).unwrap();
    assert!(!verdict.native);
    assert!(
        verdict.note.contains("disagrees with the model on row 5"),
        "{}",
        verdict.note
    );
    // A converter that cannot run says why, and its verdict is not kept: it is about the
    // Python, not the model, and the next start tries again.
    let fresh = tempfile::tempdir().unwrap();
    let broken = fresh.path().join("python");
    std::fs::write(&broken, "#!/bin/sh\necho 'no converter here' >&2\nexit 3\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&broken)
        .status()
        .unwrap();
    let cache_dir = fresh.path().join("cache");
    let limit = std::time::Duration::from_secs(60);
    let (_, verdict) =
        keel_serve::python::convert::convert(&ml, &broken, &cache_dir, limit).unwrap();
    assert!(!verdict.native);
    assert!(
        verdict.note.contains("the converter did not run"),
        "{}",
        verdict.note
    );
    assert!(
        verdict.note.contains("no converter here"),
        "{}",
        verdict.note
    );
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 0);
    // A converter that hangs is killed at the limit, and that verdict is not kept either.
    std::fs::write(&broken, "#!/bin/sh\nexec sleep 600\n").unwrap();
    let started = std::time::Instant::now();
    let limit = std::time::Duration::from_secs(1);
    let (_, verdict) =
        keel_serve::python::convert::convert(&ml, &broken, &cache_dir, limit).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(!verdict.native);
    assert!(
        verdict
            .note
            .contains("the converter did not finish within 1 s"),
        "{}",
        verdict.note
    );
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 0);
    // Unchanged, the same check passes.
    check["predictions"][5] = json!(v);
    std::fs::write(work.path().join("check.json"), check.to_string()).unwrap();
    assert!(
        keel_serve::python::convert::check_folder(&ml, work.path())
            .unwrap()
            .native
    );
}

/// The process ids of the Python workers serving the model folder `model`.
fn worker_pids(model: &Path) -> Vec<u32> {
    let model = std::fs::canonicalize(model).unwrap();
    let model = model.to_string_lossy();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a.ends_with("worker.py")) && args.iter().any(|a| *a == model) {
            pids.push(pid);
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_workers_that_die_raise_or_hang_are_answered_and_replaced() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    pyfunc_models(&python, dir.path());
    let mut options = python_options(&python, 2);
    options.timeout = std::time::Duration::from_secs(2);
    // The forest in Python workers, not its ONNX conversion.
    options.python.convert = false;
    let server = Server::start(
        vec![served("forest", dir.path()), served("scorer", dir.path())],
        options.clone(),
        None,
    )
    .await;
    let read = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap()
    };

    // A model that raises: the request that made it raise gets a 500 naming the error; the
    // requests batched with it get their own answers.
    let scorer = read("scorer");
    let rows = scorer["rows"].as_array().unwrap();
    let mut bad = rows[0].clone();
    bad["amount"] = json!(-1.0);
    let mut bodies: Vec<Value> = rows[..12]
        .iter()
        .map(|r| json!({"dataframe_records": [r]}))
        .collect();
    bodies.insert(5, json!({"dataframe_records": [bad]}));
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|b| server.json("/models/scorer/invocations", b)),
    )
    .await;
    for (i, (status, answer)) in answers.iter().enumerate() {
        if i == 5 {
            assert_eq!(*status, 500, "{answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains("amount must not be -1"),
                "{answer}"
            );
        } else {
            let row = if i < 5 { i } else { i - 1 };
            assert_eq!(*status, 200, "{answer}");
            assert!(
                same_json(&answer["predictions"][0], &scorer["predictions"][row]),
                "{answer}"
            );
        }
    }

    // A model that runs past the timeout: 504, its worker is replaced, and the other worker
    // keeps answering meanwhile.
    let before = worker_pids(&dir.path().join("scorer"));
    assert_eq!(before.len(), 2, "{before:?}");
    let mut slow = rows[0].clone();
    slow["amount"] = json!(-2.0);
    let started = std::time::Instant::now();
    let (status, answer) = server
        .json(
            "/models/scorer/invocations",
            &json!({"dataframe_records": [slow]}),
        )
        .await;
    assert_eq!(status, 504, "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let (status, answer) = server
        .json(
            "/models/scorer/invocations",
            &json!({"dataframe_records": [rows[1]]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = worker_pids(&dir.path().join("scorer"));
        if now.len() == 2 && now.iter().any(|p| !before.contains(p)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker replaced the hung one: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A worker killed under load: every answer is the right one or a 503, none hangs, and a
    // new worker takes the dead one's place.
    let forest = read("forest");
    let rows = forest["rows"].as_array().unwrap().clone();
    let want = forest["predictions"].as_array().unwrap().clone();
    let before = worker_pids(&dir.path().join("forest"));
    assert_eq!(before.len(), 2, "{before:?}");
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (http, base) = (server.http.clone(), server.base.clone());
            let (rows, want) = (rows.clone(), want.clone());
            tokio::spawn(async move {
                let (mut right, mut unavailable) = (0, 0);
                for k in 0..150 {
                    let i = (c * 37 + k) % rows.len();
                    let resp = http
                        .post(format!("{base}/models/forest/invocations"))
                        .json(&json!({"dataframe_records": [rows[i]]}))
                        .timeout(std::time::Duration::from_secs(30))
                        .send()
                        .await
                        .expect("every request is answered");
                    let status = resp.status().as_u16();
                    let answer: Value = resp.json().await.unwrap();
                    match status {
                        200 => {
                            assert!(same_json(&answer["predictions"][0], &want[i]), "{answer}");
                            right += 1;
                        }
                        503 => unavailable += 1,
                        other => panic!("{other}: {answer}"),
                    }
                }
                (right, unavailable)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &before[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut right = 0;
    for c in clients {
        let (r, u) = c.await.unwrap();
        right += r;
        // The batch the killed worker held is tried once more on the other one.
        assert_eq!(u, 0, "{u} requests answered 503");
    }
    assert_eq!(right, 600);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let now = worker_pids(&dir.path().join("forest"));
        if now.len() == 2 && !now.contains(&before[0]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker replaced the killed one: {now:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The status page counts the replacements (the killed forest worker, the hung scorer
    // one) once each replacement has loaded the model.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, status) = server.get("/status").await;
        let status: Value = serde_json::from_str(&status).unwrap();
        let restarts: Vec<Value> = ["forest", "scorer"]
            .iter()
            .map(|name| {
                let model = status["models"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["name"] == *name)
                    .unwrap();
                model["deployments"][0]["worker_restarts"].clone()
            })
            .collect();
        if restarts == [json!(1), json!(1)] {
            break;
        }
        assert!(
            restarts.iter().all(|r| r.as_u64().is_some_and(|n| n <= 1))
                && std::time::Instant::now() < deadline,
            "{status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.stop().await;

    // Models that cannot be served say what and where, in one line.
    // A model its worker cannot load: the pickled model is not a pickle.
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    for f in std::fs::read_dir(dir.path().join("scorer")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, corrupt.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(corrupt.join("python_model.pkl"), b"not a pickle").unwrap();
    let refusals = [
        (corrupt.clone(), python.clone(), "cannot load"),
        (
            dir.path().join("unsigned"),
            python.clone(),
            "has no signature",
        ),
        (
            dir.path().join("forest"),
            PathBuf::from("/nonexistent/python3"),
            "cannot start the Python worker /nonexistent/python3",
        ),
    ];
    for (model, interpreter, message) in refusals {
        let mut o = options.python.clone();
        o.python = Some(interpreter);
        let e = keel_serve::predictor::Predictor::open(&model, &o, options.timeout)
            .await
            .expect_err("refused")
            .to_string();
        assert!(e.contains(message), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

/// Counts the prediction log's rows of `model` by role and reads their columns, with pyarrow.
fn logged(python: &Path, log: &Path, model: &str) -> Value {
    let script = format!(
        r#"
import glob, json, pyarrow.parquet as pq, pyarrow as pa
files = sorted(glob.glob("{}/predictions/model={model}/hour=*/part-*.parquet"))
t = pa.concat_tables([pq.read_table(f) for f in files])
roles = {{}}
for r in t.column("role").to_pylist():
    roles[r] = roles.get(r, 0) + 1
print(json.dumps({{"roles": roles, "columns": t.column_names,
                  "labels": t.column("out_label").to_pylist()}}))
"#,
        log.display()
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_models_keep_the_prediction_log_shadow_traffic_and_feedback() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    pyfunc_models(&python, dir.path());
    // The same model as a shadow, from a copy of its folder.
    let shadow = dir.path().join("scorer-shadow");
    std::fs::create_dir(&shadow).unwrap();
    for f in std::fs::read_dir(dir.path().join("scorer")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, shadow.join(f.file_name().unwrap())).unwrap();
    }
    let log = tempfile::tempdir().unwrap();
    let model = ServedModel {
        name: "scorer".into(),
        primary: ModelSpec::Path(dir.path().join("scorer")),
        canary: None,
        shadow: Some(ModelSpec::Path(shadow)),
    };
    let server = Server::start(vec![model], python_options(&python, 1), Some(log.path())).await;
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("scorer.json")).unwrap())
            .unwrap();
    let rows = record["rows"].as_array().unwrap();
    let answers = futures::future::join_all(
        rows.iter()
            .map(|r| json!({"dataframe_records": [r]}))
            .collect::<Vec<_>>()
            .iter()
            .map(|b| server.json("/invocations", b)),
    )
    .await;
    for (i, (status, answer)) in answers.iter().enumerate() {
        assert_eq!(*status, 200, "{answer}");
        assert!(
            same_json(&answer["predictions"][0], &record["predictions"][i]),
            "{answer}"
        );
    }
    let (status, _, answer) = server
        .post(
            "/feedback",
            "application/json",
            json!({"request_id": "unknown-request", "ground_truth": "high"}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    server.stop().await;
    // Every request logged once as the primary's and once as the shadow's, with the model's
    // inputs and outputs as columns.
    let got = logged(&python, log.path(), "scorer");
    assert_eq!(
        got["roles"],
        json!({"primary": rows.len(), "shadow": rows.len()}),
        "{got}"
    );
    for column in [
        "in_amount",
        "in_items",
        "in_member",
        "in_region",
        "out_score",
        "out_label",
    ] {
        assert!(
            got["columns"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == column),
            "{column}: {got}"
        );
    }
    let mut want: Vec<String> = record["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap().to_string())
        .collect();
    want.extend(want.clone());
    let mut labels: Vec<String> = got["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    want.sort();
    labels.sort();
    assert_eq!(labels, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtualenv_is_built_once_from_the_models_requirements_and_reused() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    pyfunc_models(&python, dir.path());
    let envs = tempfile::tempdir().unwrap();
    let mut options = python_options(&python, 1).python;
    options.env_manager = keel_serve::python::EnvManager::Virtualenv;
    // The environment is built from the venv's own Python (the model asks for its version).
    options.env_cache = envs.path().to_path_buf();
    let timeout = std::time::Duration::from_secs(30);
    let scorer = dir.path().join("scorer");
    let p = keel_serve::predictor::Predictor::open(&scorer, &options, timeout)
        .await
        .unwrap();
    assert_eq!(p.runtime(), "python");
    let built: Vec<PathBuf> = std::fs::read_dir(envs.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(built.len(), 1, "{built:?}");
    let interpreter = p.python().unwrap().python.clone();
    assert!(
        interpreter.starts_with(&built[0]),
        "{}",
        interpreter.display()
    );
    let marker = std::fs::metadata(built[0].join(".keel-ready"))
        .unwrap()
        .modified()
        .unwrap();
    drop(p);
    // Again: the same environment, not built a second time.
    let p = keel_serve::predictor::Predictor::open(&scorer, &options, timeout)
        .await
        .unwrap();
    assert_eq!(p.python().unwrap().python, interpreter);
    assert_eq!(
        std::fs::metadata(built[0].join(".keel-ready"))
            .unwrap()
            .modified()
            .unwrap(),
        marker
    );
    drop(p);
    // A requirement the package index does not have: one line naming the step and the model.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for f in std::fs::read_dir(&scorer).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, broken.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        broken.join("requirements.txt"),
        "keel-no-such-package-anywhere==0.0.1\n",
    )
    .unwrap();
    let e = keel_serve::predictor::Predictor::open(&broken, &options, timeout)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("installing the model's requirements with pip failed"),
        "{e}"
    );
    assert!(e.contains("broken"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // uv (the test venv's, beside its Python) builds its own environment, kept apart.
    options.env_manager = keel_serve::python::EnvManager::Uv;
    let p = keel_serve::predictor::Predictor::open(&scorer, &options, timeout)
        .await
        .unwrap();
    let by_uv = &p.python().unwrap().python;
    assert!(
        by_uv.starts_with(envs.path()) && *by_uv != interpreter,
        "{}",
        by_uv.display()
    );
    let server_rows: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("scorer.json")).unwrap())
            .unwrap();
    drop(p);
    // What the environments' workers answer is MLflow's answer.
    let mut o = options.clone();
    o.env_manager = keel_serve::python::EnvManager::Virtualenv;
    let mut serve = python_options(&python, 1);
    serve.python = o;
    let server = Server::start(vec![served("scorer", dir.path())], serve, None).await;
    let (status, answer) = server
        .json(
            "/invocations",
            &json!({"dataframe_records": server_rows["rows"]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        same_json(&answer["predictions"], &server_rows["predictions"]),
        "{answer}"
    );
    server.stop().await;
}
