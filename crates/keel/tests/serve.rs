//! `keel serve` end to end: registered models served by alias from a tracking server, the
//! alias moved under load with no failed request, a model folder on the embedded store, and
//! bad arguments named in one line, and a killed server's prediction log recovered at the next
//! start.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Serving, json, keel_status, post_json, post_json_with, price_model, shop, walk};

/// Posts one row; the status, the answering version and the body.
fn predict(addr: &str, x1: f64) -> (u16, String, Value) {
    let body = format!(
        r#"{{"dataframe_split": {{"columns": ["x1", "x2", "colour"], "data": [[{x1}, 0.5, "red"]]}}}}"#
    );
    let (status, head, body) = post_json(addr, "/invocations", body.as_bytes());
    let version = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-model-version: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (
        status,
        version.trim().to_string(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[test]
fn an_alias_moved_under_load_switches_versions_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = support::Server::start(&server_dir, 0);
    let url = server.url.clone();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("shop.csv"), shop()).unwrap();
    json(&work, &["data", "add", "shop.csv", "--tracking-uri", &url]);
    for algo in ["logistic_regression", "decision_tree"] {
        json(
            &work,
            &[
                "train",
                "--data",
                "shop",
                "--target",
                "label",
                "--drop",
                "price",
                "--algo",
                algo,
                "--register",
                "shop",
                "--tracking-uri",
                &url,
            ],
        );
    }
    json(
        &work,
        &[
            "models",
            "alias",
            "set",
            "shop",
            "champion",
            "1",
            "--tracking-uri",
            &url,
        ],
    );
    let serving = Serving::start(
        &work,
        &[
            "shop@champion",
            "--tracking-uri",
            &url,
            "--poll",
            "200ms",
            "--log-dir",
            "log",
        ],
    );
    let addr = serving.addr.clone();
    let (status, version, body) = predict(&addr, 1.0);
    assert_eq!((status, version.as_str()), (200, "1"), "{body}");

    // Four clients send requests back to back while the alias moves to version 2.
    let stop = Arc::new(AtomicBool::new(false));
    // (started, answered, status, version) of every request.
    type Seen = Vec<(Instant, Instant, u16, String)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, seen, addr) = (stop.clone(), seen.clone(), addr.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let (status, version, _) = predict(&addr, (c * 1000 + i) as f64 / 500.0 - 2.0);
                    seen.lock()
                        .unwrap()
                        .push((started, Instant::now(), status, version));
                    i += 1;
                }
            })
        })
        .collect();
    // Version 1 answers some of them first.
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.lock().unwrap().len() < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let moved = Instant::now();
    json(
        &work,
        &[
            "models",
            "alias",
            "set",
            "shop",
            "champion",
            "2",
            "--tracking-uri",
            &url,
        ],
    );
    // Wait (a bounded time) until version 2 has answered requests that started after its
    // first answer: the switch is then complete.
    let deadline = moved + Duration::from_secs(60);
    loop {
        let done = {
            let seen = seen.lock().unwrap();
            let first_v2 = seen.iter().find(|r| r.3 == "2").map(|r| r.1);
            first_v2.is_some_and(|t| seen.iter().filter(|r| r.0 > t).count() >= 20)
        };
        if done || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let failed: Vec<_> = seen.iter().filter(|r| r.2 != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    let first_v2 = seen
        .iter()
        .find(|r| r.3 == "2")
        .map(|r| r.1)
        .expect("version 2 answered after the alias moved");
    assert!(
        seen.iter().any(|r| r.3 == "1" && r.1 < first_v2),
        "version 1 answered before the switch"
    );
    // Once version 2 has answered, every request that starts afterwards goes to it (requests
    // already running finish on the version they started on).
    let after: Vec<_> = seen.iter().filter(|r| r.0 > first_v2).collect();
    assert!(
        after.len() >= 20,
        "{} requests after the switch",
        after.len()
    );
    assert!(
        after.iter().all(|r| r.3 == "2"),
        "a request started after the switch was answered by version 1"
    );
    drop(seen);

    let (_, metrics) = support::http(&addr, "GET", "/metrics", b"");
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("keel_serve_alias_swaps_total 1"),
        "{metrics}"
    );
    assert_eq!(serving.stop(), 0);
    // The prediction log has rows of both versions.
    assert!(work.join("log/predictions/model=shop").is_dir());
}

#[test]
fn a_model_folder_and_a_registered_model_serve_from_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = price_model(d, &[]);
    let model_dir = d.join(format!(
        "keel-data/artifacts/0/models/{}/artifacts",
        out["model_id"].as_str().unwrap()
    ));
    // A folder, served under its stem unless named.
    let serving = Serving::start(
        d,
        &[model_dir.to_str().unwrap(), "--name", "prices", "--no-log"],
    );
    let (status, version, body) = predict(&serving.addr, 1.0);
    assert_eq!((status, version.as_str()), (200, "1"), "{body}");
    let by_folder = body["predictions"][0]["variable"].as_f64().unwrap();
    // price = 3 x1 + 2 x2 + 5 = 9 at x1 = 1, x2 = 0.5.
    assert!((by_folder - 9.0).abs() < 0.05, "{body}");
    let (_, meta) = support::http(&serving.addr, "GET", "/v2/models/prices", b"");
    assert_eq!(
        serde_json::from_slice::<Value>(&meta).unwrap()["name"],
        "prices"
    );
    assert_eq!(serving.stop(), 0);
    // The registered model's latest version, from the local stores.
    let serving = Serving::start(d, &["price", "--no-log"]);
    let (status, _, body) = predict(&serving.addr, 1.0);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["predictions"][0]["variable"].as_f64().unwrap(),
        by_folder
    );
    drop(serving);
}

/// The request ids in the column `request_id` of every finished Parquet file under `dir`.
fn logged_ids(dir: &Path) -> Vec<String> {
    use polars::prelude::{DataType, SerReader as _, TimeUnit, TimeZone};
    let mut ids = Vec::new();
    for path in walk(dir) {
        if path.extension().is_some_and(|e| e == "parquet") {
            let df = polars::prelude::ParquetReader::new(std::fs::File::open(&path).unwrap())
                .finish()
                .unwrap();
            // polars reads the log's documented types from the files' Parquet logical types.
            let schema = df.schema();
            let utc_ms = DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC));
            for (column, dtype) in [
                ("request_id", DataType::String),
                ("row", DataType::Int64),
                ("time", utc_ms),
            ] {
                assert_eq!(schema.get(column), Some(&dtype), "{column} in {path:?}");
            }
            let column = df.column("request_id").unwrap().str().unwrap();
            ids.extend(
                (0..column.len())
                    .filter_map(|i| column.get(i))
                    .map(str::to_string),
            );
        }
    }
    ids.sort();
    ids
}

#[test]
fn a_killed_server_loses_no_logged_row_that_reached_a_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    price_model(d, &[]);
    // Files stay open for an hour, so every row the kill finds is in an unfinished file.
    let args = ["price", "--log-dir", "log", "--log-file-interval", "1h"];
    let serving = Serving::start(d, &args);
    let mut ids = Vec::new();
    for i in 0..300 {
        let (status, head, body) = {
            let body = format!(
                r#"{{"dataframe_split": {{"columns": ["x1", "x2", "colour"], "data": [[{i}, 0.5, "red"]]}}}}"#
            );
            post_json(&serving.addr, "/invocations", body.as_bytes())
        };
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let id = support::request_id(&head);
        ids.push(id);
    }
    for id in &ids[..50] {
        let body = format!(r#"{{"request_id": "{id}", "ground_truth": 1.5}}"#);
        let (status, _, answer) = post_json(&serving.addr, "/feedback", body.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    // Rows are counted as written once their row group is on disk (within about a second).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = support::http(&serving.addr, "GET", "/metrics", b"");
        let metrics = String::from_utf8_lossy(&metrics).to_string();
        if metrics.contains("keel_serve_prediction_log_rows_total 350") {
            break;
        }
        assert!(Instant::now() < deadline, "rows not written: {metrics}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(serving); // SIGKILL
    let log = d.join("log");
    assert!(
        logged_ids(&log).is_empty(),
        "a file was finished before the kill"
    );
    // The next start finishes the files the killed server left.
    let serving = Serving::start(d, &args);
    assert_eq!(serving.stop(), 0);
    for (part, sent) in [("predictions", &ids[..]), ("feedback", &ids[..50])] {
        let mut expected = sent.to_vec();
        expected.sort();
        let logged = logged_ids(&log.join(part));
        let missing: Vec<_> = expected.iter().filter(|id| !logged.contains(id)).collect();
        assert!(
            logged == expected,
            "{part}: {} rows logged for {} acknowledged; {} missing, such as {:?}",
            logged.len(),
            expected.len(),
            missing.len(),
            missing.first()
        );
    }
    let staging: Vec<_> = walk(&log)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "parquet"))
        .collect();
    assert!(staging.is_empty(), "left behind: {staging:?}");
    // The recovered files read back with another Parquet implementation too.
    let test = "a_killed_server_loses_no_logged_row_that_reached_a_row_group";
    if let Some(python) = keel_testenv::python(test, &["pyarrow"]) {
        let count = r#"
import glob, sys
import pyarrow.parquet as pq
for folder in sys.argv[1:]:
    ids = []
    for f in sorted(glob.glob(folder + "/**/*.parquet", recursive=True)):
        ids += pq.read_table(f).column("request_id").to_pylist()
    print(len(ids), len(set(ids)))
"#;
        let out = Command::new(python)
            .args(["-c", count])
            .arg(log.join("predictions"))
            .arg(log.join("feedback"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "300 300\n50 50\n");
    }
}

#[test]
fn serving_settings_layer_flags_over_environment_over_keel_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    price_model(d, &[]);
    let rows: Vec<String> = (0..60).map(|i| format!("[{i}, 0.5, \"red\"]")).collect();
    let body = format!(
        r#"{{"dataframe_split": {{"columns": ["x1", "x2", "colour"], "data": [{}]}}}}"#,
        rows.join(", ")
    );
    assert!(body.len() > 1024 && body.len() < 4096, "{}", body.len());
    let status = |serving: &Serving| post_json(&serving.addr, "/invocations", body.as_bytes()).0;
    std::fs::write(d.join("keel.toml"), "[serve]\nbody_limit = \"1KiB\"\n").unwrap();
    // The file's limit.
    let serving = Serving::start(d, &["price", "--no-log"]);
    assert_eq!(status(&serving), 413);
    drop(serving);
    // The environment over the file.
    let env = [("KEEL_SERVE_BODY_LIMIT", "1MiB")];
    let serving = Serving::start_with_env(d, &["price", "--no-log"], &env);
    assert_eq!(status(&serving), 200);
    drop(serving);
    // A flag over the environment.
    let serving = Serving::start_with_env(d, &["price", "--no-log", "--body-limit", "1000"], &env);
    assert_eq!(status(&serving), 413);
    drop(serving);
    // A bad value in the file is named by its key.
    std::fs::write(d.join("keel.toml"), "[serve]\ntimeout = \"soon\"\n").unwrap();
    let (code, _, err) = keel_status(d, &["serve", "price", "--no-log"]);
    assert_ne!(code, 0);
    assert!(err.contains("[serve] timeout: 'soon'"), "{err}");
}

#[test]
fn a_config_file_serves_several_models_each_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("shop.csv"), shop()).unwrap();
    json(d, &["data", "add", "shop.csv"]);
    for (target, drop, algo, name) in [
        ("price", "label", "linear_regression", "price"),
        ("label", "price", "logistic_regression", "churn"),
    ] {
        json(
            d,
            &[
                "train",
                "--data",
                "shop",
                "--target",
                target,
                "--drop",
                drop,
                "--algo",
                algo,
                "--register",
                name,
            ],
        );
    }
    json(d, &["models", "alias", "set", "churn", "champion", "1"]);
    std::fs::write(
        d.join("serve.yaml"),
        "models:\n  - model: price/1\n  - name: churn-model\n    model: churn@champion\n",
    )
    .unwrap();
    let serving = Serving::start(d, &["--config", "serve.yaml", "--no-log"]);
    let body =
        r#"{"dataframe_split": {"columns": ["x1", "x2", "colour"], "data": [[1.0, 0.5, "red"]]}}"#;
    let (status, head, answer) =
        post_json(&serving.addr, "/models/price/invocations", body.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert!(
        head.to_ascii_lowercase().contains("x-model-name: price"),
        "{head}"
    );
    let (status, head, answer) = post_json(
        &serving.addr,
        "/models/churn-model/invocations",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert!(
        head.to_ascii_lowercase()
            .contains("x-model-name: churn-model"),
        "{head}"
    );
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert!(answer["predictions"][0]["label"].is_string(), "{answer}");
    // With several models, /invocations asks which one.
    let (status, _, answer) = post_json(&serving.addr, "/invocations", body.as_bytes());
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&answer).contains("churn-model"));
    assert_eq!(serving.stop(), 0);
}

#[test]
fn bad_arguments_are_named_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, needle) in [
        (vec!["serve", "nope@champion"], "nope"),
        (
            vec!["serve", "model.onnx", "--canary", "x@y"],
            "MODEL:PERCENT",
        ),
        (vec!["serve", "a@b", "--canary", "x@y:150"], "at most 100"),
        (vec!["serve", "--config", "missing.yaml"], "missing.yaml"),
        (vec!["serve", "m/v1"], "NAME/VERSION"),
    ] {
        let (code, _, err) = keel_status(d, &args);
        assert_ne!(code, 0, "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    std::fs::write(d.join("broken.onnx"), b"not a model").unwrap();
    let (code, _, err) = keel_status(d, &["serve", "broken.onnx", "--no-log"]);
    assert_ne!(code, 0);
    assert!(err.contains("broken.onnx"), "{err}");
}

#[test]
fn quickstart_runs_the_whole_loop_on_the_bundled_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = keel_status(d, &["quickstart", "--no-wait", "--port", "0"]);
    assert_eq!(code, 0, "{err}");
    let all = format!("{out}{err}");
    for needle in [
        "predicted Adelie",
        "predicted Gentoo",
        "ground truth recorded",
        "penguins@champion -> version 1",
    ] {
        assert!(all.contains(needle), "no '{needle}' in {all}");
    }
    assert!(d.join("penguins.csv").exists());
    let versions = json(d, &["models", "show", "penguins"]);
    assert!(versions.to_string().contains("champion"), "{versions}");
    let logged = |sub: &str| {
        walk(&d.join("keel-data/predictions").join(sub))
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "parquet"))
    };
    assert!(
        logged("predictions/model=penguins"),
        "the predictions were not logged"
    );
    assert!(logged("feedback"), "the ground truth was not logged");
}

/// The shop table's rows as `/invocations` bodies of 50 rows, `x1` moved by `shift`.
fn shop_requests(shift: f64) -> Vec<String> {
    let table = shop();
    let rows: Vec<String> = table
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let x1: f64 = f[0].parse().unwrap();
            format!("[{}, {}, \"{}\"]", x1 + shift, f[1], f[2])
        })
        .collect();
    rows.chunks(50)
        .map(|c| {
            format!(
                r#"{{"dataframe_split": {{"columns": ["x1", "x2", "colour"], "data": [{}]}}}}"#,
                c.join(", ")
            )
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `keel monitor report ARGS --json`: the exit status, the report and standard error.
fn monitor(d: &Path, args: &[&str]) -> (i32, Value, String) {
    monitor_in(d, "log", args)
}

/// [`monitor`] of the log in `d/log`.
fn monitor_in(d: &Path, log: &str, args: &[&str]) -> (i32, Value, String) {
    let all = [
        &["monitor", "report", "price/1", "--log-dir", log],
        args,
        &["--json"],
    ]
    .concat();
    let (code, out, err) = keel_status(d, &all);
    let report = serde_json::from_str(out.trim()).unwrap_or(Value::Null);
    (code, report, err)
}

/// Each compared column's drift decision in a report.
fn decisions(report: &Value) -> Vec<(String, bool)> {
    let mut d: Vec<(String, bool)> = report["drift"]["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("no columns in {report}"))
        .iter()
        .map(|c| {
            (
                c["column"].as_str().unwrap().to_string(),
                c["drift"]["drifted"].as_bool().unwrap(),
            )
        })
        .collect();
    d.sort();
    d
}

/// Registers the price model in `d` and serves it twice with the log in `d/log`: the training
/// rows as they were, then the same rows with x1 moved by 3. The times before each.
fn price_log_with_a_shift(d: &Path) -> (String, String) {
    price_model(d, &[]);
    let send = |shift: f64| {
        let serving = Serving::start(d, &["price", "--log-dir", "log"]);
        for body in shop_requests(shift) {
            let (status, _, answer) = post_json(&serving.addr, "/invocations", body.as_bytes());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        }
        // The moved half also gets three requests the model refuses (text for a number).
        if shift != 0.0 {
            let bad = br#"{"dataframe_split": {"columns": ["x1", "x2", "colour"], "data": [["oops", 0.5, "red"]]}}"#;
            for _ in 0..3 {
                assert_eq!(post_json(&serving.addr, "/invocations", bad).0, 400);
            }
        }
        // A graceful stop finishes every log file.
        assert_eq!(serving.stop(), 0);
    };
    let t0 = now_ms().to_string();
    send(0.0);
    let t1 = now_ms().to_string();
    send(3.0);
    (t0, t1)
}

#[test]
fn a_served_versions_drift_is_reported_against_its_training_data_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (t0, t1) = price_log_with_a_shift(d);

    // The first window against the dataset version the model was trained on (its lineage):
    // the inputs, and the predicted price against the trained-on price, do not drift.
    let (code, a, err) = monitor(d, &["--until", &t1, "--html", "a.html"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(a["reference"], "shop@1");
    assert_eq!(a["drift"]["current_rows"], 600);
    assert_eq!(a["drift"]["reference_rows"], 600);
    assert_eq!(a["drift"]["not_logged"], serde_json::json!(["label"]));
    let none = |cols: &[&str]| -> Vec<(String, bool)> {
        cols.iter().map(|c| (c.to_string(), false)).collect()
    };
    assert_eq!(
        decisions(&a),
        none(&["colour", "out_variable", "x1", "x2"]),
        "{a}"
    );
    assert_eq!(a["drift"]["dataset_drifted"], false);
    let run_a = a["run_id"]
        .as_str()
        .expect("the check is recorded")
        .to_string();
    let page = std::fs::read_to_string(d.join("a.html")).unwrap();
    for needle in [
        "data-column=\"x1\"",
        "data-column=\"out_variable\"",
        "<svg",
        "shop@1",
    ] {
        assert!(page.contains(needle), "no {needle} in a.html");
    }

    // The moved window: x1 and the predicted price drift, x2 and colour do not; two of four
    // columns reach the default share, so the dataset drifted (status 1, one line).
    let (code, b, err) = monitor(d, &["--since", &t1]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("price/1 drifted"), "{err}");
    let moved = vec![
        ("colour".to_string(), false),
        ("out_variable".into(), true),
        ("x1".into(), true),
        ("x2".into(), false),
    ];
    assert_eq!(decisions(&b), moved, "{b}");
    assert_eq!(b["drift"]["share"], 0.5);
    assert_eq!(b["drift"]["dataset_drifted"], true);
    // Requests and errors per version come from the log: 12 answered, 3 refused.
    let requests = &b["performance"]["latency"];
    assert_eq!(
        (requests["requests"].as_u64(), requests["errors"].as_u64()),
        (Some(12), Some(3)),
        "{b}"
    );
    assert_eq!(requests["error_rate"], 0.2);
    assert_eq!(a["performance"]["latency"]["errors"], 0);
    // Under a higher share it did not.
    let (code, _, err) = monitor(d, &["--since", &t1, "--drift-share", "0.75", "--no-record"]);
    assert_eq!(code, 0, "{err}");

    // Against the first window of the log instead: the same decisions, outputs included.
    let (code, c, err) = monitor(
        d,
        &[
            "--since",
            &t1,
            "--reference-since",
            &t0,
            "--reference-until",
            &t1,
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        c["reference"]
            .as_str()
            .unwrap()
            .starts_with("price/1 logged in"),
        "{c}"
    );
    assert_eq!(c["drift"]["reference_rows"], 600);
    assert_eq!(decisions(&c), moved, "{c}");

    // The newest rows: the last two requests of 50 rows, and any other request logged in the
    // same millisecond as the older of them (a request's rows share its time), all from the
    // moved half.
    let (code, last, err) = monitor(d, &["--last", "100", "--no-record"]);
    assert_eq!(code, 1, "{err}");
    let rows = last["drift"]["current_rows"].as_u64().unwrap();
    assert!((100..=550).contains(&rows) && rows % 50 == 0, "{rows}");
    assert!(last["run_id"].is_null());

    // Each recorded check is a run the tracking API shows, with the report as artifacts.
    let runs = json(d, &["runs", "ls", "--experiment", "keel-monitoring"]);
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs}");
    let run = json(d, &["runs", "show", &run_a]);
    let metric = |key: &str| {
        run["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("no metric {key} in {run}"))["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(metric("drift_share"), 0.0);
    assert_eq!(metric("current_rows"), 600.0);
    assert!(metric("drift.x1") > 0.05, "a K-S p-value on equal samples");
    let params = run["data"]["params"].to_string();
    assert!(
        params.contains("shop@1") && params.contains("\"price\""),
        "{params}"
    );
    let files = json(d, &["runs", "artifacts", &run_a]).to_string();
    assert!(
        files.contains("report.html") && files.contains("report.json"),
        "{files}"
    );

    // Bad input: one line naming what is wrong, nothing recorded.
    let before = |hours: i64| (now_ms() - hours * 3_600_000).to_string();
    let (two_hours_ago, an_hour_ago) = (before(2), before(1));
    for (args, needle) in [
        (
            vec![
                "--since",
                two_hours_ago.as_str(),
                "--until",
                an_hour_ago.as_str(),
            ],
            "no logged predictions of price/1 in",
        ),
        (
            vec!["--since", t1.as_str(), "--until", t0.as_str()],
            "is not before its end",
        ),
        (vec!["--reference", "nosuch@1"], "nosuch"),
        (vec!["--window", "soon"], "--window"),
        (vec!["--drift-share", "0"], "--drift-share"),
        (vec!["--last", "0"], "--last"),
    ] {
        let (code, _, err) = monitor(d, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = keel_status(d, &["monitor", "report", "nosuch/1", "--log-dir", "log"]);
    assert_eq!(code, 2);
    assert!(err.contains("nosuch"), "{err}");
    let runs = json(d, &["runs", "ls", "--experiment", "keel-monitoring"]);
    assert_eq!(runs.as_array().unwrap().len(), 3, "{runs}");
}

/// Rows `x1, x2, colour` like the shop table's (numbers uniform in (-2, 2), colours drawn at
/// random), x1 moved by `shift`.
fn shop_like(n: usize, shift: f64, seed: u64) -> Vec<(f64, f64, &'static str)> {
    let mut u = uniforms(seed);
    (0..n)
        .map(|_| {
            let (x1, x2) = (u() * 4.0 - 2.0 + shift, u() * 4.0 - 2.0);
            (x1, x2, ["red", "blue", "green"][(u() * 3.0) as usize % 3])
        })
        .collect()
}

/// Sends `rows` as requests of 200 rows with the request ids `req-0`, `req-1`, ..., to
/// `addrs` in turn.
fn send_rows(addrs: &[&str], rows: &[(f64, f64, &str)]) {
    for (k, chunk) in rows.chunks(200).enumerate() {
        let data: Vec<String> = chunk
            .iter()
            .map(|(a, b, c)| format!("[{a}, {b}, \"{c}\"]"))
            .collect();
        let body = format!(
            r#"{{"dataframe_split": {{"columns": ["x1", "x2", "colour"], "data": [{}]}}}}"#,
            data.join(", ")
        );
        let id = format!("x-request-id: req-{k}\r\n");
        let (status, _, answer) =
            post_json_with(addrs[k % addrs.len()], "/invocations", &id, body.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
}

/// Each compared column's score in a report.
fn scores(report: &Value) -> std::collections::BTreeMap<String, f64> {
    report["drift"]["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("no columns in {report}"))
        .iter()
        .map(|c| {
            let score = c["drift"]["score"].as_f64();
            (c["column"].as_str().unwrap().to_string(), score.unwrap())
        })
        .collect()
}

#[test]
fn hourly_sketches_answer_like_the_log_within_their_documented_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    price_model(d, &[]);
    // A reference of 5,000 rows: above 1,000 the default tests are the normalised Wasserstein
    // distance (numbers) and Jensen-Shannon (categories). The run's target maps its price
    // onto the logged prediction.
    let reference = shop_like(5_000, 0.0, 11);
    let mut csv = String::from("x1,x2,colour,price\n");
    for (a, b, c) in &reference {
        let price = 2.0 * a - b + if *c == "red" { 1.0 } else { 0.0 };
        csv.push_str(&format!("{a},{b},{c},{price}\n"));
    }
    std::fs::write(d.join("big.csv"), csv).unwrap();
    json(d, &["data", "add", "big.csv"]);
    let traffic: Vec<_> = shop_like(3_000, 0.0, 12)
        .into_iter()
        .chain(shop_like(3_000, 1.0, 13))
        .collect();
    // The same rows (same request ids) go to three logs: one server keeping 1,024 rows a
    // version and hour, two replicas of one log doing the same with their requests alternating,
    // and one server whose sketches keep every row. Each log's rows must land in one hour for
    // the three to hold the same rows per hour: not in an hour's last minute.
    while now_ms().rem_euclid(3_600_000) > 3_540_000 {
        std::thread::sleep(Duration::from_secs(1));
    }
    let one = Serving::start(d, &["price", "--log-dir", "one"]);
    send_rows(&[&one.addr], &traffic);
    assert_eq!(one.stop(), 0);
    let a = Serving::start(d, &["price", "--log-dir", "two"]);
    let b = Serving::start(d, &["price", "--log-dir", "two"]);
    send_rows(&[&a.addr, &b.addr], &traffic);
    assert_eq!((a.stop(), b.stop()), (0, 0));
    let all = Serving::start(d, &["price", "--log-dir", "all", "--sketch-rows", "8192"]);
    send_rows(&[&all.addr], &traffic);
    assert_eq!(all.stop(), 0);
    let sketch_files = |log: &str| {
        walk(&d.join(log).join("sketches"))
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count()
    };
    assert_eq!((sketch_files("one"), sketch_files("two")), (1, 2));

    let report = |log: &str, extra: &[&str]| -> Value {
        let args = [
            &["--window", "1d", "--reference", "big@1", "--no-record"][..],
            extra,
        ]
        .concat();
        let (code, report, err) = monitor_in(d, log, &args);
        assert!(code == 0 || code == 1, "{err}");
        report
    };
    let exact = report("one", &[]);
    let sketched = report("one", &["--sketches"]);
    assert_eq!(sketched["sampled_rows"], 1024, "{sketched}");
    assert_eq!(sketched["log_files"], 1);
    assert!(sketched["performance"].is_null());
    assert_eq!(sketched["timeline"].as_array().map(Vec::len), Some(1));

    // Same rows, same answer: the two replicas' sketches merge into the one server's, and
    // reading again changes nothing.
    assert_eq!(report("two", &["--sketches"])["drift"], sketched["drift"]);
    assert_eq!(report("one", &["--sketches"])["drift"], sketched["drift"]);

    // Exact: rows, missing values, and the categories' test.
    for r in [&exact, &sketched] {
        assert_eq!(r["drift"]["current_rows"], 6_000, "{r}");
        assert_eq!(r["drift"]["reference_rows"], 5_000);
    }
    let nulls = |r: &Value| -> Vec<Value> {
        let columns = r["drift"]["columns"].as_array().unwrap();
        columns.iter().map(|c| c["nulls"].clone()).collect()
    };
    assert_eq!(nulls(&exact), nulls(&sketched));
    let (e, s) = (scores(&exact), scores(&sketched));
    assert_eq!(e.keys().collect::<Vec<_>>(), s.keys().collect::<Vec<_>>());
    assert!((e["colour"] - s["colour"]).abs() < 1e-12, "{e:?} {s:?}");
    // Sampled: each normalised Wasserstein distance within the bound the sample's size gives
    // (the Dvoretzky-Kiefer-Wolfowitz band at 99%, times the values' range over the
    // reference's standard deviation), and the same decision wherever the exact score is
    // farther than that from the threshold (x1, moved by a quarter of its range); colour's
    // test is exact.
    let (de, ds) = (decisions(&exact), decisions(&sketched));
    let decided = |d: &[(String, bool)], c: &str| d.iter().find(|x| x.0 == c).map(|x| x.1);
    assert_eq!(decided(&de, "x1"), Some(true));
    assert_eq!(decided(&de, "colour"), decided(&ds, "colour"));
    let dkw = ((2.0f64 / 0.01).ln() / (2.0 * 1024.0)).sqrt();
    let std = |xs: Vec<f64>| {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
    };
    for (column, range, sd) in [
        ("x1", 5.0, std(reference.iter().map(|r| r.0).collect())),
        ("x2", 4.0, std(reference.iter().map(|r| r.1).collect())),
    ] {
        let (gap, bound) = ((e[column] - s[column]).abs(), dkw * range / sd);
        eprintln!(
            "{column}: exact {:.4}, sketch {:.4}, gap {gap:.4}, bound {bound:.4}",
            e[column], s[column]
        );
        assert!(gap <= bound, "{column}: {gap} {e:?} {s:?}");
        if (e[column] - 0.1).abs() > bound {
            assert_eq!(decided(&de, column), decided(&ds, column), "{column}");
        }
    }

    // Sketches that hold every row give the exact answer.
    let whole = report("all", &["--sketches"]);
    assert_eq!(whole["sampled_rows"], 6_000);
    let w = scores(&whole);
    let exact_all = scores(&report("all", &[]));
    for (column, score) in &exact_all {
        assert!(
            (score - w[column]).abs() < 1e-9,
            "{column}: {exact_all:?} {w:?}"
        );
    }

    // The newest rows are read from the log, not from sketches: one line saying so.
    let (code, _, err) = monitor_in(d, "one", &["--sketches", "--last", "10"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// Uniform numbers in (0, 1) from a seeded generator (one stream: streams of nearby seeds
/// would be correlated).
fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// Rows `x1, x2, label`: x1 around `shift`, x2 around 0 (normal, by Box-Muller), the label
/// drawn from the same logistic relation whatever the shift (covariate shift: the inputs move,
/// the relation does not).
fn labelled_rows(n: usize, shift: f64, seed: u64) -> Vec<(f64, f64, &'static str)> {
    let mut u = uniforms(seed);
    let normal = move |u: &mut dyn FnMut() -> f64| {
        (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos()
    };
    (0..n)
        .map(|_| {
            let (x1, x2) = (normal(&mut u) + shift, normal(&mut u));
            let p = 1.0 / (1.0 + (-(1.5 * x1 - x2 + 0.3)).exp());
            (x1, x2, if u() < p { "yes" } else { "no" })
        })
        .collect()
}

/// ROC AUC by ranks (ties sharing their mean rank).
fn auc(scores: &[f64], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let pos = order[i..=j].iter().filter(|k| positive[**k]).count() as f64;
        rank_sum += pos * ((i + j) as f64 / 2.0 + 1.0);
        i = j + 1;
    }
    let p = positive.iter().filter(|x| **x).count() as f64;
    let n = positive.len() as f64 - p;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Live performance from ground truth sent to `/feedback` and from a labelled dataset version
/// (whose labels win where both label a row), and estimated from the probabilities alone.
#[test]
fn live_performance_joins_feedback_and_labels_and_estimates_it_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut csv = String::from("x1,x2,label\n");
    for (x1, x2, y) in labelled_rows(4000, 0.0, 11) {
        csv.push_str(&format!("{x1},{x2},{y}\n"));
    }
    std::fs::write(d.join("clicks.csv"), csv).unwrap();
    json(d, &["data", "add", "clicks.csv"]);
    let trained = json(
        d,
        &[
            "train",
            "--data",
            "clicks",
            "--target",
            "label",
            "--algo",
            "logistic_regression",
            "--register",
            "clicks",
        ],
    );
    assert!(trained.to_string().contains("accuracy"), "{trained}");

    // 5,000 rows whose x1 moved by one standard deviation, in 50 requests of 100. Requests 0
    // to 29 get their ground truth through /feedback (20 to 29 a wrong one); requests 20 to 49
    // are labelled rightly by a dataset version, which wins where both label a row.
    let current = labelled_rows(5000, 1.0, 29);
    let serving = Serving::start(d, &["clicks", "--log-dir", "log"]);
    let (mut right, mut scores, mut positive) = (0usize, Vec::new(), Vec::new());
    let mut right_by_feedback = 0usize;
    let mut labels = String::from("request_id,row,label\n");
    let flip = |y: &str| if y == "yes" { "no" } else { "yes" };
    for (i, chunk) in current.chunks(100).enumerate() {
        let rows: Vec<String> = chunk
            .iter()
            .map(|(a, b, _)| format!("[{a}, {b}]"))
            .collect();
        let body = format!(
            r#"{{"dataframe_split": {{"columns": ["x1", "x2"], "data": [{}]}}}}"#,
            rows.join(", ")
        );
        let (status, head, answer) = post_json(&serving.addr, "/invocations", body.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        let id = support::request_id(&head);
        let sent: Vec<&str> = chunk
            .iter()
            .map(|r| if i >= 20 { flip(r.2) } else { r.2 })
            .collect();
        for (r, ((_, _, truth), p)) in chunk
            .iter()
            .zip(answer["predictions"].as_array().unwrap())
            .enumerate()
        {
            right += usize::from(p["label"] == *truth);
            scores.push(p["probability_yes"].as_f64().unwrap());
            positive.push(*truth == "yes");
            if i < 30 {
                right_by_feedback += usize::from(p["label"] == sent[r]);
            }
            if i >= 20 {
                labels.push_str(&format!("{id},{r},{truth}\n"));
            }
        }
        if i < 30 {
            let feedback = serde_json::json!({"request_id": id, "ground_truth": sent});
            let (status, _, answer) =
                post_json(&serving.addr, "/feedback", feedback.to_string().as_bytes());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        }
    }
    assert_eq!(serving.stop(), 0);
    std::fs::write(d.join("truths.csv"), &labels).unwrap();
    json(d, &["data", "add", "truths.csv"]);

    let check = |extra: &[&str]| {
        let mut args = vec![
            "monitor",
            "report",
            "clicks/1",
            "--log-dir",
            "log",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = keel_status(d, &args);
        (
            code,
            serde_json::from_str::<Value>(out.trim()).unwrap_or(Value::Null),
            err,
        )
    };
    // /feedback alone: 3,000 labelled rows, a thousand of them wrongly.
    let (code, only_feedback, err) = check(&["--no-record"]);
    assert_eq!(code, 1, "{err}");
    let p = &only_feedback["performance"];
    assert_eq!(p["labelled"].as_u64(), Some(3000), "{p}");
    assert!(p.get("labels").is_none(), "{p}");
    let by_feedback = right_by_feedback as f64 / 3000.0;
    assert!(
        (p["realised"]["accuracy"].as_f64().unwrap() - by_feedback).abs() < 1e-12,
        "{p}"
    );

    // With the labelled dataset version (its `label` column, the model's target).
    let (code, report, err) = check(&["--truth", "truths", "--html", "p.html"]);
    // x1 moved (and so did the predictions), x2 did not.
    assert_eq!(code, 1, "{err}");
    let p = &report["performance"];
    assert_eq!(p["task"], "classification", "{report}");
    assert_eq!(
        (p["rows"].as_u64(), p["labelled"].as_u64()),
        (Some(5000), Some(5000))
    );
    assert_eq!(p["labels"], "truths@1", "{p}");
    assert_eq!(p["latency"]["requests"], 50);
    // Realised: what the answers and the ground truth give.
    let accuracy = right as f64 / 5000.0;
    let realised_auc = auc(&scores, &positive);
    let metric = |side: &str, k: &str| {
        p[side][k]
            .as_f64()
            .unwrap_or_else(|| panic!("no {side} {k}: {p}"))
    };
    assert!(
        (metric("realised", "accuracy") - accuracy).abs() < 1e-12,
        "{p}"
    );
    assert!(
        (metric("realised", "roc_auc") - realised_auc).abs() < 1e-9,
        "{p}"
    );
    eprintln!(
        "accuracy realised {accuracy:.4} estimated {:.4}; ROC AUC realised {realised_auc:.4} estimated {:.4}",
        metric("estimated", "accuracy"),
        metric("estimated", "roc_auc")
    );
    // Estimated from the probabilities alone, within 0.02 of the realised figures.
    assert!(
        (metric("estimated", "accuracy") - accuracy).abs() < 0.02,
        "{p}"
    );
    assert!(
        (metric("estimated", "roc_auc") - realised_auc).abs() < 0.02,
        "{p}"
    );
    // The training run's held-out figures beside them.
    assert!(metric("training", "accuracy") > 0.5, "{p}");
    let page = std::fs::read_to_string(d.join("p.html")).unwrap();
    assert!(
        page.contains("id=\"performance\""),
        "no performance section"
    );
    assert!(
        page.contains("by /feedback and truths@1"),
        "no label source"
    );
    let runs = json(d, &["runs", "ls", "--experiment", "keel-monitoring"]);
    let logged = runs[0]["data"]["metrics"].to_string();
    for key in [
        "realised.accuracy",
        "estimated.roc_auc",
        "labelled_rows",
        "latency_p99_ms",
    ] {
        assert!(logged.contains(key), "no {key} in {logged}");
    }
    assert!(
        runs[0]["data"]["params"].to_string().contains("truths@1"),
        "{}",
        runs[0]["data"]["params"]
    );

    // Labels keel cannot use are refused with one line naming what is wrong.
    let (code, _, err) = check(&[
        "--no-record",
        "--truth",
        "truths",
        "--truth-column",
        "outcome",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the labels in truths@1 have no column 'outcome' (they have request_id, row)"),
        "{err}"
    );
    let first_label = labels.lines().nth(1).unwrap().to_string();
    std::fs::write(d.join("truths.csv"), format!("{labels}{first_label}\n")).unwrap();
    json(d, &["data", "add", "truths.csv"]);
    let (code, _, err) = check(&["--no-record", "--truth", "truths@2"]);
    assert_eq!(code, 2, "{err}");
    let id = first_label.split(',').next().unwrap();
    assert!(
        err.contains(&format!(
            "the labels in truths@2 hold request '{id}' row 0 more than once"
        )),
        "{err}"
    );
    let (code, _, err) = check(&["--no-record", "--sketches", "--truth", "truths"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with --sketches"), "{err}");
}

/// A webhook receiver on a loopback port: answers its first request 500, the rest 200, and
/// keeps every body it was sent.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            kept.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap());
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

#[test]
fn a_monitor_file_raises_alerts_recorded_and_posted_to_its_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    price_log_with_a_shift(d);
    let (url, received) = webhook_receiver();
    let file = format!(
        "kind: keel.monitor/v1\nmodel: price/1\nlog_dir: log\nwindow: 1h\nevery: 1m\n\
         columns:\n  x2: {{method: psi, threshold: 0.5}}\n\
         alerts:\n\
         - {{name: inputs moved, drift_share_above: 0.3}}\n\
         - {{name: x2 moved, column: x2}}\n\
         - {{name: slow, metric: latency_p99_ms, above: 100000}}\n\
         - {{name: too few rows, min_rows: 100000}}\n\
         webhooks:\n  - {{url: '{url}', retries: 2}}\n"
    );
    std::fs::write(d.join("monitor.yaml"), file).unwrap();
    let (code, _, err) = keel_status(d, &["monitor", "watch", "monitor.yaml", "--once"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("alerts fired: inputs moved, too few rows"),
        "{err}"
    );

    // Both alerts arrived, the first after a retry (the receiver refused its first request).
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:?}");
    let mut names: Vec<&str> = got[1..]
        .iter()
        .map(|b| b["alert"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["inputs moved", "too few rows"]);
    let first = got.iter().find(|b| b["alert"] == "inputs moved").unwrap();
    assert_eq!(
        (first["model"].as_str(), first["version"].as_str()),
        (Some("price"), Some("1"))
    );
    assert_eq!(first["value"], 0.5);
    let run = first["run_id"].as_str().unwrap().to_string();

    // The check is a run whose alerts `keel monitor alerts` lists; x2 was judged by PSI.
    let listed = json(d, &["monitor", "alerts"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["run_id"], run.as_str());
    assert_eq!(listed[0]["alerts"], "inputs moved, too few rows");
    assert_eq!(
        json(d, &["monitor", "alerts", "--model", "other"]),
        serde_json::json!([])
    );
    let shown = json(d, &["runs", "show", &run]);
    let metric = |key: &str| {
        shown["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(metric("drift.x2"), metric("psi.x2"));
    // (K-S on these identical columns would give 1, PSI gives 0.)
    assert_eq!(metric("drift.x2"), 0.0);
    let files = json(d, &["runs", "artifacts", &run]).to_string();
    assert!(
        files.contains("alerts.json") && files.contains("report.html"),
        "{files}"
    );

    // A window without rows fires only min_rows, and is recorded too.
    std::fs::write(
        d.join("quiet.yaml"),
        "kind: keel.monitor/v1\nmodel: price/1\nlog_dir: log\nwindow: 1ms\nalerts:\n  - {name: too few rows, min_rows: 1}\n  - {name: moved, drift_share_above: 0.0}\n",
    )
    .unwrap();
    let (code, _, err) = keel_status(d, &["monitor", "watch", "quiet.yaml", "--once"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("alerts fired: too few rows") && !err.contains("moved"),
        "{err}"
    );
    let listed = json(d, &["monitor", "alerts"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["alerts"], "too few rows");
    let empty = json(d, &["runs", "show", listed[0]["run_id"].as_str().unwrap()]);
    assert!(
        empty["data"]["metrics"]
            .to_string()
            .contains("current_rows"),
        "{empty}"
    );

    // Inside `keel server`: the file's check runs at start and its figures are gauges on the
    // server's /metrics, beside the server's own.
    let mut server = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["server", "--port", "0", "--monitor", "monitor.yaml"])
        .current_dir(d)
        .env_remove("KEEL_DB")
        .env_remove("KEEL_ARTIFACTS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut banner,
    )
    .unwrap();
    let addr = banner.trim().rsplit("http://").next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let (_, body) = support::http(&addr, "GET", "/metrics", b"");
        let text = String::from_utf8_lossy(&body).to_string();
        if text.contains("keel_monitor_drift_share{") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = server.kill();
    let _ = server.wait();
    for line in [
        r#"keel_monitor_drift_share{model="price/1",version="1"} 0.5"#,
        r#"keel_monitor_column_drifted{model="price/1",version="1",column="x1"} 1"#,
        r#"keel_monitor_column_drift_score{model="price/1",version="1",column="x2",test="psi"} 0"#,
        r#"keel_monitor_alert_firing{model="price/1",alert="inputs moved"} 1"#,
        r#"keel_monitor_alert_firing{model="price/1",alert="slow"} 0"#,
        r#"keel_monitor_rows{model="price/1",version="1"} 1200"#,
        "keel_http_requests_total",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }

    // A monitor file with a key keel does not know is refused in one line naming it.
    std::fs::write(
        d.join("bad.yaml"),
        "kind: keel.monitor/v1\nmodel: price/1\nwindw: 1h\n",
    )
    .unwrap();
    let (code, _, err) = keel_status(d, &["monitor", "watch", "bad.yaml", "--once"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.yaml") && err.contains("windw"), "{err}");
}

/// The shop table's rows before and after the world moved: x1 three higher, and the price
/// five higher than the old relation says.
fn shop_rows(n: usize, moved: bool, seed: u64) -> Vec<(f64, f64, &'static str, f64)> {
    shop_like(n, if moved { 3.0 } else { 0.0 }, seed)
        .into_iter()
        .map(|(a, b, c)| {
            let price = 2.0 * a - b + if c == "red" { 1.0 } else { 0.0 };
            (a, b, c, if moved { price + 5.0 } else { price })
        })
        .collect()
}

/// Sends `rows` to `addr` in requests of 10 rows (request ids `<prefix>-<k>`) and their prices
/// to `/feedback`.
fn send_with_truth(addr: &str, prefix: &str, rows: &[(f64, f64, &str, f64)]) {
    for (k, chunk) in rows.chunks(10).enumerate() {
        let data: Vec<String> = chunk
            .iter()
            .map(|(a, b, c, _)| format!("[{a}, {b}, \"{c}\"]"))
            .collect();
        let body = format!(
            r#"{{"dataframe_split": {{"columns": ["x1", "x2", "colour"], "data": [{}]}}}}"#,
            data.join(", ")
        );
        let id = format!("{prefix}-{k}");
        let header = format!("x-request-id: {id}\r\n");
        let (status, _, answer) = post_json_with(addr, "/invocations", &header, body.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let truth: Vec<f64> = chunk.iter().map(|r| r.3).collect();
        let feedback = serde_json::json!({"request_id": id, "ground_truth": truth});
        let (status, _, answer) = post_json(addr, "/feedback", feedback.to_string().as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
}

/// The runs of the loop's `step` (`retrain`, `promotion`) recorded in keel-monitoring, newest
/// first.
fn steps(d: &Path, step: &str) -> Vec<Value> {
    let runs = json(d, &["runs", "ls", "--experiment", "keel-monitoring"]);
    let prefix = format!("{step} price/");
    runs.as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["info"]["run_name"]
                .as_str()
                .unwrap_or("")
                .starts_with(&prefix)
        })
        .cloned()
        .collect()
}

/// A run's tag, param or metric `key`.
fn recorded(run: &Value, kind: &str, key: &str) -> Value {
    run["data"][kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .unwrap_or_else(|| panic!("no {kind} {key} in {run}"))["value"]
        .clone()
}

/// Which version `price@alias` names (null when none).
fn alias(d: &Path, name: &str) -> Value {
    let shown = json(d, &["models", "alias", "ls", "price"]);
    shown
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alias"] == name)
        .map_or(Value::Null, |a| a["version"].clone())
}

/// One turn of the loop: price/1 is the champion, served with price@challenger as its shadow
/// (the better turn: compared on the rows both answered) or as a canary taking half the
/// requests (the worse turn: compared over the same stretch of traffic); the traffic moves half
/// way (inputs and the relation to the price both); the drift alert retrains on the dataset's
/// newest version, `better` or not. Returns the folder for more checks.
fn loop_turn(better: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    price_model(d, &[]);
    json(d, &["models", "alias", "set", "price", "champion", "1"]);
    // The dataset's newer version: the moved world, or prices that are noise.
    let mut csv = String::from("x1,x2,colour,label,price\n");
    let mut noise = uniforms(99);
    for (a, b, c, price) in shop_rows(600, true, 21) {
        let price = if better {
            price
        } else {
            noise() * 100.0 - 50.0
        };
        csv.push_str(&format!("{a},{b},{c},x,{price}\n"));
    }
    std::fs::write(d.join("shop.csv"), csv).unwrap();
    json(d, &["data", "add", "shop.csv"]);

    let (url, received) = webhook_receiver();
    let approval = if better { "manual" } else { "auto" };
    std::fs::write(
        d.join("monitor.yaml"),
        format!(
            "kind: keel.monitor/v1\nmodel: price@champion\nlog_dir: log\nwindow: 1h\n\
             alerts:\n  - {{name: moved, drift_share_above: 0.3, retrain: true}}\n\
             webhooks:\n  - {{url: '{url}', retries: 3}}\n\
             retrain: {{data: newest}}\n\
             promote: {{window: 1h, min_rows: 100, alpha: 0.05, approval: {approval}}}\n"
        ),
    )
    .unwrap();
    let (beside, challenger_spec) = if better {
        ("--shadow", "price@challenger")
    } else {
        ("--canary", "price@challenger:50")
    };
    let serving = Serving::start(
        d,
        &[
            "price@champion",
            beside,
            challenger_spec,
            "--log-dir",
            "log",
            "--poll",
            "200ms",
            "--log-file-interval",
            "1s",
        ],
    );
    send_with_truth(&serving.addr, "a", &shop_rows(300, false, 22));
    send_with_truth(&serving.addr, "b", &shop_rows(300, true, 23));
    // The rows are readable once their file is finished (every second; the writer yields to
    // requests, so a busy machine may take longer).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, report, _) = monitor_in(d, "log", &["--window", "1h", "--no-record"]);
        if report["drift"]["current_rows"] == 600 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log never held the 600 rows: {report}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The alert fires, is posted, and retrains on shop@2: price/2 is the challenger.
    let (code, _, err) = keel_status(d, &["monitor", "watch", "monitor.yaml", "--once"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("alerts fired: moved"), "{err}");
    assert!(
        err.contains("retrained on shop@2: version 2 is price@challenger"),
        "{err}"
    );
    let posted = received.lock().unwrap().clone();
    assert!(posted.iter().any(|b| b["alert"] == "moved"), "{posted:?}");
    assert_eq!(alias(d, "challenger"), "2");
    let retrains = steps(d, "retrain");
    assert_eq!(retrains.len(), 1);
    assert_eq!(
        recorded(&retrains[0], "tags", "keel.monitor.decision"),
        "trained"
    );
    assert_eq!(recorded(&retrains[0], "params", "data"), "shop@2");
    // The challenger's training is the champion's, rerun: same algorithm, features, target.
    let training = json(
        d,
        &[
            "runs",
            "show",
            recorded(&retrains[0], "params", "training_run")
                .as_str()
                .unwrap(),
        ],
    );
    for (key, value) in [
        ("algo", "ridge_regression"),
        ("target", "price"),
        ("dataset", "shop@2"),
        ("features", "x1,x2,colour"),
    ] {
        assert_eq!(recorded(&training, "params", key), value, "{key}");
    }

    // keel serve follows the new alias: the challenger answers every request in the shadow,
    // or half of them as a canary.
    let role = if better { "\"shadow\"" } else { "\"canary\"" };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = support::http(&serving.addr, "GET", "/status", b"");
        if String::from_utf8_lossy(&body).contains(role) {
            break;
        }
        assert!(Instant::now() < deadline, "the challenger never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let moved = if better { 200 } else { 600 };
    send_with_truth(&serving.addr, "c", &shop_rows(moved, true, 24));
    assert_eq!(serving.stop(), 0);

    // The next check compares the two: on the 200 rows both answered, or on each one's rows
    // since the canary's first.
    let (code, _, err) = keel_status(d, &["monitor", "watch", "monitor.yaml", "--once"]);
    assert_eq!(code, 1, "{err}");
    let promotions = steps(d, "promotion");
    assert_eq!(promotions.len(), 1, "{err}");
    let p = &promotions[0];
    let paired = recorded(p, "metrics", "paired_rows").as_f64().unwrap();
    assert_eq!(paired, if better { 200.0 } else { 0.0 });
    if !better {
        let (a, b) = (
            recorded(p, "metrics", "champion.labelled_rows")
                .as_f64()
                .unwrap(),
            recorded(p, "metrics", "challenger.labelled_rows")
                .as_f64()
                .unwrap(),
        );
        // Every labelled row of the window is the champion's or the canary's.
        assert_eq!(a + b, 1200.0, "{p}");
        assert!(b >= 100.0, "{p}");
        // Compared over the same stretch: the canary's rows, and the champion's since the
        // canary's first (none of the 600 rows before it, some of the last 600).
        let compared = |who: &str| {
            recorded(p, "metrics", &format!("{who}.compared_rows"))
                .as_f64()
                .unwrap()
        };
        assert_eq!(compared("challenger"), b, "{p}");
        assert!(compared("champion") >= 100.0, "{p}");
        assert!(compared("champion") + b <= 600.0, "{p}");
    }
    let (champion, challenger) = (
        recorded(p, "metrics", "champion.rmse").as_f64().unwrap(),
        recorded(p, "metrics", "challenger.rmse").as_f64().unwrap(),
    );
    let p_value = recorded(p, "metrics", "p_value").as_f64().unwrap();
    eprintln!("{}", recorded(p, "params", "reason"));
    if better {
        // Shown better, but a person approves: nothing moved yet, and no second retraining.
        assert!(challenger < champion && p_value < 0.05, "{p}");
        assert_eq!(
            recorded(p, "tags", "keel.monitor.decision"),
            "awaiting-approval"
        );
        assert_eq!(alias(d, "champion"), "1");
        assert!(err.contains("not retraining"), "{err}");
        assert_eq!(steps(d, "retrain").len(), 1);
    } else {
        // Worse: kept, and why recorded (Welch's t-test over the canary's stretch).
        assert!(challenger > champion && p_value > 0.05, "{p}");
        assert!(
            recorded(p, "params", "reason")
                .as_str()
                .unwrap()
                .contains("welch_t")
        );
        assert_eq!(recorded(p, "tags", "keel.monitor.decision"), "kept");
        let reason = recorded(p, "params", "reason");
        assert!(
            reason.as_str().unwrap().contains("not shown better"),
            "{reason}"
        );
        assert_eq!(alias(d, "champion"), "1");
        assert_eq!(alias(d, "challenger"), "2");
    }
    dir
}

#[test]
fn the_loop_retrains_on_an_alert_and_promotes_only_a_better_challenger() {
    let dir = loop_turn(true);
    let d = dir.path();
    // A dry run records its decision and moves nothing; the person's approval promotes.
    let promote = |extra: &[&str]| {
        let args = [
            &[
                "monitor",
                "promote",
                "price@champion",
                "--log-dir",
                "log",
                "--min-rows",
                "100",
            ][..],
            extra,
            &["--json"],
        ]
        .concat();
        let (code, out, err) = keel_status(d, &args);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(out.trim()).unwrap()
    };
    assert_eq!(promote(&["--dry-run"])["decision"], "dry-run");
    assert_eq!(alias(d, "champion"), "1");
    // Ground truth from a labelled dataset version wins over /feedback's: labels 50 above the
    // prices of the 200 rows both answered favour the champion, whose answers run higher.
    let relabelled_prices: Vec<f64> = shop_rows(200, true, 24)
        .iter()
        .map(|r| r.3 + 50.0)
        .collect();
    let mut labels = String::from("request_id,row,price\n");
    for (i, price) in relabelled_prices.iter().enumerate() {
        labels.push_str(&format!("c-{},{},{price}\n", i / 10, i % 10));
    }
    std::fs::write(d.join("lab.csv"), labels).unwrap();
    json(d, &["data", "add", "lab.csv"]);
    let relabelled = promote(&["--dry-run", "--truth", "lab"]);
    assert_eq!(relabelled["decision"], "kept", "{relabelled}");
    assert_eq!(relabelled["paired"], 200, "{relabelled}");
    let (champion, challenger) = (
        relabelled["champion"]["value"].as_f64().unwrap(),
        relabelled["challenger"]["value"].as_f64().unwrap(),
    );
    assert!(
        champion < challenger && (challenger - 50.0).abs() < 0.1,
        "{relabelled}"
    );
    assert_eq!(
        recorded(&steps(d, "promotion")[0], "params", "truth"),
        "lab@1"
    );
    assert_eq!(alias(d, "champion"), "1");
    // A protected champion is not moved by the loop: it files a request for a person to
    // approve against the alias's gates, and the champion stays.
    json(
        d,
        &[
            "models",
            "protect",
            "price",
            "champion",
            "--lineage",
            "--min",
            "r2=0.5",
        ],
    );
    let requested = promote(&[]);
    assert_eq!(requested["decision"], "requested", "{requested}");
    assert_eq!(alias(d, "champion"), "1");
    let listed = json(d, &["models", "requests", "price", "--state", "pending"]);
    let filed = &listed["alias_requests"][0];
    assert_eq!(filed["alias"], "champion", "{listed}");
    assert_eq!(filed["version"], "2", "{listed}");
    assert!(
        filed["reason"]
            .as_str()
            .unwrap()
            .starts_with("keel monitor promotion"),
        "{listed}"
    );
    assert_eq!(
        listed["protected_aliases"][0]["gates"]["lineage"], true,
        "{listed}"
    );
    // Direct moves are refused as well; lifting the protection lets the loop promote.
    let (code, _, err) = keel_status(d, &["models", "alias", "set", "price", "champion", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is protected"), "{err}");
    json(d, &["models", "unprotect", "price", "champion"]);
    let done = promote(&[]);
    assert_eq!(done["decision"], "promoted", "{done}");
    assert_eq!(done["test"]["test"], "paired_t");
    assert_eq!(alias(d, "champion"), "2");
    assert_eq!(alias(d, "challenger"), Value::Null);
    // With no challenger left there is nothing to compare: one line saying so.
    let (code, _, err) = keel_status(
        d,
        &["monitor", "promote", "price@champion", "--log-dir", "log"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no challenger"), "{err}");

    // Retraining on the feedback stores shop@2 plus the 800 labelled rows the champion
    // answered (the shadow's copies left out) as shop@3 first, so the lineage holds.
    let (code, out, err) = keel_status(
        d,
        &[
            "monitor",
            "retrain",
            "price@champion",
            "--feedback",
            "--window",
            "1h",
            "--log-dir",
            "log",
            "--alias",
            "candidate",
            "--truth",
            "lab",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (r["data"].as_str(), r["challenger"].as_str()),
        (Some("shop@3"), Some("3"))
    );
    assert_eq!(alias(d, "candidate"), "3");
    let shop3 = json(d, &["data", "show", "shop@3"]);
    assert_eq!(shop3["row_count"], 1400, "{shop3}");
    assert!(
        shop3
            .to_string()
            .contains("labelled by its feedback and lab@1"),
        "{shop3}"
    );
    // The 200 rows the labels name carry their price, the other 600 /feedback's: the mean
    // price of shop@2's 600 rows and those 800.
    let prices: Vec<f64> = [
        shop_rows(600, true, 21),
        shop_rows(300, false, 22),
        shop_rows(300, true, 23),
    ]
    .iter()
    .flatten()
    .map(|r| r.3)
    .chain(relabelled_prices.iter().copied())
    .collect();
    let mean = prices.iter().sum::<f64>() / prices.len() as f64;
    let price = shop3["profile"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "price")
        .unwrap()
        .clone();
    assert!(
        (price["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{mean} {price}"
    );

    // Nothing newer than what the champion was trained on: one line, nothing trained.
    let (code, _, err) = keel_status(
        d,
        &[
            "monitor",
            "retrain",
            "price@champion",
            "--data",
            "shop@9",
            "--log-dir",
            "log",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no version 9"), "{err}");
}

#[test]
fn the_loop_keeps_the_champion_when_the_challenger_is_worse() {
    loop_turn(false);
}

/// Logs and registers a scikit-learn pipeline with the real mlflow client on the server at
/// `url`, as MLflow users do (`registered_model_name`, then an alias); what it printed: the run
/// id, a request and what `mlflow.pyfunc.load_model("models:/churn@champion").predict` answers.
const LOG_CHURN: &str = r#"
import json, sys
import mlflow, mlflow.sklearn, numpy as np, pandas as pd
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

mlflow.set_tracking_uri(sys.argv[1])
rng = np.random.default_rng(3)
n = 300
x = pd.DataFrame({"tenure": rng.integers(0, 60, n), "spend": rng.gamma(2, 30, n),
                  "plan": rng.choice(["basic", "plus", "pro"], n)})
y = ((x["tenure"] < 12) & (x["plan"] == "basic")) | (x["spend"] > 120)
model = Pipeline([("prep", ColumnTransformer([("plan", OneHotEncoder(), ["plan"])], remainder="passthrough")),
                  ("forest", RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0))]).fit(x, y)
with mlflow.start_run() as run:
    mlflow.sklearn.log_model(model, name="model", registered_model_name="churn",
                             signature=infer_signature(x, model.predict(x)), input_example=x.head(5),
                             skops_trusted_types=["sklearn.tree._tree.Tree"])
mlflow.MlflowClient().set_registered_model_alias("churn", "champion", "1")
rows = x.head(30)
want = mlflow.pyfunc.load_model("models:/churn@champion").predict(rows)
print(json.dumps({"run_id": run.info.run_id, "rows": rows.to_dict(orient="records"),
                  "want": [bool(v) for v in want]}))
"#;

#[test]
fn models_an_mlflow_registry_holds_serve_by_alias_and_run_natively_or_in_python_workers() {
    let Some(python) = support::python_with_mlflow("keel serve of MLflow models") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = support::Server::start(d, 0);
    let out = support::output_within(
        Command::new(&python).args(["-c", LOG_CHURN, &server.url]),
        Duration::from_secs(600),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logged: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .unwrap(),
    )
    .unwrap();
    let run_id = logged["run_id"].as_str().unwrap();
    let body = serde_json::json!({"dataframe_records": logged["rows"]}).to_string();
    let python_arg = python.to_str().unwrap();
    let cache = d.join("cache");
    let env = [("XDG_CACHE_HOME", cache.to_str().unwrap())];
    // By alias: converted to ONNX, checked against the model, served by keel; by run, with
    // --no-convert: in Python workers. Both answer as mlflow.pyfunc does.
    let runs_uri = format!("runs:/{run_id}/model");
    let cases: [(&[&str], &str); 3] = [
        (&["models:/churn@champion"], "keel-onnx"),
        (
            &[runs_uri.as_str(), "--no-convert", "--workers", "1"],
            "python",
        ),
        (&["models:/churn/1", "--workers", "1"], "keel-onnx"),
    ];
    for (args, runtime) in cases {
        let mut all = vec![
            "--tracking-uri",
            server.url.as_str(),
            "--python",
            python_arg,
            "--no-log",
        ];
        all.extend_from_slice(args);
        let serving = Serving::start_with_env(d, &all, &env);
        let (status, _, answer) = post_json(&serving.addr, "/invocations", body.as_bytes());
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(status, 200, "{args:?}: {answer}");
        assert_eq!(answer["predictions"], logged["want"], "{args:?}");
        let (_, status) = support::http(&serving.addr, "GET", "/status", b"");
        let status: Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(
            status["models"][0]["deployments"][0]["runtime"], runtime,
            "{args:?}: {status}"
        );
        assert_eq!(serving.stop(), 0);
    }
    // A run without that model is named in one line.
    let (code, _, err) = keel_status(
        d,
        &[
            "serve",
            &format!("runs:/{run_id}/nothing"),
            "--tracking-uri",
            &server.url,
            "--no-log",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the run has no model at 'nothing'"), "{err}");
}

/// Runs `keel` in `d` with `env` (credentials), expecting success; its JSON output.
fn keel_json_as(d: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .arg("--json")
        .current_dir(d)
        .env_remove("KEEL_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keel {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `keel serve --auth` in front of a registered model of `keel server --auth`: a caller needs a
/// token the server accepts and USE on the model, answers 401/403/429 in each protocol's
/// shape, and the probes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_serve_with_auth_lets_only_users_with_use_call_a_model_at_their_rate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let admin = [
        ("KEEL_ADMIN_USERNAME", "admin"),
        ("KEEL_ADMIN_PASSWORD", "admin-password-1"),
    ];
    let db = format!("sqlite://{}", d.join("keel.db").display());
    let artifacts = d.join("artifacts").display().to_string();
    let server = support::Server::launch_with_args(d, &db, &artifacts, &["--auth"], &admin);
    let url = server.url.clone();
    let as_admin = [
        ("MLFLOW_TRACKING_USERNAME", "admin"),
        ("MLFLOW_TRACKING_PASSWORD", "admin-password-1"),
    ];
    let remote = ["--tracking-uri", url.as_str()];
    std::fs::write(d.join("shop.csv"), shop()).unwrap();
    keel_json_as(
        d,
        &[&["data", "add", "shop.csv"][..], &remote].concat(),
        &as_admin,
    );
    keel_json_as(
        d,
        &[
            &[
                "train",
                "--data",
                "shop",
                "--target",
                "price",
                "--drop",
                "label",
                "--algo",
                "ridge_regression",
                "--register",
                "price",
            ][..],
            &remote,
        ]
        .concat(),
        &as_admin,
    );
    // ann may use the model, bob only read it (the default); each gets a token.
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{url}{path}");
    for user in ["ann", "bob", "serving"] {
        let r = http
            .post(api("/api/2.0/mlflow/users/create"))
            .basic_auth("admin", Some("admin-password-1"))
            .json(&serde_json::json!({"username": user, "password": format!("{user}-password-1")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let r = http
        .post(api("/api/3.0/mlflow/users/permissions/grant"))
        .basic_auth("admin", Some("admin-password-1"))
        .json(&serde_json::json!({"username": "ann", "resource_type": "registered_model", "resource_id": "price", "permission": "USE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mut tokens = Vec::new();
    for user in ["ann", "bob", "serving"] {
        let r: Value = http
            .post(api("/api/keel/v1/tokens"))
            .basic_auth(user, Some(format!("{user}-password-1")))
            .json(
                &serde_json::json!({"name": "serving", "scope": {"read_only": user == "serving"}}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(r["token"].as_str().unwrap().to_string());
    }
    let (ann, bob, serving) = (tokens[0].clone(), tokens[1].clone(), tokens[2].clone());
    // keel serve reads the registry with a read-only token of its own.
    let served = Serving::start_with_env(
        d,
        &[
            "price/1",
            "--auth",
            "--rate-limit",
            "5",
            "--tracking-uri",
            &url,
            "--no-log",
        ],
        &[("MLFLOW_TRACKING_TOKEN", serving.as_str())],
    );
    let row =
        br#"{"dataframe_split": {"columns": ["x1", "x2", "colour"], "data": [[0.5, 0.5, "red"]]}}"#;
    let v2 = br#"{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [0.5]}, {"name": "x2", "shape": [1], "datatype": "FP64", "data": [0.5]}, {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]}]}"#;
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    let call = |path: &str, body: &[u8], headers: &str| {
        let (status, head, body) = post_json_with(&served.addr, path, headers, body);
        (
            status,
            head,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    // Nobody: 401 in each protocol's shape, with a challenge.
    let (status, head, body) = call("/invocations", row, "");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_code"], "UNAUTHENTICATED", "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    let (status, _, body) = call("/v2/models/price/infer", v2, "");
    assert_eq!(status, 401);
    assert!(body["error"].is_string(), "{body}");
    let (status, _, _) = call("/invocations", row, &bearer("keel_aaaaaaaaaaaa_forged"));
    assert_eq!(status, 401);
    // bob reads but may not use: 403.
    let (status, _, body) = call("/invocations", row, &bearer(&bob));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_code"], "PERMISSION_DENIED");
    assert!(body["message"].as_str().unwrap().contains("USE"), "{body}");
    let (status, _, body) = call("/v2/models/price/infer", v2, &bearer(&bob));
    assert_eq!(status, 403, "{body}");
    // ann may, at 5 requests per second.
    let (status, _, body) = call("/invocations", row, &bearer(&ann));
    assert_eq!(status, 200, "{body}");
    assert!(!body["predictions"][0].is_null(), "{body}");
    let (status, _, body) = call("/v2/models/price/infer", v2, &bearer(&ann));
    assert_eq!(status, 200, "{body}");
    let mut limited = 0;
    for _ in 0..12 {
        let (status, head, body) = call("/invocations", row, &bearer(&ann));
        if status == 429 {
            limited += 1;
            assert_eq!(body["error_code"], "REQUEST_LIMIT_EXCEEDED", "{body}");
            assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }
    assert!(
        limited >= 5,
        "{limited} of 12 rapid requests limited at 5/s"
    );
    // The probes and the operational views stay open.
    for path in [
        "/ping",
        "/health",
        "/v2/health/ready",
        "/status",
        "/metrics",
        "/",
    ] {
        assert_eq!(
            support::http(&served.addr, "GET", path, b"").0,
            200,
            "{path}"
        );
    }
    assert_eq!(served.stop(), 0);
}
