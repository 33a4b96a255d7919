//! Every REST endpoint over real HTTP on loopback: the happy paths, and the bad input MLflow
//! answers with an error. Each test runs twice: on a real SQLite file and on the real PostgreSQL
//! that `KEEL_TEST_DATABASE_URL` names (in a schema of its own, dropped afterwards); without that
//! variable the PostgreSQL half says it was skipped.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

struct TestServer {
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    meta: Arc<dyn keel_core::MetadataStore>,
    /// PostgreSQL: the admin URL and the test's schema, dropped by [`TestServer::finish`].
    pg_schema: Option<(String, String)>,
}

/// The admin's password on an audited test server.
const ADMIN_PASSWORD: &str = "audit-admin-password";

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl TestServer {
    /// A server on `backend`, or `None` (after saying why) when PostgreSQL is not configured.
    async fn start(backend: Backend) -> Option<TestServer> {
        Self::start_with(backend, false).await
    }

    /// As [`TestServer::start`]; `audited`: with auth on (the admin `admin`, password
    /// [`ADMIN_PASSWORD`], which the client sends) and every write logged.
    async fn start_with(backend: Backend, audited: bool) -> Option<TestServer> {
        let dir = tempfile::tempdir().unwrap();
        let (db, pg_schema) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("keel.db").display()),
                None,
            ),
            Backend::Postgres => {
                let admin = keel_testenv::postgres_url("keel-server API tests on PostgreSQL")?;
                let schema = format!("keel_test_{}", uuid::Uuid::new_v4().simple());
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
                let sep = if admin.contains('?') { '&' } else { '?' };
                (
                    format!("{admin}{sep}options=-c%20search_path%3D{schema}"),
                    Some((admin, schema)),
                )
            }
        };
        let meta = keel_store::open_metadata_store(&db, keel_server::ARTIFACT_SCHEME)
            .await
            .unwrap();
        let artifacts =
            keel_store::open_artifact_store(dir.path().join("artifacts").to_str().unwrap())
                .await
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut state = keel_server::AppState::new(meta.clone(), artifacts);
        let mut http = reqwest::Client::builder();
        if audited {
            meta.enable_audit().await.unwrap();
            let hash = keel_server::auth::credentials::hash(ADMIN_PASSWORD)
                .await
                .unwrap();
            meta.create_user("admin", Some(&hash), true).await.unwrap();
            let auth = keel_server::auth::Auth::new(Default::default()).unwrap();
            state = state.with_audit().with_auth(auth);
            use base64::Engine as _;
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Basic {basic}").parse().unwrap(),
            );
            http = http.default_headers(headers);
        }
        tokio::spawn(keel_server::serve(
            listener,
            state,
            None,
            std::future::pending(),
        ));
        Some(TestServer {
            base,
            http: http.build().unwrap(),
            dir,
            meta,
            pg_schema,
        })
    }

    /// Drops the PostgreSQL schema of a test that passed.
    async fn finish(&self) {
        if let Some((admin, schema)) = &self.pg_schema {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }

    fn api(&self, endpoint: &str) -> String {
        format!("{}/api/2.0/mlflow/{endpoint}", self.base)
    }

    async fn answer(resp: reqwest::Response) -> (StatusCode, Value) {
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A raw HTTP/1.1 request, path sent exactly as given; returns the status and body.
    async fn raw(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        conn.read_to_string(&mut out).await.unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, out)
    }

    async fn post(&self, endpoint: &str, body: Value) -> (StatusCode, Value) {
        Self::answer(
            self.http
                .post(self.api(endpoint))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn patch(&self, endpoint: &str, body: Value) -> (StatusCode, Value) {
        Self::answer(
            self.http
                .patch(self.api(endpoint))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn delete(&self, endpoint: &str, body: Value) -> (StatusCode, Value) {
        Self::answer(
            self.http
                .delete(self.api(endpoint))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn get(&self, endpoint: &str, query: &[(&str, &str)]) -> (StatusCode, Value) {
        Self::answer(
            self.http
                .get(self.api(endpoint))
                .query(query)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POST that must succeed.
    async fn ok(&self, endpoint: &str, body: Value) -> Value {
        let (st, v) = self.post(endpoint, body).await;
        assert_eq!(st, StatusCode::OK, "{endpoint}: {v}");
        v
    }

    async fn experiment(&self, name: &str) -> String {
        self.ok("experiments/create", json!({ "name": name })).await["experiment_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn run(&self, exp: &str) -> String {
        self.ok(
            "runs/create",
            json!({ "experiment_id": exp, "start_time": 1_700_000_000_000i64 }),
        )
        .await["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn assert_error(r: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(r.0.as_u16(), status, "{}", r.1);
    assert_eq!(r.1["error_code"], code, "{}", r.1);
    assert!(
        r.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.1
    );
}

async fn experiments_lifecycle(s: Arc<TestServer>) {
    let (st, v) = s.get("experiments/get", &[("experiment_id", "0")]).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["experiment"]["name"], "Default");

    let id = s.experiment("exp-a").await;
    assert_error(
        &s.post("experiments/create", json!({ "name": "exp-a" }))
            .await,
        400,
        "RESOURCE_ALREADY_EXISTS",
    );
    assert_error(
        &s.post("experiments/create", json!({})).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post("experiments/create", json!({ "name": "x".repeat(501) }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let (_, v) = s
        .get("experiments/get-by-name", &[("experiment_name", "exp-a")])
        .await;
    assert_eq!(v["experiment"]["experiment_id"], id.as_str());
    assert_eq!(
        v["experiment"]["artifact_location"],
        format!("mlflow-artifacts:/{id}")
    );
    assert_error(
        &s.get("experiments/get-by-name", &[("experiment_name", "nope")])
            .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(
        &s.get("experiments/get", &[("experiment_id", "999")]).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(
        &s.get("experiments/get", &[("experiment_id", "abc")]).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );

    s.ok(
        "experiments/set-experiment-tag",
        json!({ "experiment_id": id, "key": "team", "value": "a" }),
    )
    .await;
    s.ok(
        "experiments/update",
        json!({ "experiment_id": id, "new_name": "exp-b" }),
    )
    .await;
    let (_, v) = s.get("experiments/get", &[("experiment_id", &id)]).await;
    assert_eq!(v["experiment"]["name"], "exp-b");
    assert_eq!(
        v["experiment"]["tags"][0],
        json!({ "key": "team", "value": "a" })
    );
    s.ok(
        "experiments/delete-experiment-tag",
        json!({ "experiment_id": id, "key": "team" }),
    )
    .await;
    assert_error(
        &s.post(
            "experiments/delete-experiment-tag",
            json!({ "experiment_id": id, "key": "team" }),
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );

    for i in 0..5 {
        s.experiment(&format!("paged-{i}")).await;
    }
    let (_, p1) = s
        .post(
            "experiments/search",
            json!({ "max_results": 3, "filter": "name LIKE 'paged-%'", "order_by": ["name ASC"] }),
        )
        .await;
    let names: Vec<&str> = p1["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["paged-0", "paged-1", "paged-2"]);
    let tok = p1["next_page_token"].as_str().unwrap();
    let (_, p2) = s.post("experiments/search", json!({ "max_results": 3, "filter": "name LIKE 'paged-%'", "order_by": ["name ASC"], "page_token": tok })).await;
    assert_eq!(p2["experiments"].as_array().unwrap().len(), 2);
    assert!(p2.get("next_page_token").is_none());
    assert_error(
        &s.post("experiments/search", json!({ "filter": "name >< 'x'" }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );

    let run = s.run(&id).await;
    s.ok("experiments/delete", json!({ "experiment_id": id }))
        .await;
    let (_, v) = s.get("runs/get", &[("run_id", &run)]).await;
    assert_eq!(
        v["run"]["info"]["lifecycle_stage"], "deleted",
        "deleting an experiment deletes its runs"
    );
    let (_, v) = s
        .post("experiments/search", json!({ "view_type": "DELETED_ONLY" }))
        .await;
    assert_eq!(v["experiments"].as_array().unwrap().len(), 1);
    assert_error(
        &s.post("runs/create", json!({ "experiment_id": id })).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    s.ok("experiments/restore", json!({ "experiment_id": id }))
        .await;
    let (_, v) = s.get("runs/get", &[("run_id", &run)]).await;
    assert_eq!(v["run"]["info"]["lifecycle_stage"], "active");
    assert_error(
        &s.post("experiments/delete", json!({ "experiment_id": "0" }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );

    // The UI prefix serves the same API.
    let resp = s
        .http
        .get(format!(
            "{}/ajax-api/2.0/mlflow/experiments/get?experiment_id={id}",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

async fn runs_metrics_params_tags(s: Arc<TestServer>) {
    let exp = s.experiment("runs").await;
    let (_, v) = s.post("runs/create", json!({ "experiment_id": exp, "start_time": 5, "run_name": "r", "tags": [{ "key": "mlflow.user", "value": "ana" }] })).await;
    let info = &v["run"]["info"];
    let run = info["run_id"].as_str().unwrap().to_string();
    assert_eq!(info["run_uuid"], info["run_id"]);
    assert_eq!(info["status"], "RUNNING");
    assert_eq!(info["user_id"], "ana");
    assert_eq!(
        info["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/{run}/artifacts")
    );
    let (_, stored) = s.get("runs/get", &[("run_id", &run)]).await;
    assert_eq!(
        stored["run"], v["run"],
        "runs/create answers what runs/get reads back"
    );
    assert_error(&s.post("runs/create", json!({ "experiment_id": exp, "run_name": "a", "tags": [{ "key": "mlflow.runName", "value": "b" }] })).await, 400, "INVALID_PARAMETER_VALUE");
    assert_error(
        &s.post("runs/create", json!({ "experiment_id": "987654" }))
            .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(
        &s.post("runs/create", json!({ "experiment_id": 1 })).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );

    // Metrics: numbers as strings, NaN, infinities, steps, timestamps.
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "loss", "value": 0.5, "timestamp": 10, "step": 0 }),
    )
    .await;
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "loss", "value": "0.25", "timestamp": "11", "step": "1" }),
    )
    .await;
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "bad", "value": "NaN", "timestamp": 10 }),
    )
    .await;
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "big", "value": "Infinity", "timestamp": 10 }),
    )
    .await;
    assert_error(
        &s.post(
            "runs/log-metric",
            json!({ "run_id": run, "key": "loss", "value": 1.0 }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "runs/log-metric",
            json!({ "run_id": run, "key": "loss", "timestamp": 1 }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "runs/log-metric",
            json!({ "run_id": run, "key": "loss", "value": "abc", "timestamp": 1 }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "runs/log-metric",
            json!({ "run_id": run, "key": "../x", "value": 1, "timestamp": 1 }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "runs/log-metric",
            json!({ "run_id": "0".repeat(32), "key": "k", "value": 1, "timestamp": 1 }),
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    let wrong_type = s
        .post(
            "runs/log-metric",
            json!({ "run_id": run, "key": 5, "value": 1, "timestamp": 1 }),
        )
        .await;
    assert_error(&wrong_type, 400, "INVALID_PARAMETER_VALUE");
    assert!(
        wrong_type.1["message"].as_str().unwrap().contains("'key'"),
        "{}",
        wrong_type.1
    );

    let (_, v) = s.get("runs/get", &[("run_id", &run)]).await;
    let metrics = v["run"]["data"]["metrics"].as_array().unwrap();
    let by = |k: &str| metrics.iter().find(|m| m["key"] == k).unwrap().clone();
    assert_eq!(by("loss")["value"], 0.25);
    assert_eq!(by("loss")["step"], 1);
    assert_eq!(by("bad")["value"], "NaN");
    assert_eq!(by("big")["value"].as_f64(), Some(f64::MAX));

    // An older step does not replace the latest value; history keeps everything in step order.
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "loss", "value": 9.0, "timestamp": 99, "step": 0 }),
    )
    .await;
    let (_, v) = s.get("runs/get", &[("run_id", &run)]).await;
    assert_eq!(
        v["run"]["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == "loss")
            .unwrap()["value"],
        0.25
    );
    let (_, h) = s
        .get(
            "metrics/get-history",
            &[("run_id", &run), ("metric_key", "loss")],
        )
        .await;
    let values: Vec<f64> = h["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [0.5, 9.0, 0.25]);
    let (_, h1) = s
        .get(
            "metrics/get-history",
            &[
                ("run_id", &run),
                ("metric_key", "loss"),
                ("max_results", "2"),
            ],
        )
        .await;
    assert_eq!(h1["metrics"].as_array().unwrap().len(), 2);
    let tok = h1["next_page_token"].as_str().unwrap();
    let (_, h2) = s
        .get(
            "metrics/get-history",
            &[
                ("run_id", &run),
                ("metric_key", "loss"),
                ("max_results", "2"),
                ("page_token", tok),
            ],
        )
        .await;
    assert_eq!(h2["metrics"][0]["value"], 0.25);

    // Params are write-once; tags overwrite; delete-tag.
    s.ok(
        "runs/log-parameter",
        json!({ "run_id": run, "key": "lr", "value": "0.1" }),
    )
    .await;
    s.ok(
        "runs/log-parameter",
        json!({ "run_id": run, "key": "lr", "value": "0.1" }),
    )
    .await;
    assert_error(
        &s.post(
            "runs/log-parameter",
            json!({ "run_id": run, "key": "lr", "value": "0.2" }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    // Over-long values are cut to MLflow's limits, as MLflow does by default.
    s.ok(
        "runs/log-parameter",
        json!({ "run_id": run, "key": "long", "value": "é".repeat(6001) }),
    )
    .await;
    s.ok(
        "runs/set-tag",
        json!({ "run_id": run, "key": "long", "value": "y".repeat(8001) }),
    )
    .await;
    let (_, got) = s.get("runs/get", &[("run_id", &run)]).await;
    let value = |kind: &str| {
        got["run"]["data"][kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == "long")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(value("params"), "é".repeat(6000));
    assert_eq!(value("tags"), "y".repeat(8000));
    s.ok(
        "runs/set-tag",
        json!({ "run_id": run, "key": "t", "value": "1" }),
    )
    .await;
    s.ok(
        "runs/set-tag",
        json!({ "run_id": run, "key": "t", "value": "2" }),
    )
    .await;
    s.ok(
        "runs/set-tag",
        json!({ "run_id": run, "key": "mlflow.runName", "value": "renamed" }),
    )
    .await;
    let (_, v) = s.get("runs/get", &[("run_id", &run)]).await;
    assert_eq!(v["run"]["info"]["run_name"], "renamed");
    assert!(
        v["run"]["data"]["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({ "key": "t", "value": "2" }))
    );
    s.ok("runs/delete-tag", json!({ "run_id": run, "key": "t" }))
        .await;
    assert_error(
        &s.post("runs/delete-tag", json!({ "run_id": run, "key": "t" }))
            .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );

    // Update, delete, restore; a deleted run refuses writes.
    let (_, v) = s
        .post(
            "runs/update",
            json!({ "run_id": run, "status": "FINISHED", "end_time": 20 }),
        )
        .await;
    assert_eq!(v["run_info"]["status"], "FINISHED");
    assert_eq!(v["run_info"]["end_time"], 20);
    assert_error(
        &s.post("runs/update", json!({ "run_id": run, "status": "NOPE" }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    s.ok("runs/delete", json!({ "run_id": run })).await;
    assert_error(
        &s.post(
            "runs/log-metric",
            json!({ "run_id": run, "key": "k", "value": 1, "timestamp": 1 }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    s.ok("runs/restore", json!({ "run_id": run })).await;
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "k", "value": 1, "timestamp": 1 }),
    )
    .await;
}

async fn log_batch_limits_and_atomicity(s: Arc<TestServer>) {
    let exp = s.experiment("batch").await;
    let run = s.run(&exp).await;
    let metrics: Vec<Value> = (0..1000)
        .map(|i| json!({ "key": format!("m{}", i % 10), "value": i, "timestamp": 1, "step": i }))
        .collect();
    let params: Vec<Value> = (0..0)
        .map(|i| json!({ "key": format!("p{i}"), "value": "v" }))
        .collect();
    s.ok(
        "runs/log-batch",
        json!({ "run_id": run, "metrics": metrics, "params": params }),
    )
    .await;
    s.ok("runs/log-batch", json!({ "run_id": run })).await;
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({ "key": "z", "value": 1, "timestamp": 1, "step": i }))
        .collect();
    assert_error(
        &s.post(
            "runs/log-batch",
            json!({ "run_id": run, "metrics": too_many }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let params: Vec<Value> = (0..101)
        .map(|i| json!({ "key": format!("p{i}"), "value": "v" }))
        .collect();
    assert_error(
        &s.post("runs/log-batch", json!({ "run_id": run, "params": params }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let dupes = json!([{ "key": "a", "value": "1" }, { "key": "a", "value": "2" }]);
    assert_error(
        &s.post("runs/log-batch", json!({ "run_id": run, "params": dupes }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let missing = s
        .post(
            "runs/log-batch",
            json!({ "run_id": run, "metrics": [{ "key": "z", "value": 1.0 }] }),
        )
        .await;
    assert_error(&missing, 400, "INVALID_PARAMETER_VALUE");
    assert!(
        missing.1["message"]
            .as_str()
            .unwrap()
            .contains("metrics[0].timestamp"),
        "{}",
        missing.1
    );
    // Each value within its limit, the request over MLflow's 1 MB.
    let tags: Vec<Value> = (0..100)
        .map(|i| json!({ "key": format!("t{i}"), "value": "x".repeat(7999) }))
        .collect();
    let params: Vec<Value> = (0..100)
        .map(|i| json!({ "key": format!("q{i}"), "value": "x".repeat(5999) }))
        .collect();
    let big = s
        .post(
            "runs/log-batch",
            json!({ "run_id": run, "tags": tags, "params": params }),
        )
        .await;
    assert_error(&big, 400, "INVALID_PARAMETER_VALUE");
    assert!(
        big.1["message"]
            .as_str()
            .unwrap()
            .contains("at most 1000000 bytes"),
        "{}",
        big.1
    );

    // A batch whose param conflicts is refused whole: its metrics are not stored either.
    s.ok(
        "runs/log-parameter",
        json!({ "run_id": run, "key": "fixed", "value": "1" }),
    )
    .await;
    let bad = json!({ "run_id": run, "metrics": [{ "key": "after", "value": 1, "timestamp": 1 }], "params": [{ "key": "fixed", "value": "2" }] });
    assert_error(
        &s.post("runs/log-batch", bad).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let (_, h) = s
        .get(
            "metrics/get-history",
            &[("run_id", &run), ("metric_key", "after")],
        )
        .await;
    assert!(
        h.get("metrics")
            .is_none_or(|m| m.as_array().unwrap().is_empty()),
        "{h}"
    );
    // The metric name first seen in the refused batch works afterwards.
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "after", "value": 2.5, "timestamp": 2, "step": 0 }),
    )
    .await;
    let (_, h) = s
        .get(
            "metrics/get-history",
            &[("run_id", &run), ("metric_key", "after")],
        )
        .await;
    assert_eq!(h["metrics"][0]["value"], 2.5, "{h}");

    let (_, h) = s
        .get(
            "metrics/get-history",
            &[("run_id", &run), ("metric_key", "m3")],
        )
        .await;
    assert_eq!(h["metrics"].as_array().unwrap().len(), 100);
    let (_, bulk) = s
        .get(
            "metrics/get-history-bulk",
            &[("run_id", &run), ("metric_key", "m3")],
        )
        .await;
    assert_eq!(bulk["metrics"].as_array().unwrap().len(), 100);
    assert_eq!(bulk["metrics"][0]["run_id"], run.as_str());
    let (_, iv) = s
        .get(
            "metrics/get-history-bulk-interval",
            &[
                ("run_ids", &run),
                ("metric_key", "m3"),
                ("max_results", "10"),
            ],
        )
        .await;
    let steps: Vec<i64> = iv["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps.len(), 10);
    assert_eq!((steps[0], steps[9]), (3, 993));
    // MLflow's limits on the interval form: 2,500 steps at most, both ends of a range or none.
    for (query, says) in [
        (vec![("max_results", "2501")], "between 1 and 2500"),
        (vec![("start_step", "5")], "both must be specified"),
        (
            vec![("start_step", "9"), ("end_step", "2")],
            "must be greater than start_step",
        ),
    ] {
        let mut q = vec![("run_ids", run.as_str()), ("metric_key", "m3")];
        q.extend(query);
        let r = s.get("metrics/get-history-bulk-interval", &q).await;
        assert_error(&r, 400, "INVALID_PARAMETER_VALUE");
        assert!(r.1["message"].as_str().unwrap().contains(says), "{}", r.1);
    }
    let (status, all) = s
        .get(
            "metrics/get-history-bulk-interval",
            &[
                ("run_ids", &run),
                ("metric_key", "m3"),
                ("max_results", "2500"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["metrics"].as_array().unwrap().len(), 100);
    // The bulk history comes in MLflow's order: by time, then step, then value.
    let (_, bulk) = s
        .get(
            "metrics/get-history-bulk",
            &[
                ("run_id", &run),
                ("metric_key", "m3"),
                ("max_results", "99999"),
            ],
        )
        .await;
    let order: Vec<(i64, i64)> = bulk["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["timestamp"].as_i64().unwrap(),
                m["step"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

async fn malformed_requests(s: Arc<TestServer>) {
    let url = s.api("experiments/create");
    let r = TestServer::answer(
        s.http
            .post(&url)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 400, "INVALID_PARAMETER_VALUE");
    assert!(r.1["message"].as_str().unwrap().contains("Malformed JSON"));
    let r = TestServer::answer(
        s.http
            .post(&url)
            .body("{\"name\":\"x\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 400, "INVALID_PARAMETER_VALUE");
    let r = TestServer::answer(
        s.http
            .post(&url)
            .header("Content-Type", "text/plain")
            .body("{\"name\":\"x\"}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 400, "INVALID_PARAMETER_VALUE");
    // The server answers before reading the whole body and drops the connection; the client
    // may still be writing the body then and see a broken pipe instead of the answer (a race
    // in the client, not the server), so it tries a few times. Every answer it reads must be
    // the 413, and one must be read.
    let mut answered = None;
    for _ in 0..10 {
        let sent = s
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            // Kept out of the client's pool so the next request gets a fresh connection.
            .header("Connection", "close")
            .body(vec![b' '; 33 * 1024 * 1024])
            .send()
            .await;
        match sent {
            Ok(response) => {
                answered = Some(TestServer::answer(response).await);
                break;
            }
            Err(e) if e.is_request() => continue,
            Err(e) => panic!("oversized body: {e}"),
        }
    }
    let r = answered.expect("the oversized body was never answered");
    assert_eq!(r.0.as_u16(), 413, "oversized body: {}", r.1);
    assert_eq!(r.1["error_code"], "REQUEST_LIMIT_EXCEEDED", "{}", r.1);
    let r = s.post("runs/does-not-exist", json!({})).await;
    assert_error(&r, 404, "ENDPOINT_NOT_FOUND");
    let r = s.http.get(s.api("runs/log-metric")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_error(
        &s.post(
            "runs/search",
            json!({ "experiment_ids": ["0"], "max_results": 50001 }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "runs/search",
            json!({ "experiment_ids": ["0"], "page_token": "garbage" }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "runs/search",
            json!({ "experiment_ids": ["0"], "order_by": ["metrics.x SIDEWAYS"] }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post("runs/search", json!({ "experiment_ids": "0" }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}

async fn run_search_filters_order_and_pages(s: Arc<TestServer>) {
    let exp = s.experiment("search").await;
    let mut ids = Vec::new();
    for i in 0..30i64 {
        let (_, v) = s.post("runs/create", json!({ "experiment_id": exp, "start_time": 1000 + i, "run_name": format!("run-{i:02}") })).await;
        let id = v["run"]["info"]["run_id"].as_str().unwrap().to_string();
        let batch = json!({
            "run_id": id,
            "metrics": [{ "key": "acc", "value": i as f64 / 30.0, "timestamp": 1 }, { "key": "loss", "value": 30 - i, "timestamp": 1 }],
            "params": [{ "key": "lr", "value": if i % 2 == 0 { "0.1" } else { "0.01" } }],
            "tags": [{ "key": "group", "value": format!("g{}", i % 3) }],
        });
        s.ok("runs/log-batch", batch).await;
        ids.push(id);
    }
    let search = |filter: &'static str, order: Vec<&'static str>| json!({ "experiment_ids": [exp], "filter": filter, "order_by": order, "max_results": 100 });
    let names = |v: &Value| {
        v["runs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["info"]["run_name"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };

    let v = s.ok("runs/search", search("", vec![])).await;
    assert_eq!(names(&v)[0], "run-29", "default order is newest first");
    let v = s
        .ok(
            "runs/search",
            search(
                "metrics.acc >= 0.9 and params.lr = '0.1'",
                vec!["metrics.acc DESC"],
            ),
        )
        .await;
    assert_eq!(names(&v), ["run-28"]);
    let v = s
        .ok(
            "runs/search",
            search(
                "tags.group = 'g1' and metrics.loss < 10",
                vec!["metrics.loss ASC"],
            ),
        )
        .await;
    assert_eq!(names(&v), ["run-28", "run-25", "run-22"]);
    let v = s
        .ok(
            "runs/search",
            search(
                "attributes.run_name LIKE 'run-0%'",
                vec!["attributes.run_name ASC"],
            ),
        )
        .await;
    assert_eq!(names(&v).len(), 10);
    let v = s
        .ok("runs/search", search("run_name ILIKE 'RUN-1_'", vec![]))
        .await;
    assert_eq!(names(&v).len(), 10);
    let v = s
        .ok("runs/search", search("params.lr != '0.1'", vec![]))
        .await;
    assert_eq!(names(&v).len(), 15);
    let v = s
        .ok(
            "runs/search",
            search("params.missing IS NULL and tags.group IS NOT NULL", vec![]),
        )
        .await;
    assert_eq!(names(&v).len(), 30);
    let v = s
        .ok("runs/search", search("metrics.nope > 0", vec![]))
        .await;
    assert!(names(&v).is_empty());
    let v = s.ok("runs/search", json!({ "experiment_ids": [exp], "filter": format!("attributes.run_id IN ('{}', '{}')", ids[3], ids[4]) })).await;
    assert_eq!(names(&v), ["run-04", "run-03"]);
    let v = s
        .ok(
            "runs/search",
            search("attributes.start_time > 1027", vec!["start_time ASC"]),
        )
        .await;
    assert_eq!(names(&v), ["run-28", "run-29"]);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body =
            json!({ "experiment_ids": [exp], "order_by": ["metrics.acc ASC"], "max_results": 7 });
        if let Some(t) = &token {
            body["page_token"] = json!(t);
        }
        let v = s.ok("runs/search", body).await;
        seen.extend(names(&v));
        match v["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..30).map(|i| format!("run-{i:02}")).collect::<Vec<_>>()
    );

    s.ok("runs/delete", json!({ "run_id": ids[0] })).await;
    let v = s
        .ok(
            "runs/search",
            json!({ "experiment_ids": [exp], "run_view_type": "DELETED_ONLY" }),
        )
        .await;
    assert_eq!(names(&v), ["run-00"]);
    let v = s
        .ok(
            "runs/search",
            json!({ "experiment_ids": [exp], "run_view_type": "ALL", "max_results": 100 }),
        )
        .await;
    assert_eq!(names(&v).len(), 30);
    let bad = s
        .post("runs/search", search("metrics.acc >>> 1", vec![]))
        .await;
    assert_error(&bad, 400, "INVALID_PARAMETER_VALUE");
    assert!(bad.1["message"].as_str().unwrap().contains(">>>"));
    assert_error(
        &s.post("runs/search", search("metrics.acc = 'x'", vec![]))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post("runs/search", search("params.lr > 1", vec![])).await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "runs/search",
            search("metrics.a > 1 OR metrics.b > 1", vec![]),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
}

async fn inputs_outputs_and_logged_models(s: Arc<TestServer>) {
    let exp = s.experiment("models").await;
    let run = s.run(&exp).await;
    let ds = json!({ "name": "train", "digest": "abc123", "source_type": "local", "source": "{\"uri\": \"/d.csv\"}", "schema": "{}", "profile": "{\"rows\": 3}" });
    s.ok("runs/log-inputs", json!({ "run_id": run, "datasets": [{ "tags": [{ "key": "mlflow.data.context", "value": "training" }], "dataset": ds }] })).await;
    s.ok(
        "runs/log-inputs",
        json!({ "run_id": run, "datasets": [{ "dataset": ds }] }),
    )
    .await;
    assert_error(&s.post("runs/log-inputs", json!({ "run_id": run, "datasets": [{ "dataset": { "name": "x", "digest": "d".repeat(37), "source_type": "l", "source": "s" } }] })).await, 400, "INVALID_PARAMETER_VALUE");

    let (_, m) = s.post("logged-models", json!({ "experiment_id": exp, "name": "clf", "source_run_id": run, "params": [{ "key": "C", "value": "1" }], "tags": [{ "key": "k", "value": "v" }] })).await;
    let model = &m["model"]["info"];
    let id = model["model_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("m-"));
    assert_eq!(model["status"], "LOGGED_MODEL_PENDING");
    assert_eq!(
        model["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );
    let (st, f) = s
        .patch(
            &format!("logged-models/{id}"),
            json!({ "model_id": id, "status": "LOGGED_MODEL_READY" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{f}");
    assert_eq!(f["model"]["info"]["status"], "LOGGED_MODEL_READY");
    s.patch(
        &format!("logged-models/{id}/tags"),
        json!({ "tags": [{ "key": "k2", "value": "v2" }] }),
    )
    .await;
    s.ok(
        &format!("logged-models/{id}/params"),
        json!({ "model_id": id, "params": [{ "key": "penalty", "value": "l2" }] }),
    )
    .await;
    s.ok(
        "runs/log-metric",
        json!({ "run_id": run, "key": "acc", "value": 0.9, "timestamp": 1, "model_id": id,
            "dataset_name": "train", "dataset_digest": "abc123" }),
    )
    .await;
    s.ok(
        "runs/outputs",
        json!({ "run_id": run, "models": [{ "model_id": id, "step": 0 }] }),
    )
    .await;
    assert_error(
        &s.post(
            "runs/outputs",
            json!({ "run_id": run, "models": [{ "model_id": "m-nope", "step": 0 }] }),
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );

    let (_, g) = s.get(&format!("logged-models/{id}"), &[]).await;
    let tags = g["model"]["info"]["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(g["model"]["data"]["params"].as_array().unwrap().len(), 2);
    assert_eq!(g["model"]["data"]["metrics"][0]["value"], 0.9);
    let (_, found) = s
        .post(
            "logged-models/search",
            json!({ "experiment_ids": [exp], "filter": "metrics.acc > 0.5 and params.C = '1'" }),
        )
        .await;
    assert_eq!(found["models"].as_array().unwrap().len(), 1);
    // The datasets clause: metrics measured on those datasets only, as MLflow.
    let count = |v: &Value| v.get("models").map_or(0, |m| m.as_array().unwrap().len());
    for (datasets, filter, want) in [
        (json!([{ "dataset_name": "train" }]), "", 1),
        (
            json!([{ "dataset_name": "train", "dataset_digest": "abc123" }]),
            "metrics.acc > 0.5",
            1,
        ),
        (
            json!([{ "dataset_name": "train", "dataset_digest": "other" }]),
            "",
            0,
        ),
        (json!([{ "dataset_name": "test" }]), "metrics.acc > 0.5", 0),
    ] {
        let (st, v) = s
            .post(
                "logged-models/search",
                json!({ "experiment_ids": [exp], "filter": filter, "datasets": datasets }),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(count(&v), want, "{datasets} {filter}: {v}");
    }
    assert_error(
        &s.post(
            "logged-models/search",
            json!({ "experiment_ids": [exp], "datasets": [{ "dataset_digest": "abc123" }] }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let (_, none) = s
        .post(
            "logged-models/search",
            json!({ "experiment_ids": [exp], "filter": "name = 'other'" }),
        )
        .await;
    assert!(
        none.get("models")
            .is_none_or(|m| m.as_array().unwrap().is_empty())
    );

    let (_, r) = s.get("runs/get", &[("run_id", &run)]).await;
    let inputs = &r["run"]["inputs"]["dataset_inputs"];
    assert_eq!(
        inputs.as_array().unwrap().len(),
        1,
        "the same dataset is linked once"
    );
    assert_eq!(inputs[0]["dataset"]["digest"], "abc123");
    assert_eq!(inputs[0]["tags"][0]["value"], "training");
    assert_eq!(
        r["run"]["outputs"]["model_outputs"][0]["model_id"],
        id.as_str()
    );
    let v = s.ok("runs/search", json!({ "experiment_ids": [exp], "filter": "datasets.digest = 'abc123' and datasets.context = 'training'" })).await;
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    // The UI's endpoints: the experiment's datasets, a small upload, a logged model's file.
    let found = s
        .ok(
            "experiments/search-datasets",
            json!({ "experiment_ids": [exp] }),
        )
        .await;
    assert_eq!(
        found["dataset_summaries"],
        json!([{ "experiment_id": exp, "name": "train", "digest": "abc123", "context": "training" }])
    );
    assert_error(
        &s.post(
            "experiments/search-datasets",
            json!({ "experiment_ids": [] }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let up = |path: &str| {
        format!(
            "{}/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run}&path={path}",
            s.base
        )
    };
    let r = s
        .http
        .post(up("notes/readme.txt"))
        .body("uploaded from the UI")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .get(format!("{}/get-artifact", s.base))
        .query(&[("run_id", run.as_str()), ("path", "notes/readme.txt")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "uploaded from the UI");
    let r = s.http.post(up("../x")).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .http
        .post(up("big.bin"))
        .body(vec![0u8; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s
        .http
        .put(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{exp}/models/{id}/artifacts/MLmodel",
            s.base
        ))
        .body("flavors: {}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let file = |q: &[(&str, &str)]| {
        s.http
            .get(format!(
                "{}/ajax-api/2.0/mlflow/logged-models/{id}/artifacts/files",
                s.base
            ))
            .query(q)
            .send()
    };
    let r = file(&[("artifact_file_path", "MLmodel")]).await.unwrap();
    assert_eq!(r.text().await.unwrap(), "flavors: {}");
    assert_eq!(file(&[]).await.unwrap().status(), StatusCode::BAD_REQUEST);

    let (st, _) = s
        .delete(&format!("logged-models/{id}/tags/k2"), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s.delete(&format!("logged-models/{id}"), json!({})).await;
    assert_eq!(st, StatusCode::OK);
    assert_error(
        &s.get(&format!("logged-models/{id}"), &[]).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    let (st, _) = s
        .get(&format!("logged-models/{id}"), &[("allow_deleted", "true")])
        .await;
    assert_eq!(st, StatusCode::OK);
}

async fn model_registry(s: Arc<TestServer>) {
    let exp = s.experiment("reg").await;
    let run = s.run(&exp).await;
    let (_, m) = s.post("registered-models/create", json!({ "name": "churn", "description": "d", "tags": [{ "key": "team", "value": "a" }] })).await;
    assert_eq!(m["registered_model"]["name"], "churn");
    assert_error(
        &s.post("registered-models/create", json!({ "name": "churn" }))
            .await,
        400,
        "RESOURCE_ALREADY_EXISTS",
    );
    assert_error(
        &s.post("registered-models/create", json!({ "name": "" }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    for i in 1..=3 {
        let (_, v) = s.post("model-versions/create", json!({ "name": "churn", "source": format!("runs:/{run}/model"), "run_id": run, "tags": [{ "key": "i", "value": i.to_string() }] })).await;
        assert_eq!(v["model_version"]["version"], i.to_string());
        assert_eq!(v["model_version"]["status"], "READY");
    }
    assert_error(
        &s.post(
            "model-versions/create",
            json!({ "name": "nope", "source": "s3://b/m" }),
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    assert_error(
        &s.post("model-versions/create", json!({ "name": "churn" }))
            .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let (_, u) = s
        .get(
            "model-versions/get-download-uri",
            &[("name", "churn"), ("version", "2")],
        )
        .await;
    assert_eq!(
        u["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/{run}/artifacts/model")
    );

    s.ok(
        "registered-models/alias",
        json!({ "name": "churn", "alias": "champion", "version": "2" }),
    )
    .await;
    assert_error(
        &s.post(
            "registered-models/alias",
            json!({ "name": "churn", "alias": "latest", "version": "2" }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    assert_error(
        &s.post(
            "registered-models/alias",
            json!({ "name": "churn", "alias": "x", "version": "9" }),
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    let (_, a) = s
        .get(
            "registered-models/alias",
            &[("name", "churn"), ("alias", "champion")],
        )
        .await;
    assert_eq!(a["model_version"]["version"], "2");
    assert_eq!(a["model_version"]["aliases"], json!(["champion"]));
    // The alias history: a repeated set changes nothing; moves and removals are kept.
    for (alias, version) in [("champion", "2"), ("stable", "1"), ("stable", "3")] {
        s.ok(
            "registered-models/alias",
            json!({ "name": "churn", "alias": alias, "version": version }),
        )
        .await;
    }
    let (st, _) = s
        .delete(
            "registered-models/alias",
            json!({ "name": "churn", "alias": "stable" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    s.ok(
        "model-versions/set-tag",
        json!({ "name": "churn", "version": "2", "key": "validated", "value": "yes" }),
    )
    .await;
    let (_, t) = s.post("model-versions/transition-stage", json!({ "name": "churn", "version": "1", "stage": "production", "archive_existing_versions": false })).await;
    assert_eq!(t["model_version"]["current_stage"], "Production");
    s.ok("model-versions/transition-stage", json!({ "name": "churn", "version": "3", "stage": "Production", "archive_existing_versions": true })).await;
    let (_, v1) = s
        .get("model-versions/get", &[("name", "churn"), ("version", "1")])
        .await;
    assert_eq!(v1["model_version"]["current_stage"], "Archived");
    assert_error(
        &s.post(
            "model-versions/transition-stage",
            json!({ "name": "churn", "version": "1", "stage": "Gone" }),
        )
        .await,
        400,
        "INVALID_PARAMETER_VALUE",
    );
    let (_, l) = s
        .post(
            "registered-models/get-latest-versions",
            json!({ "name": "churn", "stages": ["Production"] }),
        )
        .await;
    assert_eq!(l["model_versions"][0]["version"], "3");
    let (st, up) = s
        .patch(
            "model-versions/update",
            json!({ "name": "churn", "version": "3", "description": "best" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(up["model_version"]["description"], "best");

    let (_, sv) = s
        .get(
            "model-versions/search",
            &[("filter", "name = 'churn' and tags.validated = 'yes'")],
        )
        .await;
    assert_eq!(sv["model_versions"].as_array().unwrap().len(), 1);
    let (_, sv) = s
        .get(
            "model-versions/search",
            &[
                ("filter", &format!("run_id = '{run}'")),
                ("order_by", "version_number ASC"),
                ("max_results", "2"),
            ],
        )
        .await;
    assert_eq!(sv["model_versions"][0]["version"], "1");
    assert!(sv["next_page_token"].is_string());
    s.ok(
        "registered-models/set-tag",
        json!({ "name": "churn", "key": "k", "value": "v" }),
    )
    .await;
    let (_, sm) = s
        .get("registered-models/search", &[("filter", "tags.k = 'v'")])
        .await;
    assert_eq!(
        sm["registered_models"][0]["aliases"][0]["alias"],
        "champion"
    );

    let (st, r) = s
        .post(
            "registered-models/rename",
            json!({ "name": "churn", "new_name": "churn2" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let (_, g) = s.get("registered-models/get", &[("name", "churn2")]).await;
    assert_eq!(
        g["registered_model"]["aliases"][0]["version"], "2",
        "aliases follow a rename"
    );
    assert_error(
        &s.get("registered-models/get", &[("name", "churn")]).await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    let (st, _) = s
        .delete(
            "model-versions/delete",
            json!({ "name": "churn2", "version": "2" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_error(
        &s.get(
            "registered-models/alias",
            &[("name", "churn2"), ("alias", "champion")],
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
    let history = |name: &str| {
        let url = format!("{}/api/keel/v1/registered-models/alias-history", s.base);
        let q = [("name", name.to_string())];
        let http = s.http.clone();
        async move { TestServer::answer(http.get(url).query(&q).send().await.unwrap()).await }
    };
    let (st, h) = history("churn2").await;
    assert_eq!(st, StatusCode::OK, "{h}");
    let changes: Vec<(String, Value)> = h["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["alias"].as_str().unwrap().to_string(),
                c["version"].clone(),
            )
        })
        .collect();
    let want = [
        ("champion", json!("2")),
        ("stable", json!("1")),
        ("stable", json!("3")),
        ("stable", Value::Null),
        ("champion", Value::Null),
    ];
    assert_eq!(
        changes,
        want.map(|(a, v)| (a.to_string(), v)).to_vec(),
        "moves, a removal, and the alias of a deleted version, across a rename: {h}"
    );
    assert!(h["changes"][0]["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    assert_error(&history("churn").await, 404, "RESOURCE_DOES_NOT_EXIST");
    assert_error(&history("").await, 400, "INVALID_PARAMETER_VALUE");
    let (_, v4) = s
        .post(
            "model-versions/create",
            json!({ "name": "churn2", "source": "s3://b/m" }),
        )
        .await;
    assert_eq!(
        v4["model_version"]["version"], "4",
        "version numbers are never reused"
    );
    let (st, _) = s
        .delete(
            "registered-models/delete-tag",
            json!({ "name": "churn2", "key": "k" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .delete(
            "model-versions/delete-tag",
            json!({ "name": "churn2", "version": "3", "key": "i" }),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .delete("registered-models/delete", json!({ "name": "churn2" }))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_error(
        &s.get(
            "model-versions/get",
            &[("name", "churn2"), ("version", "3")],
        )
        .await,
        404,
        "RESOURCE_DOES_NOT_EXIST",
    );
}

async fn artifacts_stream_and_cannot_escape(s: Arc<TestServer>) {
    let art = |p: &str| format!("{}/api/2.0/mlflow-artifacts/artifacts/{p}", s.base);
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = s
        .http
        .put(art("1/run/artifacts/big.bin"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .http
        .get(art("1/run/artifacts/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-length"], "3000000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[..]);
    s.http
        .put(art("1/run/artifacts/dir/a.txt"))
        .body("a")
        .send()
        .await
        .unwrap();
    let (_, l) = TestServer::answer(
        s.http
            .get(format!(
                "{}/api/2.0/mlflow-artifacts/artifacts?path=1/run/artifacts",
                s.base
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        l["files"],
        json!([{ "path": "big.bin", "is_dir": false, "file_size": 3000000 }, { "path": "dir", "is_dir": true }])
    );
    let r = s
        .http
        .delete(art("1/run/artifacts/dir"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        s.http
            .get(art("1/run/artifacts/dir/a.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // Sent raw: HTTP client libraries would normalise `..` away before the server sees it.
    for evil in [
        "1/../../escape.txt",
        "1/%2e%2e/%2e%2e/escape.txt",
        "%2Fetc%2Fescape.txt",
        "1/..%5C..%5Cescape.txt",
        "1/.%2E/x",
        "1//x",
        "../escape.txt",
    ] {
        let (status, body) = s
            .raw(
                "PUT",
                &format!("/api/2.0/mlflow-artifacts/artifacts/{evil}"),
                "pwned",
            )
            .await;
        assert_eq!(status, 400, "{evil}: {body}");
        assert!(body.contains("INVALID_PARAMETER_VALUE"), "{evil}: {body}");
    }
    let r = s
        .http
        .get(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts?path=../..",
            s.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!s.dir.path().join("escape.txt").exists());
    assert!(!s.dir.path().parent().unwrap().join("escape.txt").exists());

    // Run listings and UI downloads go through the run's artifact URI.
    let exp = s.experiment("arts").await;
    let run = s.run(&exp).await;
    s.http
        .put(art(&format!("{exp}/{run}/artifacts/model/MLmodel")))
        .body("flavors: {}")
        .send()
        .await
        .unwrap();
    let (_, l) = s
        .get("artifacts/list", &[("run_id", &run), ("path", "model")])
        .await;
    assert_eq!(l["files"][0]["path"], "model/MLmodel");
    assert_eq!(
        l["root_uri"],
        format!("mlflow-artifacts:/{exp}/{run}/artifacts")
    );
    let r = s
        .http
        .get(format!("{}/get-artifact", s.base))
        .query(&[("run_id", run.as_str()), ("path", "model/MLmodel")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "flavors: {}");
    let r = s
        .http
        .get(format!("{}/get-artifact", s.base))
        .query(&[("run_id", run.as_str()), ("path", "../../x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("Invalid path"),
        "{v}"
    );
    // The model-version form checks the path first too: 400 even for an unknown version.
    let r = s
        .http
        .get(format!("{}/model-versions/get-artifact", s.base))
        .query(&[("name", "nope"), ("version", "1"), ("path", "../../x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A field of the wrong type is named with the value and its type, in MLflow's words.
    let r = s.post("experiments/create", json!({ "name": 123 })).await;
    assert_error(&r, 400, "INVALID_PARAMETER_VALUE");
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid value 123 for parameter 'name' supplied"),
        "{}",
        r.1
    );
    // A relative artifact location is made absolute, as MLflow does.
    let (_, created) = s
        .post(
            "experiments/create",
            json!({ "name": "relative-location", "artifact_location": "some/where" }),
        )
        .await;
    let (_, got) = s
        .get(
            "experiments/get",
            &[("experiment_id", created["experiment_id"].as_str().unwrap())],
        )
        .await;
    let location = got["experiment"]["artifact_location"].as_str().unwrap();
    assert!(
        location.starts_with('/') && location.ends_with("/some/where"),
        "{location}"
    );
    let r = s
        .http
        .post(format!(
            "{}/api/2.0/mlflow-artifacts/mpu/create/1/x",
            s.base
        ))
        .json(&json!({ "path": "1/x", "num_parts": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Multipart upload is not supported")
    );
}

async fn health_version_and_metrics(s: Arc<TestServer>) {
    assert_eq!(
        s.http
            .get(format!("{}/health", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(
        s.http
            .get(format!("{}/version", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        env!("CARGO_PKG_VERSION")
    );
    s.get("experiments/get", &[("experiment_id", "0")]).await;
    s.get("experiments/get", &[("experiment_id", "404")]).await;
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(r#"keel_http_requests_total{method="GET",route="/api/2.0/mlflow/experiments/get",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"keel_http_errors_total{method="GET",route="/api/2.0/mlflow/experiments/get",status="404"} 1"#), "{text}");
    assert!(
        text.contains("keel_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

/// A request for another host (a DNS-rebinding page's) is refused before anything runs, and so
/// is a state-changing API call from another site's page; probes, this server's own pages and
/// localhost pass.
async fn other_hosts_and_sites_are_refused(s: Arc<TestServer>) {
    let search = "/api/2.0/mlflow/experiments/search?max_results=1";
    let create = "/api/2.0/mlflow/experiments/create";
    let raw = |method: &'static str, path: &'static str, headers: String, body: &'static str| {
        let s = s.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut conn = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
                .await
                .unwrap();
            let req = format!(
                "{method} {path} HTTP/1.1\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            conn.read_to_string(&mut out).await.unwrap();
            let status: u16 = out.split(' ').nth(1).unwrap().parse().unwrap();
            (status, out)
        }
    };
    let host = |h: &str| format!("Host: {h}\r\n");
    let (st, out) = raw("GET", search, host("evil.example.com"), "").await;
    assert_eq!(st, 403, "{out}");
    assert!(out.contains("DNS rebinding"), "{out}");
    assert_eq!(
        raw("GET", search, host("evil.example.com:5000"), "")
            .await
            .0,
        403
    );
    assert_eq!(
        raw("GET", search, String::new(), "").await.0,
        403,
        "no Host at all"
    );
    for ok in ["127.0.0.1:5000", "localhost", "10.2.3.4:80", "[::1]:5000"] {
        assert_eq!(raw("GET", search, host(ok), "").await.0, 200, "{ok}");
    }
    // Probes name whatever host they like.
    assert_eq!(raw("GET", "/health", host("probe"), "").await.0, 200);
    // Writes from another site's page are refused; this server's own and localhost's pass.
    let body = r#"{"name": "from-a-page"}"#;
    let from = |origin: &str| format!("Host: 127.0.0.1:5000\r\nOrigin: {origin}\r\n");
    let (st, out) = raw("POST", create, from("https://evil.example.com"), body).await;
    assert_eq!(st, 403, "{out}");
    assert!(out.contains("Cross-origin request blocked"), "{out}");
    let name = [("experiment_name", "from-a-page")];
    assert_eq!(
        s.get("experiments/get-by-name", &name).await.0,
        404,
        "nothing made"
    );
    let (st, out) = raw("POST", create, from("http://127.0.0.1:5000"), body).await;
    assert_eq!(st, 200, "{out}");
    let body2 = r#"{"name": "from-localhost"}"#;
    assert_eq!(
        raw("POST", create, from("http://localhost:3000"), body2)
            .await
            .0,
        200
    );
    assert_eq!(s.get("experiments/get-by-name", &name).await.0, 200);
}

/// 8 clients x 1,000 log-batch calls at once: no "database is locked", every row stored once.
async fn concurrent_log_batch_keeps_every_row(s: Arc<TestServer>) {
    let exp = s.experiment("conc").await;
    let mut runs = Vec::new();
    for _ in 0..8 {
        runs.push(s.run(&exp).await);
    }
    let mut tasks = Vec::new();
    for (c, run) in runs.iter().cloned().enumerate() {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1000i64 {
                let metrics: Vec<Value> = (0..5).map(|k| json!({ "key": format!("k{k}"), "value": (c as i64 * 1_000_000 + i) as f64, "timestamp": i, "step": i })).collect();
                let (st, v) = s.post("runs/log-batch", json!({ "run_id": run, "metrics": metrics })).await;
                assert_eq!(st, StatusCode::OK, "client {c} call {i}: {v}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (c, run) in runs.iter().enumerate() {
        for k in 0..5 {
            let (_, h) = s
                .get(
                    "metrics/get-history",
                    &[("run_id", run), ("metric_key", &format!("k{k}"))],
                )
                .await;
            let steps: Vec<i64> = h["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["step"].as_i64().unwrap())
                .collect();
            assert_eq!(steps, (0..1000).collect::<Vec<_>>(), "client {c} key k{k}");
        }
    }
}

/// A chart request: metric, step range, buckets.
type Case = (&'static str, Option<(i64, i64)>, usize);

/// A metric history reduced to chart buckets, checked against the full history: for every
/// bucket, the values logged between its first step and the next bucket's first step have
/// exactly its first, last, minimum and maximum; whatever the range, level and bucket count.
async fn metric_buckets_keep_every_extreme(s: Arc<TestServer>) {
    let exp = s.experiment("charts").await;
    let run = s.run(&exp).await;
    // (key, step, timestamp, value): a dense history around step 0 with spikes and NaNs, and
    // a sparse one whose steps span 100 million (the coarsest rollup level).
    let mut values: Vec<(&str, i64, i64, f64)> = Vec::new();
    let mut x: u64 = 42;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 1_000_000) as f64 / 1000.0
    };
    for i in 0..60_000i64 {
        let v = match i {
            17_017 => 1e6,
            40_001 => -1e6,
            _ if i % 9_973 == 0 => f64::NAN,
            _ => rand(),
        };
        values.push(("dense", i - 5_000, 1_000 + i, v));
    }
    values.push(("dense", 123, 7, -3.5)); // a second value at one step, earlier in time
    for i in 0..40_000i64 {
        let v = if i == 31_337 { 9e9 } else { rand() };
        values.push(("sparse", i * 2_500, i, v));
    }
    // Out of order across batches, and a few batches sent twice.
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by_key(|&i| (i * 7_919) % values.len());
    let batches: Vec<Vec<usize>> = order.chunks(1000).map(|c| c.to_vec()).collect();
    for (n, b) in batches.iter().chain(batches.iter().take(3)).enumerate() {
        let metrics: Vec<Value> = b
            .iter()
            .map(|&i| {
                let (k, step, ts, v) = values[i];
                let v = if v.is_nan() { json!("NaN") } else { json!(v) };
                json!({ "key": k, "step": step, "timestamp": ts, "value": v })
            })
            .collect();
        let (st, v) = s
            .post(
                "runs/log-batch",
                json!({ "run_id": run, "metrics": metrics }),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "batch {n}: {v}");
    }

    let cases: &[Case] = &[
        ("dense", None, 500),
        ("dense", None, 37),
        ("dense", Some((12_345, 54_321)), 4000),
        ("dense", Some((-5_000, -4_990)), 500),
        ("dense", Some((100, 130)), 500),
        ("sparse", None, 500),
        ("sparse", Some((1_234_567, 87_654_321)), 300),
        ("sparse", Some((2_499, 2_501)), 10),
    ];
    let mut before = Vec::new();
    for &(key, range, n) in cases {
        let got = buckets(&s, &run, key, range, n).await;
        check_buckets(&values, key, range, n, &got);
        before.push(got);
    }

    // Bad requests.
    for q in [
        vec![("key", "dense")],
        vec![("run_id", run.as_str())],
        vec![("run_id", run.as_str()), ("key", "dense"), ("buckets", "0")],
        vec![
            ("run_id", run.as_str()),
            ("key", "dense"),
            ("buckets", "4001"),
        ],
        vec![
            ("run_id", run.as_str()),
            ("key", "dense"),
            ("min_step", "5"),
            ("max_step", "4"),
        ],
        vec![
            ("run_id", run.as_str()),
            ("key", "dense"),
            ("buckets", "many"),
        ],
    ] {
        let r = TestServer::answer(
            s.http
                .get(format!("{}/api/keel/v1/metrics/buckets", s.base))
                .query(&q)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_error(&r, 400, "INVALID_PARAMETER_VALUE");
    }
    let r = TestServer::answer(
        s.http
            .get(format!("{}/api/keel/v1/metrics/buckets", s.base))
            .query(&[("run_id", "nope"), ("key", "dense")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(&r, 404, "RESOURCE_DOES_NOT_EXIST");
    let none = buckets(&s, &run, "never-logged", None, 500).await;
    assert_eq!(none["first"], json!([]), "{none}");

    // The migration's backfill rebuilds the same rollups from the stored values.
    let backfill = match s.pg_schema {
        None => include_str!("../../keel-store/migrations/sqlite/0004_metric_rollups.sql"),
        Some(_) => include_str!("../../keel-store/migrations/postgres/0004_metric_rollups.sql"),
    };
    let backfill = &backfill[backfill.find("INSERT INTO metric_rollups").unwrap()..];
    match &s.pg_schema {
        None => {
            let url = format!("sqlite://{}", s.dir.path().join("keel.db").display());
            let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query("DELETE FROM metric_rollups")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(backfill))
                .execute(&mut c)
                .await
                .unwrap();
        }
        Some((admin, schema)) => {
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(admin)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query("DELETE FROM metric_rollups")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(backfill))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
    for (i, &(key, range, n)) in cases.iter().enumerate() {
        assert_eq!(
            buckets(&s, &run, key, range, n).await,
            before[i],
            "case {i} after the backfill"
        );
    }
}

async fn buckets(
    s: &TestServer,
    run: &str,
    key: &str,
    range: Option<(i64, i64)>,
    n: usize,
) -> Value {
    let mut q = vec![
        ("run_id".to_string(), run.to_string()),
        ("key".to_string(), key.to_string()),
        ("buckets".to_string(), n.to_string()),
    ];
    if let Some((lo, hi)) = range {
        q.push(("min_step".into(), lo.to_string()));
        q.push(("max_step".into(), hi.to_string()));
    }
    let (st, v) = TestServer::answer(
        s.http
            .get(format!("{}/api/keel/v1/metrics/buckets", s.base))
            .query(&q)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["series"][0].clone()
}

fn check_buckets(
    values: &[(&str, i64, i64, f64)],
    key: &str,
    range: Option<(i64, i64)>,
    n: usize,
    got: &Value,
) {
    let ctx = format!("{key} {range:?} in {n}");
    let mut mine: Vec<(i64, i64, f64)> = values
        .iter()
        .filter(|v| v.0 == key && range.is_none_or(|(lo, hi)| v.1 >= lo && v.1 <= hi))
        .map(|v| (v.1, v.2, v.3))
        .collect();
    mine.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2)));
    mine.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2.to_bits() == b.2.to_bits());
    let ints = |k: &str| -> Vec<i64> {
        got[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect()
    };
    let floats = |k: &str| -> Vec<Option<f64>> {
        got[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64())
            .collect()
    };
    let (fs, ls) = (ints("first_step"), ints("last_step"));
    let (ft, lt) = (ints("first_ts"), ints("last_ts"));
    let (first, last, min, max) = (
        floats("first"),
        floats("last"),
        floats("min"),
        floats("max"),
    );
    let count = fs.len();
    assert!(count <= n && count > 0, "{ctx}: {count} buckets");
    let finite: Vec<&(i64, i64, f64)> = mine.iter().filter(|v| !v.2.is_nan()).collect();
    // Buckets that held only NaN have no first value; the others partition the finite values.
    let valued: Vec<usize> = (0..count).filter(|&i| first[i].is_some()).collect();
    for i in (0..count).filter(|&i| first[i].is_none()) {
        assert!(
            mine.iter().any(|v| v.0 == fs[i] && v.2.is_nan()),
            "{ctx}: bucket {i} has no value and no NaN"
        );
    }
    assert_eq!(
        fs[valued[0]], finite[0].0,
        "{ctx}: the first bucket starts at the first value"
    );
    assert_eq!(got["raw"], json!(mine.len() <= n), "{ctx}: raw");
    if mine.len() <= n {
        // Every value is its own bucket.
        let each: Vec<(i64, i64, Option<f64>)> =
            (0..count).map(|i| (fs[i], ft[i], first[i])).collect();
        let want: Vec<(i64, i64, Option<f64>)> = mine
            .iter()
            .map(|v| {
                if v.2.is_nan() {
                    (v.0, 0, None)
                } else {
                    (v.0, v.1, Some(v.2))
                }
            })
            .collect();
        assert_eq!(each, want, "{ctx}");
        return;
    }
    for (j, &i) in valued.iter().enumerate() {
        let end = valued.get(j + 1).map_or(i64::MAX, |&k| fs[k]);
        let inside: Vec<&&(i64, i64, f64)> = finite
            .iter()
            .filter(|v| v.0 >= fs[i] && v.0 < end)
            .collect();
        assert!(!inside.is_empty(), "{ctx}: bucket {i} spans no value");
        let f = inside[0];
        let l = inside[inside.len() - 1];
        assert_eq!(
            (fs[i], ft[i], first[i]),
            (f.0, f.1, Some(f.2)),
            "{ctx}: bucket {i} first"
        );
        assert_eq!(
            (ls[i], lt[i], last[i]),
            (l.0, l.1, Some(l.2)),
            "{ctx}: bucket {i} last"
        );
        let lo = inside.iter().map(|v| v.2).fold(f64::INFINITY, f64::min);
        let hi = inside.iter().map(|v| v.2).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(
            (min[i], max[i]),
            (Some(lo), Some(hi)),
            "{ctx}: bucket {i} extremes"
        );
    }
    let nan_flagged = got["nan"].as_array().unwrap().iter().any(|v| v == true);
    assert_eq!(nan_flagged, mine.iter().any(|v| v.2.is_nan()), "{ctx}: NaN");
}

/// Runs each test body on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s = Arc::new(TestServer::start(Backend::Sqlite).await.unwrap());
                super::$name(s.clone()).await;
                s.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(s) = TestServer::start(Backend::Postgres).await else { return };
                let s = Arc::new(s);
                super::$name(s.clone()).await;
                s.finish().await;
            }
        }
    )*};
}

on_both_backends!(
    experiments_lifecycle,
    runs_metrics_params_tags,
    log_batch_limits_and_atomicity,
    malformed_requests,
    run_search_filters_order_and_pages,
    inputs_outputs_and_logged_models,
    model_registry,
    artifacts_stream_and_cannot_escape,
    health_version_and_metrics,
    other_hosts_and_sites_are_refused,
    concurrent_log_batch_keeps_every_row,
    metric_buckets_keep_every_extreme,
);

/// Every route the server's source declares, as `(method, full path)`: each `.route("path",
/// get(..).post(..))` call, under the prefix its router function is mounted at.
fn declared_routes() -> std::collections::BTreeSet<(String, String)> {
    let mounts: &[(&str, &str, &[&str])] = &[
        ("api/experiments.rs", "routes", &["/api/2.0/mlflow"]),
        ("api/runs.rs", "routes", &["/api/2.0/mlflow"]),
        ("api/logged_models.rs", "routes", &["/api/2.0/mlflow"]),
        ("api/registry.rs", "routes", &["/api/2.0/mlflow"]),
        ("api/artifacts.rs", "routes", &["/api/2.0/mlflow-artifacts"]),
        ("api/artifacts.rs", "mlflow_routes", &["/api/2.0/mlflow"]),
        ("api/artifacts.rs", "ui_routes", &[""]),
        ("api/datasets.rs", "routes", &["/api/keel/v1"]),
        ("api/charts.rs", "routes", &["/api/keel/v1"]),
        ("api/aliases.rs", "routes", &["/api/keel/v1"]),
        ("api/approvals.rs", "routes", &["/api/keel/v1"]),
        ("api/cards.rs", "routes", &["/api/keel/v1"]),
        ("api/ops.rs", "routes", &[""]),
        // Also mounted below /api/3.0/mlflow: the same router, driven here below 2.0.
        ("auth/handlers.rs", "routes", &["/api/2.0/mlflow"]),
        ("auth/handlers.rs", "token_routes", &["/api/keel/v1"]),
        ("auth/session.rs", "session_routes", &["/api/keel/v1"]),
        ("ui.rs", "routes", &[""]),
    ];
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("ui.rs")];
    for dir in ["api", "auth"] {
        for e in std::fs::read_dir(src.join(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            let before = &text[..text.len() - rest.len() + at];
            let router = before
                .rsplit("fn ")
                .next()
                .and_then(|f| f.split('(').next())
                .unwrap()
                .to_string();
            let call = &rest[at + ".route(".len()..];
            let path = call.split('"').nth(1).unwrap();
            // The method router: up to the parenthesis closing `.route(`.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .unwrap()
                .0;
            let methods = &call[..end];
            let (_, _, prefixes) = mounts
                .iter()
                .find(|(f, r, _)| *f == rel && *r == router)
                .unwrap_or_else(|| {
                    panic!("{rel}: router function {router} is not mounted in this test's list")
                });
            for m in ["get", "post", "put", "patch", "delete"] {
                let called = methods.contains(&format!(" {m}("))
                    || methods.contains(&format!(",{m}("))
                    || methods.contains(&format!(".{m}("))
                    || methods.starts_with(&format!("{m}("))
                    || methods.contains(&format!("\n{m}("))
                    || methods.contains(&format!("({m}("));
                if called {
                    for p in *prefixes {
                        out.insert((m.to_uppercase(), format!("{p}{path}")));
                    }
                }
            }
            rest = &call[end..];
        }
    }
    out
}

/// Drives every state-changing route the source declares, in an order that gives each what it
/// needs, and checks the audit log after each: a write leaves at least one entry naming the
/// caller and the request, a read (a search sent as POST) none.
struct Walk<'a> {
    s: &'a TestServer,
    covered: std::collections::BTreeSet<(String, String)>,
    seq: i64,
    /// Who the entries of the next calls must name.
    actor: &'static str,
}

enum Payload {
    Json(Value),
    Bytes(Vec<u8>),
}

impl Walk<'_> {
    async fn call(
        &mut self,
        method: &str,
        route: &str,
        path: &str,
        payload: Payload,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .s
            .http
            .request(m.clone(), format!("{}{path}", self.s.base));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req = match payload {
            Payload::Json(v) => req.json(&v),
            Payload::Bytes(b) => req.body(b),
        };
        let (status, body) = TestServer::answer(req.send().await.unwrap()).await;
        let new = self
            .s
            .meta
            .audit_entries(keel_core::audit::Filter {
                after_seq: Some(self.seq),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(last) = new.last() {
            self.seq = last.seq;
        }
        let action = format!("{method} {}", path.split('?').next().unwrap());
        if !status.is_success() {
            assert!(
                new.is_empty(),
                "{action} failed ({status}) yet wrote {new:?}"
            );
        } else if keel_server::audit::writes(&m, route) {
            assert!(!new.is_empty(), "{action}: a write left no audit entry");
            for e in &new {
                assert_eq!(
                    (e.actor.as_str(), e.action.as_str()),
                    (self.actor, action.as_str()),
                    "{e:?}"
                );
                assert_eq!(e.source, "127.0.0.1", "{e:?}");
            }
        } else {
            assert!(new.is_empty(), "{action}: a read wrote {new:?}");
        }
        self.covered.insert((method.to_string(), route.to_string()));
        (status.as_u16(), body)
    }

    /// A call that must succeed.
    async fn ok(&mut self, method: &str, route: &str, path: &str, body: Value) -> Value {
        self.ok_with(method, route, path, body, &[]).await
    }

    /// A call with extra headers that must succeed.
    async fn ok_with(
        &mut self,
        method: &str,
        route: &str,
        path: &str,
        body: Value,
        extra: &[(&str, &str)],
    ) -> Value {
        let (status, v) = self
            .call(method, route, path, Payload::Json(body), extra)
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }
}

async fn every_write_route_leaves_an_audit_entry(s: Arc<TestServer>) {
    const P: &str = "/api/2.0/mlflow";
    const K: &str = "/api/keel/v1";
    let mut w = Walk {
        s: &s,
        covered: Default::default(),
        seq: s.meta.audit_head().await.unwrap().map_or(0, |h| h.seq),
        actor: "admin",
    };
    let r = |p: &str| format!("{P}{p}");
    let k = |p: &str| format!("{K}{p}");
    // Experiments and runs.
    let e = w
        .ok(
            "POST",
            &r("/experiments/create"),
            &r("/experiments/create"),
            json!({"name": "audited"}),
        )
        .await["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    w.ok(
        "POST",
        &r("/experiments/search"),
        &r("/experiments/search"),
        json!({"max_results": 5}),
    )
    .await;
    w.ok(
        "POST",
        &r("/experiments/search-datasets"),
        &r("/experiments/search-datasets"),
        json!({"experiment_ids": [e]}),
    )
    .await;
    w.ok(
        "POST",
        &r("/experiments/update"),
        &r("/experiments/update"),
        json!({"experiment_id": e, "new_name": "audited-2"}),
    )
    .await;
    w.ok(
        "POST",
        &r("/experiments/set-experiment-tag"),
        &r("/experiments/set-experiment-tag"),
        json!({"experiment_id": e, "key": "k", "value": "v"}),
    )
    .await;
    w.ok(
        "POST",
        &r("/experiments/delete-experiment-tag"),
        &r("/experiments/delete-experiment-tag"),
        json!({"experiment_id": e, "key": "k"}),
    )
    .await;
    let run = w
        .ok(
            "POST",
            &r("/runs/create"),
            &r("/runs/create"),
            json!({"experiment_id": e}),
        )
        .await["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (route, body) in [
        ("/runs/update", json!({"run_id": run, "status": "RUNNING"})),
        (
            "/runs/log-metric",
            json!({"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}),
        ),
        (
            "/runs/log-parameter",
            json!({"run_id": run, "key": "p", "value": "1"}),
        ),
        (
            "/runs/set-tag",
            json!({"run_id": run, "key": "t", "value": "1"}),
        ),
        ("/runs/delete-tag", json!({"run_id": run, "key": "t"})),
        (
            "/runs/log-batch",
            json!({"run_id": run, "metrics": [{"key": "m", "value": 2.0, "timestamp": 2, "step": 1}]}),
        ),
        (
            "/runs/log-inputs",
            json!({"run_id": run, "datasets": [{"dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "{}"}}]}),
        ),
        (
            "/runs/log-model",
            json!({"run_id": run, "model_json": "{\"artifact_path\": \"model\", \"flavors\": {}}"}),
        ),
        ("/runs/search", json!({"experiment_ids": [e]})),
    ] {
        w.ok("POST", &r(route), &r(route), body).await;
    }
    // Logged models.
    let m = w
        .ok(
            "POST",
            &r("/logged-models"),
            &r("/logged-models"),
            json!({"experiment_id": e, "name": "lm", "source_run_id": run}),
        )
        .await["model"]["info"]["model_id"]
        .as_str()
        .unwrap()
        .to_string();
    w.ok(
        "POST",
        &r("/runs/outputs"),
        &r("/runs/outputs"),
        json!({"run_id": run, "models": [{"model_id": m, "step": 0}]}),
    )
    .await;
    w.ok(
        "POST",
        &r("/logged-models/search"),
        &r("/logged-models/search"),
        json!({"experiment_ids": [e]}),
    )
    .await;
    let lm = |p: &str| r(&format!("/logged-models/{m}{p}"));
    w.ok(
        "PATCH",
        &r("/logged-models/{model_id}"),
        &lm(""),
        json!({"status": "LOGGED_MODEL_READY"}),
    )
    .await;
    w.ok(
        "PATCH",
        &r("/logged-models/{model_id}/tags"),
        &lm("/tags"),
        json!({"tags": [{"key": "a", "value": "b"}]}),
    )
    .await;
    w.ok(
        "DELETE",
        &r("/logged-models/{model_id}/tags/{tag_key}"),
        &lm("/tags/a"),
        json!({}),
    )
    .await;
    w.ok(
        "POST",
        &r("/logged-models/{model_id}/params"),
        &lm("/params"),
        json!({"params": [{"key": "x", "value": "1"}]}),
    )
    .await;
    // Artifacts, through the proxy and the UI's upload.
    let art = format!("/api/2.0/mlflow-artifacts/artifacts/{e}/notes.txt");
    let (st, _) = w
        .call(
            "PUT",
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            &art,
            Payload::Bytes(b"hello".to_vec()),
            &[],
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = w
        .call(
            "POST",
            &r("/upload-artifact"),
            &format!("{}?run_uuid={run}&path=up.txt", r("/upload-artifact")),
            Payload::Bytes(b"up".to_vec()),
            &[],
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = w
        .call(
            "DELETE",
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            &art,
            Payload::Json(json!({})),
            &[],
        )
        .await;
    assert_eq!(st, 200);
    for part in ["create", "complete", "abort"] {
        // Multipart uploads are refused (keel streams single uploads): refused, no entry.
        let route = format!("/api/2.0/mlflow-artifacts/mpu/{part}/{{*path}}");
        let path = format!("/api/2.0/mlflow-artifacts/mpu/{part}/{e}/big.bin");
        let (st, _) = w
            .call("POST", &route, &path, Payload::Json(json!({})), &[])
            .await;
        assert!(st >= 400, "{path}: {st}");
    }
    // The registry.
    w.ok(
        "POST",
        &r("/registered-models/create"),
        &r("/registered-models/create"),
        json!({"name": "am"}),
    )
    .await;
    for _ in 0..2 {
        w.ok(
            "POST",
            &r("/model-versions/create"),
            &r("/model-versions/create"),
            json!({"name": "am", "source": format!("runs:/{run}/model"), "run_id": run}),
        )
        .await;
    }
    for (method, route, body) in [
        (
            "POST",
            "/registered-models/get-latest-versions",
            json!({"name": "am"}),
        ),
        (
            "POST",
            "/registered-models/set-tag",
            json!({"name": "am", "key": "k", "value": "v"}),
        ),
        (
            "DELETE",
            "/registered-models/delete-tag",
            json!({"name": "am", "key": "k"}),
        ),
        (
            "POST",
            "/registered-models/alias",
            json!({"name": "am", "alias": "champion", "version": "1"}),
        ),
        (
            "DELETE",
            "/registered-models/alias",
            json!({"name": "am", "alias": "champion"}),
        ),
        (
            "PATCH",
            "/registered-models/update",
            json!({"name": "am", "description": "d"}),
        ),
        (
            "PATCH",
            "/model-versions/update",
            json!({"name": "am", "version": "1", "description": "d"}),
        ),
        (
            "POST",
            "/model-versions/transition-stage",
            json!({"name": "am", "version": "1", "stage": "Staging", "archive_existing_versions": false}),
        ),
        (
            "POST",
            "/model-versions/set-tag",
            json!({"name": "am", "version": "1", "key": "k", "value": "v"}),
        ),
        (
            "DELETE",
            "/model-versions/delete-tag",
            json!({"name": "am", "version": "1", "key": "k"}),
        ),
        (
            "DELETE",
            "/model-versions/delete",
            json!({"name": "am", "version": "2"}),
        ),
        (
            "POST",
            "/registered-models/rename",
            json!({"name": "am", "new_name": "am2"}),
        ),
        // Users, grants (MLflow 2 and 3), roles.
        (
            "POST",
            "/users/create",
            json!({"username": "bob", "password": "bob-password-1"}),
        ),
        (
            "PATCH",
            "/users/update-password",
            json!({"username": "bob", "password": "bob-password-2"}),
        ),
        (
            "PATCH",
            "/users/update-admin",
            json!({"username": "bob", "is_admin": false}),
        ),
        (
            "POST",
            "/experiments/permissions/create",
            json!({"experiment_id": e, "username": "bob", "permission": "READ"}),
        ),
        (
            "PATCH",
            "/experiments/permissions/update",
            json!({"experiment_id": e, "username": "bob", "permission": "EDIT"}),
        ),
        (
            "DELETE",
            "/experiments/permissions/delete",
            json!({"experiment_id": e, "username": "bob"}),
        ),
        (
            "POST",
            "/registered-models/permissions/create",
            json!({"name": "am2", "username": "bob", "permission": "READ"}),
        ),
        (
            "PATCH",
            "/registered-models/permissions/update",
            json!({"name": "am2", "username": "bob", "permission": "MANAGE"}),
        ),
        (
            "DELETE",
            "/registered-models/permissions/delete",
            json!({"name": "am2", "username": "bob"}),
        ),
    ] {
        w.ok(method, &r(route), &r(route), body).await;
    }
    w.ok("POST", &r("/users/permissions/grant"), &r("/users/permissions/grant"), json!({"username": "bob", "resource_type": "experiment", "resource_id": e, "permission": "READ"})).await;
    w.ok(
        "POST",
        &r("/users/permissions/revoke"),
        &r("/users/permissions/revoke"),
        json!({"username": "bob", "resource_type": "experiment", "resource_id": e}),
    )
    .await;
    let role = w
        .ok(
            "POST",
            &r("/roles/create"),
            &r("/roles/create"),
            json!({"name": "readers"}),
        )
        .await["role"]["id"]
        .clone();
    w.ok(
        "PATCH",
        &r("/roles/update"),
        &r("/roles/update"),
        json!({"role_id": role, "description": "who reads"}),
    )
    .await;
    let perm = w
        .ok("POST", &r("/roles/permissions/add"), &r("/roles/permissions/add"), json!({"role_id": role, "resource_type": "experiment", "resource_pattern": "*", "permission": "READ"}))
        .await["role_permission"]["id"]
        .clone();
    w.ok(
        "PATCH",
        &r("/roles/permissions/update"),
        &r("/roles/permissions/update"),
        json!({"role_permission_id": perm, "permission": "EDIT"}),
    )
    .await;
    w.ok(
        "DELETE",
        &r("/roles/permissions/remove"),
        &r("/roles/permissions/remove"),
        json!({"role_permission_id": perm}),
    )
    .await;
    w.ok(
        "POST",
        &r("/roles/assign"),
        &r("/roles/assign"),
        json!({"username": "bob", "role_id": role}),
    )
    .await;
    w.ok(
        "DELETE",
        &r("/roles/unassign"),
        &r("/roles/unassign"),
        json!({"username": "bob", "role_id": role}),
    )
    .await;
    w.ok(
        "DELETE",
        &r("/roles/delete"),
        &r("/roles/delete"),
        json!({"role_id": role}),
    )
    .await;
    // Tokens and a browser session.
    let token = w
        .ok("POST", &k("/tokens"), &k("/tokens"), json!({"name": "ci"}))
        .await["access_token"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.ok(
        "DELETE",
        &k("/tokens/{id}"),
        &k(&format!("/tokens/{token}")),
        json!({}),
    )
    .await;
    let resp = reqwest::Client::new()
        .post(format!("{}{}", s.base, k("/session")))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = resp.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The sign-in above went around the walk: count it, it was logged as admin's.
    let signed_in = s
        .meta
        .audit_entries(keel_core::audit::Filter {
            after_seq: Some(w.seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(signed_in.len(), 1);
    assert_eq!(
        (
            signed_in[0].actor.as_str(),
            signed_in[0].subject.kind.as_str()
        ),
        ("admin", "session")
    );
    assert_eq!(signed_in[0].request.as_ref().unwrap()["password"], "***");
    w.seq = signed_in[0].seq;
    w.covered.insert(("POST".into(), k("/session")));
    let session_only = TestServer {
        http: reqwest::Client::new(),
        ..clone_base(&s)
    };
    let mut ws = Walk {
        s: &session_only,
        covered: Default::default(),
        seq: w.seq,
        actor: "admin",
    };
    let (st, _) = ws
        .call(
            "DELETE",
            &k("/session"),
            &k("/session"),
            Payload::Json(json!({})),
            &[("cookie", cookie.as_str()), ("x-keel-csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(st, 200);
    w.seq = ws.seq;
    w.covered.extend(ws.covered);
    // Datasets and their objects.
    let bytes = b"a,b\n1,2\n".to_vec();
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let (st, _) = w
        .call(
            "PUT",
            &k("/data-objects/{hash}"),
            &k(&format!("/data-objects/{hash}")),
            Payload::Bytes(bytes.clone()),
            &[],
        )
        .await;
    assert_eq!(st, 200);
    w.ok(
        "POST",
        &k("/data-objects/missing"),
        &k("/data-objects/missing"),
        json!({"hashes": [hash]}),
    )
    .await;
    w.ok("POST", &k("/datasets/{name}/versions"), &k("/datasets/d1/versions"), json!({"hash": hash, "kind": "file", "format": "csv", "size_bytes": bytes.len(), "file_count": 1, "source": "d1.csv"})).await;
    w.ok(
        "POST",
        &k("/datasets/{name}/versions/{version}/validations"),
        &k("/datasets/d1/versions/1/validations"),
        json!({"report": {"passed": true, "failed": 0, "results": []}}),
    )
    .await;
    // A protected alias, moved by a request another admin approves, then lifted.
    w.ok("POST", &k("/registered-models/protected-aliases"), &k("/registered-models/protected-aliases"), json!({"name": "am2", "alias": "champion", "gates": {"metrics": [{"key": "m", "min": 0.0}]}})).await;
    let first = file_request(&mut w).await;
    w.ok(
        "POST",
        &r("/users/create"),
        &r("/users/create"),
        json!({"username": "carol", "password": "carol-password-1"}),
    )
    .await;
    w.ok(
        "PATCH",
        &r("/users/update-admin"),
        &r("/users/update-admin"),
        json!({"username": "carol", "is_admin": true}),
    )
    .await;
    let carol = format!("Basic {}", {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("carol:carol-password-1")
    });
    let as_carol = [("authorization", carol.as_str())];
    w.actor = "carol";
    let approved = w
        .ok_with(
            "POST",
            &k("/alias-requests/approve"),
            &k("/alias-requests/approve"),
            json!({"name": "am2", "id": first}),
            &as_carol,
        )
        .await;
    assert_eq!(approved["alias_request"]["state"], "applied", "{approved}");
    w.actor = "admin";
    let second = file_request(&mut w).await;
    w.actor = "carol";
    w.ok_with(
        "POST",
        &k("/alias-requests/reject"),
        &k("/alias-requests/reject"),
        json!({"name": "am2", "id": second, "comment": "not now"}),
        &as_carol,
    )
    .await;
    w.actor = "admin";
    w.ok(
        "DELETE",
        &k("/registered-models/protected-aliases"),
        &k("/registered-models/protected-aliases"),
        json!({"name": "am2", "alias": "champion"}),
    )
    .await;
    // Deletions last.
    for (method, route, body) in [
        ("DELETE", "/users/delete", json!({"username": "bob"})),
        (
            "DELETE",
            "/registered-models/delete",
            json!({"name": "am2"}),
        ),
        ("POST", "/runs/delete", json!({"run_id": run})),
        ("POST", "/runs/restore", json!({"run_id": run})),
        ("POST", "/experiments/delete", json!({"experiment_id": e})),
        ("POST", "/experiments/restore", json!({"experiment_id": e})),
    ] {
        w.ok(method, &r(route), &r(route), body).await;
    }
    w.ok(
        "DELETE",
        &r("/logged-models/{model_id}"),
        &lm(""),
        json!({}),
    )
    .await;

    // Every state-changing route the source declares was driven.
    let declared: std::collections::BTreeSet<(String, String)> = declared_routes()
        .into_iter()
        .filter(|(m, _)| m != "GET")
        .collect();
    let missing: Vec<_> = declared.difference(&w.covered).collect();
    assert!(
        missing.is_empty(),
        "state-changing routes this test does not drive: {missing:?}"
    );
    let unknown: Vec<_> = w.covered.difference(&declared).collect();
    assert!(
        unknown.is_empty(),
        "driven routes the source does not declare: {unknown:?}"
    );
    // And the log holds together.
    let v = keel_core::audit::verify(&*s.meta, &[]).await.unwrap();
    assert!(v.intact(), "{:?}", v.problems);
}

/// Asks (as the walk's caller) to point `am2`'s protected `champion` at version 1.
async fn file_request(w: &mut Walk<'_>) -> Value {
    let route = "/api/keel/v1/alias-requests";
    let body = json!({"name": "am2", "alias": "champion", "version": "1", "reason": "better"});
    w.ok("POST", route, route, body).await["alias_request"]["id"].clone()
}

/// A second handle on the same server (its own HTTP client).
fn clone_base(s: &TestServer) -> TestServer {
    TestServer {
        base: s.base.clone(),
        http: s.http.clone(),
        dir: tempfile::tempdir().unwrap(),
        meta: s.meta.clone(),
        pg_schema: None,
    }
}

/// Runs each test body on SQLite and on PostgreSQL, with auth and the audit log on.
macro_rules! on_both_audited {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let s = Arc::new(TestServer::start_with(Backend::Sqlite, true).await.unwrap());
                super::$name(s.clone()).await;
                s.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(s) = TestServer::start_with(Backend::Postgres, true).await else { return };
                let s = Arc::new(s);
                super::$name(s.clone()).await;
                s.finish().await;
            }
        }
    )*};
}

on_both_audited!(every_write_route_leaves_an_audit_entry);

/// Sends `method` to keel's API path with a JSON body as `user` (password `<user>-password-1`,
/// or the admin's).
async fn as_user(
    s: &TestServer,
    user: &str,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let password = match user {
        "admin" => ADMIN_PASSWORD.to_string(),
        u => format!("{u}-password-1"),
    };
    let url = format!("{}{path}", s.base);
    let req = reqwest::Client::new()
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .basic_auth(user, Some(password));
    let req = match method {
        "GET" => req.query(
            &body
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect::<Vec<_>>(),
        ),
        _ => req.json(&body),
    };
    let (status, v) = TestServer::answer(req.send().await.unwrap()).await;
    (status.as_u16(), v)
}

/// Where `alias` of `name` points, or `None`.
async fn alias_of(s: &TestServer, name: &str, alias: &str) -> Option<String> {
    let (status, v) = as_user(
        s,
        "admin",
        "GET",
        "/api/2.0/mlflow/registered-models/alias",
        json!({"name": name, "alias": alias}),
    )
    .await;
    (status == 200).then(|| v["model_version"]["version"].as_str().unwrap().to_string())
}

/// Makes the users the approval tests act as: `m1` and `m2` admins, `ed` a plain user.
async fn approval_users(s: &TestServer) {
    for (user, admin) in [("m1", true), ("m2", true), ("ed", false)] {
        let (st, v) = as_user(
            s,
            "admin",
            "POST",
            "/api/2.0/mlflow/users/create",
            json!({"username": user, "password": format!("{user}-password-1")}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        if admin {
            let (st, _) = as_user(
                s,
                "admin",
                "PATCH",
                "/api/2.0/mlflow/users/update-admin",
                json!({"username": user, "is_admin": true}),
            )
            .await;
            assert_eq!(st, 200);
        }
    }
}

async fn protected_aliases_move_only_through_approved_requests(s: Arc<TestServer>) {
    approval_users(&s).await;
    let e = s.experiment("guarded").await;
    let mut versions = Vec::new();
    for acc in [0.8, 0.95] {
        let run = s.run(&e).await;
        s.ok(
            "runs/log-metric",
            json!({"run_id": run, "key": "acc", "value": acc, "timestamp": 1, "step": 0}),
        )
        .await;
        let mv = as_user(
            &s,
            "admin",
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            json!({"name": "guarded"}),
        )
        .await;
        assert!(mv.0 == 200 || versions.len() == 1, "{mv:?}");
        let (st, v) = as_user(
            &s,
            "admin",
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            json!({"name": "guarded", "source": format!("runs:/{run}/model"), "run_id": run}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        versions.push(v["model_version"]["version"].as_str().unwrap().to_string());
    }
    let (st, _) = as_user(
        &s,
        "admin",
        "POST",
        "/api/2.0/mlflow/experiments/permissions/create",
        json!({"experiment_id": e, "username": "ed", "permission": "EDIT"}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = as_user(
        &s,
        "admin",
        "POST",
        "/api/2.0/mlflow/registered-models/permissions/create",
        json!({"name": "guarded", "username": "ed", "permission": "EDIT"}),
    )
    .await;
    assert_eq!(st, 200);
    let protect = json!({"name": "guarded", "alias": "champion", "gates": {"metrics": [{"key": "acc", "min": 0.9}], "model_card": true}});
    // Protecting takes MANAGE.
    let (st, _) = as_user(
        &s,
        "ed",
        "POST",
        "/api/keel/v1/registered-models/protected-aliases",
        protect.clone(),
    )
    .await;
    assert_eq!(st, 403);
    let (st, v) = as_user(
        &s,
        "m1",
        "POST",
        "/api/keel/v1/registered-models/protected-aliases",
        protect,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // Bad gates are refused.
    let (st, v) = as_user(
        &s,
        "m1",
        "POST",
        "/api/keel/v1/registered-models/protected-aliases",
        json!({"name": "guarded", "alias": "x", "gates": {"metrics": [{"key": "acc"}]}}),
    )
    .await;
    assert_eq!(
        (st, v["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{v}"
    );
    // No direct way: set, remove, as an admin too.
    for (method, body) in [
        (
            "POST",
            json!({"name": "guarded", "alias": "champion", "version": "1"}),
        ),
        ("DELETE", json!({"name": "guarded", "alias": "champion"})),
    ] {
        let (st, v) = as_user(
            &s,
            "admin",
            method,
            "/api/2.0/mlflow/registered-models/alias",
            body,
        )
        .await;
        assert_eq!(
            (st, v["error_code"].as_str()),
            (403, Some("PERMISSION_DENIED")),
            "{v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains("is protected"),
            "{v}"
        );
    }
    // ed asks for version 1: it fails the metric and the card gates.
    let request = |user: &'static str, version: &str| {
        let s = s.clone();
        let body =
            json!({"name": "guarded", "alias": "champion", "version": version, "reason": "try"});
        async move {
            let (st, v) = as_user(&s, user, "POST", "/api/keel/v1/alias-requests", body).await;
            assert_eq!(st, 200, "{v}");
            v["alias_request"]["id"].as_i64().unwrap()
        }
    };
    let decide = |user: &'static str, how: &'static str, id: i64| {
        let s = s.clone();
        async move {
            as_user(
                &s,
                user,
                "POST",
                &format!("/api/keel/v1/alias-requests/{how}"),
                json!({"name": "guarded", "id": id}),
            )
            .await
        }
    };
    let r1 = request("ed", &versions[0]).await;
    let (st, v) = decide("m1", "approve", r1).await;
    assert_eq!(
        (st, v["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{v}"
    );
    let gates = v["gates"].as_array().unwrap();
    assert_eq!(
        gates.iter().filter(|g| g["passed"] == false).count(),
        2,
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("acc = 0.8"), "{v}");
    assert_eq!(alias_of(&s, "guarded", "champion").await, None);
    // ed cannot decide (no MANAGE); m1 cannot approve its own request.
    let r2 = request("m1", &versions[1]).await;
    let (st, _) = decide("ed", "approve", r2).await;
    assert_eq!(st, 403);
    let (st, v) = decide("m1", "approve", r2).await;
    assert_eq!(st, 403, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("another user"),
        "{v}"
    );
    // Version 2 passes the metric; the card is missing until written.
    let (st, v) = decide("m2", "approve", r2).await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("keel.card.intended_use"),
        "{v}"
    );
    for (key, value) in [
        (
            "keel.card.intended_use",
            "churn scoring for retention offers",
        ),
        ("keel.card.limitations", "trained on 2025 customers only"),
    ] {
        let (st, _) = as_user(
            &s,
            "ed",
            "POST",
            "/api/2.0/mlflow/model-versions/set-tag",
            json!({"name": "guarded", "version": versions[1], "key": key, "value": value}),
        )
        .await;
        assert_eq!(st, 200);
    }
    let (st, v) = decide("m2", "approve", r2).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["alias_request"]["state"], "applied");
    assert_eq!(v["alias_request"]["decided_by"], "m2");
    assert_eq!(
        alias_of(&s, "guarded", "champion").await.as_deref(),
        Some(versions[1].as_str())
    );
    // Decided once: a second decision is refused; ed's failed request is rejected by m2.
    let (st, v) = decide("m2", "reject", r2).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = decide("m2", "reject", r1).await;
    assert_eq!(
        (st, v["alias_request"]["state"].as_str()),
        (200, Some("rejected"))
    );
    let (_, listed) = as_user(
        &s,
        "ed",
        "GET",
        "/api/keel/v1/alias-requests",
        json!({"name": "guarded", "state": "applied"}),
    )
    .await;
    assert_eq!(
        listed["alias_requests"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    // The audit log has the move, by m2, with the state before and after.
    let moved = s
        .meta
        .audit_entries(keel_core::audit::Filter {
            actor: Some("m2".into()),
            action: Some("approve".into()),
            kind: Some("registered_model".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let last = moved.last().unwrap();
    assert!(
        last.before.as_ref().unwrap().get("aliases").is_none(),
        "{last:?}"
    );
    assert_eq!(
        last.after.as_ref().unwrap()["aliases"][0]["version"],
        versions[1].as_str()
    );
    // Nor around it: deleting the version it points to, or the model.
    let (st, _) = as_user(
        &s,
        "admin",
        "DELETE",
        "/api/2.0/mlflow/model-versions/delete",
        json!({"name": "guarded", "version": versions[1]}),
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = as_user(
        &s,
        "admin",
        "DELETE",
        "/api/2.0/mlflow/registered-models/delete",
        json!({"name": "guarded"}),
    )
    .await;
    assert_eq!(st, 403);
    // A rename keeps the protection.
    let (st, _) = as_user(
        &s,
        "admin",
        "POST",
        "/api/2.0/mlflow/registered-models/rename",
        json!({"name": "guarded", "new_name": "guarded-2"}),
    )
    .await;
    assert_eq!(st, 200);
    let (_, p) = as_user(
        &s,
        "ed",
        "GET",
        "/api/keel/v1/registered-models/protected-aliases",
        json!({"name": "guarded-2"}),
    )
    .await;
    assert_eq!(p["protected_aliases"][0]["alias"], "champion", "{p}");
    let (st, _) = as_user(
        &s,
        "admin",
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        json!({"name": "guarded-2", "alias": "champion", "version": versions[0]}),
    )
    .await;
    assert_eq!(st, 403);
    // Lifted, it moves directly again.
    let (st, _) = as_user(
        &s,
        "m1",
        "DELETE",
        "/api/keel/v1/registered-models/protected-aliases",
        json!({"name": "guarded-2", "alias": "champion"}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = as_user(
        &s,
        "admin",
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        json!({"name": "guarded-2", "alias": "champion", "version": versions[0]}),
    )
    .await;
    assert_eq!(st, 200);
}

/// One call of the registry's alias, stage and version routes, on one model.
#[derive(Debug, Clone)]
enum RegistryCall {
    SetAlias(&'static str, u8),
    DeleteAlias(&'static str),
    Transition(u8, &'static str, bool),
    DeleteVersion(u8),
    CreateVersion,
    UpdateVersion(u8),
    Rename,
    DeleteModel,
    Approve(u8),
}

fn registry_call() -> impl proptest::strategy::Strategy<Value = RegistryCall> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (prop_oneof![Just("champion"), Just("other")], 1..4u8).prop_map(|(a, v)| RegistryCall::SetAlias(a, v)),
        2 => prop_oneof![Just("champion"), Just("other")].prop_map(RegistryCall::DeleteAlias),
        2 => (1..4u8, prop_oneof![Just("Production"), Just("Staging"), Just("Archived")], any::<bool>())
            .prop_map(|(v, st, archive)| RegistryCall::Transition(v, st, archive)),
        2 => (1..4u8).prop_map(RegistryCall::DeleteVersion),
        1 => Just(RegistryCall::CreateVersion),
        1 => (1..4u8).prop_map(RegistryCall::UpdateVersion),
        1 => Just(RegistryCall::Rename),
        1 => Just(RegistryCall::DeleteModel),
        2 => (1..4u8).prop_map(RegistryCall::Approve),
    ]
}

/// Random sequences of every registry route that can touch an alias, by an admin, against a
/// protected `champion`: it only ever changes through an approved request, and every direct
/// attempt is refused with 403.
async fn no_registry_route_moves_a_protected_alias(s: Arc<TestServer>) {
    use proptest::prelude::{prop_assert, prop_assert_eq};
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    approval_users(&s).await;
    let e = s.experiment("bypass").await;
    let run = s.run(&e).await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let result = tokio::task::block_in_place(|| {
        runner.run(&proptest::collection::vec(registry_call(), 1..14), |calls| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            handle.block_on(async {
                let mut name = format!("bypass-{n}");
                let api = "/api/2.0/mlflow";
                let call = |user: &'static str, method: &'static str, path: String, body: Value| {
                    let s = s.clone();
                    async move { as_user(&s, user, method, &path, body).await }
                };
                call("admin", "POST", format!("{api}/registered-models/create"), json!({"name": name})).await;
                for _ in 0..3 {
                    call("admin", "POST", format!("{api}/model-versions/create"), json!({"name": name, "source": format!("runs:/{run}/model"), "run_id": run})).await;
                }
                let (st, _) = call("m1", "POST", "/api/keel/v1/registered-models/protected-aliases".into(), json!({"name": name, "alias": "champion"})).await;
                prop_assert_eq!(st, 200);
                let mut expected: Option<String> = None;
                for c in &calls {
                    let (st, v) = match c {
                        RegistryCall::SetAlias(a, v) => call("admin", "POST", format!("{api}/registered-models/alias"), json!({"name": name, "alias": a, "version": v.to_string()})).await,
                        RegistryCall::DeleteAlias(a) => call("admin", "DELETE", format!("{api}/registered-models/alias"), json!({"name": name, "alias": a})).await,
                        RegistryCall::Transition(v, stage, archive) => call("admin", "POST", format!("{api}/model-versions/transition-stage"), json!({"name": name, "version": v.to_string(), "stage": stage, "archive_existing_versions": archive})).await,
                        RegistryCall::DeleteVersion(v) => call("admin", "DELETE", format!("{api}/model-versions/delete"), json!({"name": name, "version": v.to_string()})).await,
                        RegistryCall::CreateVersion => call("admin", "POST", format!("{api}/model-versions/create"), json!({"name": name, "source": format!("runs:/{run}/model"), "run_id": run})).await,
                        RegistryCall::UpdateVersion(v) => call("admin", "PATCH", format!("{api}/model-versions/update"), json!({"name": name, "version": v.to_string(), "description": "d"})).await,
                        RegistryCall::Rename => {
                            let new = format!("{name}-r");
                            let r = call("admin", "POST", format!("{api}/registered-models/rename"), json!({"name": name, "new_name": new})).await;
                            if r.0 == 200 {
                                name = new;
                            }
                            r
                        }
                        RegistryCall::DeleteModel => call("admin", "DELETE", format!("{api}/registered-models/delete"), json!({"name": name})).await,
                        RegistryCall::Approve(v) => {
                            let (st, r) = call("m1", "POST", "/api/keel/v1/alias-requests".into(), json!({"name": name, "alias": "champion", "version": v.to_string()})).await;
                            if st == 200 {
                                let id = r["alias_request"]["id"].as_i64().unwrap();
                                let d = call("m2", "POST", "/api/keel/v1/alias-requests/approve".into(), json!({"name": name, "id": id})).await;
                                if d.0 == 200 {
                                    expected = Some(v.to_string());
                                }
                                d
                            } else {
                                (st, r)
                            }
                        }
                    };
                    let touches_champion = match c {
                        RegistryCall::SetAlias(a, _) | RegistryCall::DeleteAlias(a) => *a == "champion",
                        RegistryCall::DeleteModel => true,
                        RegistryCall::DeleteVersion(v) => expected.as_deref() == Some(v.to_string().as_str()),
                        _ => false,
                    };
                    if touches_champion {
                        prop_assert_eq!(st, 403, "{:?} was let through: {}", c, v);
                    }
                    prop_assert!(st != 500, "{:?}: {}", c, v);
                    let now = alias_of(&s, &name, "champion").await;
                    prop_assert_eq!(&now, &expected, "after {:?}", c);
                }
                Ok::<(), TestCaseError>(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

on_both_audited!(
    protected_aliases_move_only_through_approved_requests,
    no_registry_route_moves_a_protected_alias,
);

/// A random JSON value: any shape, with numbers and texts that stress parsers (huge, negative,
/// fractional; quotes, NUL, non-ASCII, path components), nested a few levels.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just(1e308),
            Just(-0.0),
            Just(0.5),
            Just(9.007_199_254_740_993e15)
        ]
        .prop_map(|x| json!(x)),
        prop_oneof![
            Just(String::new()),
            Just("../../etc/passwd".to_string()),
            Just("a\u{0}b".to_string()),
            Just("'; DROP TABLE runs; --".to_string()),
            Just("ünïcødé ✓".to_string()),
            Just("x".repeat(10_000)),
            Just("1".to_string()),
            Just("NaN".to_string()),
            "[a-z0-9_./-]{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(field(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names the API reads, and others.
fn field() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        4 => proptest::sample::select(vec![
            "run_id", "experiment_id", "experiment_ids", "name", "new_name", "key", "value",
            "timestamp", "step", "metrics", "params", "tags", "version", "alias", "source",
            "filter", "max_results", "order_by", "page_token", "status", "username", "password",
            "permission", "gates", "id", "stage", "datasets", "models", "model_id", "description",
            "run_name", "start_time", "end_time", "view_type", "artifact_location",
        ])
        .prop_map(String::from),
        1 => "[a-z_]{1,10}",
    ]
}

/// Random bodies (any JSON, or bytes that are not JSON) to every state-changing JSON route of
/// MLflow's and keel's APIs, as a signed-in admin with the audit log on: none is answered 5xx,
/// every refusal is MLflow's error JSON, the server stays up, and the audit log stays whole.
async fn request_bodies_never_break_the_server(s: Arc<TestServer>) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let routes: Vec<(String, String)> = declared_routes()
        .into_iter()
        .filter(|(m, p)| {
            m != "GET"
                && (p.starts_with("/api/2.0/mlflow/") || p.starts_with("/api/keel/v1/"))
                // Data objects are raw bytes addressed by their hash, not JSON.
                && !p.contains("data-objects")
        })
        .collect();
    assert!(routes.len() > 60, "{routes:?}");
    let e = s.experiment("bodies").await;
    let run = s.run(&e).await;
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    let body = prop_oneof![
        6 => any_json().prop_map(|v| v.to_string()),
        1 => proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        1 => Just(format!("{{\"run_id\": \"{run}\", \"experiment_id\": \"{e}\"}}")),
    ];
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let result = tokio::task::block_in_place(|| {
        runner.run(
            &(proptest::sample::select(routes.clone()), body),
            |((method, route), body)| {
                handle.block_on(async {
                    // Path parameters get a plain word or an id that exists.
                    let path = route
                        .replace("{model_id}", "m-0123456789abcdef0123456789abcdef")
                        .replace("{name}", "some-name")
                        .replace("{version}", "1")
                        .replace("{hash}", &"ab".repeat(32))
                        .replace("{id}", "1")
                        .replace("{*path}", "x");
                    let resp = s
                        .http
                        .request(method.parse().unwrap(), format!("{}{path}", s.base))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    *seen.lock().unwrap().entry(status).or_default() += 1;
                    let text = resp.text().await.unwrap();
                    prop_assert!(
                        status < 500,
                        "{} {} {}: {} {}",
                        method,
                        path,
                        body,
                        status,
                        text
                    );
                    if status >= 400 {
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        prop_assert!(
                            v["error_code"].is_string() && v["message"].is_string(),
                            "{} {} {}: {} is not MLflow's error JSON: {}",
                            method,
                            path,
                            body,
                            status,
                            text
                        );
                    }
                    Ok::<(), TestCaseError>(())
                })
            },
        )
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // A NUL character, which PostgreSQL cannot store: refused alike on both engines.
    let (status, answer) = s
        .post(
            "runs/set-tag",
            json!({"run_id": run, "key": "k", "value": "a\u{0}b"}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error_code"], "INVALID_PARAMETER_VALUE");
    let (status, answer) = s
        .post(
            "runs/log-batch",
            json!({"run_id": run, "params": [{"key": "p", "value": "a\u{0}b"}]}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("params[0].value"),
        "{answer}"
    );
    let resp = s
        .http
        .post(format!("{}/api/keel/v1/tokens", s.base))
        .header("content-type", "application/json")
        .body(r#"["a\u0000b"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // The bodies reached the handlers: some were taken, most refused.
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.contains_key(&200) && seen.contains_key(&400),
        "{seen:?}"
    );
    let (status, _) = s.raw("GET", "/health", "").await;
    assert_eq!(status, 200);
    let v = keel_core::audit::verify(&*s.meta, &[]).await.unwrap();
    assert!(v.intact(), "{:?}", v.problems);
}

/// Random artifact paths (`..`, `.`, encoded slashes and dots, backslashes, NUL, absolute
/// paths, drive letters, non-ASCII) written, read, listed and deleted: no answer is 5xx, no
/// file appears outside the artifact folder, and a file beside it is never read.
async fn artifact_paths_never_escape(s: Arc<TestServer>) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let secret = "the file beside the artifact folder";
    std::fs::write(s.dir.path().join("secret.txt"), secret).unwrap();
    let before: std::collections::BTreeSet<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let segment = proptest::sample::select(vec![
        "..",
        ".",
        "a",
        "b.txt",
        "%2e%2e",
        "%2E%2E",
        "..%2f",
        "%2f",
        "%5c",
        "\\",
        "a\\..",
        "%00",
        "",
        "~",
        "C:",
        "secret.txt",
        "ünï",
        ".%2e",
        "%252e%252e",
        "artifacts",
        " ",
        "a b",
    ]);
    let path = proptest::collection::vec(segment, 1..6).prop_map(|parts| parts.join("/"));
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<(u8, u16), usize>::new());
    let result = tokio::task::block_in_place(|| {
        runner.run(&(path, 0..4u8), |(path, verb)| {
            handle.block_on(async {
                let url = match verb {
                    0..=2 => format!("/api/2.0/mlflow-artifacts/artifacts/{path}"),
                    _ => format!("/api/2.0/mlflow-artifacts/artifacts?path={path}"),
                };
                let method = ["PUT", "GET", "DELETE", "GET"][verb as usize];
                let (status, answer) = s.raw(method, &url, "written").await;
                *seen.lock().unwrap().entry((verb, status)).or_default() += 1;
                prop_assert!(status < 500 && status > 0, "{} {}: {}", method, url, answer);
                prop_assert!(
                    !answer.contains(secret),
                    "{} {} read the file beside: {}",
                    method,
                    url,
                    answer
                );
                Ok::<(), TestCaseError>(())
            })
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Some writes were taken and some refused.
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.contains_key(&(0, 200)) && seen.contains_key(&(0, 400)),
        "{seen:?}"
    );
    let after: std::collections::BTreeSet<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("keel.db"))
        .collect();
    let new: Vec<_> = after.difference(&before).collect();
    assert!(
        new.iter().all(|n| *n == "artifacts"),
        "written outside the artifact folder: {new:?}"
    );
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("secret.txt")).unwrap(),
        secret
    );
}

on_both_audited!(request_bodies_never_break_the_server);
on_both_backends!(artifact_paths_never_escape);
