//! The read and housekeeping commands: `experiments ls`, `runs ls|show|delete|restore|artifacts|download|history`, `models ls|show|alias|compare`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::args::StoreArgs;
use crate::client::Client;
use crate::output::{duration, number, table, time};
use crate::stores::registry;

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Fetches every page of a search.
async fn all_pages(
    client: &Client,
    endpoint: &str,
    mut body: Value,
    field: &str,
    limit: usize,
) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    loop {
        let page: Value = client.post(endpoint, &body).await?;
        out.extend(arr(&page, field).iter().cloned());
        match page.get("next_page_token").and_then(Value::as_str) {
            Some(tok) if out.len() < limit => body["page_token"] = json!(tok),
            _ => break,
        }
    }
    out.truncate(limit);
    Ok(out)
}

pub async fn experiments_ls(client: &Client, view: &str, as_json: bool) -> Result<()> {
    let exps = all_pages(
        client,
        "experiments/search",
        json!({ "view_type": view, "max_results": 1000 }),
        "experiments",
        usize::MAX,
    )
    .await?;
    if as_json {
        return print_json(&Value::Array(exps));
    }
    let mut t = table(&["id", "name", "stage", "created", "artifact location"]);
    for e in &exps {
        t.add_row(vec![
            s(e, "experiment_id"),
            s(e, "name"),
            s(e, "lifecycle_stage"),
            time(e["creation_time"].as_i64()),
            s(e, "artifact_location"),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn experiment_ids(client: &Client, name: Option<&str>) -> Result<Vec<String>> {
    match name {
        Some(n) => {
            let v: Value = client
                .get(
                    "experiments/get-by-name",
                    &[("experiment_name", n.to_string())],
                )
                .await
                .with_context(|| format!("experiment '{n}'"))?;
            Ok(vec![s(&v["experiment"], "experiment_id")])
        }
        None => {
            let exps = all_pages(
                client,
                "experiments/search",
                json!({ "max_results": 1000 }),
                "experiments",
                usize::MAX,
            )
            .await?;
            Ok(exps.iter().map(|e| s(e, "experiment_id")).collect())
        }
    }
}

fn kv_summary(items: &[Value], value_key: &str, max: usize) -> String {
    let mut parts: Vec<String> = items
        .iter()
        .take(max)
        .map(|m| {
            let v = if value_key == "value"
                && m.get("value").is_some_and(|v| !v.is_string() || v == "NaN")
            {
                number(&m["value"])
            } else {
                s(m, value_key)
            };
            format!("{}={v}", s(m, "key"))
        })
        .collect();
    if items.len() > max {
        parts.push(format!("+{}", items.len() - max));
    }
    parts.join(" ")
}

pub struct RunsLs<'a> {
    pub experiment: Option<&'a str>,
    pub filter: Option<&'a str>,
    pub order_by: Vec<String>,
    pub max: usize,
    pub as_json: bool,
}

pub async fn runs_ls(client: &Client, a: RunsLs<'_>) -> Result<()> {
    let ids = experiment_ids(client, a.experiment).await?;
    let body = json!({ "experiment_ids": ids, "filter": a.filter.unwrap_or(""), "order_by": a.order_by, "max_results": a.max.min(1000) });
    let runs = all_pages(client, "runs/search", body, "runs", a.max).await?;
    if a.as_json {
        return print_json(&Value::Array(runs));
    }
    let mut t = table(&[
        "run id", "name", "exp", "status", "started", "duration", "metrics", "params",
    ]);
    for r in &runs {
        let (info, data) = (&r["info"], &r["data"]);
        t.add_row(vec![
            s(info, "run_id"),
            s(info, "run_name"),
            s(info, "experiment_id"),
            s(info, "status"),
            time(info["start_time"].as_i64()),
            duration(info["start_time"].as_i64(), info["end_time"].as_i64()),
            kv_summary(arr(data, "metrics"), "value", 4),
            kv_summary(arr(data, "params"), "value", 4),
        ]);
    }
    println!("{t}");
    println!("{} run(s)", runs.len());
    Ok(())
}

/// The keel dataset versions (`name@version`) whose content hash is `digest`: lineage from a
/// run's input to the exact data. Empty for other digests, or when the server is not keel.
pub(crate) async fn data_versions(client: &Client, digest: &str) -> Vec<String> {
    if keel_core::data::digest_of(digest).is_err() {
        return Vec::new();
    }
    let found: Option<Value> = client
        .keel_get(&format!("/api/keel/v1/datasets/by-hash/{digest}"))
        .await
        .ok()
        .flatten();
    found
        .as_ref()
        .map(|v| arr(v, "versions"))
        .unwrap_or_default()
        .iter()
        .map(|v| format!("{}@{}", s(v, "name"), s(v, "version")))
        .collect()
}

pub async fn runs_show(client: &Client, id: &str, as_json: bool) -> Result<()> {
    let mut v: Value = client
        .get("runs/get", &[("run_id", id.to_string())])
        .await?;
    // Each dataset input that is a keel dataset version names it.
    if let Some(inputs) = v["run"]["inputs"]["dataset_inputs"].as_array_mut() {
        for i in inputs {
            let digest = s(&i["dataset"], "digest");
            let versions = data_versions(client, &digest).await;
            if !versions.is_empty() {
                i["data_versions"] = versions.into();
            }
        }
    }
    let run = &v["run"];
    if as_json {
        return print_json(run);
    }
    let info = &run["info"];
    let mut t = table(&["field", "value"]);
    for (k, val) in [
        ("run id", s(info, "run_id")),
        ("name", s(info, "run_name")),
        ("experiment", s(info, "experiment_id")),
        ("status", s(info, "status")),
        ("stage", s(info, "lifecycle_stage")),
        ("user", s(info, "user_id")),
        ("started", time(info["start_time"].as_i64())),
        ("ended", time(info["end_time"].as_i64())),
        (
            "duration",
            duration(info["start_time"].as_i64(), info["end_time"].as_i64()),
        ),
        ("artifacts", s(info, "artifact_uri")),
    ] {
        t.add_row(vec![k.to_string(), val]);
    }
    println!("{t}");
    let data = &run["data"];
    for (title, key) in [
        ("params", "params"),
        ("metrics (latest)", "metrics"),
        ("tags", "tags"),
    ] {
        let items = arr(data, key);
        if items.is_empty() {
            continue;
        }
        let mut t = if key == "metrics" {
            table(&["metric", "value", "step", "time"])
        } else {
            table(&[title, "value"])
        };
        for m in items {
            if key == "metrics" {
                t.add_row(vec![
                    s(m, "key"),
                    number(&m["value"]),
                    s(m, "step"),
                    time(m["timestamp"].as_i64()),
                ]);
            } else {
                t.add_row(vec![s(m, "key"), s(m, "value")]);
            }
        }
        println!("{t}");
    }
    let inputs = arr(&run["inputs"], "dataset_inputs");
    if !inputs.is_empty() {
        let mut t = table(&[
            "dataset",
            "digest",
            "source type",
            "source",
            "context",
            "keel data",
        ]);
        for i in inputs {
            let d = &i["dataset"];
            let ctx = arr(i, "tags")
                .iter()
                .find(|t| s(t, "key") == "mlflow.data.context")
                .map(|t| s(t, "value"))
                .unwrap_or_default();
            let versions: Vec<String> = arr(i, "data_versions")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            t.add_row(vec![
                s(d, "name"),
                s(d, "digest"),
                s(d, "source_type"),
                s(d, "source"),
                ctx,
                if versions.is_empty() {
                    "-".into()
                } else {
                    versions.join(", ")
                },
            ]);
        }
        println!("{t}");
    }
    let outputs = arr(&run["outputs"], "model_outputs");
    if !outputs.is_empty() {
        let mut t = table(&["logged model", "step"]);
        for o in outputs {
            t.add_row(vec![s(o, "model_id"), s(o, "step")]);
        }
        println!("{t}");
    }
    let files = artifact_files(client, id, "").await?;
    if !files.is_empty() {
        let mut t = table(&["artifact", "size"]);
        for (p, n) in &files {
            t.add_row(vec![p.clone(), crate::data::size(*n as i64)]);
        }
        println!("{t}");
        println!("(keel runs download {id} --to DIR fetches them)");
    }
    Ok(())
}

pub async fn models_ls(client: &Client, filter: Option<&str>, as_json: bool) -> Result<()> {
    let mut models = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![("max_results", "1000".to_string())];
        if let Some(f) = filter {
            q.push(("filter", f.to_string()));
        }
        if let Some(tok) = &token {
            q.push(("page_token", tok.clone()));
        }
        let page: Value = client.get("registered-models/search", &q).await?;
        models.extend(arr(&page, "registered_models").iter().cloned());
        token = page
            .get("next_page_token")
            .and_then(Value::as_str)
            .map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    if as_json {
        return print_json(&Value::Array(models));
    }
    let mut t = table(&[
        "name",
        "latest version",
        "aliases",
        "updated",
        "description",
    ]);
    for m in &models {
        let latest = arr(m, "latest_versions")
            .iter()
            .filter_map(|v| s(v, "version").parse::<i64>().ok())
            .max()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into());
        let aliases = arr(m, "aliases")
            .iter()
            .map(|a| format!("{}→v{}", s(a, "alias"), s(a, "version")))
            .collect::<Vec<_>>()
            .join(" ");
        t.add_row(vec![
            s(m, "name"),
            latest,
            aliases,
            time(m["last_updated_timestamp"].as_i64()),
            s(m, "description"),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub async fn models_show(client: &Client, name: &str, as_json: bool) -> Result<()> {
    let m: Value = client
        .get("registered-models/get", &[("name", name.to_string())])
        .await?;
    let esc = name.replace('\'', "''");
    let versions: Value = client
        .get(
            "model-versions/search",
            &[
                ("filter", format!("name = '{esc}'")),
                ("order_by", "version_number DESC".into()),
            ],
        )
        .await?;
    if as_json {
        return print_json(
            &json!({ "registered_model": m["registered_model"], "model_versions": versions["model_versions"] }),
        );
    }
    let rm = &m["registered_model"];
    println!(
        "{}  (created {}, updated {})",
        s(rm, "name"),
        time(rm["creation_timestamp"].as_i64()),
        time(rm["last_updated_timestamp"].as_i64())
    );
    if !s(rm, "description").is_empty() {
        println!("{}", s(rm, "description"));
    }
    let mut t = table(&[
        "version", "stage", "aliases", "status", "run", "source", "created", "tags",
    ]);
    for v in arr(&versions, "model_versions") {
        let aliases = arr(v, "aliases")
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        t.add_row(vec![
            s(v, "version"),
            s(v, "current_stage"),
            aliases,
            s(v, "status"),
            s(v, "run_id"),
            s(v, "source"),
            time(v["creation_timestamp"].as_i64()),
            kv_summary(arr(v, "tags"), "value", 3),
        ]);
    }
    println!("{t}");
    let tags = arr(rm, "tags");
    if !tags.is_empty() {
        let mut t = table(&["model tag", "value"]);
        for tg in tags {
            t.add_row(vec![s(tg, "key"), s(tg, "value")]);
        }
        println!("{t}");
    }
    Ok(())
}

/// `keel models alias set NAME ALIAS VERSION`.
pub async fn models_alias_set(
    client: &Client,
    name: &str,
    alias: &str,
    version: &str,
    as_json: bool,
) -> Result<()> {
    let _: Value = client
        .post(
            "registered-models/alias",
            &json!({"name": name, "alias": alias, "version": version}),
        )
        .await?;
    if as_json {
        return print_json(&json!({"name": name, "alias": alias, "version": version}));
    }
    println!("{name}@{alias} -> version {version}");
    Ok(())
}

/// `keel models alias ls NAME`: each alias and the version it names.
pub async fn models_alias_ls(client: &Client, name: &str, as_json: bool) -> Result<()> {
    let v: Value = client
        .get("registered-models/get", &[("name", name.to_string())])
        .await?;
    let aliases = arr(&v["registered_model"], "aliases");
    if as_json {
        return print_json(&Value::Array(aliases.to_vec()));
    }
    if aliases.is_empty() {
        println!("{name} has no aliases");
        return Ok(());
    }
    let mut t = table(&["alias", "version"]);
    for a in aliases {
        t.add_row(vec![s(a, "alias"), s(a, "version")]);
    }
    println!("{t}");
    Ok(())
}

/// `keel models alias delete NAME ALIAS`.
pub async fn models_alias_delete(
    client: &Client,
    name: &str,
    alias: &str,
    as_json: bool,
) -> Result<()> {
    let _: Value = client
        .delete(
            "registered-models/alias",
            &json!({"name": name, "alias": alias}),
        )
        .await?;
    if as_json {
        return print_json(&json!({"name": name, "alias": alias, "deleted": true}));
    }
    println!("{name}@{alias} deleted");
    Ok(())
}

/// `keel runs delete ID` (or `restore`): marks the run deleted, or active again.
pub async fn runs_lifecycle(client: &Client, id: &str, delete: bool, as_json: bool) -> Result<()> {
    let endpoint = if delete {
        "runs/delete"
    } else {
        "runs/restore"
    };
    let _: Value = client.post(endpoint, &json!({"run_id": id})).await?;
    let stage = if delete { "deleted" } else { "active" };
    if as_json {
        return print_json(&json!({"run_id": id, "lifecycle_stage": stage}));
    }
    println!("run {id} is {stage}");
    Ok(())
}

/// The run's artifacts below `path` (every level), as (path, size) with folders left out.
async fn artifact_files(client: &Client, id: &str, path: &str) -> Result<Vec<(String, u64)>> {
    let mut pending = vec![path.to_string()];
    let mut files = Vec::new();
    while let Some(dir) = pending.pop() {
        let mut q = vec![("run_id", id.to_string())];
        if !dir.is_empty() {
            q.push(("path", dir.clone()));
        }
        let listing: Value = client.get("artifacts/list", &q).await?;
        for f in arr(&listing, "files") {
            let p = s(f, "path");
            if f["is_dir"].as_bool().unwrap_or(false) {
                pending.push(p);
            } else {
                files.push((p, f["file_size"].as_u64().unwrap_or(0)));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `keel runs artifacts ID [PATH]`: every file the run logged (below PATH), with sizes.
pub async fn runs_artifacts(
    client: &Client,
    id: &str,
    path: Option<&str>,
    as_json: bool,
) -> Result<()> {
    let files = artifact_files(client, id, path.unwrap_or("")).await?;
    if as_json {
        let v: Vec<Value> = files
            .iter()
            .map(|(p, n)| json!({"path": p, "file_size": n}))
            .collect();
        return print_json(&Value::Array(v));
    }
    let mut t = table(&["artifact", "size"]);
    for (p, n) in &files {
        t.add_row(vec![p.clone(), crate::data::size(*n as i64)]);
    }
    println!("{t}");
    println!("{} file(s)", files.len());
    Ok(())
}

/// `keel runs download ID [PATH] --to DIR`: the run's artifacts (below PATH) into DIR, with
/// their paths.
pub async fn runs_download(
    client: &Client,
    id: &str,
    path: Option<&str>,
    to: &std::path::Path,
    as_json: bool,
) -> Result<()> {
    use futures::TryStreamExt;
    use tokio::io::AsyncWriteExt;
    let files = artifact_files(client, id, path.unwrap_or("")).await?;
    if files.is_empty() {
        anyhow::bail!(
            "run {id} has no artifacts{}",
            path.map(|p| format!(" under '{p}'")).unwrap_or_default()
        );
    }
    let bar = indicatif::ProgressBar::new(files.iter().map(|(_, n)| n).sum());
    if as_json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut written = Vec::new();
    for (p, _) in &files {
        // Listed paths are relative and made of plain names; anything else is refused.
        let parts: Vec<&str> = p.split('/').collect();
        if parts
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\\'))
        {
            anyhow::bail!("the server listed an odd artifact path '{p}'");
        }
        let target = to.join(p);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut stream = client
            .download("/get-artifact", &[("run_id", id), ("path", p)])
            .await?;
        let mut file = tokio::fs::File::create(&target)
            .await
            .with_context(|| format!("cannot create {}", target.display()))?;
        while let Some(chunk) = stream.try_next().await? {
            file.write_all(&chunk).await?;
            bar.inc(chunk.len() as u64);
        }
        file.flush().await?;
        written.push(target.display().to_string());
    }
    bar.finish_and_clear();
    if as_json {
        return print_json(&json!({"run_id": id, "files": written}));
    }
    println!("{} file(s) into {}", written.len(), to.display());
    Ok(())
}

/// `keel runs history ID METRIC`: every logged value of a metric, by step.
pub async fn runs_history(client: &Client, id: &str, metric: &str, as_json: bool) -> Result<()> {
    let mut values = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = vec![
            ("run_id", id.to_string()),
            ("metric_key", metric.to_string()),
            ("max_results", "25000".to_string()),
        ];
        if let Some(t) = &token {
            q.push(("page_token", t.clone()));
        }
        let page: Value = client.get("metrics/get-history", &q).await?;
        values.extend(arr(&page, "metrics").iter().cloned());
        token = page["next_page_token"].as_str().map(String::from);
        if token.is_none() {
            break;
        }
    }
    if as_json {
        return print_json(&Value::Array(values));
    }
    if values.is_empty() {
        anyhow::bail!("run {id} has no metric '{metric}'");
    }
    let mut t = table(&["step", "value", "time"]);
    for m in &values {
        t.add_row(vec![
            s(m, "step"),
            number(&m["value"]),
            time(m["timestamp"].as_i64()),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `keel models compare NAME A B`: the metrics of the two versions' runs side by side, then
/// the params that differ.
pub async fn models_compare(
    client: &Client,
    name: &str,
    versions: [&str; 2],
    as_json: bool,
) -> Result<()> {
    let mut runs = Vec::new();
    for v in versions {
        let mv: Value = client
            .get(
                "model-versions/get",
                &[("name", name.to_string()), ("version", v.to_string())],
            )
            .await?;
        let run_id = s(&mv["model_version"], "run_id");
        if run_id.is_empty() {
            anyhow::bail!("{name} version {v} names no run to compare");
        }
        let run: Value = client
            .get("runs/get", &[("run_id", run_id.clone())])
            .await?;
        runs.push((run_id, run["run"]["data"].clone()));
    }
    let pairs = |key: &str,
                 field: &str|
     -> std::collections::BTreeMap<String, [Option<Value>; 2]> {
        let mut out: std::collections::BTreeMap<String, [Option<Value>; 2]> = Default::default();
        for (i, (_, data)) in runs.iter().enumerate() {
            for item in arr(data, key) {
                out.entry(s(item, "key")).or_default()[i] = Some(item[field].clone());
            }
        }
        out
    };
    let metrics = pairs("metrics", "value");
    let params: std::collections::BTreeMap<_, _> = pairs("params", "value")
        .into_iter()
        .filter(|(_, [a, b])| a != b)
        .collect();
    // What each side's metrics were measured on, from the run's own params.
    let measured = |data: &Value| -> String {
        let param = |k: &str| {
            arr(data, "params")
                .iter()
                .find(|p| s(p, "key") == k)
                .map(|p| s(p, "value"))
        };
        if let Some(k) = param("cv") {
            format!("mean of {k}-fold cross-validation")
        } else if let Some(data) = param("test_data") {
            format!("test data {data}")
        } else if let Some(share) = param("split") {
            format!("held-out rows (trained on {share})")
        } else {
            "as the run logged them".into()
        }
    };
    let on = [measured(&runs[0].1), measured(&runs[1].1)];
    if as_json {
        let side = |m: &std::collections::BTreeMap<String, [Option<Value>; 2]>| {
            m.iter()
                .map(|(k, [a, b])| (k.clone(), json!([a, b])))
                .collect::<serde_json::Map<String, Value>>()
        };
        return print_json(&json!({
            "name": name, "versions": versions,
            "runs": [runs[0].0, runs[1].0], "measured_on": on,
            "metrics": side(&metrics), "params": side(&params),
        }));
    }
    let head_a = format!("version {}", versions[0]);
    let head_b = format!("version {}", versions[1]);
    let mut t = table(&["metric", &head_a, &head_b, "change"]);
    t.add_row(vec![
        "(measured on)".into(),
        on[0].clone(),
        on[1].clone(),
        if on[0] == on[1] {
            "same".into()
        } else {
            "not comparable as is".into()
        },
    ]);
    for (k, [a, b]) in &metrics {
        let (x, y) = (
            a.as_ref().and_then(Value::as_f64),
            b.as_ref().and_then(Value::as_f64),
        );
        t.add_row(vec![
            k.clone(),
            a.as_ref().map_or("-".into(), number),
            b.as_ref().map_or("-".into(), number),
            match (x, y) {
                (Some(x), Some(y)) => format!("{:+.4}", y - x),
                _ => "-".into(),
            },
        ]);
    }
    println!(
        "{name}: version {} (run {}) against version {} (run {})",
        versions[0], runs[0].0, versions[1], runs[1].0
    );
    println!("{t}");
    if !params.is_empty() {
        let mut t = table(&["param", &head_a, &head_b]);
        for (k, [a, b]) in &params {
            let show = |v: &Option<Value>| {
                v.as_ref()
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string()
            };
            t.add_row(vec![k.clone(), show(a), show(b)]);
        }
        println!("{t}");
    }
    Ok(())
}

#[derive(Subcommand)]
pub(crate) enum ExperimentsCmd {
    /// List experiments.
    Ls {
        /// active, deleted or all.
        #[arg(long, default_value = "active", value_parser = ["active", "deleted", "all"])]
        view: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum RunsCmd {
    /// List runs, newest first.
    Ls {
        /// Only this experiment (by name); all active experiments otherwise.
        #[arg(long)]
        experiment: Option<String>,
        /// MLflow search filter, e.g. "metrics.acc > 0.9 and params.lr = '0.1'".
        #[arg(long)]
        filter: Option<String>,
        /// Order, e.g. "metrics.acc DESC" (repeatable).
        #[arg(long = "order-by")]
        order_by: Vec<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 100)]
        max: usize,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one run: info, params, latest metrics, tags, inputs, outputs and artifacts.
    Show {
        /// The run's id (32 hex digits), as `keel runs ls` and `keel train` print it.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Mark a run deleted (its data stays until `keel runs restore` or a cleanup).
    Delete {
        /// The run's id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Make a deleted run active again.
    Restore {
        /// The run's id.
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the files a run logged, with their sizes.
    Artifacts {
        /// The run's id.
        id: String,
        /// Only below this artifact path.
        path: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Download a run's artifacts (all, or those below PATH) into a folder.
    Download {
        /// The run's id.
        id: String,
        /// Only below this artifact path.
        path: Option<String>,
        /// The folder to write into (created when missing).
        #[arg(long, default_value = ".")]
        to: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Every value a run logged for one metric, by step.
    History {
        /// The run's id.
        id: String,
        /// The metric's name.
        metric: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum ModelsCmd {
    /// List registered models.
    Ls {
        /// Registry search filter, e.g. "name LIKE 'fraud%'".
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a registered model and its versions.
    Show {
        /// The registered model's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Aliases of a registered model's versions.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Two versions of a registered model side by side: metrics and differing params of the
    /// runs that made them.
    Compare {
        /// The registered model's name.
        name: String,
        /// The first version (a number).
        a: String,
        /// The second version (a number).
        b: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// A version's model card (lineage, params, metrics, data, fairness, intended use and
    /// limitations) as Markdown or HTML; --intended-use and --limitations write those first.
    Card(Box<crate::card::CardArgs>),
    /// Evaluate a version's fairness on a dataset version by a sensitive column (per-group
    /// selection, true and false positive rates; demographic parity and equalized odds) and
    /// keep the figures on its model card.
    Fairness(Box<crate::card::FairnessArgs>),
    /// Protect an alias: from then on it moves only by a request another user who manages
    /// the model approves, after the gates given here pass on the version.
    Protect(Box<crate::approvals::ProtectArgs>),
    /// Lift an alias's protection.
    Unprotect(crate::approvals::UnprotectArgs),
    /// A model's protected aliases and the requests to move them.
    Requests(crate::approvals::RequestsArgs),
    /// Ask to point a protected alias at a version.
    Request(crate::approvals::RequestArgs),
    /// Approve a request (as a user other than who asked): the gates are checked and the
    /// alias moves.
    Approve(crate::approvals::DecideArgs),
    /// Reject a request.
    Reject(crate::approvals::DecideArgs),
}

#[derive(Subcommand)]
pub(crate) enum AliasCmd {
    /// List a registered model's aliases and the versions they name.
    Ls {
        /// The registered model's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an alias (the version stays).
    Delete {
        /// The registered model's name.
        name: String,
        /// The alias.
        alias: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Point ALIAS (champion, challenger...) at VERSION.
    Set {
        /// The registered model's name.
        name: String,
        /// The alias: letters, digits, `_` and `-`, not `latest` or `v<number>`.
        alias: String,
        version: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `keel experiments ...`.
pub(crate) async fn experiments(cmd: ExperimentsCmd) -> Result<()> {
    match cmd {
        ExperimentsCmd::Ls { view, store } => {
            experiments_ls(
                &registry(&store).await?,
                &view
                    .to_uppercase()
                    .replace("ACTIVE", "ACTIVE_ONLY")
                    .replace("DELETED", "DELETED_ONLY"),
                store.json,
            )
            .await
        }
    }
}

/// Runs `keel runs ...`.
pub(crate) async fn runs(cmd: RunsCmd) -> Result<()> {
    match cmd {
        RunsCmd::Ls {
            experiment,
            filter,
            order_by,
            max,
            store,
        } => {
            let c = registry(&store).await?;
            runs_ls(
                &c,
                RunsLs {
                    experiment: experiment.as_deref(),
                    filter: filter.as_deref(),
                    order_by,
                    max,
                    as_json: store.json,
                },
            )
            .await
        }
        RunsCmd::Show { id, store } => runs_show(&registry(&store).await?, &id, store.json).await,
        RunsCmd::Delete { id, store } => {
            runs_lifecycle(&registry(&store).await?, &id, true, store.json).await
        }
        RunsCmd::Restore { id, store } => {
            runs_lifecycle(&registry(&store).await?, &id, false, store.json).await
        }
        RunsCmd::Artifacts { id, path, store } => {
            runs_artifacts(&registry(&store).await?, &id, path.as_deref(), store.json).await
        }
        RunsCmd::Download {
            id,
            path,
            to,
            store,
        } => {
            let c = registry(&store).await?;
            runs_download(&c, &id, path.as_deref(), &to, store.json).await
        }
        RunsCmd::History { id, metric, store } => {
            runs_history(&registry(&store).await?, &id, &metric, store.json).await
        }
    }
}

/// Runs `keel models ...`.
pub(crate) async fn models(cmd: ModelsCmd) -> Result<()> {
    match cmd {
        ModelsCmd::Alias(AliasCmd::Ls { name, store }) => {
            models_alias_ls(&registry(&store).await?, &name, store.json).await
        }
        ModelsCmd::Alias(AliasCmd::Delete { name, alias, store }) => {
            models_alias_delete(&registry(&store).await?, &name, &alias, store.json).await
        }
        ModelsCmd::Ls { filter, store } => {
            models_ls(&registry(&store).await?, filter.as_deref(), store.json).await
        }
        ModelsCmd::Show { name, store } => {
            models_show(&registry(&store).await?, &name, store.json).await
        }
        ModelsCmd::Alias(AliasCmd::Set {
            name,
            alias,
            version,
            store,
        }) => {
            models_alias_set(
                &registry(&store).await?,
                &name,
                &alias,
                &version,
                store.json,
            )
            .await
        }
        ModelsCmd::Compare { name, a, b, store } => {
            models_compare(&registry(&store).await?, &name, [&a, &b], store.json).await
        }
        ModelsCmd::Card(a) => crate::card::card(*a).await,
        ModelsCmd::Fairness(a) => crate::card::fairness(*a).await,
        ModelsCmd::Protect(a) => crate::approvals::protect(*a).await,
        ModelsCmd::Unprotect(a) => crate::approvals::unprotect(a).await,
        ModelsCmd::Requests(a) => crate::approvals::requests(a).await,
        ModelsCmd::Request(a) => crate::approvals::request(a).await,
        ModelsCmd::Approve(a) => crate::approvals::decide(a, true).await,
        ModelsCmd::Reject(a) => crate::approvals::decide(a, false).await,
    }
}
