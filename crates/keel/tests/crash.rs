//! Durability: `kill -9` the server while 4 clients log; after a restart on the same files,
//! every write the server acknowledged is there.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

async fn post(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    body: Value,
) -> Result<Value, String> {
    let resp = http
        .post(format!("{base}/api/2.0/mlflow/{endpoint}"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!("{status}: {v}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::Server::start(dir.path(), 0);
    let base = server.url.clone();
    let http = reqwest::Client::new();
    let exp = post(
        &http,
        &base,
        "experiments/create",
        json!({ "name": "crash" }),
    )
    .await
    .unwrap()["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();

    let stop = Arc::new(AtomicBool::new(false));
    // Writes each client got acknowledged so far.
    let counts: Arc<Vec<std::sync::atomic::AtomicUsize>> = Arc::new(
        (0..4)
            .map(|_| std::sync::atomic::AtomicUsize::new(0))
            .collect(),
    );
    let mut clients = Vec::new();
    for c in 0..4 {
        let (http, base, exp, stop) = (http.clone(), base.clone(), exp.clone(), stop.clone());
        let counts = counts.clone();
        clients.push(tokio::spawn(async move {
            let run = post(&http, &base, "runs/create", json!({ "experiment_id": exp, "run_name": format!("client-{c}") })).await.unwrap()["run"]["info"]["run_id"].as_str().unwrap().to_string();
            let mut acked = Vec::new();
            let mut step = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({
                    "run_id": run,
                    "metrics": [{ "key": "m", "value": step as f64, "timestamp": step, "step": step }],
                    "params": [{ "key": format!("p{step}"), "value": step.to_string() }],
                    "tags": [{ "key": "last", "value": step.to_string() }],
                });
                match post(&http, &base, "runs/log-batch", body).await {
                    Ok(_) => {
                        acked.push(step);
                        counts[c].fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => break, // the server died mid-request: not acknowledged
                }
                step += 1;
            }
            (run, acked)
        }));
    }
    // Kill the server once every client has had writes acknowledged (however slowly this
    // machine runs them), in the middle of the load.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while counts.iter().any(|n| n.load(Ordering::Relaxed) < 500)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for c in clients {
        results.push(c.await.unwrap());
    }

    let server = support::Server::start(dir.path(), 0);
    let mut total = 0;
    for (run, acked) in results {
        assert!(
            !acked.is_empty(),
            "a client got no write acknowledged before the kill"
        );
        total += acked.len();
        let hist: Value = http
            .get(format!("{}/api/2.0/mlflow/metrics/get-history", server.url))
            .query(&[("run_id", run.as_str()), ("metric_key", "m")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored: std::collections::BTreeSet<i64> = hist["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["step"].as_i64().unwrap())
            .collect();
        for s in &acked {
            assert!(
                stored.contains(s),
                "run {run}: acknowledged step {s} lost ({} stored, {} acked)",
                stored.len(),
                acked.len()
            );
        }
        let r: Value = http
            .get(format!("{}/api/2.0/mlflow/runs/get", server.url))
            .query(&[("run_id", run.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let params = r["run"]["data"]["params"].as_array().unwrap();
        for s in &acked {
            assert!(
                params.iter().any(|p| p["key"] == format!("p{s}")),
                "run {run}: acknowledged param p{s} lost"
            );
        }
    }
    println!("{total} acknowledged batches all present after kill -9");
}
