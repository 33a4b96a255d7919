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
