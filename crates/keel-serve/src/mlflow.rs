//! MLflow's scoring protocol: the `POST /invocations` body formats (`dataframe_split`,
//! `dataframe_records`, `instances`, `inputs`, CSV) and the `{"predictions": ...}` answer.

use std::borrow::Cow;
use std::fmt;

use keel_core::table::{Columns, Values};
use keel_onnx::{Data, Tensor, Value};
use serde::Deserialize;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;

use crate::error::ServeError;
use crate::payload::{
    Cell, ColumnNames, Input, Layout, NamedTensor, Output, Table, column, columns_from_cells,
    map_keys, tensor_from_json,
};

const FIELDS: &str = "dataframe_split, dataframe_records, instances, inputs";

#[derive(Deserialize)]
struct Split<'a> {
    #[serde(default, borrow)]
    columns: Option<Vec<Name<'a>>>,
    data: Grid,
}

/// A column name, borrowed from the body unless it holds escapes.
#[derive(Deserialize)]
struct Name<'a>(#[serde(borrow)] Cow<'a, str>);

impl AsRef<str> for Name<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The `data` rows of a split frame, flattened row after row: numbers (NaN for null) while
/// every cell is a number or null, cells from the first one that is not.
struct Grid {
    rows: usize,
    /// The first row's length.
    width: usize,
    /// The first row whose length differs from the first row's, and its length.
    ragged: Option<(usize, usize)>,
    cells: GridCells,
}

enum GridCells {
    Numbers(Vec<f64>),
    Mixed(Vec<Cell>),
}

impl GridCells {
    fn push(&mut self, cell: Cell) {
        match (&mut *self, cell) {
            (Self::Numbers(v), Cell::Number(x)) => v.push(x),
            (Self::Numbers(v), Cell::Null) => v.push(f64::NAN),
            (Self::Numbers(v), other) => {
                let mut cells: Vec<Cell> = v
                    .iter()
                    .map(|x| {
                        if x.is_nan() {
                            Cell::Null
                        } else {
                            Cell::Number(*x)
                        }
                    })
                    .collect();
                cells.push(other);
                *self = Self::Mixed(cells);
            }
            (Self::Mixed(v), cell) => v.push(cell),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Numbers(v) => v.len(),
            Self::Mixed(v) => v.len(),
        }
    }
}

impl<'de> Deserialize<'de> for Grid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = Grid;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of rows")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Grid, A::Error> {
                let mut grid = Grid {
                    rows: 0,
                    width: 0,
                    ragged: None,
                    cells: GridCells::Numbers(Vec::new()),
                };
                loop {
                    let before = grid.cells.len();
                    if seq.next_element_seed(Row(&mut grid.cells))?.is_none() {
                        break;
                    }
                    let len = grid.cells.len() - before;
                    if grid.rows == 0 {
                        grid.width = len;
                    } else if len != grid.width && grid.ragged.is_none() {
                        grid.ragged = Some((grid.rows, len));
                    }
                    grid.rows += 1;
                }
                Ok(grid)
            }
        }
        d.deserialize_seq(Rows)
    }
}

/// One row of a grid, appended to its cells.
struct Row<'g>(&'g mut GridCells);

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row: a list of values")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(cell) = seq.next_element::<Cell>()? {
            self.0.push(cell);
        }
        Ok(())
    }
}

impl Split<'_> {
    /// The frame, numbers-only ones as a [`Table`] named through `known`.
    fn into_input(self, known: &ColumnNames) -> Result<Input, ServeError> {
        let grid = self.data;
        let width = match &self.columns {
            Some(c) => c.len(),
            None => grid.width,
        };
        let mismatch = if grid.rows > 0 && grid.width != width {
            Some((0, grid.width))
        } else {
            grid.ragged
        };
        if let Some((r, len)) = mismatch {
            return Err(bad(format!("row {r} has {len} values for {width} columns")));
        }
        let names = match self.columns {
            Some(c) => known.get_unique(&c)?,
            None => known.get(&(0..width).map(|i| i.to_string()).collect::<Vec<_>>()),
        };
        match grid.cells {
            GridCells::Numbers(values) => Ok(Input::Table(Table {
                names,
                rows: grid.rows,
                values,
            })),
            GridCells::Mixed(cells) => columns_from_cells(names.to_vec(), &cells).map(Input::Frame),
        }
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default, borrow)]
    dataframe_split: Option<Split<'a>>,
    #[serde(default)]
    dataframe_records: Option<Vec<RequestRecord>>,
    #[serde(default, borrow)]
    instances: Option<&'a RawValue>,
    #[serde(default, borrow)]
    inputs: Option<&'a RawValue>,
}

fn bad(message: impl Into<String>) -> ServeError {
    ServeError::BadRequest(message.into())
}

/// Parses a JSON request body; `known` names the columns of split frames.
pub fn parse_json(body: &[u8], known: &ColumnNames) -> Result<Input, ServeError> {
    let parsed: Body<'_> = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is not a JSON object with one of {FIELDS}: {e}"
        ))
    })?;
    let given = [
        parsed.dataframe_split.is_some(),
        parsed.dataframe_records.is_some(),
        parsed.instances.is_some(),
        parsed.inputs.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(bad(format!(
            "the body must have exactly one of the fields {FIELDS}"
        )));
    }
    if let Some(split) = parsed.dataframe_split {
        return split.into_input(known);
    }
    if let Some(records) = parsed.dataframe_records {
        return records_frame(&records).map(Input::Frame);
    }
    let raw = parsed
        .instances
        .or(parsed.inputs)
        .map(RawValue::get)
        .unwrap_or("null");
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| bad(format!("tensor input: {e}")))?;
    if let serde_json::Value::Array(items) = &value
        && items.first().is_some_and(serde_json::Value::is_object)
    {
        // Records again, read in their keys' order (a parsed JSON object has lost it).
        let records: Vec<RequestRecord> = serde_json::from_str(raw)
            .map_err(|e| bad(format!("instances mix objects and other values: {e}")))?;
        return records_frame(&records).map(Input::Frame);
    }
    tensor_input(&value)
}

/// One record of a data frame: its fields in the order the body lists them. A model that
/// takes its columns by position gets them in this order, as MLflow's pandas frames do.
struct RequestRecord(Vec<(String, Cell)>);

impl<'de> Deserialize<'de> for RequestRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = RequestRecord;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a record: an object of column name to value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RequestRecord, A::Error> {
                let mut fields: Vec<(String, Cell)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let cell = map.next_value::<serde_json::Value>()?;
                    let cell = match cell {
                        serde_json::Value::Null => Cell::Null,
                        serde_json::Value::Bool(b) => Cell::Bool(b),
                        serde_json::Value::Number(n) => {
                            Cell::Number(n.as_f64().unwrap_or(f64::NAN))
                        }
                        serde_json::Value::String(s) => Cell::Text(s),
                        _ => {
                            return Err(serde::de::Error::custom(format!(
                                "column '{key}' holds a list or an object; cells must be scalars"
                            )));
                        }
                    };
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!(
                            "a record names column '{key}' twice"
                        )));
                    }
                    fields.push((key, cell));
                }
                Ok(RequestRecord(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// `instances` or `inputs` other than records: a dictionary of named tensors, or one tensor.
fn tensor_input(value: &serde_json::Value) -> Result<Input, ServeError> {
    match value {
        serde_json::Value::Object(named) => Ok(Input::Tensors(
            named
                .iter()
                .map(|(name, v)| {
                    Ok(NamedTensor {
                        name: Some(name.clone()),
                        tensor: tensor_from_json(Some(name), v)?,
                    })
                })
                .collect::<Result<_, ServeError>>()?,
        )),
        other => Ok(Input::Tensors(vec![NamedTensor {
            name: None,
            tensor: tensor_from_json(None, other)?,
        }])),
    }
}

/// Columns from records, in the order their keys first appear (the first record's order,
/// then keys only later records have); a key missing from a record is null there.
fn records_frame(records: &[RequestRecord]) -> Result<Columns, ServeError> {
    let mut names: Vec<&str> = Vec::new();
    for r in records {
        for (k, _) in &r.0 {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
    }
    let values = names
        .iter()
        .enumerate()
        .map(|(j, &name)| {
            let cells = records.iter().map(move |r| {
                // Records nearly always list their keys alike: look where this one was first.
                match r.0.get(j) {
                    Some((k, c)) if k == name => c,
                    _ => {
                        r.0.iter()
                            .find(|(k, _)| k == name)
                            .map_or(&Cell::Null, |(_, c)| c)
                    }
                }
            });
            column(name, cells)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Columns {
        names: names.into_iter().map(String::from).collect(),
        values,
    })
}

/// Parses a CSV request body: a header row naming the columns, then one record per row. An
/// empty field is a missing value. A column is numeric when every value in it is a number
/// (integers, decimals, exponents, `NaN`, `inf`), boolean text (`true`/`false`) when every value
/// is one of those in any case, and text otherwise.
pub fn parse_csv(body: &[u8]) -> Result<Input, ServeError> {
    let unreadable = |e: csv::Error| bad(format!("the CSV body cannot be read: {e}"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let names: Vec<String> = reader
        .headers()
        .map_err(unreadable)?
        .iter()
        .map(str::to_string)
        .collect();
    for (i, name) in names.iter().enumerate() {
        if names[..i].contains(name) {
            return Err(bad(format!("the CSV body names the column '{name}' twice")));
        }
    }
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record.map_err(unreadable)?;
        for (column, field) in cells.iter_mut().zip(record.iter()) {
            column.push((!field.is_empty()).then(|| field.to_string()));
        }
    }
    Ok(Input::Frame(Columns {
        names,
        values: cells.into_iter().map(csv_column).collect(),
    }))
}

/// A CSV column's values with their type inferred from all of them.
fn csv_column(cells: Vec<Option<String>>) -> Values {
    let mut present = cells.iter().flatten().peekable();
    if present.peek().is_none() {
        return Values::Text(cells);
    }
    if cells.iter().flatten().all(|c| c.parse::<f64>().is_ok()) {
        return Values::Numbers(
            cells
                .iter()
                .map(|c| c.as_deref().and_then(|c| c.parse().ok()))
                .collect(),
        );
    }
    let boolean = |c: &String| c.eq_ignore_ascii_case("true") || c.eq_ignore_ascii_case("false");
    if cells.iter().flatten().all(boolean) {
        return Values::Text(
            cells
                .into_iter()
                .map(|c| c.map(|c| c.to_ascii_lowercase()))
                .collect(),
        );
    }
    Values::Text(cells)
}

/// Serialises one element of a tensor.
fn element<S: Serializer>(data: &Data, i: usize, s: S) -> Result<S::Ok, S::Error> {
    match data {
        Data::Float(v) => finite(f64::from(v[i]), s),
        Data::Double(v) => finite(v[i], s),
        Data::Int64(v) => s.serialize_i64(v[i]),
        Data::Int32(v) => s.serialize_i32(v[i]),
        Data::Bool(v) => s.serialize_bool(v[i]),
        Data::String(v) => s.serialize_str(&v[i]),
    }
}

/// A number, or null for NaN and infinities (JSON has no such numbers).
fn finite<S: Serializer>(x: f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(x)
    } else {
        s.serialize_unit()
    }
}

/// Elements `start..start + len` of a tensor as nested lists of `dims`.
struct Nested<'a> {
    data: &'a Data,
    dims: &'a [usize],
    start: usize,
}

impl serde::Serialize for Nested<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.dims {
            [] => element(self.data, self.start, s),
            [n, rest @ ..] => {
                let stride: usize = rest.iter().product();
                let mut seq = s.serialize_seq(Some(*n))?;
                for k in 0..*n {
                    seq.serialize_element(&Nested {
                        data: self.data,
                        dims: rest,
                        start: self.start + k * stride,
                    })?;
                }
                seq.end()
            }
        }
    }
}

/// One row's value of an output: a scalar for `[N]` and `[N, 1]`, a list for `[N, k]`, an
/// object for a map.
struct RowValue<'a> {
    value: &'a Value,
    row: usize,
}

impl serde::Serialize for RowValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Tensor(t) => {
                let rest = t.shape.get(1..).unwrap_or(&[]);
                let per_row: usize = rest.iter().product();
                if per_row == 1 {
                    element(&t.data, self.row, s)
                } else {
                    Nested {
                        data: &t.data,
                        dims: rest,
                        start: self.row * per_row,
                    }
                    .serialize(s)
                }
            }
            Value::Maps(m) => {
                let keys = map_keys(&m.keys);
                let mut map = s.serialize_map(Some(keys.len()))?;
                for (k, key) in keys.iter().enumerate() {
                    let v = m.values[self.row * keys.len() + k];
                    map.serialize_entry(key, &FiniteF32(v))?;
                }
                map.end()
            }
        }
    }
}

struct FiniteF32(f32);

impl serde::Serialize for FiniteF32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        finite(f64::from(self.0), s)
    }
}

/// The records form: one object per row, output name to value.
struct Records<'a>(&'a Output);

impl serde::Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rows = self.0.rows();
        let mut seq = s.serialize_seq(Some(rows))?;
        for row in 0..rows {
            seq.serialize_element(&Record {
                output: self.0,
                row,
            })?;
        }
        seq.end()
    }
}

struct Record<'a> {
    output: &'a Output,
    row: usize,
}

impl serde::Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.output.names.len()))?;
        for (name, value) in self.output.names.iter().zip(&self.output.values) {
            map.serialize_entry(
                name,
                &RowValue {
                    value,
                    row: self.row,
                },
            )?;
        }
        map.end()
    }
}

/// Every row of one output.
struct Rows<'a>(&'a Value);

impl serde::Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let rows = self.0.rows();
        let mut seq = s.serialize_seq(Some(rows))?;
        for row in 0..rows {
            seq.serialize_element(&RowValue { value: self.0, row })?;
        }
        seq.end()
    }
}

/// The tensors form: output name to the whole output as nested lists.
struct Named<'a>(&'a Output);

impl serde::Serialize for Named<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.names.len()))?;
        for (name, value) in self.0.names.iter().zip(&self.0.values) {
            match value {
                Value::Tensor(t) => map.serialize_entry(
                    name,
                    &Nested {
                        data: &t.data,
                        dims: &t.shape,
                        start: 0,
                    },
                )?,
                Value::Maps(_) => map.serialize_entry(name, &Rows(value))?,
            }
        }
        map.end()
    }
}

/// The `{"predictions": ...}` answer: as the output's layout says (a Python model's answer
/// written as MLflow's scoring server writes it), else records for data frame input (as
/// MLflow's pyfunc answers with a data frame) and output name to tensor for tensor input.
pub fn answer(output: &Output, frame_input: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 32 * output.rows());
    let mut ser = serde_json::Serializer::new(&mut out);
    let written = (|| -> Result<(), serde_json::Error> {
        let mut map = ser.serialize_map(Some(1))?;
        match (output.layout, output.values.as_slice()) {
            (Layout::Records, _) => map.serialize_entry("predictions", &Records(output))?,
            (Layout::Named, _) => map.serialize_entry("predictions", &Named(output))?,
            (Layout::List, [Value::Tensor(t)]) => map.serialize_entry(
                "predictions",
                &Nested {
                    data: &t.data,
                    dims: &t.shape,
                    start: 0,
                },
            )?,
            _ if frame_input => map.serialize_entry("predictions", &Records(output))?,
            _ => map.serialize_entry("predictions", &Named(output))?,
        }
        SerializeMap::end(map)
    })();
    debug_assert!(written.is_ok(), "serialising to memory does not fail");
    out
}

/// A tensor's values as one flat list (the Open Inference Protocol's `data`).
pub fn flat_data(t: &Tensor) -> serde_json::Value {
    let dims = [t.len()];
    serde_json::to_value(Nested {
        data: &t.data,
        dims: &dims,
        start: 0,
    })
    .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_core::table::Values;
    use std::sync::Arc;

    #[test]
    fn every_json_format_parses() {
        let known = ColumnNames::default();
        let split = parse_json(
            br#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, null]]}}"#,
            &known,
        )
        .unwrap();
        let Input::Frame(c) = &split else { panic!() };
        assert_eq!(c.values[0], Values::Numbers(vec![Some(1.0), Some(2.0)]));
        let records = parse_json(
            br#"{"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2}]}"#,
            &known,
        )
        .unwrap();
        assert_eq!(records, split);
        let instances = parse_json(
            br#"{"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": null}]}"#,
            &known,
        )
        .unwrap();
        assert_eq!(instances, split);
        let tensor = parse_json(br#"{"inputs": [[1, 2], [3, 4]]}"#, &known).unwrap();
        let Input::Tensors(t) = tensor else { panic!() };
        assert_eq!(t[0].tensor.shape, vec![2, 2]);
        let named = parse_json(br#"{"inputs": {"x": [[1, 2]]}}"#, &known).unwrap();
        let Input::Tensors(t) = named else { panic!() };
        assert_eq!(t[0].name.as_deref(), Some("x"));
        let csv = parse_csv(b"a,b\n1,x\n2,\n").unwrap();
        let Input::Frame(c) = csv else { panic!() };
        assert_eq!(c.names, vec!["a", "b"]);
    }

    #[test]
    fn csv_columns_take_the_type_all_their_values_share() {
        let body = b"i,f,b,t,gap,none,q\n1,1.5,True,x,,,\"2\"\n-2,1e3,false,3,7,,\"1,5\"\n3,NaN,FALSE,y,8,,x\n";
        let Input::Frame(c) = parse_csv(body).unwrap() else {
            panic!("a frame")
        };
        assert_eq!(c.names, vec!["i", "f", "b", "t", "gap", "none", "q"]);
        assert_eq!(
            c.values[0],
            Values::Numbers(vec![Some(1.0), Some(-2.0), Some(3.0)])
        );
        let Values::Numbers(f) = &c.values[1] else {
            panic!("numbers")
        };
        assert_eq!((f[0], f[1]), (Some(1.5), Some(1000.0)));
        assert!(f[2].is_some_and(f64::is_nan));
        let text =
            |v: &[Option<&str>]| Values::Text(v.iter().map(|s| s.map(String::from)).collect());
        assert_eq!(
            c.values[2],
            text(&[Some("true"), Some("false"), Some("false")])
        );
        assert_eq!(c.values[3], text(&[Some("x"), Some("3"), Some("y")]));
        assert_eq!(
            c.values[4],
            Values::Numbers(vec![None, Some(7.0), Some(8.0)])
        );
        assert_eq!(c.values[5], text(&[None, None, None]));
        assert_eq!(c.values[6], text(&[Some("2"), Some("1,5"), Some("x")]));
        for (body, says) in [
            (&b"a,b\n1,2\n3\n"[..], "cannot be read"),
            (&b"a,a\n1,2\n"[..], "names the column 'a' twice"),
        ] {
            let e = parse_csv(body).expect_err("an error").to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn numeric_split_frames_are_tables_with_shared_names() {
        let known = ColumnNames::default();
        let body =
            br#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, null], [2.5, 3]]}}"#;
        let Input::Table(first) = parse_json(body, &known).unwrap() else {
            panic!("a numbers-only frame is a table")
        };
        assert_eq!(first.rows, 2);
        assert_eq!(first.values[0], 1.0);
        assert!(first.values[1].is_nan(), "null is NaN in a table");
        assert_eq!((first.values[2], first.values[3]), (2.5, 3.0));
        let Input::Table(second) = parse_json(body, &known).unwrap() else {
            panic!()
        };
        assert!(
            Arc::ptr_eq(&first.names, &second.names),
            "the same columns share one list"
        );
        let columns = second.into_columns();
        assert_eq!(columns.values[1], Values::Numbers(vec![None, Some(3.0)]));
        let unnamed = parse_json(br#"{"dataframe_split": {"data": [[1, 2]]}}"#, &known).unwrap();
        let Input::Table(t) = unnamed else { panic!() };
        assert_eq!(&t.names[..], ["0", "1"]);
        for (body, row) in [
            (
                &br#"{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}"#[..],
                "row 0 has 2 values for 1 columns",
            ),
            (
                br#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3]]}}"#,
                "row 1 has 1 values for 2 columns",
            ),
            (
                br#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], ["x"]]}}"#,
                "row 1 has 1 values for 2 columns",
            ),
        ] {
            let e = parse_json(body, &known).unwrap_err().to_string();
            assert!(e.contains(row), "{e}");
        }
    }

    #[test]
    fn a_body_without_exactly_one_format_is_refused() {
        let known = ColumnNames::default();
        for body in [
            &br#"{}"#[..],
            br#"{"instances": [1], "inputs": [1]}"#,
            b"[1, 2]",
            b"not json",
        ] {
            let e = parse_json(body, &known).unwrap_err();
            assert_eq!(e.status(), 400, "{e}");
        }
    }

    #[test]
    fn answers_are_records_or_named_tensors() {
        let output = Output {
            names: vec!["label".to_string(), "p".to_string()].into(),
            values: vec![
                Value::Tensor(Tensor::new(vec![2], Data::Int64(vec![1, 0])).unwrap()),
                Value::Tensor(Tensor::float(vec![2, 2], vec![0.25, 0.75, 1.0, f32::NAN]).unwrap()),
            ],
            layout: crate::payload::Layout::ByInput,
        };
        let records: serde_json::Value = serde_json::from_slice(&answer(&output, true)).unwrap();
        assert_eq!(
            records,
            serde_json::json!({"predictions": [{"label": 1, "p": [0.25, 0.75]}, {"label": 0, "p": [1.0, null]}]})
        );
        let named: serde_json::Value = serde_json::from_slice(&answer(&output, false)).unwrap();
        assert_eq!(
            named,
            serde_json::json!({"predictions": {"label": [1, 0], "p": [[0.25, 0.75], [1.0, null]]}})
        );
    }
}
