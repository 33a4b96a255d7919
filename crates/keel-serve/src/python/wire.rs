//! What crosses the socket between keel and a Python worker: frames (a 4-byte big-endian
//! length, a kind byte, the payload) whose batches of rows and answers are Arrow IPC streams,
//! so values cross without JSON.
//!
//! A batch of columns travels as one Arrow column per signature column, typed as the signature
//! says (`long` as Int64, `boolean` as Boolean, ...), which is what the worker's pandas frame
//! then holds. Tensors travel one per column, each row a fixed-size list of its trailing
//! dimensions, with the full shape in the field's `keel.shape` metadata. An answer carries
//! `keel.form` in its schema metadata: how MLflow's scoring server would write what the model
//! returned (`records` for a data frame or series, `list` for an array, `named` for a dict).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, FixedSizeListArray, Float32Array,
    Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use keel_core::table::{Columns, Values};
use keel_onnx::{Data, Tensor, Value};

use crate::error::ServeError;
use crate::mlmodel::ColumnSpec;
use crate::payload::{Layout, Output};

/// keel asks for a prediction; the payload is an Arrow IPC stream.
pub const PREDICT: u8 = b'P';
/// The worker loaded the model; the payload is JSON about it.
pub const READY: u8 = b'R';
/// The worker could not load the model; the payload is JSON with the reason.
pub const FATAL: u8 = b'F';
/// The predictions, as an Arrow IPC stream.
pub const ANSWER: u8 = b'A';
/// The prediction failed; the payload is JSON with `kind` (`input` or `model`) and `message`.
pub const ERROR: u8 = b'E';

/// The frame header: the length of what follows it (kind byte included), then the kind.
pub fn header(kind: u8, payload: usize) -> Result<[u8; 5], ServeError> {
    let len = u32::try_from(payload + 1)
        .map_err(|_| ServeError::BadRequest("the batch is larger than 4 GiB".into()))?;
    let mut h = [0u8; 5];
    h[..4].copy_from_slice(&len.to_be_bytes());
    h[4] = kind;
    Ok(h)
}

fn arrow_error(e: impl std::fmt::Display) -> ServeError {
    ServeError::Predict(format!("the worker's data: {e}"))
}

fn write_ipc(batch: &RecordBatch) -> Result<Vec<u8>, ServeError> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
        .map_err(arrow_error)?;
    w.write(batch).map_err(arrow_error)?;
    w.finish().map_err(arrow_error)?;
    w.into_inner().map_err(arrow_error)
}

/// Columns checked against a column signature as one Arrow batch, each typed by its
/// signature column (the checks that can fail ran when the request was prepared).
pub fn encode_columns(cols: &Columns, spec: &[ColumnSpec]) -> Result<Vec<u8>, ServeError> {
    let mut fields = Vec::with_capacity(cols.names.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.names.len());
    for (name, values) in cols.names.iter().zip(&cols.values) {
        let ty = spec
            .iter()
            .find(|c| c.name.as_deref() == Some(name.as_str()))
            .map_or("", |c| c.ty.as_str());
        let array: ArrayRef = match (ty, values) {
            ("long", Values::Numbers(v)) => {
                Arc::new(Int64Array::from_iter(v.iter().map(|x| x.map(|x| x as i64))))
            }
            ("integer", Values::Numbers(v)) => {
                Arc::new(Int32Array::from_iter(v.iter().map(|x| x.map(|x| x as i32))))
            }
            ("float", Values::Numbers(v)) => Arc::new(Float32Array::from_iter(
                v.iter().map(|x| x.map(|x| x as f32)),
            )),
            ("boolean", Values::Text(v)) => Arc::new(BooleanArray::from_iter(
                v.iter().map(|x| x.as_deref().map(|x| x == "true")),
            )),
            ("boolean", Values::Numbers(v)) => Arc::new(BooleanArray::from_iter(
                v.iter().map(|x| x.map(|x| x != 0.0)),
            )),
            (_, Values::Numbers(v)) => Arc::new(Float64Array::from_iter(v.iter().copied())),
            (_, Values::Text(v)) => Arc::new(StringArray::from_iter(v.iter())),
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let schema = Schema::new_with_metadata(
        fields,
        HashMap::from([("keel.input".to_string(), "frame".to_string())]),
    );
    let batch = RecordBatch::try_new(Arc::new(schema), arrays).map_err(arrow_error)?;
    write_ipc(&batch)
}

/// The rows of a tensor as one column: the values for rank 1, fixed-size lists of the
/// trailing dimensions otherwise.
fn tensor_column(t: &Tensor) -> Result<ArrayRef, ServeError> {
    let flat: ArrayRef = match &t.data {
        Data::Float(v) => Arc::new(Float32Array::from(v.clone())),
        Data::Double(v) => Arc::new(Float64Array::from(v.clone())),
        Data::Int64(v) => Arc::new(Int64Array::from(v.clone())),
        Data::Int32(v) => Arc::new(Int32Array::from(v.clone())),
        Data::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
        Data::String(v) => Arc::new(StringArray::from_iter_values(v.iter())),
    };
    if t.shape.len() <= 1 {
        return Ok(flat);
    }
    let width: usize = t.shape[1..].iter().product();
    let item = Arc::new(Field::new("item", flat.data_type().clone(), true));
    let size = i32::try_from(width).map_err(arrow_error)?;
    Ok(Arc::new(
        FixedSizeListArray::try_new(item, size, flat, None).map_err(arrow_error)?,
    ))
}

/// Tensors as one Arrow batch, each a column named by its input (`named`: whether the model
/// takes a dict of named arrays rather than one array).
pub fn encode_tensors(
    tensors: &[Tensor],
    names: &[String],
    named: bool,
) -> Result<Vec<u8>, ServeError> {
    let mut fields = Vec::with_capacity(tensors.len());
    let mut arrays = Vec::with_capacity(tensors.len());
    for (t, name) in tensors.iter().zip(names) {
        let array = tensor_column(t)?;
        let shape = serde_json::to_string(&t.shape).map_err(arrow_error)?;
        fields.push(
            Field::new(name, array.data_type().clone(), true)
                .with_metadata(HashMap::from([("keel.shape".to_string(), shape)])),
        );
        arrays.push(array);
    }
    let schema = Schema::new_with_metadata(
        fields,
        HashMap::from([
            ("keel.input".to_string(), "tensors".to_string()),
            ("keel.named".to_string(), named.to_string()),
        ]),
    );
    let batch = RecordBatch::try_new(Arc::new(schema), arrays).map_err(arrow_error)?;
    write_ipc(&batch)
}

/// An integer column's values as 64-bit integers.
fn widen<T: ArrowPrimitiveType>(a: &dyn Array) -> Vec<Option<i64>>
where
    T::Native: Into<i64>,
{
    a.as_primitive::<T>()
        .iter()
        .map(|x| x.map(Into::into))
        .collect()
}

/// The flat values of an answer column (as the worker writes them: numbers, booleans, UTF-8
/// text), as keel's tensor data.
fn column_data(name: &str, a: &dyn Array) -> Result<Data, ServeError> {
    let floats =
        |v: Vec<Option<f64>>| Data::Double(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect());
    let ints = |v: Vec<Option<i64>>| {
        if v.iter().all(Option::is_some) {
            Data::Int64(v.into_iter().flatten().collect())
        } else {
            // pandas holds missing integers as floats; so does the answer.
            floats(v.into_iter().map(|x| x.map(|x| x as f64)).collect())
        }
    };
    Ok(match a.data_type() {
        DataType::Float64 => floats(a.as_primitive::<Float64Type>().iter().collect()),
        DataType::Float32 => {
            let v = a.as_primitive::<Float32Type>();
            if v.null_count() == 0 {
                Data::Float(v.values().to_vec())
            } else {
                Data::Float(v.iter().map(|x| x.unwrap_or(f32::NAN)).collect())
            }
        }
        DataType::Int64 => ints(widen::<Int64Type>(a)),
        DataType::Int32 => ints(widen::<Int32Type>(a)),
        DataType::Int16 => ints(widen::<Int16Type>(a)),
        DataType::Int8 => ints(widen::<Int8Type>(a)),
        DataType::UInt32 => ints(widen::<UInt32Type>(a)),
        DataType::UInt16 => ints(widen::<UInt16Type>(a)),
        DataType::UInt8 => ints(widen::<UInt8Type>(a)),
        DataType::UInt64 => {
            let v = a.as_primitive::<UInt64Type>();
            let mut out = Vec::with_capacity(v.len());
            for x in v.iter() {
                out.push(match x {
                    Some(x) => Some(i64::try_from(x).map_err(|_| {
                        ServeError::Predict(format!(
                            "output '{name}' holds {x}, beyond 64-bit integers"
                        ))
                    })?),
                    None => None,
                });
            }
            ints(out)
        }
        DataType::Boolean => {
            let v = a.as_boolean();
            if v.null_count() > 0 {
                return Err(ServeError::Predict(format!(
                    "output '{name}' holds missing booleans, which keel cannot answer"
                )));
            }
            Data::Bool(v.iter().flatten().collect())
        }
        DataType::Utf8 => {
            let v = a.as_string::<i32>();
            if v.null_count() > 0 {
                return Err(ServeError::Predict(format!(
                    "output '{name}' holds missing strings, which keel cannot answer"
                )));
            }
            Data::String(v.iter().flatten().map(String::from).collect())
        }
        other => {
            return Err(ServeError::Predict(format!(
                "output '{name}' is of type {other}, which keel cannot answer"
            )));
        }
    })
}

/// The model's answer from the worker's Arrow batch, with `rows` rows expected.
pub fn decode_answer(bytes: &[u8], rows: usize) -> Result<Output, ServeError> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(arrow_error)?;
    let schema = reader.schema();
    let layout = match schema.metadata().get("keel.form").map(String::as_str) {
        Some("records") => Layout::Records,
        Some("named") => Layout::Named,
        _ => Layout::List,
    };
    let mut batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().map_err(arrow_error)?;
    let (Some(batch), true) = (batches.pop(), batches.is_empty()) else {
        return Err(arrow_error("expected one record batch"));
    };
    let mut names = Vec::with_capacity(batch.num_columns());
    let mut values = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        let name = field.name();
        let shape: Vec<usize> = match field.metadata().get("keel.shape") {
            Some(s) => serde_json::from_str(s).map_err(arrow_error)?,
            None => vec![column.len()],
        };
        let data = match column.data_type() {
            DataType::FixedSizeList(_, _) => {
                let list = column.as_fixed_size_list();
                column_data(name, list.values().as_ref())?
            }
            _ => column_data(name, column.as_ref())?,
        };
        if shape.first() != Some(&rows) {
            return Err(ServeError::Predict(format!(
                "the model answered {} rows for {rows} (output '{name}', shape {shape:?})",
                shape.first().copied().unwrap_or(0)
            )));
        }
        let tensor = Tensor::new(shape, data).map_err(|e| ServeError::Predict(e.to_string()))?;
        names.push(name.clone());
        values.push(Value::Tensor(tensor));
    }
    Ok(Output {
        names: names.into(),
        values,
        layout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, ty: &str) -> ColumnSpec {
        ColumnSpec {
            name: Some(name.into()),
            ty: ty.into(),
            required: true,
        }
    }

    #[test]
    fn columns_take_their_signature_types() {
        let cols = Columns {
            names: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            values: vec![
                Values::Numbers(vec![Some(1.0), None]),
                Values::Numbers(vec![Some(2.5), Some(3.0)]),
                Values::Text(vec![Some("true".into()), Some("false".into())]),
                Values::Text(vec![Some("x".into()), None]),
            ],
        };
        let specs = [
            spec("a", "long"),
            spec("b", "float"),
            spec("c", "boolean"),
            spec("d", "string"),
        ];
        let bytes = encode_columns(&cols, &specs).unwrap();
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let batch = reader.into_iter().next().unwrap().unwrap();
        let types: Vec<DataType> = batch
            .columns()
            .iter()
            .map(|c| c.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Int64,
                DataType::Float32,
                DataType::Boolean,
                DataType::Utf8
            ]
        );
        assert_eq!(batch.column(0).null_count(), 1);
        assert!(batch.column(2).as_boolean().value(0));
        assert!(!batch.column(2).as_boolean().value(1));
    }

    #[test]
    fn answers_keep_their_shapes_and_forms() {
        // An answer as the worker writes one: a [2, 3] float array.
        let flat = Arc::new(Float64Array::from(vec![0.1, 0.2, 0.7, 0.5, 0.5, 0.0]));
        let item = Arc::new(Field::new("item", DataType::Float64, true));
        let list = FixedSizeListArray::try_new(item, 3, flat, None).unwrap();
        let field = Field::new("predictions", list.data_type().clone(), true).with_metadata(
            HashMap::from([("keel.shape".to_string(), "[2, 3]".to_string())]),
        );
        let schema = Schema::new_with_metadata(
            vec![field],
            HashMap::from([("keel.form".to_string(), "list".to_string())]),
        );
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(list)]).unwrap();
        let out = decode_answer(&write_ipc(&batch).unwrap(), 2).unwrap();
        assert_eq!(out.layout, Layout::List);
        let Value::Tensor(t) = &out.values[0] else {
            panic!("a tensor")
        };
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, Data::Double(vec![0.1, 0.2, 0.7, 0.5, 0.5, 0.0]));
        let e = decode_answer(&write_ipc(&batch).unwrap(), 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("answered 2 rows for 3"), "{e}");
    }

    #[test]
    fn tensors_round_trip_through_fixed_size_lists() {
        let t = Tensor::new(vec![2, 2], Data::Int64(vec![1, 2, 3, 4])).unwrap();
        let bytes = encode_tensors(&[t], &["x".into()], false).unwrap();
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        assert_eq!(reader.schema().metadata()["keel.named"], "false");
        assert_eq!(reader.schema().field(0).metadata()["keel.shape"], "[2,2]");
        let batch = reader.into_iter().next().unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
    }
}
