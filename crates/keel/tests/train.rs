//! `keel train` end to end: a dataset version trained on, the run recorded with its params,
//! metrics, dataset input and artifacts, on the embedded store and through a server; and bad
//! requests named in one line.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{json, keel_status, shop};

fn add_shop(d: &Path, extra: &[&str]) {
    std::fs::write(d.join("shop.csv"), shop()).unwrap();
    let mut args = vec!["data", "add", "shop.csv"];
    args.extend_from_slice(extra);
    json(d, &args);
}

#[test]
fn train_records_a_run_in_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_shop(d, &[]);
    // Logistic regression, C = 2, seed 5, without the price column.
    const LOGISTIC: [&str; 13] = [
        "train",
        "--data",
        "shop@1",
        "--target",
        "label",
        "--algo",
        "logistic_regression",
        "--param",
        "C=2",
        "--seed",
        "5",
        "--drop",
        "price",
    ];
    let out = json(d, &LOGISTIC);
    assert_eq!(out["task"], "classification");
    assert_eq!(out["classes"], serde_json::json!(["no", "yes"]));
    assert_eq!(out["rows"], 600);
    assert_eq!(out["features"], serde_json::json!(["x1", "x2", "colour"]));
    assert!(out["metrics"]["roc_auc"].as_f64().unwrap() > 0.97, "{out}");
    let run = out["run_id"].as_str().unwrap();
    let root = d.join(format!("keel-data/artifacts/0/{run}/artifacts"));
    // The model is a logged model of the run, with its files under its own location.
    let model_dir = |out: &Value| {
        d.join(format!(
            "keel-data/artifacts/0/models/{}/artifacts",
            out["model_id"].as_str().unwrap()
        ))
    };
    let model = model_dir(&out);
    for file in ["MLmodel", "model.json", "input_example.json"] {
        assert!(model.join(file).is_file(), "{file} missing");
    }
    let mlmodel = std::fs::read_to_string(model.join("MLmodel")).unwrap();
    assert!(
        mlmodel.contains(&format!("run_id: {run}"))
            && mlmodel.contains(&format!("model_id: {}", out["model_id"].as_str().unwrap())),
        "{mlmodel}"
    );
    for file in [
        "charts/roc.svg",
        "charts/confusion_matrix.svg",
        "charts/feature_importance.svg",
        "feature_importance.json",
    ] {
        assert!(root.join(file).is_file(), "{file} missing");
    }
    // The same data, params and seed give the same model file.
    let mut registering = LOGISTIC.to_vec();
    registering.extend(["--register", "shop-model"]);
    let again = json(d, &registering);
    assert_eq!(again["registered"]["version"], "1");
    assert_eq!(json(d, &registering)["registered"]["version"], "2");
    assert_ne!(again["model_id"], out["model_id"]);
    // The registry commands work on the local stores too.
    json(
        d,
        &["models", "alias", "set", "shop-model", "champion", "2"],
    );
    let shown = json(d, &["models", "show", "shop-model"]);
    let champion: Vec<&Value> = shown["model_versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["aliases"] == serde_json::json!(["champion"]))
        .collect();
    assert_eq!(champion.len(), 1, "{shown}");
    assert_eq!(champion[0]["version"], "2");
    let cmp = json(d, &["models", "compare", "shop-model", "1", "2"]);
    assert_eq!(cmp["metrics"]["roc_auc"][0], cmp["metrics"]["roc_auc"][1]);
    assert_eq!(
        std::fs::read(model.join("model.json")).unwrap(),
        std::fs::read(model_dir(&again).join("model.json")).unwrap()
    );

    // Regression with cross-validation: mean and spread over the folds.
    let reg = json(
        d,
        &[
            "train",
            "--data",
            "shop",
            "--target",
            "price",
            "--algo",
            "linear_regression",
            "--cv",
            "4",
        ],
    );
    assert_eq!(reg["task"], "regression");
    assert!(reg["metrics"]["r2"].as_f64().unwrap() > 0.9999, "{reg}");

    // The read commands work on the local store right after training, like the others.
    let shown = json(d, &["runs", "show", run]);
    assert_eq!(shown["info"]["run_id"], run, "{shown}");
    let listed = json(d, &["runs", "ls"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["info"]["run_id"] == run),
        "{listed}"
    );
    let experiments = json(d, &["experiments", "ls"]);
    assert!(experiments.as_array().is_some_and(|e| !e.is_empty()));
    // The run's artifacts are listed, shown and downloaded byte for byte.
    let artifacts = json(d, &["runs", "artifacts", run]);
    let paths: Vec<&str> = artifacts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"charts/roc.svg"), "{paths:?}");
    let (ok, table, _) = support::keel(d, &["runs", "show", run]);
    assert!(ok && table.contains("charts/roc.svg"), "{table}");
    json(d, &["runs", "download", run, "charts", "--to", "fetched"]);
    assert_eq!(
        std::fs::read(d.join("fetched/charts/roc.svg")).unwrap(),
        std::fs::read(root.join("charts/roc.svg")).unwrap()
    );
    assert!(
        !d.join("fetched/feature_importance.json").exists(),
        "only below the path"
    );
    let history = json(d, &["runs", "history", run, "roc_auc"]);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    // Deleted runs leave the listing and come back when restored.
    let ids = |d: &Path| -> Vec<String> {
        json(d, &["runs", "ls"])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["info"]["run_id"].as_str().unwrap().to_string())
            .collect()
    };
    json(d, &["runs", "delete", run]);
    assert!(!ids(d).contains(&run.to_string()));
    json(d, &["runs", "restore", run]);
    assert!(ids(d).contains(&run.to_string()));
    // Aliases are listed and removed.
    let aliases = json(d, &["models", "alias", "ls", "shop-model"]);
    assert_eq!(
        aliases,
        serde_json::json!([{"alias": "champion", "version": "2"}])
    );
    json(d, &["models", "alias", "delete", "shop-model", "champion"]);
    assert_eq!(
        json(d, &["models", "alias", "ls", "shop-model"]),
        serde_json::json!([])
    );
    // A local command's error says what was not found, in the store's words.
    let (code, _, err) = keel_status(d, &["models", "alias", "set", "nope", "champion", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'nope'") || err.contains("name=nope"),
        "names the model: {err}"
    );
    assert!(
        !err.contains("HTTP") && !err.contains("registered-models/"),
        "no server words for a local command: {err}"
    );
    // A closed standard output ends a command quietly.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["runs", "ls"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_integer_target_of_few_values_trains_a_classifier_whose_labels_stay_integers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The shop's label as 0/1, as a CSV export of a scikit-learn data set holds it.
    let csv: String = shop()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                format!("{}\n", l.replace(",yes,", ",1,").replace(",no,", ",0,"))
            }
        })
        .collect();
    std::fs::write(d.join("flags.csv"), csv).unwrap();
    json(d, &["data", "add", "flags.csv"]);
    let (ok, out, err) = support::keel(
        d,
        &[
            "train",
            "--data",
            "flags@1",
            "--target",
            "label",
            "--algo",
            "random_forest",
            "--drop",
            "price",
            "--register",
            "flags",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("task: classification: target 'label' holds 2 distinct integers"),
        "says which task and why: {out}"
    );
    let model = json(d, &["models", "show", "flags"]);
    let version = &model["model_versions"][0];
    assert_eq!(version["version"], "1", "{model}");
    // The model answers labels as the integers the target held, not as text.
    let keel_model = std::fs::read_to_string(
        d.join("keel-data/artifacts/0/models")
            .join(version["model_id"].as_str().unwrap())
            .join("artifacts/model.json"),
    )
    .unwrap();
    let keel_model: Value = serde_json::from_str(&keel_model).unwrap();
    assert_eq!(keel_model["label_type"], "long");
}

#[test]
fn trees_train_on_one_version_and_are_scored_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_shop(d, &[]);
    std::fs::write(d.join("holdout.csv"), shop()).unwrap();
    json(d, &["data", "add", "holdout.csv"]);
    for algo in ["decision_tree", "random_forest", "gradient_boosting"] {
        let out = json(
            d,
            &[
                "train",
                "--data",
                "shop@1",
                "--test-data",
                "holdout@1",
                "--target",
                "label",
                "--algo",
                algo,
                "--features",
                "x1,x2",
                "--param",
                "max_depth=6",
            ],
        );
        assert!(
            out["metrics"]["roc_auc"].as_f64().unwrap() > 0.95,
            "{algo}: {out}"
        );
        assert!(
            out["metrics"]["fit_seconds"].as_f64().unwrap() > 0.0,
            "{out}"
        );
        assert_eq!(
            out["metrics"]["n_iter"].is_number(),
            algo == "gradient_boosting"
        );
        let run = out["run_id"].as_str().unwrap();
        let model = d.join(format!(
            "keel-data/artifacts/0/models/{}/artifacts",
            out["model_id"].as_str().unwrap()
        ));
        // Numeric inputs only: the model is also ONNX.
        assert!(model.join("model.onnx").is_file(), "{algo}: no model.onnx");
        let mlmodel = std::fs::read_to_string(model.join("MLmodel")).unwrap();
        assert!(mlmodel.contains("loader_module: mlflow.onnx"), "{mlmodel}");
        // The test version is an input of the run.
        let shown = json(d, &["data", "show", "holdout@1"]);
        let used: Vec<&str> = shown["used_by"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u["run_id"].as_str())
            .collect();
        assert!(used.contains(&run), "{shown}");
    }
    // A search shares the cores between the trials that run side by side.
    std::fs::write(d.join("space.yaml"), "max_depth: [2, 4]\n").unwrap();
    let search = json(
        d,
        &[
            "train",
            "--data",
            "shop",
            "--target",
            "label",
            "--algo",
            "random_forest",
            "--param",
            "n_estimators=5",
            "--search",
            "grid",
            "--space",
            "space.yaml",
        ],
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = (cores / cores.min(2)).max(1).to_string();
    for t in search["trials"].as_array().unwrap() {
        assert_eq!(t["params"]["n_jobs"], share.as_str(), "{t}");
    }
    let (code, _, err) = keel_status(
        d,
        &[
            "train",
            "--data",
            "shop",
            "--test-data",
            "holdout",
            "--split",
            "0.7",
            "--target",
            "label",
            "--algo",
            "random_forest",
        ],
    );
    assert_eq!(
        (code, err.trim()),
        (2, "error: give one of --split, --cv and --test-data")
    );
}

#[test]
fn bad_training_requests_are_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_shop(d, &[]);
    let base = ["train", "--data", "shop", "--algo", "logistic_regression"];
    for (extra, want) in [
        (vec!["--target", "nope"], "unknown target column 'nope'"),
        (
            vec!["--target", "label", "--search", "grid"],
            "--search needs --space FILE",
        ),
        (
            vec!["--target", "label", "--search", "grid", "--metric", "auc"],
            "--metric 'auc': use one of",
        ),
        (
            vec!["--target", "label", "--drop", "zip"],
            "unknown feature column 'zip'",
        ),
        (
            vec!["--target", "label", "--param", "n_estimators=3"],
            "unknown parameter 'n_estimators'",
        ),
        (
            vec!["--target", "label", "--param", "C=-1"],
            "C must be above 0, not -1",
        ),
        (vec!["--target", "label", "--split", "1.5"], "--split"),
        (
            vec!["--target", "label", "--cv", "1"],
            "--cv: at least 2 folds",
        ),
        (
            vec!["--target", "price", "--task", "regression"],
            "logistic_regression does not do regression",
        ),
        (
            vec![],
            "--target is needed: logistic_regression predicts a column",
        ),
        (
            vec!["--task", "clustering"],
            "logistic_regression does not do clustering",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let (code, _, err) = keel_status(d, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (code, _, err) = keel_status(
        d,
        &[
            "train",
            "--data",
            "shop",
            "--target",
            "colour",
            "--algo",
            "linear_regression",
            "--task",
            "regression",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("target 'colour' holds text; regression needs numbers"),
        "{err}"
    );
}

/// `keel train` on the embedded store writes through the same service layer as the server, so
/// MLflow's rules hold for it too: a name the server refuses is refused here, and nothing is
/// written.
#[test]
fn the_embedded_store_applies_mlflows_rules_to_keel_train() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_shop(d, &[]);
    let base = [
        "train",
        "--data",
        "shop",
        "--target",
        "label",
        "--algo",
        "logistic_regression",
    ];
    let long_experiment = "e".repeat(501);
    let long_run = "r".repeat(251);
    for (extra, want) in [
        (
            ["--experiment", long_experiment.as_str()],
            "'name' exceeds the maximum length of 500 characters",
        ),
        (
            ["--run-name", long_run.as_str()],
            "'run_name' exceeds the maximum length of 250 characters",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        let (code, _, err) = keel_status(d, &args);
        assert_ne!(code, 0, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
    let experiments = json(d, &["experiments", "ls"]);
    let names: Vec<&str> = experiments
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default"], "{experiments}");
    let runs = json(d, &["runs", "ls"]);
    assert_eq!(runs.as_array().map(Vec::len), Some(0), "{runs}");
}

#[test]
fn neighbours_and_clusters_train_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    add_shop(d, &[]);
    let model_dir = |out: &Value| {
        d.join(format!(
            "keel-data/artifacts/0/models/{}/artifacts",
            out["model_id"].as_str().unwrap()
        ))
    };
    let knn = json(
        d,
        &[
            "train",
            "--data",
            "shop",
            "--target",
            "label",
            "--algo",
            "k_neighbors",
            "--param",
            "n_neighbors=7",
            "--param",
            "weights=distance",
            "--drop",
            "price",
        ],
    );
    assert!(knn["metrics"]["roc_auc"].as_f64().unwrap() > 0.95, "{knn}");
    // A k-d tree search is no ONNX graph: the keel flavor alone.
    assert!(!model_dir(&knn).join("model.onnx").exists());

    let clusters = json(
        d,
        &[
            "train",
            "--data",
            "shop",
            "--algo",
            "k_means",
            "--param",
            "n_clusters=3",
            "--features",
            "x1,x2",
            "--cv",
            "3",
        ],
    );
    assert_eq!(clusters["task"], "clustering");
    let silhouette = clusters["metrics"]["silhouette"].as_f64().unwrap();
    assert!(silhouette > 0.2 && silhouette <= 1.0, "{clusters}");
    assert!(clusters["metrics"]["inertia"].as_f64().unwrap() > 0.0);
    let model = model_dir(&clusters);
    assert!(model.join("model.onnx").is_file());
    let mlmodel = std::fs::read_to_string(model.join("MLmodel")).unwrap();
    assert!(
        mlmodel.contains(r#"[{"name":"cluster","required":true,"type":"long"}]"#),
        "{mlmodel}"
    );
    let run = clusters["run_id"].as_str().unwrap();
    assert!(
        d.join(format!(
            "keel-data/artifacts/0/{run}/artifacts/charts/cluster_sizes.svg"
        ))
        .is_file()
    );
    let (code, _, err) = keel_status(
        d,
        &[
            "train", "--data", "shop", "--algo", "k_means", "--target", "label",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("k_means groups rows without a target; leave out the target 'label'"),
        "{err}"
    );
}

/// `GET url` as JSON.
async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Trains logistic regression on `shop` through the server at `url`, registered as
/// `shop-classifier`, with `extra` arguments.
fn train_on_server(work: &Path, url: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "train",
        "--data",
        "shop",
        "--target",
        "label",
        "--algo",
        "logistic_regression",
        "--experiment",
        "shop-models",
        "--register",
        "shop-classifier",
        "--tracking-uri",
        url,
    ];
    args.extend_from_slice(extra);
    json(work, &args)
}

#[tokio::test]
async fn train_records_a_run_on_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = support::Server::start(&server_dir, 0);
    let url = server.url.clone();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    add_shop(&work, &["--tracking-uri", &url]);
    let out = train_on_server(&work, &url, &[]);
    let run_id = out["run_id"].as_str().unwrap().to_string();
    let run: Value = get_json(format!("{url}/api/2.0/mlflow/runs/get?run_id={run_id}")).await;
    let run = &run["run"];
    assert_eq!(run["info"]["status"], "FINISHED");
    let param = |k: &str| {
        run["data"]["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == k)
            .map(|p| p["value"].clone())
    };
    assert_eq!(param("algo"), Some("logistic_regression".into()));
    assert_eq!(param("C"), Some("1".into()));
    let auc = run["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "roc_auc")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((auc - out["metrics"]["roc_auc"].as_f64().unwrap()).abs() < 1e-12);
    // The input is the dataset version (digest = its MLflow digest), so lineage resolves.
    let shown = json(&work, &["data", "show", "shop", "--tracking-uri", &url]);
    let input = &run["inputs"]["dataset_inputs"][0]["dataset"];
    assert_eq!(input["digest"], shown["digest"]);
    assert_eq!(shown["used_by"][0]["run_id"], run_id.as_str());
    // The model is the run's logged model: ready, with the run's metrics and its files.
    let model_id = out["model_id"].as_str().unwrap().to_string();
    let logged: Value = get_json(format!("{url}/api/2.0/mlflow/logged-models/{model_id}")).await;
    let info = &logged["model"]["info"];
    assert_eq!(info["status"], "LOGGED_MODEL_READY", "{logged}");
    assert_eq!(info["source_run_id"], run_id.as_str());
    assert!(
        logged["model"]["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["key"] == "roc_auc"),
        "{logged}"
    );
    assert_eq!(
        run["outputs"]["model_outputs"][0]["model_id"],
        model_id.as_str()
    );
    let listed: Value = get_json(format!(
        "{url}/api/2.0/mlflow/logged-models/{model_id}/artifacts/directories"
    ))
    .await;
    let files: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    // Registered with its lineage.
    assert_eq!(out["registered"]["version"], "1");
    let mv: Value = get_json(format!(
        "{url}/api/2.0/mlflow/model-versions/get?name=shop-classifier&version=1"
    ))
    .await;
    let mv = &mv["model_version"];
    assert_eq!(mv["run_id"], run_id.as_str());
    assert_eq!(mv["source"], format!("models:/{model_id}").as_str());
    assert_eq!(mv["model_id"], model_id.as_str());
    let tag = |k: &str| {
        mv["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == k)
            .map(|t| t["value"].clone())
    };
    assert_eq!(tag("keel.dataset"), Some("shop@1".into()));
    assert_eq!(tag("keel.run_id"), Some(run_id.as_str().into()));

    // A second version with stronger regularisation; the champion alias points at it; the
    // two compare side by side.
    let second = train_on_server(&work, &url, &["--param", "C=0.01"]);
    assert_eq!(second["registered"]["version"], "2");
    json(
        &work,
        &[
            "models",
            "alias",
            "set",
            "shop-classifier",
            "champion",
            "2",
            "--tracking-uri",
            &url,
        ],
    );
    let champion: Value = get_json(format!(
        "{url}/api/2.0/mlflow/registered-models/alias?name=shop-classifier&alias=champion"
    ))
    .await;
    assert_eq!(champion["model_version"]["version"], "2");
    let cmp = json(
        &work,
        &[
            "models",
            "compare",
            "shop-classifier",
            "1",
            "2",
            "--tracking-uri",
            &url,
        ],
    );
    assert_eq!(cmp["params"]["C"], serde_json::json!(["1", "0.01"]));
    assert_eq!(
        cmp["metrics"]["roc_auc"][0].as_f64(),
        out["metrics"]["roc_auc"].as_f64()
    );
    assert_eq!(
        cmp["metrics"]["roc_auc"][1].as_f64(),
        second["metrics"]["roc_auc"].as_f64()
    );
    assert!(
        cmp["params"].get("target").is_none(),
        "equal params are left out"
    );

    // A grid search: one child run per value under one parent, the best by ROC AUC.
    std::fs::write(work.join("space.yaml"), "C: [0.001, 1]\n").unwrap();
    let search = train_on_server(&work, &url, &["--search", "grid", "--space", "space.yaml"]);
    assert_eq!(
        search["registered"]["version"], "3",
        "the best trial is registered"
    );
    let trials = search["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    let aucs: Vec<f64> = trials
        .iter()
        .map(|t| t["metrics"]["roc_auc"].as_f64().unwrap())
        .collect();
    let best = search["best"].as_f64().unwrap();
    assert_eq!(best, aucs.iter().copied().fold(f64::MIN, f64::max));
    let parent = search["parent_run_id"].as_str().unwrap();
    for t in trials {
        let child = get_json(format!(
            "{url}/api/2.0/mlflow/runs/get?run_id={}",
            t["run_id"].as_str().unwrap()
        ))
        .await;
        let parent_tag = child["run"]["data"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "mlflow.parentRunId")
            .map(|t| t["value"].clone());
        assert_eq!(parent_tag, Some(parent.into()));
    }
    let parent_run = get_json(format!("{url}/api/2.0/mlflow/runs/get?run_id={parent}")).await;
    let logged = parent_run["run"]["data"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "best_roc_auc")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!((logged - best).abs() < 1e-12);
    // Trials are chosen by cross-validation on the training rows; the held-out rows score
    // the chosen one only, reported apart from the choice.
    assert_eq!(
        search["selection"],
        "3-fold cross-validation on the 480 training rows"
    );
    assert_eq!(search["evaluation"], "the 120 held-out rows");
    let test_auc = search["test"]["roc_auc"].as_f64().unwrap();
    assert!(test_auc > 0.9, "{search}");
    let parent_metrics = parent_run["run"]["data"]["metrics"].as_array().unwrap();
    assert!(
        parent_metrics
            .iter()
            .any(|m| m["key"] == "test_roc_auc" && m["value"].as_f64() == Some(test_auc)),
        "{parent_run}"
    );
    assert!(
        files.contains(&"MLmodel") && files.contains(&"model.json"),
        "{files:?}"
    );

    // The mlflow client finds the model by its registered version and by the run.
    let Some(python) =
        support::python_with_mlflow("train_records_a_run_on_a_server (mlflow client half)")
    else {
        return;
    };
    let script = format!(
        r#"
import json, mlflow, yaml
mlflow.set_tracking_uri("{url}")
client = mlflow.MlflowClient()
found = {{}}
for uri in ["models:/shop-classifier/1", "runs:/{run_id}/model", "models:/{model_id}"]:
    path = mlflow.artifacts.download_artifacts(uri)
    with open(path + "/MLmodel") as f:
        found[uri] = yaml.safe_load(f)["model_id"]
model = client.get_logged_model("{model_id}")
found["versions"] = json.loads(model.tags["mlflow.modelVersions"])
print(json.dumps(found))
"#
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    for uri in [
        "models:/shop-classifier/1".to_string(),
        format!("runs:/{run_id}/model"),
        format!("models:/{model_id}"),
    ] {
        assert_eq!(found[&uri], model_id.as_str(), "{uri}: {found}");
    }
    assert_eq!(
        found["versions"],
        serde_json::json!([{"name": "shop-classifier", "version": 1}])
    );
}

/// 800 loan applications: income and debt (numbers), a region (the sensitive column, one
/// rare, whose incomes differ), and whether the loan was repaid (`approved`, 0/1).
fn loans() -> String {
    let mut s = String::from("income,debt,region,approved\n");
    let mut rng = support::Lcg(41);
    let mut next = || rng.unit();
    for i in 0..800 {
        // Incomes differ by region, so the model's selection does too.
        let (region, shift) = match i % 53 {
            0..=1 => ("west", -40.0),
            n if n % 3 == 0 => ("north", 15.0),
            n if n % 3 == 1 => ("south", -15.0),
            _ => ("east", 0.0),
        };
        let income = 40.0 + shift + 80.0 * next();
        let debt = 40.0 * next();
        let score = 0.06 * income - 0.12 * debt - 1.0 + 1.5 * (next() - 0.5);
        s += &format!("{income:.2},{debt:.2},{region},{}\n", u8::from(score > 0.0));
    }
    s
}

/// fairlearn's figures: for `model`, the registered model on a tracking server (predicting
/// with `mlflow.pyfunc` on a CSV file's rows), or for each case of a JSON file of
/// `{"truth", "predicted", "groups"}`; JSON lines of per-group rates and the four figures.
const FAIRLEARN: &str = r#"
import json, sys, warnings
import numpy as np
import pandas as pd
from fairlearn.metrics import (MetricFrame, selection_rate, true_positive_rate,
    false_positive_rate, demographic_parity_difference, demographic_parity_ratio,
    equalized_odds_difference, equalized_odds_ratio)
from sklearn.metrics import accuracy_score
warnings.simplefilter("ignore")

def figures(yt, yp, g):
    yt, yp, g = np.asarray(yt), np.asarray(yp), np.asarray(g)
    mf = MetricFrame(metrics={"selection_rate": selection_rate,
        "true_positive_rate": lambda a, b: true_positive_rate(a, b, pos_label=1),
        "false_positive_rate": lambda a, b: false_positive_rate(a, b, pos_label=1),
        "accuracy": accuracy_score}, y_true=yt, y_pred=yp, sensitive_features=g)
    opt = lambda x: None if np.isnan(x) else float(x)
    kw = {"sensitive_features": g}
    return {
        "groups": {str(k): {m: float(v) for m, v in row.items()} for k, row in mf.by_group.iterrows()},
        "counts": {str(k): int(v) for k, v in pd.Series(g).value_counts().items()},
        "overall": {m: float(v) for m, v in mf.overall.items()},
        "demographic_parity_difference": float(demographic_parity_difference(yt, yp, **kw)),
        "demographic_parity_ratio": opt(demographic_parity_ratio(yt, yp, **kw)),
        "equalized_odds_difference": float(equalized_odds_difference(yt, yp, **kw)),
        "equalized_odds_ratio": opt(equalized_odds_ratio(yt, yp, **kw)),
    }

if sys.argv[1] == "model":
    import mlflow
    mlflow.set_tracking_uri(sys.argv[2])
    df = pd.read_csv(sys.argv[3])
    pred = mlflow.pyfunc.load_model(sys.argv[4]).predict(df[["income", "debt"]].astype("float64"))
    yp = np.asarray(pred["label"]).astype(int)
    print(json.dumps(figures(df["approved"].to_numpy(), yp, df["region"].to_numpy())))
else:
    for case in json.load(open(sys.argv[2])):
        yt = np.array(case["truth"], dtype=int)
        yp = np.array(case["predicted"], dtype=int)
        print(json.dumps(figures(yt, yp, case["groups"])))
"#;

/// keel's evaluation (as `keel models fairness --json` prints it, or `assess` returns it)
/// against fairlearn's figures for the same rows.
fn assert_agrees(keel: &Value, want: &Value, case: &str) {
    let close = |a: &Value, b: &Value, what: &str| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() < 1e-12,
            "{case} {what}: keel {x}, fairlearn {y}"
        ),
        _ => assert_eq!(a, b, "{case} {what}"),
    };
    let groups = keel["groups"].as_array().unwrap();
    let want_groups = want["groups"].as_object().unwrap();
    assert_eq!(groups.len(), want_groups.len(), "{case}: groups");
    for g in groups {
        let name = g["group"].as_str().unwrap();
        let w = &want_groups[name];
        for m in [
            "selection_rate",
            "true_positive_rate",
            "false_positive_rate",
            "accuracy",
        ] {
            close(&g[m], &w[m], &format!("{name} {m}"));
        }
        assert_eq!(g["count"], want["counts"][name], "{case} {name} count");
    }
    for m in [
        "selection_rate",
        "true_positive_rate",
        "false_positive_rate",
        "accuracy",
    ] {
        close(
            &keel["overall"][m],
            &want["overall"][m],
            &format!("overall {m}"),
        );
    }
    for m in [
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
    ] {
        close(&keel[m], &want[m], m);
    }
}

/// `keel models fairness` and `keel models card` through a server: a classifier of loans
/// evaluated by region agrees with fairlearn on the predictions `mlflow.pyfunc` makes with the
/// registered version; so do 300 random cases (groups with no positive or no negative, one
/// group, no positive prediction). The card carries the lineage, the figures and what a person
/// wrote, as Markdown and as HTML that escapes it; bad requests are one line naming the flag.
#[test]
fn fairness_on_the_model_card_agrees_with_fairlearn() {
    let Some(python) = keel_testenv::python(
        "fairness_on_the_model_card_agrees_with_fairlearn",
        &["mlflow", "fairlearn", "onnxruntime", "pandas"],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_dir = d.join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = support::Server::start(&server_dir, 0);
    let url = server.url.as_str();
    let remote = ["--tracking-uri", url];
    std::fs::write(d.join("loans.csv"), loans()).unwrap();
    json(d, &[&["data", "add", "loans.csv"][..], &remote].concat());
    let train = [
        "train",
        "--data",
        "loans",
        "--target",
        "approved",
        "--drop",
        "region",
        "--algo",
        "logistic_regression",
        "--register",
        "loans",
    ];
    json(d, &[&train[..], &remote].concat());
    let fair = [
        "models",
        "fairness",
        "loans",
        "1",
        "--data",
        "loans",
        "--sensitive",
        "region",
    ];
    let evaluation = json(d, &[&fair[..], &remote].concat());
    assert_eq!(evaluation["target"], "approved");
    assert_eq!(evaluation["positive_label"], "1");
    assert_eq!(evaluation["dataset"], "loans@1");
    let out = support::output_within(
        std::process::Command::new(&python).args([
            "-c",
            FAIRLEARN,
            "model",
            url,
            d.join("loans.csv").to_str().unwrap(),
            "models:/loans/1",
        ]),
        std::time::Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_agrees(&evaluation, &want, "loans by region");
    // The groups differ.
    assert!(
        evaluation["demographic_parity_difference"]
            .as_f64()
            .unwrap()
            > 0.2
    );
    let west = evaluation["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "west")
        .unwrap();
    assert_eq!(west["count"], 32);

    // Random cases, edge cases among them, straight from keel's own computation.
    let mut rng = support::Lcg(5);
    let mut next = |n: u64| rng.below(n);
    let mut cases = Vec::new();
    let mut keel_figures = Vec::new();
    for i in 0..300 {
        // fairlearn refuses a single row.
        let rows = 2 + next(59) as usize;
        let groups_n = 1 + next(5);
        let (p_true, p_pred) = (next(11), next(11));
        let truth: Vec<bool> = (0..rows).map(|_| next(10) < p_true).collect();
        let predicted: Vec<bool> = match i % 10 {
            0 => vec![false; rows],
            1 => truth.clone(),
            _ => (0..rows).map(|_| next(10) < p_pred).collect(),
        };
        let groups: Vec<String> = (0..rows).map(|_| format!("g{}", next(groups_n))).collect();
        let r = keel_core::fairness::assess(&truth, &predicted, &groups).unwrap();
        keel_figures.push(serde_json::to_value(&r).unwrap());
        cases.push(serde_json::json!({
            "truth": truth.iter().map(|&b| u8::from(b)).collect::<Vec<_>>(),
            "predicted": predicted.iter().map(|&b| u8::from(b)).collect::<Vec<_>>(),
            "groups": groups,
        }));
    }
    let file = d.join("cases.json");
    std::fs::write(&file, Value::Array(cases).to_string()).unwrap();
    let out = support::output_within(
        std::process::Command::new(&python).args([
            "-c",
            FAIRLEARN,
            "cases",
            file.to_str().unwrap(),
        ]),
        std::time::Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), keel_figures.len());
    for (i, (line, keel)) in lines.iter().zip(&keel_figures).enumerate() {
        let want: Value = serde_json::from_str(line).unwrap();
        assert_agrees(keel, &want, &format!("case {i}"));
    }

    // The card: what a person wrote (one text from a file), the lineage and the figures.
    std::fs::write(
        d.join("limits.md"),
        "Not for <script>alert(1)</script> business loans.",
    )
    .unwrap();
    let card = [
        "models",
        "card",
        "loans",
        "1",
        "--intended-use",
        "Screening personal loan applications.",
        "--limitations",
        "@limits.md",
    ];
    let (ok, markdown, err) = support::keel(d, &[&card[..], &remote].concat());
    assert!(ok, "{err}");
    let data = json(d, &[&["data", "show", "loans"][..], &remote].concat());
    let hash = data["hash"].as_str().unwrap();
    for want in [
        "# Model card: loans version 1",
        "## Intended use\n\nScreening personal loan applications.",
        "Not for <script>alert(1)</script> business loans.",
        hash,
        "| loans@1 |",
        "never validated",
        "| algo | logistic_regression |",
        "### By `region`",
        "| west | 32 |",
    ] {
        assert!(markdown.contains(want), "{want} not in:\n{markdown}");
    }
    let dpd = format!(
        "Demographic parity difference: {:.3}",
        evaluation["demographic_parity_difference"]
            .as_f64()
            .unwrap()
    );
    assert!(markdown.contains(&dpd), "{markdown}");
    assert!(!markdown.contains("Not yet on this card"), "{markdown}");
    let html_args = [
        "models",
        "card",
        "loans",
        "1",
        "--format",
        "html",
        "--out",
        "card.html",
    ];
    json_free(d, &[&html_args[..], &remote].concat());
    let html = std::fs::read_to_string(d.join("card.html")).unwrap();
    assert!(html.contains("Not for &lt;script&gt;alert(1)&lt;/script&gt; business loans."));
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("<svg") && html.contains("aria-label=\"Rates per group of region\""));
    // The server's own page is that card, under a policy that runs nothing.
    let addr = url.trim_start_matches("http://");
    let (status, head, body) = support::http_with_head(
        addr,
        "GET",
        "/api/keel/v1/model-versions/card?name=loans&version=1&format=html",
        b"",
    );
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert_eq!(String::from_utf8(body).unwrap(), html);

    // Bad requests: one line naming what is wrong; nothing stored.
    for (args, says) in [
        (
            vec!["--sensitive", "gender"],
            "--sensitive 'gender': loans@1 has no such column",
        ),
        (
            vec!["--sensitive", "region", "--target", "region"],
            "fairness needs a binary outcome",
        ),
        (
            vec!["--sensitive", "income"],
            "more than 200 distinct values",
        ),
        (
            vec!["--sensitive", "region", "--positive-label", "yes"],
            "positive label 'yes' is not among the outcomes",
        ),
    ] {
        let all = [
            &["models", "fairness", "loans", "1", "--data", "loans"][..],
            &args,
            &remote,
        ]
        .concat();
        let (code, _, err) = keel_status(d, &all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let card = json(
        d,
        &[&["models", "card", "loans", "1"][..], &remote].concat(),
    );
    assert_eq!(card["card"]["fairness"].as_array().unwrap().len(), 1);
}

/// Runs `keel` in `d`, expecting success.
fn json_free(d: &Path, args: &[&str]) {
    let (ok, _, err) = support::keel(d, args);
    assert!(ok, "keel {args:?}: {err}");
}
