//! MLflow's rules for a model version's source, run id and model id.
//!
//! A version's source is what `keel serve` and the mlflow client later read the model from, so
//! it must name something the registering caller is entitled to: a local path only inside the
//! artifact location of the run (or logged model) the request names, a `runs:/` URI only of the
//! run it names, a `models:/<model id>` URI only of the logged model it names, an
//! `mlflow-artifacts` URI only below the named run's or model's artifacts, and no source with
//! relative components (`..`, `.`, NUL, percent-encoded or not). A `models:/<name>/<version>`
//! (or `@alias`, `/<stage>`, `/latest`) source is resolved to the version it names and takes
//! that version's run and model ids, which the request may repeat but not contradict. A version
//! made from a logged model takes the model's source run as its run id. These are the checks of
//! MLflow's `create_model_version` handler, with its messages.

use crate::entities::{ModelVersion, Tag};
use crate::error::{Error, ErrorCode, Result};
use crate::store::MetadataStore;

/// The source and ids a model version is created with, after [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The source as stored (`models:/<name>/<version>` sources are made canonical).
    pub source: String,
    /// The run the version came from, or empty.
    pub run_id: String,
    /// The logged model the version came from, or empty.
    pub model_id: String,
}

/// A URI split as Python's `urllib.parse.urlparse` splits it (scheme lower-cased; query and
/// fragment dropped).
#[derive(Debug, PartialEq, Eq)]
struct Uri<'a> {
    scheme: String,
    netloc: &'a str,
    path: &'a str,
}

fn split_uri(uri: &str) -> Uri<'_> {
    let scheme_end = uri.find(':').filter(|&i| {
        let s = &uri[..i];
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, rest) = match scheme_end {
        Some(i) => (uri[..i].to_ascii_lowercase(), &uri[i + 1..]),
        None => (String::new(), uri),
    };
    let (netloc, rest) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            (&after[..end], &after[end..])
        }
        None => ("", rest),
    };
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    Uri {
        scheme,
        netloc,
        path,
    }
}

/// Percent-decoding (and `+` as a space when `plus`), repeated until nothing changes, so that
/// `%252e%252e` is seen as `..` too.
fn unquote_fully(value: &str, plus: bool) -> String {
    let mut current = value.to_string();
    loop {
        let next = unquote_once(&current, plus);
        if next == current {
            return current;
        }
        current = next;
    }
}

fn unquote_once(value: &str, plus: bool) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn invalid_source(source: &str, id: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{source}'. The {id} request parameter must identify the resource that contains the source."
    ))
}

/// Refuses relative components in a non-local source: after full percent-decoding, no `..`
/// component, no NUL, and a path that is absolute and already normal (no `.` or empty parts
/// once repeated slashes are collapsed).
fn check_no_relative_parts(source: &str) -> Result<()> {
    let refuse = || {
        Error::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path."
        ))
    };
    let decoded = unquote_fully(source, true);
    let mut path = String::new();
    for c in split_uri(&decoded).path.chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let path = path.trim_end_matches('/');
    if path.contains('\0') || decoded.split('/').any(|p| p == "..") {
        return Err(refuse());
    }
    if !path.starts_with('/') || path[1..].split('/').any(|p| p == "." || p.is_empty()) {
        return Err(refuse());
    }
    Ok(())
}

/// A URI's scheme, authority (both lower-cased) and decoded path components.
fn uri_parts(uri: &str) -> (String, String, Vec<String>) {
    let u = split_uri(uri);
    let parts = u
        .path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| unquote_fully(p, false))
        .collect();
    (u.scheme, u.netloc.to_ascii_lowercase(), parts)
}

/// Whether `source` lies at or below `root` (same scheme and authority, root not empty).
fn within_root(source: &str, root: &str) -> bool {
    let (s_scheme, s_auth, s_parts) = uri_parts(source);
    let (r_scheme, r_auth, r_parts) = uri_parts(root);
    s_scheme == r_scheme
        && s_auth == r_auth
        && !r_parts.is_empty()
        && s_parts.len() >= r_parts.len()
        && s_parts[..r_parts.len()] == r_parts[..]
}

/// An `mlflow-artifacts` URI, or an http(s) URL through the artifact proxy's route.
fn is_proxied_artifact(source: &str) -> bool {
    let (scheme, _, parts) = uri_parts(source);
    if scheme == "mlflow-artifacts" {
        return true;
    }
    let route = ["api", "2.0", "mlflow-artifacts", "artifacts"];
    matches!(scheme.as_str(), "http" | "https")
        && parts
            .windows(route.len())
            .any(|w| w.iter().eq(route.iter()))
}

/// A local path or `file:` URI (as MLflow's `is_local_uri` on a server).
fn is_local(source: &str) -> bool {
    matches!(split_uri(source).scheme.as_str(), "" | "file")
}

/// The local path of a local source, normalised lexically (`.` and `..` folded), absolute or
/// relative as given.
fn local_path(source: &str) -> Vec<String> {
    let u = split_uri(source);
    let path = if u.scheme == "file" { u.path } else { source };
    let absolute = path.starts_with('/');
    let mut parts: Vec<String> = if absolute {
        vec![String::new()]
    } else {
        Vec::new()
    };
    for p in unquote_fully(path, false).split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.len() > usize::from(absolute) {
                    parts.pop();
                }
            }
            other => parts.push(other.to_string()),
        }
    }
    parts
}

/// Whether a local source lies at or below a local artifact location.
fn local_within(source: &str, location: &str) -> bool {
    if !is_local(location) {
        return false;
    }
    let (s, root) = (local_path(source), local_path(location));
    !root.is_empty() && s.len() >= root.len() && s[..root.len()] == root[..]
}

/// What a `models:/` URI names.
#[derive(Debug, PartialEq, Eq)]
enum ModelsUri<'a> {
    /// `models:/<model id>`: a logged model.
    ModelId(&'a str),
    /// `models:/<name>/<version>`.
    Version(&'a str, &'a str),
    /// `models:/<name>/<stage>`: the latest version in a stage.
    Stage(&'a str, &'a str),
    /// `models:/<name>/latest` (any stage).
    Latest(&'a str),
    /// `models:/<name>@<alias>`.
    Alias(&'a str, &'a str),
}

fn parse_models_uri<'a>(source: &'a str, path: &'a str) -> Result<ModelsUri<'a>> {
    let improper = || invalid_source(source, "model_id");
    let rest = path
        .strip_prefix('/')
        .filter(|r| !r.is_empty())
        .ok_or_else(improper)?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > 2 || parts[0].trim().is_empty() {
        return Err(improper());
    }
    if let [name, suffix] = parts[..] {
        if suffix.trim().is_empty() {
            return Err(improper());
        }
        return Ok(if suffix.bytes().all(|b| b.is_ascii_digit()) {
            ModelsUri::Version(name, suffix)
        } else if suffix.eq_ignore_ascii_case("latest") {
            ModelsUri::Latest(name)
        } else {
            ModelsUri::Stage(name, suffix)
        });
    }
    if path.contains('@') {
        return match parts[0].rsplit_once('@') {
            Some((name, alias)) if !alias.trim().is_empty() => Ok(ModelsUri::Alias(name, alias)),
            _ => Err(improper()),
        };
    }
    Ok(ModelsUri::ModelId(parts[0]))
}

/// A run the source must belong to; an unknown one is a 400 on the source, as in MLflow.
async fn source_run_location(
    store: &dyn MetadataStore,
    run_id: &str,
    source: &str,
) -> Result<String> {
    match store.get_run(run_id).await {
        Ok(run) => Ok(run.info.artifact_uri),
        Err(e) if e.code == ErrorCode::ResourceDoesNotExist => {
            Err(invalid_source(source, "run_id"))
        }
        Err(e) => Err(e),
    }
}

async fn source_model_location(
    store: &dyn MetadataStore,
    model_id: &str,
    source: &str,
) -> Result<String> {
    match store.get_logged_model(model_id, false).await {
        Ok(m) => Ok(m.info.artifact_uri),
        Err(e) if e.code == ErrorCode::ResourceDoesNotExist => {
            Err(invalid_source(source, "model_id"))
        }
        Err(e) => Err(e),
    }
}

/// The version a `models:/<name>/...` source names.
async fn named_version(store: &dyn MetadataStore, uri: &ModelsUri<'_>) -> Result<ModelVersion> {
    match *uri {
        ModelsUri::Version(name, v) => store.get_model_version(name, v).await,
        ModelsUri::Alias(name, alias) => store.get_version_by_alias(name, alias).await,
        ModelsUri::Stage(name, _) | ModelsUri::Latest(name) => {
            let stages = match uri {
                ModelsUri::Stage(_, stage) => vec![stage.to_string()],
                _ => Vec::new(),
            };
            let latest = store.latest_versions(name, &stages).await?;
            latest
                .into_iter()
                .max_by_key(|v| v.version.parse::<i64>().unwrap_or(0))
                .ok_or_else(|| {
                    let stage = match uri {
                        ModelsUri::Stage(_, s) => format!(" and stage '{s}'"),
                        _ => String::new(),
                    };
                    Error::new(
                        ErrorCode::InvalidParameterValue,
                        format!("No versions of model with name '{name}'{stage} found"),
                    )
                })
        }
        ModelsUri::ModelId(_) => unreachable!("a model id names no version"),
    }
}

/// Checks a new version's `source` against the `run_id` and `model_id` the request gave
/// (`None` when the field was absent, which differs from empty for a `models:/` source) and
/// returns what the version is created with.
pub async fn resolve(
    store: &dyn MetadataStore,
    source: &str,
    run_id: Option<&str>,
    model_id: Option<&str>,
) -> Result<Lineage> {
    let mut lineage = Lineage {
        source: source.to_string(),
        run_id: run_id.unwrap_or_default().to_string(),
        model_id: model_id.unwrap_or_default().to_string(),
    };
    let uri = split_uri(source);
    if uri.scheme == "models" {
        if !uri.netloc.is_empty() {
            return Err(Error::invalid(format!(
                "Invalid model version source: '{source}'. Registered model sources must use the active model registry."
            )));
        }
        let parsed = parse_models_uri(source, uri.path)?;
        if !matches!(parsed, ModelsUri::ModelId(_)) {
            let from = named_version(store, &parsed).await?;
            let contradicts = run_id.is_some_and(|r| r != from.run_id)
                || model_id.is_some_and(|m| m != from.model_id);
            if contradicts {
                return Err(Error::invalid(format!(
                    "Invalid model version source: '{source}'. The run_id and model_id request parameters must match the referenced model version."
                )));
            }
            lineage = Lineage {
                source: format!("models:/{}/{}", from.name, from.version),
                run_id: run_id.map_or(from.run_id, str::to_string),
                model_id: model_id.map_or(from.model_id, str::to_string),
            };
        }
    }
    if lineage.model_id.is_empty() {
        check_for_run(store, &lineage.source, &lineage.run_id).await?;
    } else {
        check_for_model(store, &lineage.source, &lineage.model_id).await?;
    }
    if lineage.run_id.is_empty() && !lineage.model_id.is_empty() {
        lineage.run_id = store
            .get_logged_model(&lineage.model_id, false)
            .await?
            .info
            .source_run_id;
    }
    Ok(lineage)
}

/// MLflow's `_validate_source_run`: the source belongs to the run `run_id`.
async fn check_for_run(store: &dyn MetadataStore, source: &str, run_id: &str) -> Result<()> {
    if is_local(source) {
        if !run_id.is_empty() {
            let location = source_run_location(store, run_id, source).await?;
            if local_within(source, &location) {
                return Ok(());
            }
        }
        return Err(Error::invalid(format!(
            "Invalid model version source: '{source}'. To use a local path as a model version source, the run_id request parameter has to be specified and the local path has to be contained within the artifact directory of the run specified by the run_id."
        )));
    }
    check_no_relative_parts(source)?;
    let uri = split_uri(source);
    match uri.scheme.as_str() {
        "runs" => {
            if !uri.netloc.is_empty() {
                return Err(invalid_source(source, "run_id"));
            }
            let named = uri
                .path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("");
            if !run_id.is_empty() && named == run_id {
                return Ok(());
            }
            return Err(invalid_source(source, "run_id"));
        }
        "models"
            if !uri.netloc.is_empty()
                || matches!(parse_models_uri(source, uri.path)?, ModelsUri::ModelId(_)) =>
        {
            return Err(invalid_source(source, "model_id"));
        }
        _ => {}
    }
    if is_proxied_artifact(source) {
        if !run_id.is_empty() {
            let location = source_run_location(store, run_id, source).await?;
            if within_root(source, &location) {
                return Ok(());
            }
        }
        return Err(invalid_source(source, "run_id"));
    }
    Ok(())
}

/// MLflow's `_validate_source_model`: the source belongs to the logged model `model_id`.
async fn check_for_model(store: &dyn MetadataStore, source: &str, model_id: &str) -> Result<()> {
    if is_local(source) {
        let location = source_model_location(store, model_id, source).await?;
        if local_within(source, &location) {
            return Ok(());
        }
        return Err(Error::invalid(format!(
            "Invalid model version source: '{source}'. To use a local path as a model version source, the model_id request parameter has to be specified and the local path has to be contained within the artifact directory of the run specified by the model_id."
        )));
    }
    check_no_relative_parts(source)?;
    let uri = split_uri(source);
    match uri.scheme.as_str() {
        "models" => {
            if !uri.netloc.is_empty() {
                return Err(invalid_source(source, "model_id"));
            }
            if let ModelsUri::ModelId(named) = parse_models_uri(source, uri.path)? {
                if named == model_id {
                    return Ok(());
                }
                return Err(invalid_source(source, "model_id"));
            }
        }
        "runs" => return Err(invalid_source(source, "model_id")),
        _ => {}
    }
    if is_proxied_artifact(source) {
        let location = source_model_location(store, model_id, source).await?;
        if within_root(source, &location) {
            return Ok(());
        }
        return Err(invalid_source(source, "model_id"));
    }
    Ok(())
}

/// Lists version `version` of `name` in the logged model's `mlflow.modelVersions` tag, as
/// MLflow's server does when a version is made from a logged model: a JSON list of
/// `{"name": ..., "version": <number>}` written as Python's `json.dumps` writes it (entries the
/// client added, whose version is text, are kept as they are).
pub async fn list_version_on_model(
    store: &dyn MetadataStore,
    model_id: &str,
    name: &str,
    version: &str,
) -> Result<()> {
    const KEY: &str = "mlflow.modelVersions";
    let number = version
        .parse::<i64>()
        .map_or_else(|_| serde_json::json!(version), |v| serde_json::json!(v));
    let entry = serde_json::json!({"name": name, "version": number});
    let model = store.get_logged_model(model_id, false).await?;
    let mut listed: Vec<serde_json::Value> = model
        .info
        .tags
        .iter()
        .find(|t| t.key == KEY)
        .and_then(|t| serde_json::from_str(&t.value).ok())
        .unwrap_or_default();
    if !listed.contains(&entry) {
        listed.push(entry);
    }
    let value = crate::pyjson::dumps(&listed);
    store
        .set_logged_model_tags(model_id, vec![Tag::new(KEY.to_string(), value)])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_split_as_python_splits_them() {
        let u = split_uri("mlflow-artifacts://Host:9000/models/x?q=1#f");
        assert_eq!(
            u,
            Uri {
                scheme: "mlflow-artifacts".into(),
                netloc: "Host:9000",
                path: "/models/x"
            }
        );
        assert_eq!(split_uri("/etc").scheme, "");
        assert_eq!(split_uri("runs:/abc/model").path, "/abc/model");
        assert_eq!(split_uri("File:///etc").scheme, "file");
        assert_eq!(split_uri("file:///etc").path, "/etc");
    }

    #[test]
    fn relative_parts_are_refused_however_encoded() {
        for bad in [
            "mlflow-artifacts://host:9000/models/../../../",
            "mlflow-artifacts://host:port/..%2f..%2f..%2f..%2f",
            "mlflow-artifacts://host:port/%252e%252e/x",
            "http://host:port/api/2.0/mlflow-artifacts/artifacts%00",
            "s3:/my_bucket/models/path/../../other/path",
            "s3://bucket/a/./b",
            "s3://bucket",
            "s3://bucket/",
        ] {
            assert!(check_no_relative_parts(bad).is_err(), "{bad}");
        }
        for good in [
            "s3://bucket/models/m",
            "runs:/abc/model",
            "models:/m-1",
            "gs://b/x/y/",
        ] {
            assert!(check_no_relative_parts(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn sources_within_roots() {
        assert!(within_root(
            "mlflow-artifacts:/1/abc/artifacts/model",
            "mlflow-artifacts:/1/abc/artifacts"
        ));
        assert!(!within_root(
            "mlflow-artifacts:/1/abcd/artifacts/model",
            "mlflow-artifacts:/1/abc/artifacts"
        ));
        assert!(!within_root(
            "mlflow-artifacts:/1/abc",
            "mlflow-artifacts:/1/abc/artifacts"
        ));
        assert!(local_within("/srv/a/b/model", "file:///srv/a/b"));
        assert!(!local_within("/srv/a/b/../c", "/srv/a/b"));
        assert!(!local_within("/etc", "mlflow-artifacts:/1/abc"));
        assert!(is_proxied_artifact(
            "https://h/api/2.0/mlflow-artifacts/artifacts/1/x"
        ));
        assert!(!is_proxied_artifact("https://h/other/1/x"));
    }

    #[test]
    fn models_uris_parse_as_mlflow_parses_them() {
        let p = |s: &'static str| parse_models_uri(s, split_uri(s).path);
        assert_eq!(p("models:/m-123").unwrap(), ModelsUri::ModelId("m-123"));
        assert_eq!(
            p("models:/churn/3").unwrap(),
            ModelsUri::Version("churn", "3")
        );
        assert_eq!(
            p("models:/churn/Latest").unwrap(),
            ModelsUri::Latest("churn")
        );
        assert_eq!(
            p("models:/churn/Production").unwrap(),
            ModelsUri::Stage("churn", "Production")
        );
        assert_eq!(
            p("models:/churn@champion").unwrap(),
            ModelsUri::Alias("churn", "champion")
        );
        for bad in ["models:/", "models:/a/b/c", "models:/a/", "models:/a@"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
