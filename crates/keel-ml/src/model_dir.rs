//! The keel model directory, laid out as an MLflow model so MLflow's tools read it:
//!
//! ```text
//! MLmodel                      flavors (keel; onnx and python_function when there is a
//!                              model.onnx), signature, input example info (YAML, MLflow's keys)
//! model.json                   the model: keel.model/v1, below
//! model.onnx                   the same model as ONNX, for every kind but k-nearest
//!                              neighbours (see crate::onnx)
//! input_example.json           a few training rows, pandas "split" orient
//! serving_input_example.json   the same rows as a scoring request body (dataframe_split)
//! ```
//!
//! `model.json` holds everything prediction needs: the task, target and class names, the
//! input columns with their types, the fitted [`Pipeline`] and the fitted [`Model`]. It is
//! written deterministically (no time, no random id), so the same data, parameters and seed
//! give a byte-identical file; the MLmodel's `model_uuid` is derived from its hash.

use std::path::Path;

use keel_core::table::{Columns, Values};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{MlError, Result, invalid};
use crate::params::Task;
use crate::pipeline::Pipeline;
use crate::train::{LabelType, Model, Trained};

/// The model layout written by this version of keel.
pub const MODEL_FORMAT: &str = "keel.model/v1";
/// Rows kept as the input example.
pub const EXAMPLE_ROWS: usize = 5;

/// An input column and its MLflow type (`double` for numbers, `string` for text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputColumn {
    /// Column name.
    pub name: String,
    /// MLflow column type.
    #[serde(rename = "type")]
    pub dtype: String,
}

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeelModel {
    /// `keel.model/v1`.
    pub format: String,
    /// `classification`, `regression` or `clustering`.
    pub task: String,
    /// The target column (`cluster` for clustering).
    pub target: String,
    /// Class names in the order of the model's outputs (classification).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// The type labels are given back in: the target's own (`long` for an integer target);
    /// left out for text.
    #[serde(default, skip_serializing_if = "LabelType::is_string")]
    pub label_type: LabelType,
    /// The input columns, in order.
    pub inputs: Vec<InputColumn>,
    /// The feature pipeline.
    pub pipeline: Pipeline,
    /// The fitted model.
    pub model: Model,
}

impl KeelModel {
    /// The model of a training on `table`; a clustering model's output is named `cluster`.
    pub fn of(trained: &Trained, target: Option<&str>, table: &Columns) -> Result<KeelModel> {
        let inputs = trained
            .features
            .iter()
            .map(|name| {
                let dtype = match table.get(name) {
                    Some(Values::Numbers(_)) => "double",
                    Some(Values::Text(_)) => "string",
                    None => return invalid(format!("no column '{name}' in the data")),
                };
                Ok(InputColumn {
                    name: name.clone(),
                    dtype: dtype.into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KeelModel {
            format: MODEL_FORMAT.into(),
            task: trained.task.as_str().into(),
            target: target.unwrap_or(crate::onnx::CLUSTER).into(),
            classes: trained.classes.clone(),
            label_type: if trained.task == Task::Classification {
                trained.label_type
            } else {
                LabelType::String
            },
            inputs,
            pipeline: trained.pipeline.clone(),
            model: trained.model.clone(),
        })
    }

    /// The output column's MLflow type.
    fn output_type(&self) -> &'static str {
        if self.task == Task::Regression.as_str() {
            "double"
        } else if self.task == Task::Clustering.as_str() {
            "long"
        } else {
            self.label_type.as_str()
        }
    }
}

fn io(path: &Path, e: std::io::Error) -> MlError {
    MlError::Invalid(format!("{}: {e}", path.display()))
}

/// When and where a model directory was logged, as its MLmodel records it.
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// Creation time, `YYYY-MM-DD HH:MM:SS.ffffff` in UTC.
    pub created: &'a str,
    /// The run that trained it.
    pub run_id: Option<&'a str>,
    /// Its logged model id (`m-...`).
    pub model_id: Option<&'a str>,
}

impl<'a> Stamp<'a> {
    /// Created at `created`, not logged anywhere.
    pub fn at(created: &'a str) -> Self {
        Stamp {
            created,
            run_id: None,
            model_id: None,
        }
    }
}

/// Writes the model directory `dir` (created if needed), with up to [`EXAMPLE_ROWS`] rows of
/// `example` as the input example and `stamp`'s creation time, run and logged model id.
pub fn write(dir: &Path, model: &KeelModel, example: &Columns, stamp: &Stamp) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let body = serde_json::to_vec_pretty(model)
        .map_err(|e| MlError::Invalid(format!("model.json: {e}")))?;
    let uuid: String = blake3::hash(&body).to_hex().chars().take(32).collect();
    let signature = |cols: Vec<Value>| Value::Array(cols).to_string();
    let inputs: Vec<Value> = model
        .inputs
        .iter()
        .map(|c| json!({"type": c.dtype, "name": c.name, "required": true}))
        .collect();
    let outputs =
        vec![json!({"type": model.output_type(), "name": model.target, "required": true})];
    let onnx = crate::onnx::export(model);
    let mut flavors = json!({"keel": {
        "format": MODEL_FORMAT,
        "data": "model.json",
        "keel_version": env!("CARGO_PKG_VERSION"),
    }});
    if onnx.is_some() {
        flavors["onnx"] = json!({
            "code": null,
            "data": crate::onnx::ONNX_FILE,
            "opset": crate::onnx::OPSET,
            "ml_opset": crate::onnx::ML_OPSET,
            "providers": ["CPUExecutionProvider"],
        });
        flavors["python_function"] = json!({
            "loader_module": "mlflow.onnx",
            "data": crate::onnx::ONNX_FILE,
        });
    }
    let mut mlmodel = json!({
        "artifact_path": "model",
        "flavors": flavors,
        "model_uuid": uuid,
        "saved_input_example_info": {
            "artifact_path": "input_example.json",
            "pandas_orient": "split",
            "serving_input_path": "serving_input_example.json",
            "type": "dataframe",
        },
        "signature": {
            "inputs": signature(inputs),
            "outputs": signature(outputs),
            "params": null,
        },
        "utc_time_created": stamp.created,
    });
    for (key, value) in [("run_id", stamp.run_id), ("model_id", stamp.model_id)] {
        if let Some(v) = value {
            mlmodel[key] = json!(v);
        }
    }
    let yaml =
        serde_norway::to_string(&mlmodel).map_err(|e| MlError::Invalid(format!("MLmodel: {e}")))?;
    let rows = example.rows().min(EXAMPLE_ROWS);
    let data: Vec<Value> = (0..rows)
        .map(|i| {
            Value::Array(
                model
                    .inputs
                    .iter()
                    .map(|c| match example.get(&c.name) {
                        Some(Values::Numbers(v)) => v[i].map_or(Value::Null, |x| json!(x)),
                        Some(Values::Text(v)) => v[i].clone().map_or(Value::Null, Value::String),
                        None => Value::Null,
                    })
                    .collect(),
            )
        })
        .collect();
    let columns: Vec<&str> = model.inputs.iter().map(|c| c.name.as_str()).collect();
    let split = json!({"columns": columns, "data": data});
    let files = [
        ("model.json", body),
        ("MLmodel", yaml.into_bytes()),
        ("input_example.json", split.to_string().into_bytes()),
        (
            "serving_input_example.json",
            serde_json::to_vec_pretty(&json!({"dataframe_split": split}))
                .map_err(|e| MlError::Invalid(e.to_string()))?,
        ),
    ];
    for (name, bytes) in files
        .into_iter()
        .chain(onnx.map(|bytes| (crate::onnx::ONNX_FILE, bytes)))
    {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// Reads `model.json` of the model directory `dir`.
pub fn read(dir: &Path) -> Result<KeelModel> {
    let path = dir.join("model.json");
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let model: KeelModel = serde_json::from_slice(&bytes)
        .map_err(|e| MlError::Invalid(format!("{}: {e}", path.display())))?;
    if model.format != MODEL_FORMAT {
        return invalid(format!(
            "{}: format '{}'; this keel reads '{MODEL_FORMAT}'",
            path.display(),
            model.format
        ));
    }
    Ok(model)
}
