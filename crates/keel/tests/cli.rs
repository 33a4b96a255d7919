//! The `keel` read commands against a real server: tables for people, JSON for scripts, and a
//! one-line error naming what is wrong.

mod support;

use std::process::Command;

use serde_json::{Value, json};

fn keel(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("MLFLOW_TRACKING_URI", url)
        .output()
        .expect("run keel");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn post(http: &reqwest::Client, url: &str, endpoint: &str, body: Value) -> Value {
    let resp = http
        .post(format!("{url}/api/2.0/mlflow/{endpoint}"))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success(), "{endpoint}: {}", resp.status());
    resp.json().await.expect("json")
}

#[tokio::test]
async fn read_commands_print_tables_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::Server::start(dir.path(), 0);
    let url = server.url.as_str();
    let http = reqwest::Client::new();
    let exp = post(
        &http,
        url,
        "experiments/create",
        json!({ "name": "cli-exp" }),
    )
    .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for (i, acc) in [0.7, 0.9].iter().enumerate() {
        let run = post(&http, url, "runs/create", json!({ "experiment_id": exp, "run_name": format!("cli-run-{i}"), "start_time": 1_700_000_000_000i64 + i as i64 })).await;
        let id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
        post(&http, url, "runs/log-batch", json!({ "run_id": id, "metrics": [{ "key": "acc", "value": acc, "timestamp": 1, "step": 3 }], "params": [{ "key": "lr", "value": "0.1" }] })).await;
        ids.push(id);
    }
    post(
        &http,
        url,
        "registered-models/create",
        json!({ "name": "cli-model", "description": "for the CLI" }),
    )
    .await;
    post(&http, url, "model-versions/create", json!({ "name": "cli-model", "source": format!("runs:/{}/model", ids[1]), "run_id": ids[1] })).await;
    post(
        &http,
        url,
        "registered-models/alias",
        json!({ "name": "cli-model", "alias": "champion", "version": "1" }),
    )
    .await;

    let (ok, out, err) = keel(url, &["experiments", "ls"]);
    assert!(ok, "{err}");
    assert!(out.contains("cli-exp") && out.contains("Default"), "{out}");

    let (ok, out, err) = keel(
        url,
        &[
            "runs",
            "ls",
            "--experiment",
            "cli-exp",
            "--filter",
            "metrics.acc > 0.8",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("cli-run-1") && !out.contains("cli-run-0"),
        "{out}"
    );
    assert!(out.contains("acc=0.9000"), "{out}");

    let (ok, out, err) = keel(
        url,
        &["runs", "ls", "--json", "--order-by", "metrics.acc ASC"],
    );
    assert!(ok, "{err}");
    let runs: Value = serde_json::from_str(&out).expect("runs ls --json prints JSON");
    let names: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["info"]["run_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cli-run-0", "cli-run-1"]);

    let (ok, out, _) = keel(url, &["runs", "show", &ids[0]]);
    assert!(ok);
    assert!(
        out.contains("cli-run-0") && out.contains("lr") && out.contains("0.7000"),
        "{out}"
    );
    let (ok, out, _) = keel(url, &["runs", "show", &ids[0], "--json"]);
    assert!(ok);
    let run: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(run["data"]["params"][0]["value"], "0.1");

    let (ok, out, _) = keel(url, &["models", "ls"]);
    assert!(ok);
    assert!(
        out.contains("cli-model") && out.contains("champion"),
        "{out}"
    );
    let (ok, out, _) = keel(url, &["models", "show", "cli-model", "--json"]);
    assert!(ok);
    let m: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["model_versions"][0]["aliases"][0], "champion");
    assert_eq!(m["registered_model"]["description"], "for the CLI");

    // Errors: one line, naming the problem.
    let (ok, _, err) = keel(url, &["runs", "ls", "--filter", "metrics.acc >>> 1"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("'>>>'") && err.contains("INVALID_PARAMETER_VALUE"),
        "{err}"
    );
    let (ok, _, err) = keel(url, &["runs", "show", "0123456789abcdef0123456789abcdef"]);
    assert!(!ok);
    assert!(err.contains("RESOURCE_DOES_NOT_EXIST"), "{err}");
    let (ok, _, err) = keel("http://127.0.0.1:9", &["experiments", "ls"]);
    assert!(!ok);
    assert!(
        err.starts_with("error: cannot reach http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn server_settings_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[server]\nprot = 5000\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["server", "--config"])
        .arg(dir.path().join("bad.toml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad.toml") && err.contains("prot"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["server", "--db", "mysql://x/y"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mysql://x/y"), "{err}");
}

#[test]
fn keel_db_reads_the_database_from_the_settings_file_as_keel_server_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let elsewhere = d.join("elsewhere.db");
    std::fs::write(
        d.join("keel.toml"),
        format!("[server]\ndb = \"sqlite://{}\"\n", elsewhere.display()),
    )
    .unwrap();
    let (code, out, err) = support::keel_status(d, &["db", "migrate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("elsewhere.db"), "{out}");
    assert!(elsewhere.exists());
    assert!(!d.join("keel-data").exists());
    // A flag still wins over the file.
    let flagged = d.join("flag.db");
    let (code, out, err) = support::keel_status(
        d,
        &[
            "db",
            "status",
            "--db",
            &format!("sqlite://{}", flagged.display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("no database yet") && out.contains("flag.db"),
        "{out}"
    );
}

#[test]
fn the_store_table_of_the_settings_file_points_every_store_command_at_its_stores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("shop.csv"), support::shop()).unwrap();
    let team = d.join("team.db");
    let objects = d.join("team-artifacts");
    std::fs::write(
        d.join("keel.toml"),
        format!(
            "[store]\ndb = \"sqlite://{}\"\nartifacts = \"{}\"\n",
            team.display(),
            objects.display()
        ),
    )
    .unwrap();
    let (code, _, err) = support::keel_status(d, &["data", "add", "shop.csv", "--name", "shop"]);
    assert_eq!(code, 0, "{err}");
    assert!(team.exists() && objects.exists());
    assert!(!d.join("keel-data").exists());
    let (code, out, err) = support::keel_status(d, &["db", "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("team.db"), "{out}");
    let (code, out, err) = support::keel_status(d, &["data", "ls"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("shop"), "{out}");

    // `tracking_uri` sends the same commands to a server instead.
    let served = tempfile::tempdir().unwrap();
    let server = support::Server::start(served.path(), 0);
    std::fs::write(
        d.join("keel.toml"),
        format!("[store]\ntracking_uri = \"{}\"\n", server.url),
    )
    .unwrap();
    let (code, _, err) = support::keel_status(d, &["data", "add", "shop.csv", "--name", "sent"]);
    assert_eq!(code, 0, "{err}");
    let addr = server.url.trim_start_matches("http://");
    let (status, body) = support::http(addr, "GET", "/api/keel/v1/datasets/sent/versions", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _) = support::http(addr, "GET", "/api/keel/v1/datasets/shop/versions", b"");
    assert_eq!(status, 404);
    let names: Vec<Value> = support::json(d, &["data", "ls"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("sent")]);
}

/// Runs `keel` in `dir` with `stdin` as its standard input, without the environment's auth
/// settings.
fn keel_in(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .current_dir(dir)
        .env_remove("KEEL_CONFIG")
        .env_remove("KEEL_AUTH")
        .env_remove("KEEL_ADMIN_USERNAME")
        .env_remove("KEEL_ADMIN_PASSWORD")
        .env("KEEL_USER", "tester")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run keel");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `POST` to the MLflow API at `url` as `user` (password `<user>-secret`), expecting success.
async fn post_as(url: &str, user: &str, endpoint: &str, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/2.0/mlflow/{endpoint}"))
        .basic_auth(user, Some(format!("{user}-secret")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{endpoint}: {}", r.status());
}

#[tokio::test]
async fn the_server_is_open_only_on_loopback_and_never_without_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Reachable from elsewhere without --auth: refused, in one line naming the way out.
    let (ok, _, err) = keel_in(d, &["server", "--host", "0.0.0.0", "--port", "0"], "");
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("0.0.0.0") && err.contains("--auth") && err.contains("--insecure"));
    // Auth on and nobody to sign in as: refused (there is no default password), from the
    // settings file's [auth] table as from the flag.
    std::fs::write(d.join("keel.toml"), "[auth]\nenabled = true\n").unwrap();
    let (ok, _, err) = keel_in(d, &["server", "--port", "0"], "");
    assert!(!ok);
    assert!(
        err.contains("KEEL_ADMIN_USERNAME") && err.contains("keel users create"),
        "{err}"
    );
    std::fs::remove_file(d.join("keel.toml")).unwrap();
    let (ok, _, err) = keel_in(
        d,
        &[
            "server",
            "--auth",
            "--default-permission",
            "WRITE",
            "--port",
            "0",
        ],
        "",
    );
    assert!(
        !ok && err.contains("--default-permission") && err.contains("'WRITE'"),
        "{err}"
    );
    // The operator makes the first admin and a read-only token in the database.
    let (ok, out, err) = keel_in(d, &["users", "create", "ann", "--admin"], "ann-secret\n");
    assert!(ok, "{err}");
    assert!(out.contains("created admin user 'ann'"), "{out}");
    let (ok, _, err) = keel_in(d, &["users", "create", "ann"], "other\n");
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, out, _) = keel_in(d, &["users", "list"], "");
    assert!(ok && out.contains("ann\tadmin"), "{out}");
    let (ok, token, err) = keel_in(
        d,
        &[
            "tokens",
            "create",
            "--user",
            "ann",
            "--name",
            "ci",
            "--read-only",
        ],
        "",
    );
    assert!(ok, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("keel_"), "{token}");
    let id = token.split('_').nth(1).unwrap().to_string();

    // Now it may listen on every address.
    let mut server = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["server", "--auth", "--host", "0.0.0.0", "--port", "0"])
        .current_dir(d)
        .env_remove("KEEL_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let _server = support::Killed(server);
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut banner).unwrap();
    let port = banner.trim().rsplit(':').next().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}");
    support::wait_ready(&format!("127.0.0.1:{port}"), "/health", "keel server");
    let http = reqwest::Client::new();
    let search = format!("{url}/api/2.0/mlflow/experiments/search");
    let create = format!("{url}/api/2.0/mlflow/experiments/create");
    let r = http.get(&search).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(&search)
        .basic_auth("ann", Some("ann-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(&search).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&create)
        .bearer_auth(&token)
        .json(&json!({"name": "from-a-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a read-only token creates");
    let (ok, _, err) = keel_in(d, &["tokens", "revoke", &id], "");
    assert!(ok, "{err}");
    // Made in the database, not through this server: seen within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = http.get(&search).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 401, "a revoked token");
    let (ok, out, _) = keel_in(d, &["tokens", "list", "--user", "ann"], "");
    assert!(ok && out.contains(&id) && out.contains("revoked"), "{out}");
}

#[tokio::test]
async fn the_audit_log_names_every_writer_replays_aliases_and_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = format!("sqlite://{}", d.join("keel.db").display());
    let artifacts = d.join("artifacts").display().to_string();
    let (ok, _, err) = keel_in(
        d,
        &["users", "create", "ann", "--admin", "--db", &db],
        "ann-secret\n",
    );
    assert!(ok, "{err}");
    // Not audited yet: nothing to verify.
    let (code, _, err) = support::keel_status(d, &["audit", "verify", "--db", &db]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not enabled"), "{err}");
    let server = support::Server::launch_with_args(d, &db, &artifacts, &["--auth", "--audit"], &[]);
    let url = server.url.clone();
    post_as(
        &url,
        "ann",
        "registered-models/create",
        json!({"name": "churn"}),
    )
    .await;
    for _ in 0..2 {
        post_as(
            &url,
            "ann",
            "model-versions/create",
            json!({"name": "churn", "source": "s3://bucket/churn"}),
        )
        .await;
    }
    post_as(
        &url,
        "ann",
        "registered-models/alias",
        json!({"name": "churn", "alias": "champion", "version": "1"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let t1 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    post_as(
        &url,
        "ann",
        "registered-models/alias",
        json!({"name": "churn", "alias": "champion", "version": "2"}),
    )
    .await;
    server.kill9();
    // A write straight to the database is the command's, named by its user and host.
    let (ok, _, err) = keel_in(d, &["users", "create", "bob", "--db", &db], "bob-secret\n");
    assert!(ok, "{err}");

    let (ok, out, err) = support::keel(d, &["audit", "ls", "--json", "--db", &db]);
    assert!(ok, "{err}");
    let entries: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    // The server's start (which enabled the log), ann's five requests (creating the model
    // also gave her MANAGE on it: a second entry of that request), the command's user.
    assert_eq!(actions.len(), 8, "{actions:?}");
    assert!(actions[0].1.starts_with("keel server"), "{actions:?}");
    let create = ("ann", "POST /api/2.0/mlflow/registered-models/create");
    assert_eq!(&actions[1..3], &[create, create]);
    assert_eq!(entries[2]["subject"]["kind"], "grant");
    assert_eq!(entries[2]["after"]["permission"], "MANAGE");
    assert_eq!(
        actions[6],
        ("ann", "POST /api/2.0/mlflow/registered-models/alias")
    );
    assert_eq!(actions[7].0, "tester", "{actions:?}");
    assert!(
        actions[7].1.starts_with("keel users create bob"),
        "{actions:?}"
    );
    assert!(entries[7]["source"].as_str().unwrap().starts_with("cli@"));
    assert_eq!(entries[6]["before"]["aliases"][0]["version"], "1");
    assert_eq!(entries[6]["after"]["aliases"][0]["version"], "2");
    assert_eq!(entries[6]["request"]["version"], "2");
    // Filters, and the table for people.
    let (ok, out, _) = support::keel(
        d,
        &[
            "audit",
            "ls",
            "--actor",
            "ann",
            "--subject",
            "registered_model:churn",
            "--db",
            &db,
        ],
    );
    assert!(ok);
    assert_eq!(out.matches("registered_model:churn").count(), 3, "{out}");
    // Where champion pointed, replayed.
    let (ok, out, err) = support::keel(
        d,
        &[
            "audit", "alias", "churn", "champion", "--at", &t1, "--db", &db,
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("pointed to version 1") && out.contains("by ann"),
        "{out}"
    );
    let (ok, out, _) = support::keel(d, &["audit", "alias", "churn", "champion", "--db", &db]);
    assert!(ok && out.contains("pointed to version 2"), "{out}");
    let (ok, _, err) = support::keel(
        d,
        &[
            "audit",
            "alias",
            "churn",
            "champion",
            "--at",
            "2020-01-01",
            "--db",
            &db,
        ],
    );
    assert!(!ok && err.contains("starts at"), "{err}");
    // Intact, and the head to keep elsewhere.
    let (code, out, err) = support::keel_status(d, &["audit", "verify", "--db", &db]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("intact: 8 entries"), "{out}");
    let head = out
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap()
        .to_string();
    let (code, _, _) =
        support::keel_status(d, &["audit", "verify", "--expect", &head, "--db", &db]);
    assert_eq!(code, 0);
    // A rewritten entry is found, and verify says so with status 1.
    let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 7")
        .execute(&mut raw)
        .await
        .unwrap();
    let (code, out, _) = support::keel_status(d, &["audit", "verify", "--db", &db]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN") && out.contains("entry 7 was changed"),
        "{out}"
    );
    let (code, _, err) =
        support::keel_status(d, &["audit", "verify", "--expect", "x", "--db", &db]);
    assert_eq!(code, 2);
    assert!(err.contains("--expect 'x'"), "{err}");
}

/// Runs `keel ARGS` against the server at `url` signed in as `user` (password
/// `<user>-secret`): whether it succeeded, stdout, stderr.
fn keel_as(url: &str, user: &str, args: &[&str]) -> (bool, String, String) {
    let password = format!("{user}-secret");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .args(["--tracking-uri", url])
        .env("MLFLOW_TRACKING_USERNAME", user)
        .env("MLFLOW_TRACKING_PASSWORD", &password)
        .env_remove("KEEL_CONFIG")
        .output()
        .expect("run keel");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Protected aliases from the command line on `keel server --auth`: ann protects `champion`
/// with the model-card gate and asks to move it; she cannot approve her own request, bob's
/// approval is refused in one line while the card is missing and moves the alias once it is
/// written; a second request is rejected; direct moves are refused throughout.
#[tokio::test]
async fn protected_aliases_move_by_requests_another_user_approves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = format!("sqlite://{}", d.join("keel.db").display());
    let artifacts = d.join("artifacts").display().to_string();
    for (user, admin) in [("ann", true), ("bob", false)] {
        let mut args = vec!["users", "create", user, "--db", &db];
        if admin {
            args.push("--admin");
        }
        let (ok, _, err) = keel_in(d, &args, &format!("{user}-secret\n"));
        assert!(ok, "{err}");
    }
    let server = support::Server::launch_with_args(d, &db, &artifacts, &["--auth"], &[]);
    let url = server.url.as_str();
    post_as(
        url,
        "ann",
        "registered-models/create",
        json!({"name": "churn"}),
    )
    .await;
    for _ in 0..3 {
        post_as(
            url,
            "ann",
            "model-versions/create",
            json!({"name": "churn", "source": "s3://bucket/churn"}),
        )
        .await;
    }
    post_as(
        url,
        "ann",
        "registered-models/permissions/create",
        json!({"name": "churn", "username": "bob", "permission": "MANAGE"}),
    )
    .await;
    let ann = |args: &[&str]| keel_as(url, "ann", args);
    let bob = |args: &[&str]| keel_as(url, "bob", args);
    let (ok, _, err) = ann(&["models", "alias", "set", "churn", "champion", "1"]);
    assert!(ok, "{err}");
    let (ok, out, err) = ann(&["models", "protect", "churn", "champion", "--model-card"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("churn@champion is protected") && out.contains("model card"),
        "{out}"
    );
    let (ok, _, err) = ann(&["models", "alias", "set", "churn", "champion", "2"]);
    assert!(!ok && err.contains("is protected"), "{err}");
    let (ok, out, err) = ann(&[
        "models", "request", "churn", "champion", "2", "--reason", "better", "--json",
    ]);
    assert!(ok, "{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["alias_request"]["id"].to_string();
    // Not by who asked; not while a gate fails.
    let (ok, _, err) = ann(&["models", "approve", "churn", &id]);
    assert!(!ok && err.contains("another user"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (ok, _, err) = bob(&["models", "approve", "churn", &id]);
    assert!(!ok && err.contains("model card"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (ok, _, err) = ann(&[
        "models",
        "card",
        "churn",
        "2",
        "--intended-use",
        "Retention offers",
        "--limitations",
        "Customers of 2026 only",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = bob(&["models", "approve", "churn", &id, "--comment", "ok"]);
    assert!(ok, "{err}");
    assert!(out.contains("points at version 2"), "{out}");
    let (_, out, _) = ann(&["models", "alias", "ls", "churn", "--json"]);
    assert!(
        out.contains("\"version\":\"2\"") || out.contains("\"version\": \"2\""),
        "{out}"
    );
    // A second request, rejected; the listing shows both decisions and the protection.
    let (ok, out, err) = ann(&["models", "request", "churn", "champion", "3", "--json"]);
    assert!(ok, "{err}");
    let second = serde_json::from_str::<Value>(&out).unwrap()["alias_request"]["id"].to_string();
    let (ok, out, err) = bob(&["models", "reject", "churn", &second]);
    assert!(ok && out.contains("rejected"), "{out}{err}");
    let (ok, out, err) = bob(&["models", "requests", "churn", "--json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    let states: Vec<(&str, &str)> = listed["alias_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["state"].as_str().unwrap(),
                r["decided_by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        states.contains(&("applied", "bob")) && states.contains(&("rejected", "bob")),
        "{listed}"
    );
    assert_eq!(listed["protected_aliases"][0]["gates"]["model_card"], true);
    let (ok, out, _) = bob(&["models", "requests", "churn"]);
    assert!(
        ok && out.contains("@champion") && out.contains("model card"),
        "{out}"
    );
    // bob manages the model: he may lift the protection; then a direct move works again.
    let (ok, _, err) = bob(&["models", "unprotect", "churn", "champion"]);
    assert!(ok, "{err}");
    let (ok, _, err) = ann(&["models", "alias", "set", "churn", "champion", "3"]);
    assert!(ok, "{err}");
}
