//! Model directories as MLflow writes them: the `MLmodel` file's flavors and signature.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::ServeError;

/// A column of a column-based signature.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ColumnSpec {
    /// The column's name (absent in some hand-written signatures).
    #[serde(default)]
    pub name: Option<String>,
    /// MLflow type: `double`, `float`, `long`, `integer`, `boolean`, `string`, ...
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether requests must carry the column.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// A tensor of a tensor-based signature.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// The tensor's name, when the model has several.
    pub name: Option<String>,
    /// numpy dtype: `float32`, `float64`, `int64`, `str`, ...
    pub dtype: String,
    /// Dimensions; -1 for any size.
    pub shape: Vec<i64>,
}

/// A model's input signature.
#[derive(Clone, Debug, PartialEq)]
pub enum Signature {
    /// Named, typed columns.
    Columns(Vec<ColumnSpec>),
    /// Typed tensors.
    Tensors(Vec<TensorSpec>),
}

impl Signature {
    /// Parses the JSON text MLmodel stores under `signature.inputs`.
    pub fn parse(text: &str) -> Result<Self, ServeError> {
        let items: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| ServeError::Model(format!("MLmodel signature inputs: {e}")))?;
        if items.iter().any(|i| i["type"] == "tensor") {
            let specs = items
                .iter()
                .map(|i| {
                    let spec = &i["tensor-spec"];
                    TensorSpec {
                        name: i["name"].as_str().map(String::from),
                        dtype: spec["dtype"].as_str().unwrap_or("float32").to_string(),
                        shape: spec["shape"]
                            .as_array()
                            .map(|s| s.iter().map(|d| d.as_i64().unwrap_or(-1)).collect())
                            .unwrap_or_default(),
                    }
                })
                .collect();
            return Ok(Self::Tensors(specs));
        }
        let columns = serde_json::from_value(Value::Array(items))
            .map_err(|e| ServeError::Model(format!("MLmodel signature inputs: {e}")))?;
        Ok(Self::Columns(columns))
    }
}

/// What a model directory holds.
#[derive(Clone, Debug)]
pub struct MlModel {
    /// The directory.
    pub dir: PathBuf,
    /// The `keel` flavor's data file, when present.
    pub keel: Option<PathBuf>,
    /// The `onnx` flavor's model file, when present.
    pub onnx: Option<PathBuf>,
    /// The names of its flavors.
    pub flavors: Vec<String>,
    /// Whether it has a `python_function` flavor (served through Python workers when it has
    /// no flavor keel runs natively).
    pub python_function: bool,
    /// The input signature, when recorded.
    pub signature: Option<Signature>,
    /// The output signature, when recorded.
    pub outputs: Option<Signature>,
    /// The logged model's id or run id, when recorded.
    pub model_id: Option<String>,
}

impl MlModel {
    /// Reads `dir/MLmodel`.
    pub fn read(dir: &Path) -> Result<Self, ServeError> {
        let path = dir.join("MLmodel");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ServeError::Model(format!("{}: {e}", path.display())))?;
        let doc: Value = serde_norway::from_str(&text)
            .map_err(|e| ServeError::Model(format!("{}: {e}", path.display())))?;
        let flavors = &doc["flavors"];
        let data_file = |flavor: &str, default: &str| -> Option<PathBuf> {
            let f = flavors.get(flavor)?;
            let name = f["data"].as_str().unwrap_or(default);
            Some(dir.join(name))
        };
        let keel = data_file("keel", "model.json");
        let onnx = data_file("onnx", "model.onnx");
        let python_function = flavors.get("python_function").is_some();
        if keel.is_none() && onnx.is_none() && !python_function {
            let names: Vec<&str> = flavors
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(ServeError::Model(format!(
                "{}: no flavor keel serves (keel, onnx or python_function); it has {}",
                path.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        let signature = match doc["signature"]["inputs"].as_str() {
            Some(s) if !s.trim().is_empty() => Some(Signature::parse(s)?),
            _ => None,
        };
        // Output signatures only describe the model; one keel cannot read is left out.
        let outputs = match doc["signature"]["outputs"].as_str() {
            Some(s) if !s.trim().is_empty() => Signature::parse(s).ok(),
            _ => None,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            keel,
            onnx,
            flavors: flavors
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
            python_function,
            signature,
            outputs,
            model_id: doc["model_id"]
                .as_str()
                .or(doc["run_id"].as_str())
                .map(String::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_of_both_kinds_parse() {
        let cols = Signature::parse(r#"[{"type": "double", "name": "a", "required": true}, {"type": "string", "name": "b"}]"#).unwrap();
        let Signature::Columns(c) = cols else {
            panic!()
        };
        assert_eq!(c[1].name.as_deref(), Some("b"));
        assert!(c[1].required);
        let t = Signature::parse(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]"#,
        )
        .unwrap();
        assert_eq!(
            t,
            Signature::Tensors(vec![TensorSpec {
                name: None,
                dtype: "float32".into(),
                shape: vec![-1, 4]
            }])
        );
    }

    #[test]
    fn a_directory_without_a_servable_flavor_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("MLmodel"),
            "flavors:\n  sklearn: {pickled_model: model.pkl}\n",
        )
        .unwrap();
        let err = MlModel::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("sklearn"), "{err}");
    }
}
