//! Native where exact: a scikit-learn, XGBoost or LightGBM model converted to ONNX once (by
//! `convert.py`, in the model's Python), then run by keel's own runtime on the rows the
//! converter wrote (the input example and rows generated from the signature) and served
//! natively only if its answers agree with the original model's: labels equal, values and
//! probabilities within 1e-5. The verdict is cached with what it was checked against, under a
//! hash of the model's files; a model that is not converted, or whose conversion disagrees, is
//! served by the Python workers, and the reason is kept for the log and the metadata endpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_core::table::{Columns, Values};
use keel_onnx::{Data, Value};
use serde::{Deserialize, Serialize};

use crate::error::ServeError;
use crate::mlmodel::MlModel;
use crate::payload::Input;

/// The converter program.
const CONVERTER: &str = include_str!("convert.py");

/// How close a converted model's values and probabilities must be to the original's
/// (relative to the value, or absolute below 1).
pub const TOLERANCE: f64 = 1e-5;

/// The flavors with a converter.
pub const CONVERTIBLE: &[&str] = &["sklearn", "xgboost", "lightgbm"];

/// What a conversion decided, as cached beside the converted model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Whether the converted model is served.
    pub native: bool,
    /// What was checked (when served) or why not.
    pub note: String,
    /// The output that answers as the model's `predict` does (`label` or `variable`).
    #[serde(default)]
    pub output: Option<String>,
    /// Whether the labels are booleans (the converted model answers them as 0 and 1).
    #[serde(default)]
    pub boolean_labels: bool,
}

/// What the converter wrote.
#[derive(Deserialize)]
struct Check {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    converter: String,
    #[serde(default)]
    classifier: bool,
    #[serde(default)]
    columns: Vec<String>,
    #[serde(default)]
    example_rows: usize,
    #[serde(default)]
    rows: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    predictions: Vec<serde_json::Value>,
    #[serde(default)]
    probabilities: Option<Vec<Vec<f64>>>,
    #[serde(default)]
    boolean_labels: bool,
}

/// The hash of a model folder's files (names and contents), which keys its cached conversion.
fn folder_hash(dir: &Path) -> Result<String, ServeError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| ServeError::Model(format!("{}: {e}", d.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut h = blake3::Hasher::new();
    h.update(CONVERTER.as_bytes());
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update(b"\0");
        let bytes =
            std::fs::read(&f).map_err(|e| ServeError::Model(format!("{}: {e}", f.display())))?;
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize().to_hex()[..24].to_string())
}

/// The converted model's folder in `cache` for `ml`, converting and checking it first unless an
/// earlier run did; the verdict says whether to serve `model.onnx` in it. A converter still
/// running after `limit` is killed and the model served by the workers. Blocking.
pub fn convert(
    ml: &MlModel,
    python: &Path,
    cache: &Path,
    limit: Duration,
) -> Result<(PathBuf, Verdict), ServeError> {
    let dir = cache.join(folder_hash(&ml.dir)?);
    let verdict_file = dir.join("verdict.json");
    if let Ok(text) = std::fs::read_to_string(&verdict_file)
        && let Ok(verdict) = serde_json::from_str::<Verdict>(&text)
    {
        return Ok((dir, verdict));
    }
    std::fs::create_dir_all(cache)
        .map_err(|e| ServeError::Model(format!("{}: {e}", cache.display())))?;
    let work = cache.join(format!(
        ".{}-{}",
        uuid::Uuid::new_v4().simple(),
        std::process::id()
    ));
    std::fs::create_dir_all(&work)
        .map_err(|e| ServeError::Model(format!("{}: {e}", work.display())))?;
    let verdict = match run_and_check(ml, python, &work, limit) {
        Ok(Ran::Model(v)) => v,
        // A verdict on the Python, not on the model: not kept, so the next start (with the
        // converter installed) tries again.
        Ok(Ran::Environment(v)) => {
            let _ = std::fs::remove_dir_all(&work);
            return Ok((dir, v));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    let text = serde_json::to_string(&verdict).map_err(|e| ServeError::Model(e.to_string()))?;
    std::fs::write(work.join("verdict.json"), text)
        .map_err(|e| ServeError::Model(format!("{}: {e}", work.display())))?;
    if std::fs::rename(&work, &dir).is_err() {
        // Another process converted the same model meanwhile: its verdict stands.
        let _ = std::fs::remove_dir_all(&work);
    }
    let text = std::fs::read_to_string(&verdict_file)
        .map_err(|e| ServeError::Model(format!("{}: {e}", verdict_file.display())))?;
    let verdict = serde_json::from_str(&text).map_err(|e| ServeError::Model(e.to_string()))?;
    Ok((dir, verdict))
}

fn fallback(note: impl Into<String>) -> Verdict {
    Verdict {
        native: false,
        note: note.into(),
        output: None,
        boolean_labels: false,
    }
}

/// Runs the converter into `work` and checks its model; a conversion that fails or disagrees
/// is a verdict (served by the workers), not an error.
/// A conversion's verdict, by what it is about.
enum Ran {
    /// The model converted and checked, or refused by the converter: the same next time.
    Model(Verdict),
    /// The converter could not run in this Python (not installed, crashed).
    Environment(Verdict),
}

fn run_and_check(
    ml: &MlModel,
    python: &Path,
    work: &Path,
    limit: Duration,
) -> Result<Ran, ServeError> {
    let script = work.join("convert.py");
    std::fs::write(&script, CONVERTER)
        .map_err(|e| ServeError::Model(format!("{}: {e}", script.display())))?;
    // A file rather than a pipe: nothing to drain while waiting, and a process the converter
    // left behind cannot hold the wait open.
    let log_file = work.join("converter.log");
    let log = std::fs::File::create(&log_file)
        .map_err(|e| ServeError::Model(format!("{}: {e}", log_file.display())))?;
    let mut child = Command::new(python)
        .arg(&script)
        .arg(&ml.dir)
        .arg(work)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| ServeError::Model(format!("cannot run {}: {e}", python.display())))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < limit => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&script);
                return Ok(Ran::Environment(fallback(format!(
                    "the converter did not finish within {} s",
                    limit.as_secs()
                ))));
            }
            Err(e) => {
                return Err(ServeError::Model(format!("{}: {e}", python.display())));
            }
        }
    };
    let stderr = std::fs::read(&log_file).unwrap_or_default();
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&log_file);
    if !work.join("check.json").is_file() {
        let stderr = String::from_utf8_lossy(&stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output");
        return Ok(Ran::Environment(fallback(format!(
            "the converter did not run ({status}): {last}"
        ))));
    }
    let verdict = check_folder(ml, work)?;
    if !verdict.native && verdict.note.contains("No module named") {
        return Ok(Ran::Environment(fallback(format!(
            "{} (in {})",
            verdict.note,
            python.display()
        ))));
    }
    Ok(Ran::Model(verdict))
}

/// Checks the converter's output in `work` (`check.json`, and `model.onnx` unless the
/// converter refused): the verdict on serving the conversion of `ml`.
pub fn check_folder(ml: &MlModel, work: &Path) -> Result<Verdict, ServeError> {
    let check_file = work.join("check.json");
    let text = std::fs::read_to_string(&check_file)
        .map_err(|e| ServeError::Model(format!("{}: {e}", check_file.display())))?;
    let check: Check = serde_json::from_str(&text)
        .map_err(|e| ServeError::Model(format!("{}: {e}", check_file.display())))?;
    if let Some(reason) = check.reason {
        return Ok(fallback(reason));
    }
    let onnx = work.join("model.onnx");
    let model = match keel_onnx::Model::from_file(&onnx) {
        Ok(m) => m,
        Err(e) => {
            return Ok(fallback(format!(
                "keel's runtime cannot load the converted graph: {e}"
            )));
        }
    };
    let predictor = crate::predictor::Predictor::from_onnx(model, ml.signature.clone(), &onnx);
    Ok(verify(&predictor, &check).unwrap_or_else(fallback))
}

/// Runs the converted model on the check's rows and compares its answers with the original
/// model's; `Err` holds the first disagreement.
fn verify(predictor: &crate::predictor::Predictor, check: &Check) -> Result<Verdict, String> {
    let mut cols = Columns {
        names: Vec::new(),
        values: Vec::new(),
    };
    for name in &check.columns {
        let cells = check
            .rows
            .get(name)
            .and_then(|v| v.as_array())
            .ok_or(format!("no rows for column '{name}'"))?;
        let values = if cells.iter().any(serde_json::Value::is_string) {
            Values::Text(cells.iter().map(|c| c.as_str().map(String::from)).collect())
        } else if cells.iter().any(serde_json::Value::is_boolean) {
            Values::Text(
                cells
                    .iter()
                    .map(|c| c.as_bool().map(|b| b.to_string()))
                    .collect(),
            )
        } else {
            Values::Numbers(cells.iter().map(serde_json::Value::as_f64).collect())
        };
        cols.names.push(name.clone());
        cols.values.push(values);
    }
    let rows = cols.rows();
    let feed = predictor
        .prepare(Input::Frame(cols))
        .map_err(|e| format!("the converted model does not take the model's rows: {e}"))?;
    let output = predictor
        .predict(&feed)
        .map_err(|e| format!("the converted model failed on the check's rows: {e}"))?;
    let find = |name: &str| -> Option<&keel_onnx::Tensor> {
        let k = output.names.iter().position(|n| n == name)?;
        match &output.values[k] {
            Value::Tensor(t) => Some(t),
            Value::Maps(_) => None,
        }
    };
    let answer = if check.classifier {
        "label"
    } else {
        "variable"
    };
    let got = find(answer).ok_or(format!("the converted model has no '{answer}' output"))?;
    if got.len() != rows || check.predictions.len() != rows {
        return Err(format!(
            "the converted model answered {} values for {rows} rows",
            got.len()
        ));
    }
    let mut worst: f64 = 0.0;
    for (i, want) in check.predictions.iter().enumerate() {
        let same = match (&got.data, want) {
            (Data::String(v), serde_json::Value::String(w)) => v[i] == *w,
            (Data::Int64(v), serde_json::Value::Bool(w)) if check.boolean_labels => {
                (v[i] != 0) == *w
            }
            (Data::Int64(v), w) if check.classifier => {
                w.as_i64() == Some(v[i]) || w.as_f64() == Some(v[i] as f64)
            }
            (data, w) if !check.classifier => {
                let g = match data {
                    Data::Float(v) => f64::from(v[i]),
                    Data::Double(v) => v[i],
                    _ => f64::NAN,
                };
                let w = w.as_f64().unwrap_or(f64::NAN);
                let d = (g - w).abs() / w.abs().max(1.0);
                worst = worst.max(d);
                d <= TOLERANCE
            }
            _ => false,
        };
        if !same {
            return Err(format!(
                "the ONNX conversion disagrees with the model on row {i} of {rows} ({} against {want})",
                element(&got.data, i)
            ));
        }
    }
    if let Some(probabilities) = &check.probabilities {
        let got =
            find("probabilities").ok_or("the converted model has no 'probabilities' output")?;
        let width = probabilities.first().map_or(0, Vec::len);
        let values: Vec<f64> = match &got.data {
            Data::Float(v) => v.iter().map(|x| f64::from(*x)).collect(),
            Data::Double(v) => v.clone(),
            _ => return Err("the converted model's probabilities are not numbers".into()),
        };
        if values.len() != rows * width {
            return Err(format!(
                "the converted model answered {} probabilities for {rows} rows of {width} classes",
                values.len()
            ));
        }
        for (i, row) in probabilities.iter().enumerate() {
            for (k, w) in row.iter().enumerate() {
                let d = (values[i * width + k] - w).abs();
                worst = worst.max(d);
                if d > TOLERANCE {
                    return Err(format!(
                        "the ONNX conversion's probability of class {k} on row {i} is {} where the model says {w}",
                        values[i * width + k]
                    ));
                }
            }
        }
    }
    Ok(Verdict {
        native: true,
        note: format!(
            "converted to ONNX by {}, checked on {rows} rows ({} from the input example, {} generated from the signature): {} equal{}, largest difference {worst:.1e}",
            check.converter,
            check.example_rows,
            rows - check.example_rows,
            if check.classifier {
                "labels"
            } else {
                "values within 1e-5,"
            },
            if check.classifier {
                ", probabilities within 1e-5"
            } else {
                ""
            },
        ),
        output: Some(answer.to_string()),
        boolean_labels: check.boolean_labels,
    })
}

fn element(data: &Data, i: usize) -> String {
    match data {
        Data::Float(v) => v[i].to_string(),
        Data::Double(v) => v[i].to_string(),
        Data::Int64(v) => v[i].to_string(),
        Data::Int32(v) => v[i].to_string(),
        Data::Bool(v) => v[i].to_string(),
        Data::String(v) => format!("'{}'", v[i]),
    }
}

/// Whether a model has a flavor with a converter.
pub fn convertible(ml: &MlModel) -> bool {
    ml.flavors.iter().any(|f| CONVERTIBLE.contains(&f.as_str()))
}
