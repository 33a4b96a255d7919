//! Request inputs and model outputs, independent of the protocol that carried them: named
//! columns (MLflow's data frame formats, CSV) or tensors (MLflow's `instances`/`inputs`, the
//! Open Inference Protocol).

use std::sync::{Arc, Mutex};

use keel_core::table::{Columns, Values};
use keel_onnx::{Data, MapKeys, MapRows, Tensor, Value};

use crate::error::ServeError;

/// A tensor and the input name it is for (unnamed for a model's only input).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The input's name.
    pub name: Option<String>,
    /// The values; numbers arrive as doubles and are cast to the model's type.
    pub tensor: Tensor,
}

/// One request's rows.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Named columns.
    Frame(Columns),
    /// Named columns that hold only numbers, in one row-major buffer.
    Table(Table),
    /// Tensors.
    Tensors(Vec<NamedTensor>),
}

impl Input {
    /// Whether the rows came as a data frame (named columns) rather than tensors.
    pub fn is_frame(&self) -> bool {
        matches!(self, Self::Frame(_) | Self::Table(_))
    }

    /// The number of rows: of the frame, or along the first tensor's first axis.
    pub fn rows(&self) -> usize {
        match self {
            Self::Frame(c) => c.rows(),
            Self::Table(t) => t.rows,
            Self::Tensors(t) => t
                .first()
                .map_or(0, |t| t.tensor.shape.first().copied().unwrap_or(1)),
        }
    }
}

/// A data frame whose cells are all numbers or null, row after row: what nearly every scoring
/// request holds, kept in one buffer so that it reaches the model without a copy per column.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column names (shared by the requests that send the same columns).
    pub names: Arc<[String]>,
    /// The number of rows.
    pub rows: usize,
    /// `rows * names.len()` values, row-major; NaN stands for null (JSON has no NaN).
    pub values: Vec<f64>,
}

impl Table {
    /// The same frame as typed columns (null cells as `None`).
    pub fn into_columns(self) -> Columns {
        let width = self.names.len();
        let values = (0..width)
            .map(|j| {
                Values::Numbers(
                    self.values
                        .iter()
                        .skip(j)
                        .step_by(width.max(1))
                        .map(|x| (!x.is_nan()).then_some(*x))
                        .collect(),
                )
            })
            .collect();
        Columns {
            names: self.names.to_vec(),
            values,
        }
    }

    /// The index of the column called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }
}

/// The column names of the last frame a model version received, handed out shared: requests
/// that send the same columns (nearly all do) build no name strings and log them without a copy.
#[derive(Debug, Default)]
pub struct ColumnNames(Mutex<Option<Arc<[String]>>>);

impl ColumnNames {
    /// `names` as a shared list, the remembered one when it is the same.
    pub fn get<S: AsRef<str>>(&self, names: &[S]) -> Arc<[String]> {
        match self.shared(names, false) {
            Ok(shared) => shared,
            Err(_) => unreachable!("names are checked only when asked"),
        }
    }

    /// Like [`Self::get`], for names a request sent: a list that names a column twice is
    /// refused. Only checked lists are remembered, so the check runs when the columns change.
    pub fn get_unique<S: AsRef<str>>(&self, names: &[S]) -> Result<Arc<[String]>, ServeError> {
        self.shared(names, true)
    }

    fn shared<S: AsRef<str>>(&self, names: &[S], check: bool) -> Result<Arc<[String]>, ServeError> {
        let same = |known: &[String]| {
            known.len() == names.len() && known.iter().zip(names).all(|(k, n)| k == n.as_ref())
        };
        if let Ok(last) = self.0.lock()
            && let Some(known) = &*last
            && same(known)
        {
            return Ok(known.clone());
        }
        let made: Arc<[String]> = names.iter().map(|n| n.as_ref().to_string()).collect();
        match unique_names(made.iter().map(String::as_str)) {
            Ok(()) => {
                if let Ok(mut last) = self.0.lock() {
                    *last = Some(made.clone());
                }
                Ok(made)
            }
            Err(e) if check => Err(e),
            Err(_) => Ok(made),
        }
    }
}

/// Refuses a list of column or input names that holds one name twice, naming it.
pub fn unique_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), ServeError> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(ServeError::BadRequest(format!(
                "column '{name}' is named twice"
            )));
        }
    }
    Ok(())
}

/// A model's answer: named outputs with one entry per input row along their first axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Output names (shared by every answer of a model).
    pub names: Arc<[String]>,
    /// Output values, in the order of `names`.
    pub values: Vec<Value>,
    /// How MLflow's `{"predictions": ...}` answer lays the values out.
    pub layout: Layout,
}

/// How an answer is written in MLflow's scoring protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// As the request came: records for a data frame, output name to tensor for tensors
    /// (keel's and ONNX models, whose outputs are always named tensors).
    #[default]
    ByInput,
    /// One object per row, output name to value (a Python model answered a data frame).
    Records,
    /// The only output as a (nested) list (a Python model answered an array or a list).
    List,
    /// Output name to all its values (a Python model answered a dict).
    Named,
}

impl Output {
    /// Rows `start..end` of every output.
    pub fn slice(&self, start: usize, end: usize) -> Output {
        let values = self
            .values
            .iter()
            .map(|v| match v {
                Value::Tensor(t) => {
                    let per_row: usize = t.shape.iter().skip(1).product();
                    let mut data = t.data.empty_like((end - start) * per_row);
                    data.extend_from(&t.data, start * per_row..end * per_row);
                    let mut shape = t.shape.clone();
                    if let Some(first) = shape.first_mut() {
                        *first = end - start;
                    }
                    Value::Tensor(Tensor { shape, data })
                }
                Value::Maps(m) => {
                    let k = m.keys.len();
                    Value::Maps(MapRows {
                        keys: m.keys.clone(),
                        values: m.values[start * k..end * k].to_vec(),
                    })
                }
            })
            .collect();
        Output {
            names: self.names.clone(),
            values,
            layout: self.layout,
        }
    }

    /// The number of rows of the first output.
    pub fn rows(&self) -> usize {
        self.values.first().map_or(0, Value::rows)
    }
}

/// One cell of a JSON table: what MLflow's data frame formats may hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
}

impl<'de> serde::Deserialize<'de> for Cell {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Cell;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number, a string, a boolean or null")
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell::Bool(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell::Number(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell::Text(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell, E> {
                Ok(Cell::Text(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Builds typed columns from cells laid out row after row, `names.len()` per row: a column is
/// numeric when its cells are numbers (or null), text when they are strings or booleans.
pub fn columns_from_cells(names: Vec<String>, cells: &[Cell]) -> Result<Columns, ServeError> {
    let width = names.len().max(1);
    let values = names
        .iter()
        .enumerate()
        .map(|(c, name)| column(name, cells.iter().skip(c).step_by(width)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Columns { names, values })
}

/// One column from its cells.
pub fn column<'a>(
    name: &str,
    cells: impl Iterator<Item = &'a Cell> + Clone,
) -> Result<Values, ServeError> {
    let text = cells
        .clone()
        .find(|c| !matches!(c, Cell::Null))
        .is_some_and(|c| matches!(c, Cell::Text(_) | Cell::Bool(_)));
    if text {
        cells
            .map(|c| match c {
                Cell::Null => Ok(None),
                Cell::Text(s) => Ok(Some(s.clone())),
                Cell::Bool(b) => Ok(Some(b.to_string())),
                Cell::Number(_) => Err(mixed(name)),
            })
            .collect::<Result<_, _>>()
            .map(Values::Text)
    } else {
        cells
            .map(|c| match c {
                Cell::Null => Ok(None),
                Cell::Number(x) => Ok(Some(*x)),
                _ => Err(mixed(name)),
            })
            .collect::<Result<_, _>>()
            .map(Values::Numbers)
    }
}

fn mixed(name: &str) -> ServeError {
    ServeError::BadRequest(format!("column '{name}' mixes numbers and strings"))
}

/// A JSON value as a tensor: nested arrays of numbers, strings or booleans, rectangular.
pub fn tensor_from_json(name: Option<&str>, v: &serde_json::Value) -> Result<Tensor, ServeError> {
    let what = || name.map_or_else(|| "the input".to_string(), |n| format!("input '{n}'"));
    let mut shape = Vec::new();
    let mut probe = v;
    while let serde_json::Value::Array(items) = probe {
        shape.push(items.len());
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut numbers = Vec::new();
    let mut strings = Vec::new();
    let mut bools = Vec::new();
    fn walk(
        v: &serde_json::Value,
        depth: usize,
        shape: &[usize],
        out: &mut (&mut Vec<f64>, &mut Vec<String>, &mut Vec<bool>),
    ) -> Result<(), String> {
        match v {
            serde_json::Value::Array(items) => {
                if depth >= shape.len() || items.len() != shape[depth] {
                    return Err("is not rectangular".into());
                }
                items
                    .iter()
                    .try_for_each(|i| walk(i, depth + 1, shape, out))
            }
            _ if depth != shape.len() => Err("is not rectangular".into()),
            serde_json::Value::Number(n) => {
                out.0.push(n.as_f64().unwrap_or(f64::NAN));
                Ok(())
            }
            serde_json::Value::Null => {
                out.0.push(f64::NAN);
                Ok(())
            }
            serde_json::Value::String(s) => {
                out.1.push(s.clone());
                Ok(())
            }
            serde_json::Value::Bool(b) => {
                out.2.push(*b);
                Ok(())
            }
            serde_json::Value::Object(_) => Err("holds an object where values belong".into()),
        }
    }
    walk(v, 0, &shape, &mut (&mut numbers, &mut strings, &mut bools))
        .map_err(|e| ServeError::BadRequest(format!("{} {e}", what())))?;
    let kinds = [!numbers.is_empty(), !strings.is_empty(), !bools.is_empty()];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(ServeError::BadRequest(format!(
            "{} mixes numbers, strings and booleans",
            what()
        )));
    }
    let data = if !strings.is_empty() {
        Data::String(strings)
    } else if !bools.is_empty() {
        Data::Bool(bools)
    } else {
        Data::Double(numbers)
    };
    Tensor::new(shape, data).map_err(|e| ServeError::BadRequest(format!("{}: {e}", what())))
}

/// The class labels of a map output as strings.
pub fn map_keys(keys: &MapKeys) -> Vec<String> {
    match keys {
        MapKeys::Int64(k) => k.iter().map(|k| k.to_string()).collect(),
        MapKeys::String(k) => k.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_become_typed_columns() {
        let cells: Vec<Cell> =
            serde_json::from_str(r#"[1, "a", true, null, null, false]"#).unwrap();
        let c = columns_from_cells(vec!["x".into(), "y".into(), "z".into()], &cells).unwrap();
        assert_eq!(c.values[0], Values::Numbers(vec![Some(1.0), None]));
        assert_eq!(c.values[1], Values::Text(vec![Some("a".into()), None]));
        assert_eq!(
            c.values[2],
            Values::Text(vec![Some("true".into()), Some("false".into())])
        );
        let bad: Vec<Cell> = serde_json::from_str(r#"[1, "a"]"#).unwrap();
        let err = columns_from_cells(vec!["x".into()], &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'x'"), "{err}");
    }

    #[test]
    fn nested_arrays_become_tensors_and_ragged_ones_are_refused() {
        let t = tensor_from_json(None, &serde_json::json!([[1, 2, 3], [4, 5, 6]])).unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        {
            let e = tensor_from_json(Some("x"), &serde_json::json!([[1, 2], [3]]))
                .expect_err("an error")
                .to_string();
            assert!(e.contains("input 'x' is not rectangular"), "{e}");
        }
    }

    #[test]
    fn outputs_slice_back_per_request() {
        let out = Output {
            names: vec!["y".to_string()].into(),
            values: vec![Value::Tensor(
                Tensor::float(vec![3, 1], vec![1., 2., 3.]).unwrap(),
            )],
            layout: Layout::ByInput,
        };
        let second = out.slice(1, 3);
        assert_eq!(
            second.values[0],
            Value::Tensor(Tensor::float(vec![2, 1], vec![2., 3.]).unwrap())
        );
    }
}
