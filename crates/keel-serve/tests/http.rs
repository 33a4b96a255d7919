//! The inference server over real HTTP on loopback: both protocols, every MLflow input format,
//! signature errors, batching under concurrency, canary shares, shadow logging, overload,
//! timeouts and the prediction log read back with the `parquet` crate's row reader.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_core::table::{Columns, Values};
use keel_ml::model_dir::{KeelModel, Stamp, write};
use keel_ml::params::algorithm;
use keel_ml::train::{Holdout, TrainRequest, train};
use keel_serve::batch::BatchConfig;
use keel_serve::server::ServeOptions;
use keel_serve::source::ModelSpec;
use keel_serve::supervisor::ServedModel;
use serde_json::{Value, json};
use support::Server;

/// 300 rows: two numbers, a colour (text, some missing) and a yes/no label that depends on
/// them; and a numeric target for regression.
fn table() -> Columns {
    let n = 300;
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut colour = Vec::new();
    let mut label = Vec::new();
    let mut value = Vec::new();
    for i in 0..n {
        let x = ((i * 37) % 101) as f64 / 10.0 - 5.0;
        let y = ((i * 53) % 97) as f64 / 10.0 - 4.8;
        let c = ["red", "green", "blue"][(i * 7) % 3];
        a.push(Some(x));
        b.push(Some(y));
        colour.push((i % 23 != 4).then(|| c.to_string()));
        let red = if c == "red" { 1.5 } else { 0.0 };
        label.push(Some(
            if x + 0.5 * y + red > 0.2 { "yes" } else { "no" }.to_string(),
        ));
        value.push(Some(2.0 * x - y + red));
    }
    Columns {
        names: ["a", "b", "colour", "label", "value"]
            .map(String::from)
            .to_vec(),
        values: vec![
            Values::Numbers(a),
            Values::Numbers(b),
            Values::Text(colour),
            Values::Text(label),
            Values::Numbers(value),
        ],
    }
}

/// Trains `algo` on `target` and writes its model directory under `dir`.
fn model_dir(dir: &Path, target: &str, algo: &str, params: &[&str]) -> PathBuf {
    let t = table();
    let a = algorithm(algo).unwrap();
    let drop = ["label", "value"]
        .iter()
        .filter(|c| **c != target)
        .map(|c| c.to_string())
        .collect();
    let req = TrainRequest {
        target: Some(target),
        task: None,
        algorithm: a,
        params: a
            .parse(&params.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .unwrap(),
        holdout: Holdout::Split(0.8),
        seed: 3,
        features: None,
        drop,
        test: None,
    };
    let model = KeelModel::of(&train(&t, &req).unwrap(), Some(target), &t).unwrap();
    let out = dir.join(format!("{target}-{algo}"));
    write(&out, &model, &t, &Stamp::at("2026-12-02 00:00:00.000000")).unwrap();
    out
}

fn one(name: &str, path: &Path) -> ServedModel {
    ServedModel {
        name: name.into(),
        primary: ModelSpec::Path(path.to_path_buf()),
        canary: None,
        shadow: None,
    }
}

fn rows() -> Vec<(f64, f64, Option<&'static str>)> {
    vec![
        (1.5, -0.5, Some("red")),
        (-3.0, 2.0, Some("blue")),
        (0.1, 0.1, None),
        (4.0, 4.0, Some("green")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_protocols_and_every_input_format_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_dir(dir.path(), "label", "logistic_regression", &[]);
    let server = Server::start(vec![one("churn", &path)], ServeOptions::default(), None).await;

    let split = json!({"dataframe_split": {"columns": ["a", "b", "colour"],
        "data": rows().iter().map(|(a, b, c)| json!([a, b, c])).collect::<Vec<_>>()}});
    let (status, headers, by_split) = server
        .post("/invocations", "application/json", split.to_string())
        .await;
    assert_eq!(status, 200, "{by_split}");
    assert_eq!(headers["x-model-name"], "churn");
    assert_eq!(headers["x-model-version"], "1");
    assert!(!headers["x-request-id"].is_empty());
    let predictions = by_split["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), 4);
    for p in predictions {
        let (py, pn) = (
            p["probability_yes"].as_f64().unwrap(),
            p["probability_no"].as_f64().unwrap(),
        );
        assert!((py + pn - 1.0).abs() < 1e-9, "{p}");
        assert_eq!(p["label"], if py > pn { "yes" } else { "no" });
    }
    let records: Vec<Value> = rows()
        .iter()
        .map(|(a, b, c)| json!({"a": a, "b": b, "colour": c}))
        .collect();
    for body in [
        json!({"dataframe_records": records}),
        json!({"instances": records}),
        json!({"inputs": records}),
        // Columns in another order, and an extra column, as MLflow tolerates.
        json!({"dataframe_split": {"columns": ["colour", "extra", "b", "a"],
            "data": rows().iter().map(|(a, b, c)| json!([c, 9, b, a])).collect::<Vec<_>>()}}),
    ] {
        let (status, v) = server.json("/invocations", &body).await;
        assert_eq!(status, 200, "{body}: {v}");
        assert_eq!(v, by_split, "{body}");
    }
    let csv = "a,b,colour\n1.5,-0.5,red\n-3.0,2.0,blue\n0.1,0.1,\n4.0,4.0,green\n";
    let (status, _, v) = server.post("/invocations", "text/csv", csv).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, by_split);

    // The Open Inference Protocol, one input tensor per column.
    let infer = json!({"id": "r-1", "inputs": [
        {"name": "a", "shape": [4], "datatype": "FP64", "data": rows().iter().map(|r| r.0).collect::<Vec<_>>()},
        {"name": "b", "shape": [4, 1], "datatype": "FP32", "data": rows().iter().map(|r| vec![r.1]).collect::<Vec<_>>()},
        {"name": "colour", "shape": [4], "datatype": "BYTES", "data": ["red", "blue", "", "green"]},
    ]});
    let (status, v) = server.json("/v2/models/churn/infer", &infer).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model_name"], "churn");
    assert_eq!(v["model_version"], "1");
    assert_eq!(v["id"], "r-1");
    let label = v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap();
    assert_eq!(label["datatype"], "BYTES");
    assert_eq!(label["shape"], json!([4]));
    // The empty colour is a category of its own in v2 (a string), missing in MLflow's null;
    // the rows with a colour agree.
    for i in [0, 1, 3] {
        assert_eq!(label["data"][i], predictions[i]["label"]);
    }
    let (status, v) = server
        .json("/v2/models/churn/versions/1/infer", &infer)
        .await;
    assert_eq!(status, 200, "{v}");

    for (path, want) in [
        ("/ping", 200),
        ("/health", 200),
        ("/version", 200),
        ("/v2/health/live", 200),
        ("/v2/health/ready", 200),
        ("/v2", 200),
        ("/v2/models/churn/ready", 200),
        ("/v2/models/nope", 404),
    ] {
        assert_eq!(server.get(path).await.0, want, "{path}");
    }
    let (_, meta) = server.get("/v2/models/churn").await;
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["platform"], "keel");
    assert_eq!(meta["inputs"].as_array().unwrap().len(), 3);
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("keel_serve_requests_total{model=\"churn\",version=\"1\",role=\"primary\",protocol=\"mlflow\",status=\"200\"}"), "{metrics}");
    assert!(metrics.contains("keel_serve_request_duration_seconds_bucket"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_do_not_fit_the_signature_are_refused_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_dir(dir.path(), "value", "linear_regression", &[]);
    let options = ServeOptions {
        body_limit: 4096,
        ..ServeOptions::default()
    };
    let server = Server::start(vec![one("price", &path)], options, None).await;
    let cases = [
        (
            json!({"dataframe_split": {"columns": ["a", "colour"], "data": [[1.0, "red"]]}}),
            "'b'",
        ),
        (
            json!({"dataframe_split": {"columns": ["a", "b", "colour"], "data": [["x", 1.0, "red"]]}}),
            "'a'",
        ),
        (
            json!({"dataframe_split": {"columns": ["a", "b", "colour"], "data": [[1.0, 2.0, 3.0]]}}),
            "'colour'",
        ),
        (
            json!({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0]]}}),
            "row 0",
        ),
        (json!({"instances": [1, 2], "inputs": [1]}), "exactly one"),
        (json!({"something": []}), "exactly one"),
        // A boolean where a number belongs is named as such.
        (
            json!({"dataframe_split": {"columns": ["a", "b", "colour"], "data": [[true, 1.0, "red"]]}}),
            "'a' must hold double values, got booleans",
        ),
        (
            json!({"dataframe_split": {"columns": ["a", "a", "colour"], "data": [[1.0, 1.0, "red"]]}}),
            "'a' is named twice",
        ),
        // No rows is refused alike in every format.
        (
            json!({"dataframe_split": {"columns": ["a", "b", "colour"], "data": []}}),
            "no rows",
        ),
        (json!({"dataframe_records": []}), "no rows"),
        (json!({"instances": []}), "no rows"),
        (
            json!({"inputs": {"a": [], "b": [], "colour": []}}),
            "no rows",
        ),
    ];
    for (body, needle) in cases {
        let (status, v) = server.json("/invocations", &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error_code"], "BAD_REQUEST", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
    let (status, _, v) = server.post("/invocations", "application/xml", "<a/>").await;
    assert_eq!(status, 415, "{v}");
    let (status, _, _) = server
        .post("/invocations", "application/json", "x".repeat(10_000))
        .await;
    assert_eq!(status, 413);
    let bad_shape =
        json!({"inputs": [{"name": "a", "shape": [3], "datatype": "FP64", "data": [1, 2]}]});
    let (status, v) = server.json("/v2/models/price/infer", &bad_shape).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("'a'"), "{v}");
    let (status, v) = server.json("/v2/models/other/infer", &bad_shape).await;
    assert_eq!(status, 404, "{v}");
    let empty = json!({"inputs": [
        {"name": "a", "shape": [0], "datatype": "FP64", "data": []},
        {"name": "b", "shape": [0], "datatype": "FP64", "data": []},
        {"name": "colour", "shape": [0], "datatype": "BYTES", "data": []}]});
    let (status, v) = server.json("/v2/models/price/infer", &empty).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no rows"), "{v}");
    let (status, _, v) = server
        .post("/invocations", "text/csv", "a,b,colour\n")
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("no rows"), "{v}");
    server.stop().await;
}

/// A one-row request, different for each `i`.
fn row_body(i: usize) -> Value {
    let colour = ["red", "green", "blue"][i % 3];
    json!({"dataframe_split": {"columns": ["a", "b", "colour"],
        "data": [[i as f64 / 7.0 - 3.0, (i % 11) as f64 - 5.0, colour]]}})
}

/// A body of 20,000 rows: a call slow enough to hold the model a while.
fn large_body() -> String {
    let data: Vec<Value> = (0..20_000)
        .map(|i| json!([i as f64 / 1000.0, 1.0, "red"]))
        .collect();
    json!({"dataframe_split": {"columns": ["a", "b", "colour"], "data": data}}).to_string()
}

/// The prediction for row `i` (see [`row_body`]).
async fn predict_row(http: &reqwest::Client, url: &str, i: usize) -> Option<f64> {
    let v: Value = http
        .post(url)
        .json(&row_body(i))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["predictions"][0]["variable"].as_f64()
}

/// Sends `n` different one-row requests at once; returns each answer's prediction.
async fn concurrent(server: &Server, n: usize) -> Vec<f64> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let http = server.http.clone();
        let url = format!("{}/invocations", server.base);
        tasks.push(tokio::spawn(async move {
            predict_row(&http, &url, i).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_model_calls_and_get_their_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    // A model slow enough that requests arrive while a call runs (a request that finds the
    // model idle makes its own call; those arriving meanwhile queue and share the next one).
    let path = model_dir(
        dir.path(),
        "value",
        "random_forest",
        &["n_estimators=200", "max_depth=12"],
    );
    // One by one: no batching.
    let single = ServeOptions {
        batch: BatchConfig {
            max_batch: 1,
            ..BatchConfig::default()
        },
        ..ServeOptions::default()
    };
    let server = Server::start(vec![one("f", &path)], single, None).await;
    let mut alone = Vec::new();
    for i in 0..64 {
        let (_, v) = server.json("/invocations", &row_body(i)).await;
        alone.push(v["predictions"][0]["variable"].as_f64().unwrap());
    }
    server.stop().await;
    // Batched, with time to gather.
    let batched = ServeOptions {
        batch: BatchConfig {
            max_batch: 64,
            max_delay: Duration::from_millis(20),
            queue: 1024,
        },
        ..ServeOptions::default()
    };
    let server = Server::start(vec![one("f", &path)], batched, None).await;
    // A request counted in flight that never arrives (held by the test) keeps every request
    // from taking the idle model for a call of its own and makes each batch gather for the
    // whole --max-delay, so the 64 share calls however slowly the client sends them. A large
    // request (a call of more rows than a batch, on the blocking pool) goes through the same
    // queue.
    let hold = server.state.route("f").unwrap().primary.batcher.admit();
    let large = large_body();
    let (http, url) = (server.http.clone(), format!("{}/invocations", server.base));
    let holding = tokio::spawn(async move {
        let r = http
            .post(url)
            .header("content-type", "application/json")
            .body(large)
            .send()
            .await
            .unwrap();
        r.status().as_u16()
    });
    let together = concurrent(&server, 64).await;
    assert_eq!(holding.await.unwrap(), 200);
    drop(hold);
    assert_eq!(together, alone);
    let (_, metrics) = server.get("/metrics").await;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    // One call for the large request, fewer than 64 for the small ones.
    let calls = value("keel_serve_batch_rows_count") - 1.0;
    let rows = value("keel_serve_batch_rows_sum");
    assert_eq!(rows, 64.0 + 20_000.0);
    assert!(
        calls < 64.0,
        "64 concurrent requests took {calls} model calls"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_concurrent_load_answers_every_request_with_its_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_dir(
        dir.path(),
        "value",
        "random_forest",
        &["n_estimators=10", "max_depth=5"],
    );
    let server = Server::start(vec![one("f", &path)], ServeOptions::default(), None).await;
    let expected = concurrent(&server, 48).await;
    // 24 clients sending back to back: requests keep arriving while others are answered, so
    // the model changes hands between direct calls and draining batches all the time; a
    // request left in the queue with nobody to drain it would hang here.
    let mut clients = Vec::new();
    for c in 0..24 {
        let http = server.http.clone();
        let url = format!("{}/invocations", server.base);
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for k in 0..60 {
                let i = (c * 7 + k) % 48;
                answers.push((i, predict_row(&http, &url, i).await));
            }
            answers
        }));
    }
    let answered = tokio::time::timeout(Duration::from_secs(60), async {
        let mut all = Vec::new();
        for c in clients {
            all.extend(c.await.unwrap());
        }
        all
    })
    .await
    .expect("every request is answered");
    assert_eq!(answered.len(), 24 * 60);
    for (i, v) in answered {
        assert_eq!(v, Some(expected[i]), "row {i}");
    }
    // Calls are counted just after their answers go out.
    let rows = format!(" {}", 48 + 24 * 60);
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = server.get("/metrics").await.1;
        if metrics
            .lines()
            .any(|l| l.starts_with("keel_serve_predicted_rows_total") && l.ends_with(&rows))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
            .to_string()
    };
    assert!(
        line("keel_serve_predicted_rows_total").ends_with(&rows),
        "{metrics}"
    );
    assert!(line("keel_serve_queue_depth").ends_with(" 0"), "{metrics}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_takes_its_share_and_a_shadow_only_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = model_dir(dir.path(), "value", "linear_regression", &[]);
    let v2 = model_dir(
        dir.path(),
        "value",
        "random_forest",
        &["n_estimators=5", "max_depth=3"],
    );
    let v3 = model_dir(dir.path(), "value", "gradient_boosting", &["max_iter=5"]);
    let logs = dir.path().join("log");
    let model = ServedModel {
        name: "price".into(),
        primary: ModelSpec::Path(v1.clone()),
        canary: Some((ModelSpec::Path(v2.clone()), 0.3)),
        shadow: Some(ModelSpec::Path(v3)),
    };
    let server = Server::start(vec![model], ServeOptions::default(), Some(&logs)).await;
    // Paths all have version 1; tell them apart by their answers.
    let body =
        json!({"dataframe_split": {"columns": ["a", "b", "colour"], "data": [[1.0, 2.0, "red"]]}});
    let route = server.state.route("price").unwrap();
    let primary_path = route.primary.predictor.source.clone();
    assert_eq!(primary_path, v1);
    let n = 1000;
    let mut answers = std::collections::HashMap::<String, usize>::new();
    for _ in 0..n {
        let (status, v) = server.json("/invocations", &body).await;
        assert_eq!(status, 200);
        *answers
            .entry(v["predictions"][0]["variable"].to_string())
            .or_default() += 1;
    }
    assert_eq!(
        answers.len(),
        2,
        "answers from exactly the primary and the canary: {answers:?}"
    );
    let canary_share = *answers.values().min().unwrap() as f64 / n as f64;
    // Binomial(1000, 0.3): sd 0.0145; 5 sd either side.
    assert!(
        (canary_share - 0.3).abs() < 0.0725,
        "canary share {canary_share}"
    );
    let log = server.state.log.clone().unwrap();
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("role=\"canary\""), "{metrics}");
    // The status page's data: each role's version, spec, share and requests.
    let (_, status) = server.get("/status").await;
    let status: Value = serde_json::from_str(&status).unwrap();
    let deployments = status["models"][0]["deployments"].as_array().unwrap();
    assert_eq!(status["models"][0]["name"], "price", "{status}");
    let role = |r: &str| deployments.iter().find(|d| d["role"] == r).unwrap();
    assert_eq!(role("primary")["share"].as_f64(), Some(0.7), "{status}");
    assert_eq!(role("canary")["share"].as_f64(), Some(0.3), "{status}");
    assert_eq!(role("shadow")["share"].as_f64(), Some(0.0), "{status}");
    assert_eq!(
        role("primary")["follows"],
        v1.display().to_string(),
        "{status}"
    );
    assert_eq!(
        role("canary")["follows"],
        v2.display().to_string(),
        "{status}"
    );
    let served = |r: &str| role(r)["requests_ok"].as_u64().unwrap() as usize;
    assert_eq!(served("primary") + served("canary"), n, "{status}");
    assert_eq!(
        served("canary"),
        *answers.values().min().unwrap(),
        "{status}"
    );
    assert_eq!(status["ready"], true);
    let (code, page) = server.get("/").await;
    assert_eq!(code, 200);
    assert!(page.contains("<title>keel serve</title>"), "{page}");
    server.stop().await;
    log.close();
    let df = read_log(&logs.join("predictions"));
    let roles = strings(&df, "role");
    let count = |r: &str| roles.iter().filter(|v| v.as_deref() == Some(r)).count();
    assert_eq!(count("primary") + count("canary"), n);
    // Every request was mirrored to the shadow (the shadow's queue never filled here).
    assert_eq!(count("shadow"), n);
    let names = df.names();
    assert!(
        names.contains("in_a") && names.contains("out_variable"),
        "{names:?}"
    );
}

/// The prediction log's rows under a folder, read with the `parquet` crate's row reader, the
/// files in path order: each row maps the columns its file has (and its folders' `key=value`
/// names) to their values.
struct Log {
    rows: Vec<std::collections::BTreeMap<String, parquet::record::Field>>,
}

impl Log {
    fn height(&self) -> usize {
        self.rows.len()
    }

    /// Every column some file has.
    fn names(&self) -> std::collections::BTreeSet<String> {
        self.rows.iter().flat_map(|r| r.keys().cloned()).collect()
    }

    /// A text column, `None` where a row has no value (or its file no such column).
    fn strings(&self, name: &str) -> Vec<Option<String>> {
        use parquet::record::Field;
        assert!(self.names().contains(name), "no column {name}");
        self.rows
            .iter()
            .map(|r| match r.get(name) {
                Some(Field::Str(s)) => Some(s.clone()),
                None | Some(Field::Null) => None,
                Some(f) => panic!("{name} holds {f:?}"),
            })
            .collect()
    }
}

fn strings(log: &Log, name: &str) -> Vec<Option<String>> {
    log.strings(name)
}

fn read_log(dir: &Path) -> Log {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut rows = Vec::new();
    for f in files {
        // Hive-style folders (`model=churn/hour=...`) are columns too, as readers of such
        // layouts (polars, pyarrow, DuckDB) take them.
        let folders: Vec<(String, parquet::record::Field)> = f
            .strip_prefix(dir)
            .unwrap()
            .components()
            .filter_map(|c| c.as_os_str().to_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), parquet::record::Field::Str(v.to_string())))
            .collect();
        let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            let mut row: std::collections::BTreeMap<_, _> = row
                .unwrap()
                .get_column_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            row.extend(folders.iter().cloned());
            rows.push(row);
        }
    }
    Log { rows }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prediction_log_holds_every_row_and_feedback_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_dir(dir.path(), "label", "decision_tree", &[]);
    let logs = dir.path().join("log");
    let server = Server::start(
        vec![one("churn", &path)],
        ServeOptions::default(),
        Some(&logs),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let body = json!({"dataframe_split": {"columns": ["a", "b", "colour"],
            "data": [[i as f64, 1.0, "red"], [-(i as f64), 2.0, null]]}});
        let (status, headers, _) = server
            .post("/invocations", "application/json", body.to_string())
            .await;
        assert_eq!(status, 200);
        ids.push(headers["x-request-id"].to_str().unwrap().to_string());
    }
    let feedback = json!([{"request_id": ids[0], "ground_truth": ["yes", "no"]}, {"request_id": ids[1], "row": 1, "ground_truth": "no"}]);
    let (status, v) = server.json("/feedback", &feedback).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["recorded"], 3);
    assert_eq!(
        (v["matched"].clone(), v["unmatched"].clone()),
        (json!(3), json!(0))
    );
    let (status, v) = server.json("/feedback", &json!({"ground_truth": 1})).await;
    assert_eq!(status, 400, "{v}");
    // Feedback is checked against what the server answered: a request id is required, and
    // a known request's rows bound the values (it had 2).
    for (body, says) in [
        (
            json!({"request_id": "", "ground_truth": 1}),
            "needs the request_id",
        ),
        (
            json!({"request_id": ids[2], "ground_truth": ["yes", "no", "yes"]}),
            "had 2 rows",
        ),
        (
            json!({"request_id": ids[2], "row": 2, "ground_truth": "yes"}),
            "had 2 rows",
        ),
        (
            json!({"request_id": ids[2], "row": -1, "ground_truth": "yes"}),
            "0 or more",
        ),
    ] {
        let (status, v) = server.json("/feedback", &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    // A request this server does not know (another replica's, or older than it remembers)
    // is recorded and counted as unmatched.
    let (status, v) = server
        .json(
            "/feedback",
            &json!({"request_id": "elsewhere-1", "ground_truth": "no"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["unmatched"], 1);
    let log = server.state.log.clone().unwrap();
    server.stop().await;
    log.close();
    let df = read_log(&logs.join("predictions"));
    assert_eq!(df.height(), 20);
    let names = df.names();
    for c in [
        "request_id",
        "row",
        "time",
        "model",
        "version",
        "role",
        "latency_ms",
        "in_a",
        "in_b",
        "in_colour",
        "out_label",
        "out_probability_yes",
        "hour",
    ] {
        assert!(names.iter().any(|n| n == c), "no column {c} in {names:?}");
    }
    let logged: Vec<String> = strings(&df, "request_id").into_iter().flatten().collect();
    for id in &ids {
        assert_eq!(logged.iter().filter(|l| *l == id).count(), 2, "{id}");
    }
    let colour = strings(&df, "in_colour");
    assert_eq!(colour.iter().filter(|c| c.is_none()).count(), 10);
    let fb = read_log(&logs.join("feedback"));
    assert_eq!(fb.height(), 4);
    assert_eq!(strings(&fb, "truth_text")[2].as_deref(), Some("no"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_a_slow_call_504() {
    let dir = tempfile::tempdir().unwrap();
    let path = model_dir(
        dir.path(),
        "value",
        "random_forest",
        &["n_estimators=200", "max_depth=12"],
    );
    let options = ServeOptions {
        batch: BatchConfig {
            max_batch: 1,
            max_delay: Duration::ZERO,
            queue: 2,
        },
        ..ServeOptions::default()
    };
    let server = Server::start(vec![one("slow", &path)], options, None).await;
    // Large requests keep the worker busy; 24 at once overflow a queue of 2.
    let body = large_body();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (http, url, body) = (
            server.http.clone(),
            format!("{}/invocations", server.base),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(refused.iter().all(|(_, r)| r.as_deref() == Some("1")));
    assert!(
        statuses.iter().all(|(s, _)| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    server.stop().await;

    let options = ServeOptions {
        timeout: Duration::from_millis(1),
        ..ServeOptions::default()
    };
    let server = Server::start(vec![one("slow", &path)], options, None).await;
    let (status, _, v) = server.post("/invocations", "application/json", body).await;
    assert_eq!(status, 504, "{v}");
    assert_eq!(v["error_code"], "DEADLINE_EXCEEDED");
    server.stop().await;
}

/// A registry whose aliases a test moves: `price` versions 1 and 2 are model folders.
struct MovingAliases {
    aliases: std::sync::Mutex<std::collections::HashMap<String, String>>,
    versions: std::collections::HashMap<String, PathBuf>,
}

#[async_trait::async_trait]
impl keel_serve::source::Registry for MovingAliases {
    async fn version(&self, spec: &ModelSpec) -> Result<String, keel_serve::error::ServeError> {
        match spec {
            ModelSpec::Alias { alias, .. } => self
                .aliases
                .lock()
                .unwrap()
                .get(alias)
                .cloned()
                .ok_or_else(|| {
                    keel_serve::error::ServeError::NotFound(format!("no alias {alias}"))
                }),
            ModelSpec::Version { version, .. } => Ok(version.clone()),
            other => panic!("unexpected spec {other}"),
        }
    }

    async fn fetch(
        &self,
        _name: &str,
        version: &str,
    ) -> Result<PathBuf, keel_serve::error::ServeError> {
        Ok(self.versions[version].clone())
    }

    async fn fetch_run(
        &self,
        run_id: &str,
        _path: &str,
    ) -> Result<PathBuf, keel_serve::error::ServeError> {
        Err(keel_serve::error::ServeError::NotFound(format!(
            "no run {run_id}"
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_alias_is_served_only_while_it_names_another_version() {
    let dir = tempfile::tempdir().unwrap();
    let registry = std::sync::Arc::new(MovingAliases {
        aliases: std::sync::Mutex::new([("champion".to_string(), "1".to_string())].into()),
        versions: [
            (
                "1".to_string(),
                model_dir(dir.path(), "value", "linear_regression", &[]),
            ),
            (
                "2".to_string(),
                model_dir(dir.path(), "value", "random_forest", &["n_estimators=3"]),
            ),
        ]
        .into(),
    });
    let alias = |a: &str| ModelSpec::Alias {
        name: "price".into(),
        alias: a.into(),
    };
    let state = keel_serve::server::AppState::new(
        ServeOptions::default(),
        std::sync::Arc::new(keel_serve::metrics::ServeMetrics::default()),
        None,
    );
    let supervisor = keel_serve::supervisor::Supervisor::new(
        state.clone(),
        Some(registry.clone()),
        vec![ServedModel {
            name: "price".into(),
            primary: alias("champion"),
            canary: None,
            shadow: Some(alias("challenger")),
        }],
    );
    // No challenger yet: the champion is served alone.
    supervisor.load_all().await.unwrap();
    let shadow = || {
        state
            .route("price")
            .unwrap()
            .shadow
            .as_ref()
            .map(|d| d.version.clone())
    };
    assert_eq!(shadow(), None);
    tokio::spawn(supervisor.clone().watch(Duration::from_millis(20)));
    let settle = |want: Option<&'static str>| {
        let shadow = &shadow;
        async move {
            for _ in 0..250 {
                if shadow().as_deref() == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the shadow is {:?}, not {want:?}", shadow());
        }
    };
    let set = |a: &str, v: Option<&str>| {
        let mut aliases = registry.aliases.lock().unwrap();
        match v {
            Some(v) => aliases.insert(a.to_string(), v.to_string()),
            None => aliases.remove(a),
        };
    };
    // The challenger appears: it answers every request in the shadow.
    set("challenger", Some("2"));
    settle(Some("2")).await;
    // Promoted: the champion names it too, so nothing is shadowed...
    set("champion", Some("2"));
    settle(None).await;
    assert_eq!(state.route("price").unwrap().primary.version, "2");
    // ... and with the challenger alias removed nothing is either.
    set("challenger", None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(shadow(), None);
}
