//! `keel models protect|unprotect|requests|request|approve|reject`: protected aliases and the
//! requests that move them, through the server's `/api/keel/v1` approval API (or the local
//! stores served in-process).

use anyhow::{Context, Result, bail};
use clap::Args;
use keel_core::approval::{Gates, MetricGate};
use serde_json::{Value, json};

use crate::args::StoreArgs;
use crate::commands::print_json;
use crate::output::table;

const PROTECTED: &str = "/api/keel/v1/registered-models/protected-aliases";
const REQUESTS: &str = "/api/keel/v1/alias-requests";

/// `keel models protect`.
#[derive(Args)]
pub(crate) struct ProtectArgs {
    /// The registered model's name.
    name: String,
    /// The alias to protect (e.g. champion).
    alias: String,
    /// A metric of the version's run that must be at least this: KEY=VALUE (repeatable).
    #[arg(long = "min", value_name = "KEY=VALUE")]
    min: Vec<String>,
    /// A metric of the version's run that must be at most this: KEY=VALUE (repeatable).
    #[arg(long = "max", value_name = "KEY=VALUE")]
    max: Vec<String>,
    /// Every dataset version the run used must have passed its latest validation.
    #[arg(long)]
    validation_passed: bool,
    /// The version must name its run, and the run the data it used.
    #[arg(long)]
    lineage: bool,
    /// The version's model card must hold its intended use and limitations.
    #[arg(long)]
    model_card: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// `keel models unprotect`.
#[derive(Args)]
pub(crate) struct UnprotectArgs {
    /// The registered model's name.
    name: String,
    /// The protected alias.
    alias: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// `keel models requests`.
#[derive(Args)]
pub(crate) struct RequestsArgs {
    /// The registered model's name.
    name: String,
    /// Only requests in this state.
    #[arg(long, value_parser = ["pending", "applied", "rejected"])]
    state: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// `keel models request`.
#[derive(Args)]
pub(crate) struct RequestArgs {
    /// The registered model's name.
    name: String,
    /// The protected alias to move.
    alias: String,
    /// The version it should point to.
    version: String,
    /// Why, for whoever decides.
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// `keel models approve` and `keel models reject`.
#[derive(Args)]
pub(crate) struct DecideArgs {
    /// The registered model's name.
    name: String,
    /// The request's id, as `keel models requests` lists it.
    id: i64,
    /// A note kept with the decision.
    #[arg(long, default_value = "")]
    comment: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// `KEY=VALUE` of `--flag` as a metric bound.
fn bound(flag: &str, given: &str) -> Result<(String, f64)> {
    let (key, value) = given
        .split_once('=')
        .with_context(|| format!("--{flag} '{given}': expected KEY=VALUE"))?;
    let value: f64 = value
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .with_context(|| format!("--{flag} '{given}': '{value}' is not a finite number"))?;
    if key.trim().is_empty() {
        bail!("--{flag} '{given}': the metric's name is empty");
    }
    Ok((key.trim().to_string(), value))
}

/// The gates the flags ask for.
fn gates(a: &ProtectArgs) -> Result<Gates> {
    let mut metrics: Vec<MetricGate> = Vec::new();
    for (flag, list) in [("min", &a.min), ("max", &a.max)] {
        for given in list {
            let (key, value) = bound(flag, given)?;
            let gate = match metrics.iter_mut().find(|m| m.key == key) {
                Some(g) => g,
                None => {
                    metrics.push(MetricGate {
                        key,
                        min: None,
                        max: None,
                    });
                    metrics.last_mut().context("a gate was just added")?
                }
            };
            match flag {
                "min" => gate.min = Some(value),
                _ => gate.max = Some(value),
            }
        }
    }
    Ok(Gates {
        metrics,
        validation_passed: a.validation_passed,
        lineage: a.lineage,
        model_card: a.model_card,
    })
}

/// One line per gate, as a person reads them.
fn describe(gates: &Value) -> String {
    let mut parts = Vec::new();
    for m in gates["metrics"].as_array().into_iter().flatten() {
        let key = m["key"].as_str().unwrap_or_default();
        match (m["min"].as_f64(), m["max"].as_f64()) {
            (Some(a), Some(b)) => parts.push(format!("{a} <= {key} <= {b}")),
            (Some(a), None) => parts.push(format!("{key} >= {a}")),
            (None, Some(b)) => parts.push(format!("{key} <= {b}")),
            (None, None) => {}
        }
    }
    for (flag, label) in [
        ("validation_passed", "validation passed"),
        ("lineage", "lineage"),
        ("model_card", "model card"),
    ] {
        if gates[flag].as_bool() == Some(true) {
            parts.push(label.to_string());
        }
    }
    if parts.is_empty() {
        "approval only".to_string()
    } else {
        parts.join(", ")
    }
}

/// Runs `keel models protect`.
pub(crate) async fn protect(a: ProtectArgs) -> Result<()> {
    let gates = gates(&a)?;
    let client = crate::stores::registry(&a.store).await?;
    let body = json!({"name": a.name, "alias": a.alias, "gates": gates});
    let answer: Value = client.keel_post(PROTECTED, &body).await?;
    if a.store.json {
        return print_json(&answer);
    }
    println!(
        "{}@{} is protected: it moves only by an approved request ({})",
        a.name,
        a.alias,
        describe(&answer["protected_alias"]["gates"])
    );
    Ok(())
}

/// Runs `keel models unprotect`.
pub(crate) async fn unprotect(a: UnprotectArgs) -> Result<()> {
    let client = crate::stores::registry(&a.store).await?;
    let _: Value = client
        .keel_delete(PROTECTED, &json!({"name": a.name, "alias": a.alias}))
        .await?;
    if a.store.json {
        return print_json(&json!({"name": a.name, "alias": a.alias, "protected": false}));
    }
    println!("{}@{} is no longer protected", a.name, a.alias);
    Ok(())
}

/// `path` with the query `q`, its values percent-encoded.
fn query(path: &str, q: &[(&str, &str)]) -> String {
    let q: Vec<String> = q
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::serve::encode(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

/// Runs `keel models requests`: the model's protected aliases, then its requests.
pub(crate) async fn requests(a: RequestsArgs) -> Result<()> {
    let client = crate::stores::registry(&a.store).await?;
    let protections: Value = client
        .keel_get(&query(PROTECTED, &[("name", &a.name)]))
        .await?
        .unwrap_or_default();
    let mut q = vec![("name", a.name.as_str())];
    if let Some(s) = &a.state {
        q.push(("state", s));
    }
    let requests: Value = client
        .keel_get(&query(REQUESTS, &q))
        .await?
        .unwrap_or_default();
    if a.store.json {
        return print_json(&json!({
            "protected_aliases": protections["protected_aliases"],
            "alias_requests": requests["alias_requests"],
        }));
    }
    let mut t = table(&["alias", "gates", "protected by"]);
    for p in protections["protected_aliases"]
        .as_array()
        .into_iter()
        .flatten()
    {
        t.add_row(vec![
            format!("@{}", p["alias"].as_str().unwrap_or_default()),
            describe(&p["gates"]),
            p["created_by"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    println!("{t}");
    let list = requests["alias_requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        println!("no requests");
        return Ok(());
    }
    let mut t = table(&[
        "id",
        "alias",
        "version",
        "state",
        "asked by",
        "reason",
        "decided by",
    ]);
    for r in &list {
        let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        t.add_row(vec![
            r["id"].to_string(),
            format!("@{}", text("alias")),
            text("version"),
            text("state"),
            text("requested_by"),
            text("reason"),
            text("decided_by"),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Runs `keel models request`.
pub(crate) async fn request(a: RequestArgs) -> Result<()> {
    let client = crate::stores::registry(&a.store).await?;
    let body = json!({"name": a.name, "alias": a.alias, "version": a.version, "reason": a.reason});
    let answer: Value = client.keel_post(REQUESTS, &body).await?;
    if a.store.json {
        return print_json(&answer);
    }
    println!(
        "request {} asks to point {}@{} at version {}: another user who manages the model approves it",
        answer["alias_request"]["id"], a.name, a.alias, a.version
    );
    Ok(())
}

/// Runs `keel models approve` (`approve`) or `keel models reject`.
pub(crate) async fn decide(a: DecideArgs, approve: bool) -> Result<()> {
    let client = crate::stores::registry(&a.store).await?;
    let path = format!("{REQUESTS}/{}", if approve { "approve" } else { "reject" });
    let body = json!({"name": a.name, "id": a.id, "comment": a.comment});
    let answer: Value = client.keel_post(&path, &body).await?;
    if a.store.json {
        return print_json(&answer);
    }
    let r = &answer["alias_request"];
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    match approve {
        true => println!(
            "request {} approved: {}@{} points at version {}",
            a.id,
            a.name,
            text("alias"),
            text("version")
        ),
        false => println!("request {} rejected", a.id),
    }
    Ok(())
}
