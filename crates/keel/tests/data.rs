//! `keel data` end to end on the embedded store: add (files, folders, tabular and not),
//! deduplication, byte-identical restore, status, and bad input that leaves nothing behind.

mod support;

use support::{json, keel, keel_status};

use std::path::Path;

use serde_json::Value;

/// Every object file under the store's content-addressed folder.
fn objects(dir: &Path) -> Vec<std::path::PathBuf> {
    let root = dir.join("keel-data/artifacts/data/objects");
    let mut out = Vec::new();
    if let Ok(subs) = std::fs::read_dir(&root) {
        for sub in subs.flatten() {
            for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
                out.push(f.path());
            }
        }
    }
    out
}

fn csv(rows: usize) -> String {
    let mut s = String::from("id,score,group\n");
    for i in 0..rows {
        s.push_str(&format!("{i},{},{}\n", i as f64 / 10.0, ["x", "y"][i % 2]));
    }
    s
}

#[test]
fn add_show_get_and_deduplicate_a_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("train.csv"), csv(500)).unwrap();

    let added = json(d, &["data", "add", "train.csv"]);
    assert_eq!(added["name"], "train");
    assert_eq!(added["version"], 1);
    assert_eq!(added["created"], true);
    assert_eq!(added["format"], "csv");
    assert_eq!(added["row_count"], 500);
    assert_eq!(added["objects_stored"], 1);
    let hash = added["hash"].as_str().unwrap().to_string();
    assert_eq!(hash, blake3::hash(csv(500).as_bytes()).to_hex().to_string());

    // The same bytes again: no new version, nothing stored.
    let again = json(d, &["data", "add", "train.csv"]);
    assert_eq!(
        (again["created"].clone(), again["version"].clone()),
        (false.into(), 1.into())
    );
    // The same bytes under another name: a version of its own, but no second copy.
    std::fs::copy(d.join("train.csv"), d.join("copy.csv")).unwrap();
    let copy = json(d, &["data", "add", "copy.csv", "--name", "mirror"]);
    assert_eq!(copy["created"], true);
    assert_eq!(copy["objects_stored"], 0);
    assert_eq!(copy["files_deduplicated"], 1);
    assert_eq!(objects(d).len(), 1);

    // A changed file is version 2.
    std::fs::write(d.join("train.csv"), csv(600)).unwrap();
    let v2 = json(d, &["data", "add", "train.csv"]);
    assert_eq!(
        (v2["version"].clone(), v2["row_count"].clone()),
        (2.into(), 600.into())
    );

    let shown = json(d, &["data", "show", "train@1"]);
    assert_eq!(shown["hash"], hash.as_str());
    assert_eq!(shown["created_by"], "tester");
    assert_eq!(shown["schema"]["columns"][1]["type"], "float");
    assert_eq!(shown["profile"]["format"], "keel.profile/v1");
    assert_eq!(shown["profile"]["columns"][2]["kind"], "categorical");
    let (ok, table, _) = keel(d, &["data", "show", "train"]);
    assert!(
        ok && table.contains("train@2") && table.contains("categorical"),
        "{table}"
    );

    let listed = json(d, &["data", "ls"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mirror", "train"]);
    assert_eq!(
        json(d, &["data", "ls", "train"]).as_array().unwrap().len(),
        2
    );

    // diff: version 2 has 100 more rows, the same columns; ids and scores moved, groups did
    // not: two of three columns, so the dataset drifted and the status is 1, as validate's.
    let (code, out, err) = keel_status(d, &["data", "diff", "train@1", "train@2", "--json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("2 of 3 shared columns drifted"), "{err}");
    let change: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(change["dataset_drifted"], true);
    assert_eq!(change["rows"], serde_json::json!([500, 600]));
    assert_eq!(change["schema"], serde_json::json!([]));
    assert_eq!(change["columns"][0]["drift"]["test"], "ks");
    // Two groups: Evidently's two-proportion Z-test.
    assert_eq!(change["columns"][2]["drift"]["test"], "z");
    assert_eq!(change["columns"][2]["drift"]["drifted"], false);
    // Either side may be a local file; the table names each statistic.
    std::fs::write(d.join("same.csv"), csv(500)).unwrap();
    let (code, table, err) = keel_status(d, &["data", "diff", "train@1", "same.csv"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("0 of 3 shared columns drifted") && table.contains("p-value"),
        "{table}"
    );
    let (code, _, err) = keel_status(
        d,
        &[
            "data",
            "diff",
            "same.csv",
            "train@2",
            "--drift-share",
            "0.9",
        ],
    );
    assert_eq!(code, 0, "two of three is below a 0.9 share: {err}");

    // get restores version 1 byte for byte, whatever the file holds now.
    json(d, &["data", "get", "train@1", "--to", "restored.csv"]);
    assert_eq!(
        std::fs::read(d.join("restored.csv")).unwrap(),
        csv(500).as_bytes()
    );
}

#[test]
fn folders_version_per_file_and_restore_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("images");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    for i in 0..20u8 {
        std::fs::write(
            data.join(format!("f{i:02}.bin")),
            vec![i; 1000 + i as usize],
        )
        .unwrap();
    }
    std::fs::write(data.join("sub/dup.bin"), vec![3u8; 1003]).unwrap(); // same bytes as f03
    let added = json(d, &["data", "add", "images"]);
    assert_eq!(added["kind"], "folder");
    assert_eq!(added["format"], "binary");
    assert_eq!(added["file_count"], 21);
    assert_eq!(added["objects_stored"], 20);
    assert_eq!(added["files_deduplicated"], 1);

    let (ok, out, _) = keel(d, &["data", "status"]);
    assert!(
        ok && out.contains("unchanged") && out.contains("images"),
        "{out}"
    );

    // Touching a file (new mtime, same bytes) is not a change; new bytes are.
    let f = data.join("f05.bin");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes).unwrap();
    let st = json(d, &["data", "status"]);
    assert_eq!(st[0]["state"], "unchanged", "{st}");
    std::fs::write(data.join("f07.bin"), b"changed").unwrap();
    std::fs::remove_file(data.join("f09.bin")).unwrap();
    let st = json(d, &["data", "status"]);
    assert_eq!(st[0]["state"], "modified");
    assert_eq!(
        st[0]["changes"],
        serde_json::json!(["~ f07.bin", "- f09.bin"])
    );

    json(d, &["data", "get", "images@1", "--to", "back"]);
    for i in 0..20u8 {
        let got = std::fs::read(d.join(format!("back/f{i:02}.bin"))).unwrap();
        assert_eq!(got, vec![i; 1000 + i as usize]);
    }
    assert_eq!(
        std::fs::read(d.join("back/sub/dup.bin")).unwrap(),
        vec![3u8; 1003]
    );
}

#[test]
fn bad_input_is_one_line_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("ragged.csv"), "a,b\n1,2\n3\n").unwrap();
    let (ok, _, err) = keel(d, &["data", "add", "ragged.csv"]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("ragged.csv, line 3: 1 fields where the header has 2"),
        "{err}"
    );
    assert!(objects(d).is_empty(), "nothing stored");
    assert_eq!(json(d, &["data", "ls"]), serde_json::json!([]));

    let (ok, _, err) = keel(d, &["data", "add", "missing.csv"]);
    assert!(
        !ok && err.contains("missing.csv") && err.contains("No such file"),
        "{err}"
    );
    let (ok, _, err) = keel(d, &["data", "add", "ragged.csv", "--name", "bad/name"]);
    assert!(
        !ok && err.contains("Invalid dataset name 'bad/name'"),
        "{err}"
    );
    let (ok, _, err) = keel(d, &["data", "show", "nothing@2"]);
    assert!(
        !ok && err.contains("Dataset 'nothing' has no version 2"),
        "{err}"
    );
    let (ok, _, err) = keel(d, &["data", "get", "x@zero", "--to", "y"]);
    assert!(!ok && err.contains("must be a number"), "{err}");
}

#[test]
fn a_damaged_object_is_refused_by_get_and_stored_again_by_add() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.csv"), csv(200)).unwrap();
    json(d, &["data", "add", "a.csv", "--no-sync"]);
    // What a crash soon after an unsynced add can leave: the object cut short.
    let object = objects(d).pop().unwrap();
    let bytes = std::fs::read(&object).unwrap();
    std::fs::write(&object, &bytes[..bytes.len() / 2]).unwrap();

    let (ok, _, err) = keel(d, &["data", "get", "a@1", "--to", "back.csv"]);
    assert!(!ok && err.contains("is damaged"), "{err}");
    assert!(!d.join("back.csv").exists(), "nothing half-restored");

    // Adding the same bytes again (under any name) stores them again.
    std::fs::copy(d.join("a.csv"), d.join("b.csv")).unwrap();
    let again = json(d, &["data", "add", "b.csv"]);
    assert_eq!(again["objects_stored"], 1);
    json(d, &["data", "get", "a@1", "--to", "back.csv"]);
    assert_eq!(
        std::fs::read(d.join("back.csv")).unwrap(),
        csv(200).as_bytes()
    );
}

/// 300 rows of people: id (unique), age 20..=79, city of three, email.
fn people(bad: bool) -> String {
    let mut s = String::from("id,age,city,email\n");
    for i in 1..=300usize {
        let age = if bad && i == 42 { 140 } else { 20 + i % 60 };
        let city = if bad && i == 7 {
            "Atlantis"
        } else {
            ["Paris", "Lyon", "Nice"][i % 3]
        };
        s.push_str(&format!("{i},{age},{city},u{i}@example.com\n"));
    }
    s
}

#[test]
fn validate_gates_on_rules_and_on_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("people.csv"), people(false)).unwrap();
    json(d, &["data", "add", "people.csv"]);
    std::fs::write(d.join("people.csv"), people(true)).unwrap();
    json(d, &["data", "add", "people.csv"]);

    // Rules inferred from version 1 hold for version 1 and fail version 2.
    let (code, _, err) = keel_status(
        d,
        &["data", "rules", "infer", "people@1", "--out", "rules.yaml"],
    );
    assert_eq!(code, 0, "{err}");
    let yaml = std::fs::read_to_string(d.join("rules.yaml")).unwrap();
    assert!(
        yaml.starts_with("# Rules keel inferred from people@1 (300 rows)"),
        "{yaml}"
    );
    for rule in [
        "rule: schema",
        "rule: unique\n  column: id",
        "rule: allowed_values",
        "rule: range",
    ] {
        assert!(yaml.contains(rule), "{rule} missing from\n{yaml}");
    }
    let (code, out, err) = keel_status(
        d,
        &["data", "validate", "people@1", "--rules", "rules.yaml"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("people@1: 300 rows"), "{out}");

    let (code, out, err) = keel_status(
        d,
        &["data", "validate", "people@2", "--rules", "rules.yaml"],
    );
    assert_eq!(code, 1, "failing rules exit 1: {out}{err}");
    assert!(err.contains("people@2: 2 of"), "{err}");
    assert!(
        out.contains("FAIL") && out.contains("people.csv row 42: 140"),
        "{out}"
    );
    assert!(out.contains("people.csv row 7: Atlantis"), "{out}");
    // Failures come first; no cell is wider than a folded line; --only-failures hides passes.
    let first_rule_row = out
        .lines()
        .find(|l| l.contains("pass") || l.contains("FAIL"))
        .unwrap_or_default();
    assert!(first_rule_row.contains("FAIL"), "{out}");
    let widest = out.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(widest <= 200, "a line of {widest} characters:\n{out}");
    let (code, only, _) = keel_status(
        d,
        &[
            "data",
            "validate",
            "people@2",
            "--rules",
            "rules.yaml",
            "--only-failures",
        ],
    );
    assert_eq!(code, 1);
    assert!(only.contains("FAIL") && !only.contains(" pass "), "{only}");

    // --against infers the same rules on the fly; --json is the report.
    let (code, out, _) = keel_status(
        d,
        &[
            "data",
            "validate",
            "people@2",
            "--against",
            "people@1",
            "--json",
        ],
    );
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["failed"], 2);
    let range = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "range" && r["column"] == "age")
        .unwrap();
    assert_eq!(range["passed"], false);
    assert_eq!(range["failing_rows"], 1);
    assert_eq!(range["samples"][0]["row"], 42);

    // A local file is checked before it is added.
    std::fs::write(d.join("next.csv"), people(false)).unwrap();
    let (code, _, err) = keel_status(
        d,
        &["data", "validate", "next.csv", "--rules", "rules.yaml"],
    );
    assert_eq!(code, 0, "{err}");

    // A wrong rules file is an error (exit 2) on one line naming the rule.
    std::fs::write(d.join("broken.yaml"), "format: keel.rules/v1\nrules:\n  - rule: range\n    column: age\n    min: 10\n    max: 1\n").unwrap();
    let (code, _, err) = keel_status(
        d,
        &["data", "validate", "people@1", "--rules", "broken.yaml"],
    );
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("rule 1 (range age): min 10 is above max 1"),
        "{err}"
    );
    let (code, _, err) = keel_status(d, &["data", "validate", "people@1"]);
    assert_eq!(code, 2, "no rules given: {err}");
}

#[test]
fn show_writes_an_html_report_with_a_chart_per_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("people.csv"), people(false)).unwrap();
    json(d, &["data", "add", "people.csv"]);
    let (ok, _, err) = keel(d, &["data", "show", "people", "--html", "report.html"]);
    assert!(ok, "{err}");
    let page = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..100]);
    assert!(page.contains("<h1>people@1</h1>"));
    // id, age: histograms; city: every value; email: most frequent values.
    assert_eq!(page.matches("<svg").count(), 4, "one chart per column");
    assert!(page.contains("every value") && !page.contains("Atlantis"));
    assert!(page.contains(">\nParis\n</text>"), "category labels drawn");
}

#[tokio::test]
async fn the_same_commands_work_against_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = support::Server::start(&server_dir, 0);
    let url = server.url.clone();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("parts")).unwrap();
    let w = work.as_path();
    std::fs::write(w.join("parts/a.csv"), csv(50)).unwrap();
    std::fs::write(w.join("parts/b.csv"), csv(70)).unwrap();

    let added = json(w, &["data", "add", "parts", "--tracking-uri", &url]);
    assert_eq!(added["format"], "csv");
    assert_eq!(added["row_count"], 120);
    assert_eq!(added["objects_stored"], 2);
    // Nothing was stored locally: the objects are in the server's artifact store.
    assert!(!w.join("keel-data").exists());
    let stored = server_dir.join("artifacts/data/objects");
    assert!(stored.is_dir());
    let again = json(w, &["data", "add", "parts", "--tracking-uri", &url]);
    assert_eq!(again["created"], false);

    let shown = json(w, &["data", "show", "parts@1", "--tracking-uri", &url]);
    assert_eq!(shown["file_count"], 2);
    json(
        w,
        &[
            "data",
            "get",
            "parts",
            "--to",
            "copy",
            "--tracking-uri",
            &url,
        ],
    );
    assert_eq!(
        std::fs::read(w.join("copy/b.csv")).unwrap(),
        csv(70).as_bytes()
    );
    // Validation reads the rows through the server too; a folder names the file of a failing row.
    let report = json(
        w,
        &[
            "data",
            "validate",
            "parts@1",
            "--against",
            "parts@1",
            "--tracking-uri",
            &url,
        ],
    );
    assert_eq!(report["passed"], true, "{report}");
    std::fs::write(
        w.join("rules.yaml"),
        "format: keel.rules/v1\nrules:\n  - rule: range\n    column: id\n    max: 60\n",
    )
    .unwrap();
    let (code, out, _) = keel_status(
        w,
        &[
            "data",
            "validate",
            "parts",
            "--rules",
            "rules.yaml",
            "--json",
            "--tracking-uri",
            &url,
        ],
    );
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["results"][0]["failing_rows"], 9);
    assert_eq!(report["results"][0]["samples"][0]["file"], "b.csv");
    // Reports on the stored version are recorded with it, newest first (a local folder's,
    // as the one above, are not).
    let (code, _, _) = keel_status(
        w,
        &[
            "data",
            "validate",
            "parts@1",
            "--rules",
            "rules.yaml",
            "--tracking-uri",
            &url,
        ],
    );
    assert_eq!(code, 1);
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!(
            "{url}/api/keel/v1/datasets/parts/versions/1/validations"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let v = &listed["validations"];
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(
        (&v[0]["passed"], &v[0]["rules"], &v[0]["failed"]),
        (&Value::Bool(false), &Value::from(1), &Value::from(1)),
        "{listed}"
    );
    assert_eq!(v[0]["report"]["results"][0]["failing_rows"], 9);
    assert_eq!(v[1]["passed"], true, "{listed}");
    assert!(v[0]["time"].as_i64().unwrap() >= v[1]["time"].as_i64().unwrap());
    // Reports whose figures disagree, of versions that do not exist, or of `latest`, are refused.
    let post = |path: &str, body: Value| {
        let req = http
            .post(format!("{url}/api/keel/v1/datasets/{path}/validations"))
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let lying = serde_json::json!({"report": {"passed": true, "failed": 1, "results": [{}]}});
    let (status, body) = post("parts/versions/1", lying).await;
    assert_eq!(
        (status, &body["error_code"]),
        (400, &Value::from("INVALID_PARAMETER_VALUE")),
        "{body}"
    );
    let fine = serde_json::json!({"report": {"passed": true, "failed": 0, "results": []}});
    assert_eq!(post("parts/versions/7", fine.clone()).await.0, 404);
    assert_eq!(post("parts/versions/latest", fine.clone()).await.0, 400);
    assert_eq!(
        post("parts/versions/1", serde_json::json!({"report": {}}))
            .await
            .0,
        400
    );
    assert_eq!(post("parts/versions/1", fine).await.0, 200);
    assert_eq!(report["results"][0]["samples"][0]["row"], 62);

    // The server refuses bytes that do not match the hash they are stored under, and
    // versions whose objects it does not hold.
    let http = reqwest::Client::new();
    let fake = "0".repeat(64);
    let resp = http
        .put(format!("{url}/api/keel/v1/data-objects/{fake}"))
        .body("not these bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    let resp = http
        .post(format!("{url}/api/keel/v1/datasets/ghost/versions"))
        .json(
            &serde_json::json!({"hash": fake, "kind": "file", "format": "csv",
            "size_bytes": 1, "file_count": 1, "source": "x"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("is not stored"),
        "{body}"
    );
    let resp = http
        .get(format!("{url}/api/keel/v1/datasets/parts/versions/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Lineage: a run that logs the version as an input (digest = content hash) is found from
    // the data, and the run shows which version it used.
    let api = |endpoint: &str, body: Value| {
        let http = http.clone();
        let url = format!("{url}/api/2.0/mlflow/{endpoint}");
        async move {
            let r = http.post(&url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{url}: {}", r.status());
            r.json::<Value>().await.unwrap()
        }
    };
    let run = api("runs/create", serde_json::json!({"experiment_id": "0"})).await;
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    // MLflow limits digests to 36 characters: a version's digest is its hash's first 32.
    let digest = &added["hash"].as_str().unwrap()[..32];
    api(
        "runs/log-inputs",
        serde_json::json!({"run_id": run_id, "datasets": [{
            "tags": [{"key": "mlflow.data.context", "value": "training"}],
            "dataset": {"name": "parts", "digest": digest, "source_type": "keel",
                        "source": "keel://parts@1"}}]}),
    )
    .await;
    let shown = json(w, &["data", "show", "parts@1", "--tracking-uri", &url]);
    assert_eq!(shown["used_by"][0]["run_id"], run_id.as_str());
    assert_eq!(shown["used_by"][0]["context"], "training");
    let r = json(w, &["runs", "show", &run_id, "--tracking-uri", &url]);
    assert_eq!(
        r["inputs"]["dataset_inputs"][0]["data_versions"],
        serde_json::json!(["parts@1"])
    );
}

/// keel's per-column drift decisions, test by test, against Evidently 0.7's on data sets its
/// script generates: every test Evidently picks (K-S, the Z-test, chi-squared, normalised
/// Wasserstein, Jensen-Shannon), columns that move clearly, slightly or not at all, numbers
/// with few values, and a category only the current side holds. The same test, the same
/// score (to 1e-6), the same decision, and the same share of drifted columns.
#[test]
fn drift_decisions_agree_with_evidently() {
    let Some(python) = keel_testenv::evidently_python("drift_decisions_agree_with_evidently")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = support::workspace().join("tests/compat/evidently_drift.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(d)
        .output()
        .expect("run the Evidently script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evidently: Value = serde_json::from_slice(&out.stdout).unwrap();
    let method = |m: &str| match m {
        "K-S p_value" => "ks",
        "Z-test p_value" => "z",
        "chi-square p_value" => "chi2",
        "Wasserstein distance (normed)" => "wasserstein",
        "Jensen-Shannon distance" => "jensen_shannon",
        other => panic!("a test keel does not know: {other}"),
    };
    let mut tests_seen = std::collections::BTreeSet::new();
    for (case, expected) in evidently.as_object().unwrap() {
        let (a, b) = (format!("{case}_ref.csv"), format!("{case}_cur.csv"));
        let (_, out, err) = keel_status(d, &["data", "diff", &a, &b, "--json"]);
        let keel: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{err}"));
        let columns = keel["columns"].as_array().unwrap();
        assert_eq!(
            columns.len(),
            expected["columns"].as_object().unwrap().len(),
            "{case}"
        );
        for c in columns {
            let name = c["column"].as_str().unwrap();
            let ours = &c["drift"];
            let theirs = &expected["columns"][name];
            let test = method(theirs["method"].as_str().unwrap());
            tests_seen.insert(test);
            assert_eq!(ours["test"], test, "{case}/{name}: {ours} vs {theirs}");
            let (s, t) = (
                ours["score"].as_f64().unwrap(),
                theirs["score"].as_f64().unwrap(),
            );
            assert!(
                (s - t).abs() <= 1e-6 + 1e-6 * t.abs(),
                "{case}/{name}: score {s} vs Evidently's {t}"
            );
            let threshold = theirs["threshold"].as_f64().unwrap();
            let drifted = match test {
                "ks" => t <= threshold,
                "z" | "chi2" => t < threshold,
                _ => t >= threshold,
            };
            assert_eq!(
                ours["drifted"], drifted,
                "{case}/{name}: {ours} vs {theirs}"
            );
        }
        assert_eq!(keel["share"], expected["share"], "{case}");
    }
    assert_eq!(tests_seen.len(), 5, "{tests_seen:?}");
}
