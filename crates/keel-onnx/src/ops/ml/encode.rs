//! Category encodings: `OneHotEncoder`, `LabelEncoder` (operator sets 1 to 4) and
//! `CategoryMapper`.

use std::collections::HashMap;

use crate::attrs::Attrs;
use crate::error::OnnxError;
use crate::ops::{Kernel, input};
use crate::proto::NodeProto;
use crate::tensor::{Data, ElemType, Tensor, Value};

/// A key a table looks up: a string, an integer or a float (by bits, NaN equal to NaN).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Int(i64),
    Float(u32),
}

fn float_key(v: f32) -> Key {
    Key::Float(if v.is_nan() {
        f32::NAN.to_bits()
    } else {
        (v + 0.0).to_bits()
    })
}

/// The keys of a tensor, one per element.
fn keys(x: &Tensor, as_float: bool) -> Result<Vec<Key>, OnnxError> {
    Ok(match &x.data {
        Data::String(v) => v.iter().map(|s| Key::Str(s.clone())).collect(),
        Data::Int64(v) => v.iter().map(|&i| Key::Int(i)).collect(),
        Data::Int32(v) => v.iter().map(|&i| Key::Int(i64::from(i))).collect(),
        Data::Float(v) if as_float => v.iter().map(|&f| float_key(f)).collect(),
        Data::Double(v) if as_float => v.iter().map(|&f| float_key(f as f32)).collect(),
        Data::Float(v) => v.iter().map(|&f| Key::Int(f as i64)).collect(),
        Data::Double(v) => v.iter().map(|&f| Key::Int(f as i64)).collect(),
        other => {
            return Err(OnnxError::Type(
                "a category tensor".into(),
                other.elem_type(),
            ));
        }
    })
}

/// `OneHotEncoder`: one column per category appended to the input's shape.
pub(crate) struct OneHotEncoder {
    index: HashMap<Key, usize>,
    width: usize,
    zeros: bool,
}

impl OneHotEncoder {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let strings = a.strings("cats_strings");
        let ints = a.ints("cats_int64s");
        let cats: Vec<Key> = match (strings.is_empty(), ints.is_empty()) {
            (false, true) => strings.into_iter().map(Key::Str).collect(),
            (true, false) => ints.into_iter().map(Key::Int).collect(),
            _ => {
                return Err(OnnxError::Model(
                    "OneHotEncoder needs exactly one of cats_strings and cats_int64s".into(),
                ));
            }
        };
        let width = cats.len();
        Ok(Self {
            index: cats.into_iter().enumerate().map(|(i, k)| (k, i)).collect(),
            width,
            zeros: a.int("zeros", 1) != 0,
        })
    }
}

impl Kernel for OneHotEncoder {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let keys = keys(x, false)?;
        let mut out = vec![0.0f32; keys.len() * self.width];
        for (i, k) in keys.iter().enumerate() {
            match self.index.get(k) {
                Some(&c) => out[i * self.width + c] = 1.0,
                None if self.zeros => {}
                None => {
                    return Err(OnnxError::Shape(format!(
                        "unknown category {k:?} and zeros=0"
                    )));
                }
            }
        }
        let mut shape = x.shape.clone();
        shape.push(self.width);
        Ok(vec![Tensor::float(shape, out)?.into()])
    }
}

/// The values a lookup produces.
#[derive(Clone, Debug)]
enum Values {
    Str(Vec<String>, String),
    Int(Vec<i64>, i64),
    Float(Vec<f32>, f32),
}

impl Values {
    fn output(
        &self,
        hits: impl Iterator<Item = Option<usize>>,
        shape: Vec<usize>,
    ) -> Result<Tensor, OnnxError> {
        let data = match self {
            Self::Str(v, d) => Data::String(hits.map(|h| h.map_or(d, |i| &v[i]).clone()).collect()),
            Self::Int(v, d) => Data::Int64(hits.map(|h| h.map_or(*d, |i| v[i])).collect()),
            Self::Float(v, d) => Data::Float(hits.map(|h| h.map_or(*d, |i| v[i])).collect()),
        };
        Tensor::new(shape, data)
    }
}

/// A table from keys to values with a default.
struct Table {
    index: HashMap<Key, usize>,
    values: Values,
    float_keys: bool,
}

impl Table {
    fn run(&self, x: &Tensor) -> Result<Tensor, OnnxError> {
        let keys = keys(x, self.float_keys)?;
        self.values.output(
            keys.iter().map(|k| self.index.get(k).copied()),
            x.shape.clone(),
        )
    }
}

/// `LabelEncoder`: maps each element through a table of keys to values.
pub(crate) struct LabelEncoder {
    /// Operator set 1 maps both ways between strings and their index in `classes_strings`.
    table: Option<Table>,
    classes: Vec<String>,
    default_int: i64,
    default_string: String,
}

impl LabelEncoder {
    pub(crate) fn build(node: &NodeProto, opset: i64) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let default_int = a.int("default_int64", -1);
        let default_string = a.string("default_string", "_Unused");
        if opset < 2 {
            return Ok(Self {
                table: None,
                classes: a.strings("classes_strings"),
                default_int,
                default_string,
            });
        }
        let (keys, float_keys): (Vec<Key>, bool) = if let Some(t) = a.tensor("keys_tensor")? {
            let float = matches!(t.elem_type(), ElemType::Float | ElemType::Double);
            (keys(&t, true)?, float)
        } else if a.has("keys_strings") {
            (
                a.strings("keys_strings")
                    .into_iter()
                    .map(Key::Str)
                    .collect(),
                false,
            )
        } else if a.has("keys_int64s") {
            (
                a.ints("keys_int64s").into_iter().map(Key::Int).collect(),
                false,
            )
        } else {
            (
                a.floats("keys_floats").into_iter().map(float_key).collect(),
                true,
            )
        };
        let default_tensor = a.tensor("default_tensor")?;
        let values = if let Some(t) = a.tensor("values_tensor")? {
            match (t.data, default_tensor.map(|d| d.data)) {
                (Data::String(v), d) => Values::Str(
                    v,
                    match d {
                        Some(Data::String(d)) => d.into_iter().next().unwrap_or_default(),
                        _ => default_string.clone(),
                    },
                ),
                (Data::Int64(v), d) => Values::Int(
                    v,
                    match d {
                        Some(Data::Int64(d)) => d.first().copied().unwrap_or(default_int),
                        _ => default_int,
                    },
                ),
                (Data::Float(v), d) => Values::Float(
                    v,
                    match d {
                        Some(Data::Float(d)) => d.first().copied().unwrap_or(-0.0),
                        _ => a.float("default_float", -0.0),
                    },
                ),
                (other, _) => {
                    return Err(OnnxError::Model(format!(
                        "LabelEncoder values of type {}",
                        other.elem_type()
                    )));
                }
            }
        } else if a.has("values_strings") {
            Values::Str(a.strings("values_strings"), default_string.clone())
        } else if a.has("values_int64s") {
            Values::Int(a.ints("values_int64s"), default_int)
        } else {
            Values::Float(a.floats("values_floats"), a.float("default_float", -0.0))
        };
        let n_values = match &values {
            Values::Str(v, _) => v.len(),
            Values::Int(v, _) => v.len(),
            Values::Float(v, _) => v.len(),
        };
        if n_values != keys.len() {
            return Err(OnnxError::Model(format!(
                "LabelEncoder has {} keys and {n_values} values",
                keys.len()
            )));
        }
        Ok(Self {
            table: Some(Table {
                index: keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect(),
                values,
                float_keys,
            }),
            classes: Vec::new(),
            default_int,
            default_string,
        })
    }
}

impl Kernel for LabelEncoder {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        if let Some(table) = &self.table {
            return Ok(vec![table.run(x)?.into()]);
        }
        let data = match &x.data {
            Data::String(v) => Data::Int64(
                v.iter()
                    .map(|s| {
                        self.classes
                            .iter()
                            .position(|c| c == s)
                            .map_or(self.default_int, |i| i as i64)
                    })
                    .collect(),
            ),
            Data::Int64(v) => Data::String(
                v.iter()
                    .map(|&i| {
                        usize::try_from(i)
                            .ok()
                            .and_then(|i| self.classes.get(i))
                            .unwrap_or(&self.default_string)
                            .clone()
                    })
                    .collect(),
            ),
            other => {
                return Err(OnnxError::Type(
                    "a string or int64 tensor".into(),
                    other.elem_type(),
                ));
            }
        };
        Ok(vec![Tensor::new(x.shape.clone(), data)?.into()])
    }
}

/// `CategoryMapper`: strings to integers or integers to strings through two parallel lists.
pub(crate) struct CategoryMapper {
    to_int: Table,
    to_string: Table,
}

impl CategoryMapper {
    pub(crate) fn build(node: &NodeProto) -> Result<Self, OnnxError> {
        let a = Attrs::new(node);
        let strings = a.strings("cats_strings");
        let ints = a.ints("cats_int64s");
        if strings.len() != ints.len() {
            return Err(OnnxError::Model(
                "CategoryMapper's cats_strings and cats_int64s differ in length".into(),
            ));
        }
        let index = |keys: Vec<Key>| keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
        Ok(Self {
            to_int: Table {
                index: index(strings.iter().cloned().map(Key::Str).collect()),
                values: Values::Int(ints.clone(), a.int("default_int64", -1)),
                float_keys: false,
            },
            to_string: Table {
                index: index(ints.into_iter().map(Key::Int).collect()),
                values: Values::Str(strings, a.string("default_string", "_Unused")),
                float_keys: false,
            },
        })
    }
}

impl Kernel for CategoryMapper {
    fn run(&self, inputs: &[Option<&Value>]) -> Result<Vec<Value>, OnnxError> {
        let x = input(inputs, 0)?;
        let out = match x.elem_type() {
            ElemType::String => self.to_int.run(x)?,
            _ => self.to_string.run(x)?,
        };
        Ok(vec![out.into()])
    }
}
