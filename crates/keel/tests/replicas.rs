//! Several `keel server` processes on one PostgreSQL behave as one service: 3 servers start
//! together (migrating once), 8 clients spread over them log metrics, params and tags and
//! register versions of one shared model at the same time, and afterwards every acknowledged
//! write is present exactly once, read back through a server that did not take it; version
//! numbers are unique and gapless.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

const SERVERS: usize = 3;
const CLIENTS: usize = 8;
const BATCHES: usize = 60;
const METRICS_PER_BATCH: usize = 20;
const VERSIONS_PER_CLIENT: usize = 15;

fn call(addr: &str, method: &str, endpoint: &str, body: &Value) -> (u16, Value) {
    let (status, raw) = support::http_json(
        addr,
        method,
        &format!("/api/2.0/mlflow/{endpoint}"),
        body.to_string().as_bytes(),
    );
    let v = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    (status, v)
}

fn ok(addr: &str, endpoint: &str, body: Value) -> Value {
    let (status, v) = call(addr, "POST", endpoint, &body);
    assert_eq!(status, 200, "{endpoint} on {addr}: {v}");
    v
}

fn get(addr: &str, endpoint: &str) -> Value {
    let (status, raw) = support::http(addr, "GET", &format!("/api/2.0/mlflow/{endpoint}"), b"");
    assert_eq!(status, 200, "{endpoint}: {}", String::from_utf8_lossy(&raw));
    serde_json::from_slice(&raw).unwrap()
}

/// What one client saw acknowledged.
#[derive(Default)]
struct Acked {
    run_id: String,
    steps: BTreeSet<i64>,
    params: BTreeSet<String>,
    shared_tags: BTreeSet<String>,
    versions: Vec<i64>,
}

#[test]
fn three_servers_on_one_postgres_act_as_one() {
    let Some(schema) = support::PgSchema::create("three_servers_on_one_postgres_act_as_one") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let artifacts = dir.path().join("artifacts").display().to_string();
    // Started together: the migration runs once, under PostgreSQL's advisory lock.
    let servers: Vec<support::Server> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SERVERS)
            .map(|i| {
                let (dir, url, artifacts) =
                    (dir.path().join(format!("s{i}")), &schema.url, &artifacts);
                s.spawn(move || {
                    std::fs::create_dir_all(&dir).unwrap();
                    support::Server::launch(&dir, 0, url, artifacts, &[])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let addrs: Vec<String> = servers
        .iter()
        .map(|s| s.url.trim_start_matches("http://").to_string())
        .collect();

    let exp = ok(&addrs[0], "experiments/create", json!({"name": "replicas"}))["experiment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let shared_run =
        ok(&addrs[1], "runs/create", json!({"experiment_id": exp}))["run"]["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string();
    ok(
        &addrs[2],
        "registered-models/create",
        json!({"name": "shared"}),
    );

    let acked: Vec<Acked> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (addrs, exp, shared_run) = (&addrs, &exp, &shared_run);
                s.spawn(move || {
                    let mut a = Acked::default();
                    // Each request goes to the next server in turn.
                    let addr = |n: usize| &addrs[(c + n) % SERVERS];
                    a.run_id = ok(addr(0), "runs/create", json!({"experiment_id": exp}))["run"]
                        ["info"]["run_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    for b in 0..BATCHES {
                        let metrics: Vec<Value> = (0..METRICS_PER_BATCH)
                            .map(|m| {
                                let step = (b * METRICS_PER_BATCH + m) as i64;
                                json!({"key": "loss", "value": step as f64 / 7.0, "timestamp": 1000 + step, "step": step})
                            })
                            .collect();
                        let param = format!("p{b}");
                        let (status, v) = call(
                            addr(b),
                            "POST",
                            "runs/log-batch",
                            &json!({"run_id": a.run_id, "metrics": metrics, "params": [{"key": param, "value": "x"}]}),
                        );
                        assert_eq!(status, 200, "log-batch: {v}");
                        a.steps.extend((0..METRICS_PER_BATCH).map(|m| (b * METRICS_PER_BATCH + m) as i64));
                        a.params.insert(param);
                        // Every client also writes tags on one shared run, through every server.
                        let tag = format!("c{c}-t{b}");
                        ok(addr(b + 1), "runs/set-tag", json!({"run_id": shared_run, "key": tag, "value": "v"}));
                        a.shared_tags.insert(tag);
                    }
                    for v in 0..VERSIONS_PER_CLIENT {
                        let r = ok(
                            addr(v),
                            "model-versions/create",
                            json!({"name": "shared", "source": format!("runs:/{}/model", a.run_id), "run_id": a.run_id}),
                        );
                        a.versions.push(r["model_version"]["version"].as_str().unwrap().parse().unwrap());
                    }
                    a
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // Read everything back, each client's data through a server other than its first one.
    for (c, a) in acked.iter().enumerate() {
        let reader = &addrs[(c + 1) % SERVERS];
        let hist = get(
            reader,
            &format!(
                "metrics/get-history?run_id={}&metric_key=loss&max_results=25000",
                a.run_id
            ),
        );
        let steps: Vec<i64> = hist["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["step"].as_i64().unwrap())
            .collect();
        assert_eq!(
            steps.len(),
            a.steps.len(),
            "client {c}: every value exactly once"
        );
        assert_eq!(steps.iter().copied().collect::<BTreeSet<_>>(), a.steps);
        let run = get(reader, &format!("runs/get?run_id={}", a.run_id));
        let params: BTreeSet<String> = run["run"]["data"]["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(params, a.params, "client {c}: params");
        let latest = &run["run"]["data"]["metrics"][0];
        assert_eq!(
            latest["step"],
            (BATCHES * METRICS_PER_BATCH - 1) as i64,
            "latest value"
        );
    }
    let shared = get(&addrs[0], &format!("runs/get?run_id={shared_run}"));
    let tags: BTreeSet<String> = shared["run"]["data"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_string())
        .filter(|k| !k.starts_with("mlflow."))
        .collect();
    let expected: BTreeSet<String> = acked.iter().flat_map(|a| a.shared_tags.clone()).collect();
    assert_eq!(
        tags, expected,
        "tags written through all servers on one run"
    );

    // Version numbers: unique, gapless, each where its client saw it.
    let mut all: Vec<i64> = acked.iter().flat_map(|a| a.versions.clone()).collect();
    all.sort_unstable();
    let want: Vec<i64> = (1..=(CLIENTS * VERSIONS_PER_CLIENT) as i64).collect();
    assert_eq!(all, want, "version numbers must be unique and gapless");
    let mut by_version: BTreeMap<i64, String> = BTreeMap::new();
    let mut token = String::new();
    loop {
        let mut q = "model-versions/search?filter=name%3D%27shared%27&max_results=50".to_string();
        if !token.is_empty() {
            q.push_str(&format!("&page_token={token}"));
        }
        let page = get(&addrs[2], &q);
        for v in page["model_versions"].as_array().unwrap() {
            let n: i64 = v["version"].as_str().unwrap().parse().unwrap();
            assert!(
                by_version
                    .insert(n, v["run_id"].as_str().unwrap().to_string())
                    .is_none()
            );
        }
        match page["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    assert_eq!(by_version.len(), want.len());
    for a in &acked {
        for v in &a.versions {
            assert_eq!(
                by_version[v], a.run_id,
                "version {v} belongs to its client's run"
            );
        }
    }
    println!(
        "{SERVERS} servers, {CLIENTS} clients: {} metric values, {} params, {} shared tags, {} versions, all present once",
        acked.iter().map(|a| a.steps.len()).sum::<usize>(),
        acked.iter().map(|a| a.params.len()).sum::<usize>(),
        expected.len(),
        all.len()
    );
    drop(servers);
}
