//! MLflow's input limits and name rules (`mlflow/utils/validation.py`), so keel accepts and
//! refuses exactly what MLflow does.

use crate::entities::{Metric, Param, Tag};
use crate::error::{Error, Result};

pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_KEY_LENGTH: usize = 250;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
pub const MAX_REGISTRY_TAG_KEY_LENGTH: usize = 250;
pub const MAX_REGISTRY_TAG_VAL_LENGTH: usize = 100_000;
pub const MAX_ALIAS_LENGTH: usize = 255;
/// The longest registered model name (MLflow's `registered_models.name` column).
pub const MAX_MODEL_NAME_LENGTH: usize = 256;
/// The longest run name (MLflow's `runs.name` column).
pub const MAX_RUN_NAME_LENGTH: usize = 250;
/// The longest logged model name (MLflow's `logged_models.name` column).
pub const MAX_LOGGED_MODEL_NAME_LENGTH: usize = 500;
pub const MAX_DATASETS_PER_BATCH: usize = 1000;
pub const MAX_DATASET_NAME_SIZE: usize = 500;
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
pub const MAX_DATASET_SOURCE_SIZE: usize = 65_535;
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;
/// Largest `max_results` for run search.
pub const MAX_RESULTS_RUNS: i64 = 50_000;
/// Largest `max_results` for experiment search.
pub const MAX_RESULTS_EXPERIMENTS: i64 = 50_000;
/// Largest `max_results` for registry searches.
pub const MAX_RESULTS_REGISTRY: i64 = 1_000;

/// `posixpath.normpath`: collapses `//`, drops `.`, resolves `..` where it can.
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn bad_chars(name: &str) -> bool {
    !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':'))
}

fn path_not_unique(name: &str) -> bool {
    if !name.contains('/') {
        return name == "." || name == "..";
    }
    let n = normpath(name);
    n != name || n == "." || n.starts_with("..") || n.starts_with('/')
}

/// Checks a metric, param or tag key: allowed characters, no path tricks, at most 250 chars.
/// `path` names the field in error messages.
pub fn key(kind: &str, path: &str, name: &str) -> Result<()> {
    key_at(kind, path, "", name)
}

/// [`key`] for the field `field` below `path` (`metrics[3]` + `key`); the name of the field is
/// only put together when there is an error to report.
fn key_at(kind: &str, path: &str, field: &str, name: &str) -> Result<()> {
    let at = || join(path, field);
    if name.is_empty() {
        return Err(Error::invalid(format!(
            "Missing value for required parameter '{}'.",
            at()
        )));
    }
    if bad_chars(name) {
        return Err(Error::invalid(format!(
            "Invalid value \"{name}\" for parameter '{}' supplied: Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).",
            at()
        )));
    }
    if path_not_unique(name) {
        return Err(Error::invalid(format!(
            "Invalid value \"{name}\" for parameter '{}' supplied: Names may be treated as files in certain cases, and must not resolve to other names when treated as such. This name would resolve to '{}'",
            at(),
            normpath(name)
        )));
    }
    length(kind, name, MAX_ENTITY_KEY_LENGTH)
}

/// Refuses a value longer than `limit` characters.
pub fn length(what: &str, value: &str, limit: usize) -> Result<()> {
    if value.chars().count() > limit {
        return Err(Error::invalid(format!(
            "'{what}' exceeds the maximum length of {limit} characters"
        )));
    }
    Ok(())
}

pub fn metric(path: &str, m: &Metric) -> Result<()> {
    key_at("Metric name", path, "key", &m.key)?;
    if m.timestamp < 0 {
        return Err(Error::invalid(format!(
            "Invalid value {} for parameter '{}' supplied: metric '{}' (value={}). Timestamp must be a nonnegative long (64-bit integer)",
            m.timestamp,
            join(path, "timestamp"),
            m.key,
            m.value
        )));
    }
    Ok(())
}

/// A run or logged-model param: a valid key; a value over 6,000 characters is cut to that
/// length, as MLflow does by default (`MLFLOW_TRUNCATE_LONG_VALUES`).
pub fn param(path: &str, p: &mut Param) -> Result<()> {
    key_at("Param key", path, "key", &p.key)?;
    no_nul(path, "value", &p.value)?;
    truncate(&mut p.value, MAX_PARAM_VAL_LENGTH);
    Ok(())
}

/// A run or logged-model tag: a valid key; a value over 8,000 characters is cut to that length,
/// as MLflow does by default.
pub fn tag(path: &str, t: &mut Tag) -> Result<()> {
    key_at("Tag key", path, "key", &t.key)?;
    no_nul(path, "value", &t.value)?;
    truncate(&mut t.value, MAX_TAG_VAL_LENGTH);
    Ok(())
}

/// Refuses a value holding the NUL character, which PostgreSQL cannot store.
fn no_nul(path: &str, field: &str, value: &str) -> Result<()> {
    match value.contains('\0') {
        true => Err(Error::invalid(format!(
            "Invalid value for parameter '{}' supplied: it holds the NUL character (U+0000)",
            join(path, field)
        ))),
        false => Ok(()),
    }
}

/// Cuts `value` to its first `limit` characters; true when it was longer.
pub fn truncate(value: &mut String, limit: usize) -> bool {
    match value.char_indices().nth(limit) {
        Some((end, _)) => {
            value.truncate(end);
            true
        }
        None => false,
    }
}

pub fn experiment_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("Invalid experiment name: '{name}'")));
    }
    length("name", name, MAX_EXPERIMENT_NAME_LENGTH)
}

pub fn experiment_tag(t: &Tag) -> Result<()> {
    key("key", "key", &t.key)?;
    length("key", &t.key, MAX_EXPERIMENT_TAG_KEY_LENGTH)?;
    length("value", &t.value, MAX_EXPERIMENT_TAG_VAL_LENGTH)
}

pub fn registry_tag(t: &Tag) -> Result<()> {
    key("key", "key", &t.key)?;
    length("key", &t.key, MAX_REGISTRY_TAG_KEY_LENGTH)?;
    length("value", &t.value, MAX_REGISTRY_TAG_VAL_LENGTH)
}

/// Registered model names: non-empty, no path tricks (they appear in `models:/NAME/...` URIs).
pub fn model_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("Registered model name cannot be empty."));
    }
    if name.contains('/') || name.contains(':') {
        return Err(Error::invalid(format!(
            "Invalid model name '{name}': names cannot contain '/' or ':'."
        )));
    }
    length("name", name, MAX_MODEL_NAME_LENGTH)
}

/// Run names: at most 250 characters.
pub fn run_name(name: &str) -> Result<()> {
    length("run_name", name, MAX_RUN_NAME_LENGTH)
}

/// Logged model names: at most 500 characters.
pub fn logged_model_name(name: &str) -> Result<()> {
    length("name", name, MAX_LOGGED_MODEL_NAME_LENGTH)
}

/// Aliases: non-empty, at most 255 characters, not `latest` and not a version (`v3`).
pub fn alias(alias: &str) -> Result<()> {
    if alias.is_empty()
        || !alias
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(format!(
            "Invalid alias name '{alias}'. Aliases may only contain alphanumerics, underscores and dashes."
        )));
    }
    length("alias", alias, MAX_ALIAS_LENGTH)?;
    let lower = alias.to_ascii_lowercase();
    let version_like = lower
        .strip_prefix('v')
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    if lower == "latest" || version_like {
        return Err(Error::invalid(format!(
            "'{alias}' alias name (case insensitive) is reserved: 'latest' and 'v<number>' cannot be aliases."
        )));
    }
    Ok(())
}

/// MLflow's batch limits: 1000 metrics, 100 params, 100 tags, 1000 entities in all.
pub fn batch_limits(metrics: usize, params: usize, tags: usize) -> Result<()> {
    let check = |what: &str, limit: usize, n: usize| {
        if n > limit {
            Err(Error::invalid(format!(
                "A batch logging request can contain at most {limit} {what}. Got {n} {what}. Please split up {what} across multiple requests and try again."
            )))
        } else {
            Ok(())
        }
    };
    check("metrics", MAX_METRICS_PER_BATCH, metrics)?;
    check("params", MAX_PARAMS_TAGS_PER_BATCH, params)?;
    check("tags", MAX_PARAMS_TAGS_PER_BATCH, tags)?;
    check(
        "metrics, params, and tags",
        MAX_ENTITIES_PER_BATCH,
        metrics + params + tags,
    )
}

/// Rejects duplicate param keys in one batch.
pub fn unique_param_keys(params: &[Param]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let dupes: Vec<&str> = params
        .iter()
        .filter(|p| !seen.insert(p.key.as_str()))
        .map(|p| p.key.as_str())
        .collect();
    if dupes.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Duplicate parameter keys have been submitted: {dupes:?}. Please ensure the request contains only one param value per param key."
        )))
    }
}

/// A run id brought from another store: 1 to 64 ASCII letters, digits, `-` or `_` (MLflow's are
/// 32 hex digits). It becomes part of artifact paths, so nothing else is allowed.
pub fn run_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("Invalid run id '{id}'")))
    }
}

/// An experiment id: digits only.
pub fn experiment_id(id: &str) -> Result<i64> {
    id.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        ))
    })
}

fn join(path: &str, field: &str) -> String {
    match (path.is_empty(), field.is_empty()) {
        (true, _) => field.to_string(),
        (false, true) => path.to_string(),
        (false, false) => format!("{path}.{field}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_matches_posixpath() {
        assert_eq!(normpath("a//b/./c/"), "a/b/c");
        assert_eq!(normpath("../a"), "../a");
        assert_eq!(normpath("a/../.."), "..");
        assert_eq!(normpath("/a/../../b"), "/b");
        assert_eq!(normpath(""), ".");
    }

    /// The message of an error that must be an `INVALID_PARAMETER_VALUE`.
    fn invalid<T: std::fmt::Debug>(r: Result<T>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidParameterValue, "{e}");
        e.message
    }

    #[test]
    fn keys_follow_mlflow_rules() {
        assert!(key("k", "key", "train/loss-1 a:b").is_ok());
        assert!(invalid(key("k", "key", "a$b")).contains("Names may only contain alphanumerics"));
        for tricky in ["../x", "a//b", "/abs"] {
            let e = invalid(key("k", "key", tricky));
            assert!(
                e.contains("must not resolve to other names"),
                "{tricky}: {e}"
            );
        }
        assert!(
            invalid(key("k", "key", &"x".repeat(251)))
                .contains("exceeds the maximum length of 250")
        );
        assert_eq!(
            invalid(key("k", "key", "")),
            "Missing value for required parameter 'key'."
        );
    }

    #[test]
    fn batch_limits_and_aliases() {
        assert!(batch_limits(1000, 0, 0).is_ok());
        assert!(invalid(batch_limits(1001, 0, 0)).contains("at most 1000 metrics. Got 1001"));
        assert!(
            invalid(batch_limits(900, 100, 1)).contains("at most 1000 metrics, params, and tags")
        );
        assert!(alias("champion").is_ok());
        for reserved in ["latest", "V2"] {
            assert!(
                invalid(alias(reserved)).contains("is reserved"),
                "{reserved}"
            );
        }
        assert!(alias("v2a").is_ok());
        assert_eq!(experiment_id("12").unwrap(), 12);
        assert!(invalid(experiment_id("x1")).contains("Invalid experiment ID 'x1'"));
    }

    #[test]
    fn long_param_and_tag_values_are_cut_as_mlflow_cuts_them() {
        let mut p = Param::new("p", "é".repeat(6001));
        param("", &mut p).unwrap();
        assert_eq!(p.value.chars().count(), 6000);
        let mut t = Tag::new("t", "x".repeat(8000));
        tag("", &mut t).unwrap();
        assert_eq!(t.value.len(), 8000, "at the limit nothing is cut");
        assert!(invalid(param("params[0]", &mut Param::new("", "v"))).contains("params[0].key"));
    }
}
